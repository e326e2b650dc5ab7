"""Depthwise convolution (groups == C: filter f reads channel f // m alone, F = m*C), forward and backward.

Each (sample, channel) plane is zero-padded once into a small buffer split by stride phase: phase (a, b) holds the
padded values at rows ``s*r + a``, columns ``s*u + b``.  Tap (i, j) then reads ONE contiguous run of the phase plane
``((i*d) % s, (j*d) % s)`` at any stride, the wide layout of :mod:`planes` with row stride ``Wph``, so the forward, dW
and dx are axpys and elementwise products over whole output planes that vectorise without fastmath.

The planes are small (down to 4×4 outputs), so the loops index flat arrays at unsigned offsets (no negative-index
wraparound to stop vectorisation) instead of taking slices, whose reference counting costs more than the arithmetic.
Parallel over the batch on the threads of :func:`blas_threads.run_shared` (serial kernels compile in half the time
of prange ones: 6 s less on EfficientNet's cold start); dW and db sum per fixed chunk of samples and add the chunks
in order, so the result does not depend on thread count or timing.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, uint64

from convdesigner.engine.cpu.blas_threads import run_shared
from convdesigner.engine.cpu.planes import Geometry, gated

_U = uint64  # offsets into flat arrays: unsigned, so loops over them vectorise
# the forward takes as many samples together as have this many floats of phase planes: 5 at 8x8 stride 2 (1.2-1.6x
# its forward), one from 16x16 (groups of 3-12 there measured up to 1.4x slower)
_GROUP_FLOATS = 512


@njit(cache=True, nogil=True, fastmath=False)
def _axpy(dst, d0, src, s0, a, n):
    """dst[d0:d0+n] += a * src[s0:s0+n]."""
    for q in range(n):
        dst[d0 + q] += a * src[s0 + q]


@njit(cache=True, nogil=True, fastmath=False)
def _products4(acc, u, u0, u1, u2, u3, v, v0, v1, v2, v3, n):
    """acc[q] = u[u0+q]*v[v0+q] + ... (four products, added left to right): one dW tap over 4 samples per pass."""
    for q in range(n):
        acc[q] = u[u0 + q] * v[v0 + q] + u[u1 + q] * v[v1 + q] + u[u2 + q] * v[v2 + q] + u[u3 + q] * v[v3 + q]


@njit(cache=True, nogil=True, fastmath=False)
def _axpy4(dst, d0, src, o0, o1, o2, o3, a0, a1, a2, a3, n):
    """dst[d0+q] += a0*src[o0+q] + ... + a3*src[o3+q], added left to right: the same bits as four axpys."""
    for q in range(n):
        dst[d0 + q] = dst[d0 + q] + a0 * src[o0 + q] + a1 * src[o1 + q] + a2 * src[o2 + q] + a3 * src[o3 + q]


@njit(cache=True, nogil=True, fastmath=False)
def _taps(dst, d0, src, s0, starts, ws, w0, t0, t1, n):
    """dst[d0+q] += sum over taps t in [t0, t1) of ws[w0+t] * src[s0 + starts[t] + q], in tap order, four taps per
    pass over dst (loads and stores of dst, not arithmetic, bound these loops; 3x3 and 5x5 kernels leave one tap)."""
    t = t0
    while t + 4 <= t1:
        _axpy4(dst, d0, src, s0 + starts[t], s0 + starts[t + 1], s0 + starts[t + 2], s0 + starts[t + 3],
               ws[w0 + t], ws[w0 + t + 1], ws[w0 + t + 2], ws[w0 + t + 3], n)
        t += 4
    for r in range(t, t1):
        _axpy(dst, d0, src, s0 + starts[r], ws[w0 + r], n)


@njit(cache=True, nogil=True, fastmath=False)
def _split(x, x0, h_, w_, phases, cols, top, s, wph, plane):
    """phases (s*s planes of Hph*Wph, flat) = the zero-padded plane x[x0:x0+H*W] by stride phase.  Only where x lands
    is written, so the padding stays as zeroed by the caller.  cols[b] = (column phase, its first column) of x's
    columns b, b + s, ...  Loops inline and at constant strides, both phases of stride 2 in one loop (an interleaved
    load): a plane's rows are short, so call and loop set-up would cost more than the copying."""
    a, base = top % s, (top // s) * wph  # the phase row of padded row h + top
    for h in range(h_):
        if h:
            a += 1
            if a == s:
                a, base = 0, base + wph
        src = x0 + h * w_
        if s == 1:
            dst, o = _U(base + cols[0, 1]), _U(src)
            for u in range(_U(w_)):
                phases[dst + u] = x[o + u]
        elif s == 2:
            d0 = _U((a * 2 + cols[0, 0]) * plane + base + cols[0, 1])
            d1 = _U((a * 2 + cols[1, 0]) * plane + base + cols[1, 1])
            o = _U(src)
            for u in range(_U(w_ // 2)):
                phases[d0 + u] = x[o + _U(2) * u]
                phases[d1 + u] = x[o + _U(2) * u + _U(1)]
            if w_ % 2:
                phases[d0 + _U(w_ // 2)] = x[o + _U(w_ - 1)]
        else:
            for b in range(min(s, w_)):
                dst, o = _U((a * s + cols[b, 0]) * plane + base + cols[b, 1]), _U(src + b)
                for u in range(_U((w_ - b + s - 1) // s)):
                    phases[dst + u] = x[o + _U(s) * u]


@njit(cache=True, nogil=True, fastmath=False)
def _merge(dphases, dx, x0, h_, w_, cols, top, s, wph, plane):
    """dx[x0:x0+H*W] = the interior of the padded plane held by stride phase in dphases (the adjoint of _split)."""
    a, base = top % s, (top // s) * wph
    for h in range(h_):
        if h:
            a += 1
            if a == s:
                a, base = 0, base + wph
        dst = x0 + h * w_
        if s == 1:
            src, o = _U(base + cols[0, 1]), _U(dst)
            for u in range(_U(w_)):
                dx[o + u] = dphases[src + u]
        elif s == 2:
            s0 = _U((a * 2 + cols[0, 0]) * plane + base + cols[0, 1])
            s1 = _U((a * 2 + cols[1, 0]) * plane + base + cols[1, 1])
            o = _U(dst)
            for u in range(_U(w_ // 2)):
                dx[o + _U(2) * u] = dphases[s0 + u]
                dx[o + _U(2) * u + _U(1)] = dphases[s1 + u]
            if w_ % 2:
                dx[o + _U(w_ - 1)] = dphases[s0 + _U(w_ // 2)]
        else:
            for b in range(min(s, w_)):
                src, o = _U((a * s + cols[b, 0]) * plane + base + cols[b, 1]), _U(dst + b)
                for u in range(_U((w_ - b + s - 1) // s)):
                    dx[o + _U(s) * u] = dphases[src + u]


@njit(cache=True, nogil=True, fastmath=False)
def _pairwise_sum(v, v0, n):
    """The sum of v[v0:v0+n] by halving in place (vectorised adds in a fixed order, where a serial loop without
    fastmath would not vectorise); destroys those values."""
    while n > 8:
        h = n // 2
        _axpy(v, _U(v0), v, _U(v0 + n - h), np.float32(1.0), _U(h))
        n -= h
    total = np.float32(0.0)
    for q in range(v0, v0 + n):
        total += v[q]
    return total


@njit(cache=True, nogil=True, fastmath=False)
def _forward(x, wf, b, y, relu, tap_phase, tap_off, cols, s, top, hph, wph, group, nchunks):
    """y = conv(x, w) + b; wf is w flat (F*T).  The phase planes of ``group`` samples of a channel lie side by side
    in each phase, so a tap is one run over all of them: small planes pay the loop set-up once per group."""
    n_, c_, h_, w_ = x.shape
    f_, oh_, ow_ = y.shape[1], y.shape[2], y.shape[3]
    m, taps = f_ // c_, tap_off.shape[0]
    plane = hph * wph
    q_ = (oh_ - 1) * wph + ow_
    starts = tap_phase * _U(group * plane) + tap_off
    xf, yf = x.reshape(-1), y.reshape(-1)
    for t in range(nchunks):
        phases = np.zeros(s * s * group * plane, np.float32)
        acc = np.empty(group * plane, np.float32)
        n1 = (t + 1) * n_ // nchunks
        for n0 in range(t * n_ // nchunks, n1, group):
            ns = min(group, n1 - n0)
            run = _U((ns - 1) * plane + q_)
            for c in range(c_):
                for j in range(ns):
                    _split(xf, ((n0 + j) * c_ + c) * h_ * w_, h_, w_, phases[j * plane:], cols, top, s, wph,
                           group * plane)
                for f in range(c * m, (c + 1) * m):
                    bias = b[f]
                    for q in range(run):
                        acc[q] = bias
                    _taps(acc, _U(0), phases, _U(0), starts, wf, f * taps, 0, taps, run)
                    for j in range(ns):
                        y0 = ((n0 + j) * f_ + f) * oh_ * ow_
                        for oh in range(oh_):
                            src, dst = _U(j * plane + oh * wph), _U(y0 + oh * ow_)
                            for ow in range(_U(ow_)):
                                v = acc[src + ow]
                                yf[dst + ow] = 0.0 if relu and v < 0.0 else v


@njit(cache=True, nogil=True, fastmath=False)
def _backward(x, dy, gate_by, relu, dx, need_dx, dws, dbs, starts, dstarts, wd, bounds, g0, cols, s, top, hph, wph):
    """dws[t, f, tap] and dbs[t, f, ow]: the dW and db (column sums) partials of samples [4t, 4t+4); and dx when
    need_dx, gathered phase by phase: phase plane p of padded dx is the sum over its taps [bounds[p], bounds[p+1]) of
    wd (w flat, taps in phase order) times the run of dy (zero-padded by g0 floats in front) that starts at dstarts,
    one run over the chunk's 4 samples side by side."""
    n_, c_, h_, w_ = x.shape
    f_, oh_, ow_ = dy.shape[1], dy.shape[2], dy.shape[3]
    m, taps = f_ // c_, starts.shape[0]
    plane = s * s * hph * wph
    q_ = (oh_ - 1) * wph + ow_
    gsize = g0 + hph * wph
    xf, dyf, gatef, dxf = x.reshape(-1), dy.reshape(-1), gate_by.reshape(-1), dx.reshape(-1)
    for t in range(dws.shape[0]):
        n0, n1 = 4 * t, min(n_, 4 * t + 4)
        run = _U((n1 - n0 - 1) * gsize + hph * wph)
        # the chunk's 4 samples side by side; a sample past the batch keeps zeros in both and adds +0 to dW
        phases = np.zeros(4 * plane, np.float32)
        g = np.zeros(m * 4 * gsize, np.float32)  # dy of (f, sample) in the wide layout at g0; all else stays zero
        dphases = np.empty(s * s * 4 * gsize, np.float32)  # phase p of sample j's padded dx at (4p + j) * gsize
        acc = np.empty(q_, np.float32)
        col_sums = np.zeros(f_ * ow_, np.float32)
        for c in range(c_):
            for n in range(n0, n1):
                _split(xf, (n * c_ + c) * h_ * w_, h_, w_, phases[(n - n0) * plane:], cols, top, s, wph, hph * wph)
                for k in range(m):
                    f = c * m + k
                    d0, gk, s0 = (n * f_ + f) * oh_ * ow_, (4 * k + n - n0) * gsize + g0, f * ow_
                    for oh in range(oh_):
                        src, out = _U(d0 + oh * ow_), _U(gk + oh * wph)
                        for ow in range(_U(ow_)):
                            v = gated(dyf[src + ow], gatef[src + ow]) if relu else dyf[src + ow]
                            g[out + ow] = v
                            col_sums[_U(s0) + ow] += v
            if need_dx:
                for p in range(s * s):
                    p0 = _U(4 * p * gsize)
                    for q in range(run):
                        dphases[p0 + q] = 0.0
                    for k in range(m):
                        _taps(dphases, p0, g, _U(4 * k * gsize), dstarts, wd, (c * m + k) * taps, bounds[p],
                              bounds[p + 1], run)
                for n in range(n0, n1):
                    _merge(dphases[(n - n0) * gsize:], dxf, (n * c_ + c) * h_ * w_, h_, w_, cols, top, s, wph,
                           4 * gsize)
            for k in range(m):
                gs = _U(4 * k * gsize + g0)
                for ij in range(taps):
                    _products4(acc, g, gs, gs + _U(gsize), gs + _U(2 * gsize), gs + _U(3 * gsize), phases,
                               starts[ij], starts[ij] + _U(plane), starts[ij] + _U(2 * plane),
                               starts[ij] + _U(3 * plane), _U(q_))
                    dws[t, c * m + k, ij] = _pairwise_sum(acc, 0, q_)
        for f in range(f_):
            for ow in range(ow_):
                dbs[t, f, ow] = col_sums[f * ow_ + ow]


class _Layout(NamedTuple):
    """Phase planes (hph, wph) of a conv and where each tap's runs start: in phase ``tap_phase`` at ``tap_off``,
    ``starts`` in the phase planes of one sample (dW); for dx the taps in phase order (``order``, phase p's in
    [bounds[p], bounds[p+1])) and ``dstarts``, each tap's run in the gradient plane zero-padded by ``g0`` floats in
    front; ``cols`` as :func:`_split` takes them."""

    hph: int
    wph: int
    tap_phase: np.ndarray
    tap_off: np.ndarray
    starts: np.ndarray
    order: np.ndarray
    bounds: np.ndarray
    dstarts: np.ndarray
    g0: int
    cols: np.ndarray


def _layout(g: Geometry, kh: int, kw: int, s: int, dilation: int, left: int) -> _Layout:
    hph, wph = -(-g.hp // s), -(-g.wp // s)
    di, dj = np.divmod(np.arange(kh)[:, None] * dilation, s), np.divmod(np.arange(kw)[None, :] * dilation, s)
    rows, cols = np.broadcast_arrays(di[0], dj[0])  # whole phase-plane rows and columns a tap reaches down and right
    phase = (np.broadcast_to(di[1], rows.shape) * s + np.broadcast_to(dj[1], rows.shape)).ravel()
    tap_off = (rows * wph + cols).ravel().astype(np.uint64)
    starts = phase.astype(np.uint64) * np.uint64(hph * wph) + tap_off
    order = np.argsort(phase, kind="stable")
    bounds = np.searchsorted(phase[order], np.arange(s * s + 1)).astype(np.int64)
    g0 = int(rows.max()) * wph + int(cols.max())
    dstarts = (g0 - (rows * wph + cols).ravel()[order]).astype(np.uint64)
    padded = np.arange(s) + left  # x column b lands in padded column b + left
    x_cols = np.stack([padded % s, padded // s], axis=1).astype(np.int64)
    return _Layout(hph, wph, phase.astype(np.uint64), tap_off, starts, order, bounds, dstarts, g0, x_cols)


def depthwise_forward(x, w, b, y, g: Geometry, stride, pads, dilation, relu, nchunks):
    """y (N,F,OH,OW) = conv(x, w) + b (through a ReLU when ``relu``) for groups == C, over ``nchunks`` batch chunks."""
    lay = _layout(g, w.shape[2], w.shape[3], stride, dilation, pads[2])
    group = max(1, _GROUP_FLOATS // (stride * stride * lay.hph * lay.wph))
    wf = w.reshape(-1)

    def work(worker, chunks):
        for lo, hi in chunks:
            _forward(x[lo:hi], wf, b, y[lo:hi], relu, lay.tap_phase, lay.tap_off, lay.cols, stride, pads[0], lay.hph,
                     lay.wph, group, 1)

    run_shared(work, x.shape[0], -(-x.shape[0] // nchunks))


def depthwise_backward(x, w, dy, gate_by, relu, dx, g: Geometry, stride, pads, dilation):
    """(dw, db) of the depthwise convolution, dy gated where gate_by <= 0 when ``relu``; fills dx unless it is None.
    Bit-reproducible: each chunk of 4 samples (fixed, not by thread count) sums into its own slot, the slots added in
    order."""
    f, _, kh, kw = w.shape
    lay = _layout(g, kh, kw, stride, dilation, pads[2])
    nchunks = -(-x.shape[0] // 4)
    dws = np.empty((nchunks, f, kh * kw), np.float32)
    dbs = np.empty((nchunks, f, g.ow), np.float32)
    need_dx = dx is not None
    wd = np.ascontiguousarray(w.reshape(f, kh * kw)[:, lay.order]).reshape(-1)
    no_dx = np.empty((0, 0, 0, 0), np.float32)

    def work(worker, chunks):
        for lo, hi in chunks:  # lo is a multiple of 4: the slots are those of the whole batch
            slots = slice(lo // 4, (hi + 3) // 4)
            _backward(x[lo:hi], dy[lo:hi], gate_by[lo:hi], relu, dx[lo:hi] if need_dx else no_dx, need_dx,
                      dws[slots], dbs[slots], lay.starts, lay.dstarts, wd, lay.bounds, lay.g0, lay.cols, stride,
                      pads[0], lay.hph, lay.wph)

    run_shared(work, x.shape[0], 4 * -(-nchunks // 8))
    return dws.sum(0).reshape(w.shape), dbs.sum(2).sum(0)
