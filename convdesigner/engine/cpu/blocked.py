"""Register-blocked direct convolution (stride 1, groups=1, any kernel size, dilation and padding): forward and dW.

In the wide layout of :mod:`planes` every kernel tap reads one contiguous run of a padded plane, so the output is a
sum over (channel, tap) of a broadcast weight times a shifted run: no im2col columns are built. A chunk's samples
lie one padded plane after another, so one run covers them all (what a tap reads past a sample's last output row
lands in dropped positions). Each block of :data:`FILTERS` filters × :data:`VECTORS` vectors of positions is twelve
:mod:`simd` accumulators kept in registers through the whole sum, one fused multiply-add per weight and vector,
three vector loads and four broadcasts per twelve of them. dW sums over positions the widened gradient (zero in the
dropped positions) times each tap's run, FILTERS filters × TAPS taps a block of twelve accumulators. dx of a
stride-1 convolution is the forward with the flipped kernel (conv.py).

Where it wins against im2col + sgemm and Winograd (measured on one core of a Zen 4): see conv.strategy.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from convdesigner.engine.cpu.blas_threads import run_shared
from convdesigner.engine.cpu.planes import Geometry, narrow, pad_into, widen_rows, workspace
from convdesigner.engine.cpu.simd import WIDTH, vfma, vload, vsplat, vstore, vsum, vzero

FILTERS = 4  # filters per register block
VECTORS = 3  # vectors of positions per register block of the forward: 12 accumulators, within AVX2's 16 registers
TAPS = 3  # taps per register block of the dW sums (with FILTERS filters: 12 accumulators again)
_SPAN = VECTORS * WIDTH
# floats of padded planes and output (or gradient) rows a chunk, 256 KiB: several small planes a chunk, so that the
# rounding of a run to whole blocks wastes little (8×8 planes one at a time: 44 % of the positions, and 1.3× slower)
# and dW's reductions of its accumulators come once for many positions
_CHUNK_FLOATS = 1 << 16


def supports(stride: int, groups: int) -> bool:
    """True for the convolutions this module runs: stride 1, ungrouped."""
    return stride == 1 and groups == 1


@njit(cache=True, nogil=True, fastmath=False)
def _stack(x, gate, n0, n1, planes, plane, top, left, wp):
    """Samples n0..n1 of x padded into the planes (C, ·), one ``plane`` floats after another (borders stay zero);
    with a ``gate`` (else None), x times (gate > 0), as :func:`planes.pad_into`."""
    flat = planes.reshape(-1)
    for n in range(n0, n1):
        pad_into(flat, (n - n0) * plane, planes.shape[1], x, n, top, left, wp, gate)


@njit(cache=True, nogil=True, fastmath=False)
def _products(planes, wb, wide, offsets, start, end):
    """wide[f, q] = Σ over channels c and taps t of wb[f // FILTERS, c, t, f % FILTERS] · planes[c, q + offsets[t]]
    for start ≤ q < end (end - start a multiple of the block's span; the planes hold end + the last offset values a
    row)."""
    blocks, channels, taps = wb.shape[0], wb.shape[1], wb.shape[2]
    src, dst, ld, row = planes.reshape(-1), wide.reshape(-1), planes.shape[1], wide.shape[1]
    for fb in range(blocks):
        for p0 in range(start, end, _SPAN):
            a00, a01, a02 = vzero(), vzero(), vzero()
            a10, a11, a12 = vzero(), vzero(), vzero()
            a20, a21, a22 = vzero(), vzero(), vzero()
            a30, a31, a32 = vzero(), vzero(), vzero()
            for c in range(channels):
                base = c * ld + p0
                for t in range(taps):
                    o = base + offsets[t]
                    x0, x1, x2 = vload(src, o), vload(src, o + WIDTH), vload(src, o + 2 * WIDTH)
                    w = vsplat(wb[fb, c, t, 0])
                    a00, a01, a02 = vfma(w, x0, a00), vfma(w, x1, a01), vfma(w, x2, a02)
                    w = vsplat(wb[fb, c, t, 1])
                    a10, a11, a12 = vfma(w, x0, a10), vfma(w, x1, a11), vfma(w, x2, a12)
                    w = vsplat(wb[fb, c, t, 2])
                    a20, a21, a22 = vfma(w, x0, a20), vfma(w, x1, a21), vfma(w, x2, a22)
                    w = vsplat(wb[fb, c, t, 3])
                    a30, a31, a32 = vfma(w, x0, a30), vfma(w, x1, a31), vfma(w, x2, a32)
            r = fb * FILTERS * row + p0
            _store3(dst, r, a00, a01, a02)
            _store3(dst, r + row, a10, a11, a12)
            _store3(dst, r + 2 * row, a20, a21, a22)
            _store3(dst, r + 3 * row, a30, a31, a32)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _store3(dst, r, v0, v1, v2):
    vstore(dst, r, v0)
    vstore(dst, r + WIDTH, v1)
    vstore(dst, r + 2 * WIDTH, v2)


@njit(cache=True, nogil=True, fastmath=False)
def _forward_chunk(x, gate, wb, b, y, n0, n1, planes, wide, offsets, plane, top, left, wp, relu):
    """Samples n0..n1 of :func:`forward`: stacked into the planes, summed, narrowed into y."""
    _stack(x, gate, n0, n1, planes, plane, top, left, wp)
    run = -(-((y.shape[2] - 1) * wp + y.shape[3]) // _SPAN) * _SPAN  # a sample's outputs, not the rows past them
    samples = n1 - n0  # (LeNet-5's unpadded 5×5: 144 positions a sample, not 196)
    if run >= plane:  # small planes: the chunk's planes as one run
        samples, run = 1, -(-(n1 - n0) * plane // _SPAN) * _SPAN
    for n in range(samples):  # one call site: each costs compile time at a cold start
        _products(planes, wb, wide, offsets, n * plane, n * plane + run)
    narrow(wide, b, y, n0, n1, wp, plane, relu)


@njit(cache=True, nogil=True, fastmath=False)
def _weight_products(planes, wide, offsets, samples, plane, run, dw):
    """dw[fb, c, t, k] = Σ over the first ``run`` positions q of each sample's plane (as in :func:`_products`) of
    wide[fb·FILTERS + k, q] · planes[c, q + offsets[t]]: each vector of wide read once for TAPS taps, each of planes
    once for FILTERS filters."""
    blocks, channels, taps = dw.shape[0], dw.shape[1], dw.shape[2]
    src, grad, ld, row = planes.reshape(-1), wide.reshape(-1), planes.shape[1], wide.shape[1]
    for fb in range(blocks):
        g0 = fb * FILTERS * row
        for c in range(channels):
            for t in range(0, taps, TAPS):
                o0, o1, o2 = c * ld + offsets[t], c * ld + offsets[t + 1], c * ld + offsets[t + 2]
                a00, a01, a02 = vzero(), vzero(), vzero()
                a10, a11, a12 = vzero(), vzero(), vzero()
                a20, a21, a22 = vzero(), vzero(), vzero()
                a30, a31, a32 = vzero(), vzero(), vzero()
                for n in range(samples):
                    for q in range(n * plane, n * plane + run, WIDTH):
                        x0, x1, x2 = vload(src, o0 + q), vload(src, o1 + q), vload(src, o2 + q)
                        g = vload(grad, g0 + q)
                        a00, a01, a02 = vfma(g, x0, a00), vfma(g, x1, a01), vfma(g, x2, a02)
                        g = vload(grad, g0 + row + q)
                        a10, a11, a12 = vfma(g, x0, a10), vfma(g, x1, a11), vfma(g, x2, a12)
                        g = vload(grad, g0 + 2 * row + q)
                        a20, a21, a22 = vfma(g, x0, a20), vfma(g, x1, a21), vfma(g, x2, a22)
                        g = vload(grad, g0 + 3 * row + q)
                        a30, a31, a32 = vfma(g, x0, a30), vfma(g, x1, a31), vfma(g, x2, a32)
                _sums(dw[fb, c, t], a00, a10, a20, a30)
                _sums(dw[fb, c, t + 1], a01, a11, a21, a31)
                _sums(dw[fb, c, t + 2], a02, a12, a22, a32)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _sums(out, v0, v1, v2, v3):
    out[0], out[1], out[2], out[3] = vsum(v0), vsum(v1), vsum(v2), vsum(v3)


@njit(cache=True, nogil=True, fastmath=False)
def _backward_chunk(x, dy, y, relu, n0, n1, planes, wide, offsets, plane, top, left, wp, dw, db):
    """dw and db of samples n0..n1: stacked into the planes, their gradient (gated by the ReLU output y when
    ``relu``) widened beside them, the products summed."""
    _stack(x, None, n0, n1, planes, plane, top, left, wp)
    end = -(-(n1 - n0) * plane // WIDTH) * WIDTH
    wide[:, (n1 - n0) * plane:end] = 0.0  # past the chunk's last sample, where a longer chunk may have left values
    col_sums = np.empty(dy.shape[3], np.float32)
    for f in range(dy.shape[1]):
        col_sums[:] = 0.0
        widen_rows(dy, y, relu, n0, n1, f, wide[f], wp, plane, col_sums)
        db[f] = col_sums.sum()
    run = -(-((dy.shape[2] - 1) * wp + dy.shape[3]) // WIDTH) * WIDTH  # as in _forward_chunk
    samples = n1 - n0
    if run >= plane:
        samples, run = 1, end
    _weight_products(planes, wide, offsets, samples, plane, run, dw)


def _blocked_weights(w):
    """w (F, C, kh, kw) as (ceil(F / FILTERS), C, kh·kw, FILTERS), the filters past F zero."""
    f, c, kh, kw = w.shape
    blocks = -(-f // FILTERS)
    wb = np.zeros((blocks * FILTERS, c, kh * kw), np.float32)
    wb[:f] = w.reshape(f, c, kh * kw)
    return np.ascontiguousarray(wb.reshape(blocks, FILTERS, c, kh * kw).transpose(0, 2, 3, 1))


def _offsets(g: Geometry, kh: int, kw: int, dilation: int, taps: int):
    """Where each kernel tap's run starts in a padded plane, for ``taps`` ≥ kh·kw taps (those past read offset 0)."""
    offsets = np.zeros(taps, np.int64)
    offsets[:kh * kw] = [(i * g.wp + j) * dilation for i in range(kh) for j in range(kw)]
    return offsets


def _layout(g: Geometry, n: int, channels: int, filters: int, offsets, span: int):
    """(floats a sample's padded plane, samples a chunk, row length of planes and wide): a chunk's planes and rows
    within _CHUNK_FLOATS, the rows long enough for the block's span and each tap's reach past it."""
    plane = g.hp * g.wp
    chunk = max(1, min(n, _CHUNK_FLOATS // ((channels + filters) * plane)))
    end = -(-chunk * plane // span) * span
    return plane, chunk, end + int(offsets.max())


def forward(x, w, b, y, g: Geometry, pads, dilation: int, relu: bool, gate=None) -> None:
    """y (N,F,OH,OW) = conv(x, w) + b, through a ReLU when ``relu``, chunks of the batch on run_shared's threads;
    with ``gate`` (x's shape), x counts only where gate > 0: dx of a ReLU-fused conv from its ungated dy."""
    f, c, kh, kw = w.shape
    wb = _blocked_weights(w)
    offsets = _offsets(g, kh, kw, dilation, kh * kw)
    plane, chunk, length = _layout(g, x.shape[0], c, wb.shape[0] * FILTERS, offsets, _SPAN)

    def work(worker, chunks):
        planes = workspace(f"plane{worker}", (c, length))
        planes[:] = 0.0  # the borders and the tail, which _stack never writes
        wide = workspace(f"gemm1.{worker}", (wb.shape[0] * FILTERS, length))
        for n0, n1 in chunks:
            _forward_chunk(x, gate, wb, b, y, n0, n1, planes, wide, offsets,
                           plane, pads[0], pads[2], g.wp, relu)

    run_shared(work, x.shape[0], chunk)


def weight_gradient(x, w_shape, dy, y, relu, g: Geometry, pads, dilation: int):
    """(dw, db) of the convolution, through the ReLU whose output is y when ``relu``: chunks of the batch on
    run_shared's threads, each chunk's sums in a slot of its own, added in chunk order (bit-reproducible)."""
    f, c, kh, kw = w_shape
    n = x.shape[0]
    blocks = -(-f // FILTERS)
    taps = -(-kh * kw // TAPS) * TAPS  # whole blocks of taps; the sums of those past kh·kw are dropped
    offsets = _offsets(g, kh, kw, dilation, taps)
    plane, chunk, length = _layout(g, n, c, blocks * FILTERS, offsets, WIDTH)
    slots = -(-n // chunk)
    dws = np.empty((slots, blocks, c, taps, FILTERS), np.float32)
    dbs = np.empty((slots, f), np.float32)

    def work(worker, chunks):
        planes = workspace(f"plane{worker}", (c, length))
        planes[:] = 0.0
        wide = workspace(f"gemm1.{worker}", (blocks * FILTERS, length))
        wide[:] = 0.0  # the filters past F and the positions past each sample's last row, never written
        for n0, n1 in chunks:
            _backward_chunk(x, dy, y, relu, n0, n1, planes, wide, offsets, plane, pads[0], pads[2], g.wp,
                            dws[n0 // chunk], dbs[n0 // chunk])

    run_shared(work, n, chunk)
    dw = dws.sum(0).transpose(0, 3, 1, 2).reshape(blocks * FILTERS, c, taps)[:f, :, :kh * kw]
    return np.ascontiguousarray(dw).reshape(w_shape), dbs.sum(0)
