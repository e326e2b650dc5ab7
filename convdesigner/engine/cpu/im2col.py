"""im2col + sgemm convolution (groups=1) for layers with many filters, where OpenBLAS beats the direct loops.

The threads of :func:`blas_threads.run_shared` draw chunks of the batch small enough that the columns
``(C*kh*kw, chunk*Q)`` stay in cache. Each padded sample is split into its stride² phase planes (row and column
remainders modulo the stride; at stride 1 the padded plane itself), so every kernel tap reads ONE contiguous run of
a phase plane in the wide layout of :mod:`planes` whatever the stride (at stride 2, 3-5× faster copies than strided
rows): im2col, one sgemm, and the narrowing to NCHW; backward adds dW and the col2im scatter the same way. Each
chunk is one numba call that runs OpenBLAS's sgemm itself (blas.sgemm: 4-16 % faster training steps than three
calls around np.dot, from LeNet-5 to ResNet-small); np.dot remains where numpy's BLAS is another (not blas.SGEMM).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from convdesigner.engine.cpu.blas import NO_TRANS, ROW_MAJOR, SGEMM, SMALL_MATRIX_KERNELS, TRANS, sgemm
from convdesigner.engine.cpu.blas_threads import run_shared
from convdesigner.engine.cpu.planes import Geometry, axpy, copy, narrow, widen_rows, workspace
from convdesigner.engine.cpu.simd import WIDTH, veven, vload, vodd, vstore, vzip_high, vzip_low

_SMALL_GEMM = 100 ** 3  # multiply-adds up to which OpenBLAS's small-matrix sgemm kernels run
_CHUNK_FLOATS = 1 << 17  # 512 KiB of columns per chunk (training steps: 5-10% faster than 1 MiB, 0-4% than 256 KiB)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _split_pairs(row, run, first):
    """run[k] = row[first + 2k] for the whole vectors of run that whole pairs of vectors of row hold (first 0 or 1):
    one shuffle a vector, where one float at a time took 0.9 ns."""
    for k in range(0, row.shape[0] // (2 * WIDTH) * WIDTH, WIDTH):
        v0, v1 = vload(row, 2 * k), vload(row, 2 * k + WIDTH)
        vstore(run, k, veven(v0, v1) if first == 0 else vodd(v0, v1))


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _zip_pairs(row, even, odd):
    """The adjoint of :func:`_split_pairs` for both parities at once: row[2k], row[2k + 1] = even[k], odd[k] over
    the same whole vectors."""
    for k in range(0, row.shape[0] // (2 * WIDTH) * WIDTH, WIDTH):
        e, o = vload(even, k), vload(odd, k)
        vstore(row, 2 * k, vzip_low(e, o))
        vstore(row, 2 * k + WIDTH, vzip_high(e, o))


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _exchange(img, n, phases, s, top, left, ws, kh, kw, dilation, split):
    """With ``split``: phases[c, a·s + b, r·Ws + k] = sample n of img padded by (top, left), at row s·r + a, column
    s·k + b, for the phases the kernel reads (the borders, never written, stay zero). Without: its adjoint, img[n] =
    the phase planes' interior (the rows that no tap reads zero). At stride 1 the one phase is the padded plane.
    Undilated, a k-wide kernel reads the phases below k (a 1×1 at stride 2: one of four); dilated, all are kept."""
    w_ = img.shape[3]
    for c in range(img.shape[1]):
        for h in range(img.shape[2]):
            a, r = (h + top) % s, (h + top) // s
            row = img[n, c, h]
            if s == 1:
                run = phases[c, 0, r * ws + left:r * ws + left + w_]
                copy(run, row) if split else copy(row, run)
                continue
            if dilation == 1 and a >= kh:
                if not split:
                    row[:] = 0.0
                continue
            if not split and s == 2:
                _zip_pairs(row, phases[c, a * s + left % 2, r * ws + left // 2:],
                           phases[c, a * s + 1 - left % 2, r * ws + (left + 1) // 2:])
            for b in range(s):
                if split and dilation == 1 and b >= kw:
                    continue
                first = (b - left) % s  # the first column of parity b
                run = phases[c, a * s + b, r * ws + (first + left) // s:]
                done = w_ // (2 * WIDTH) * WIDTH if s == 2 else 0  # what the pairs of vectors did
                if split and s == 2:
                    _split_pairs(row, run, first)
                for k in range(done, (w_ - first + s - 1) // s):
                    if split:
                        run[k] = row[first + s * k]
                    else:
                        row[first + s * k] = run[k]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _tap(phases, c, i, j, s, dilation, ws):
    """The phase plane of channel c that kernel tap (i, j) reads at every stride-s position, from its first value."""
    ii, jj = i * dilation, j * dilation
    return phases[c, (ii % s) * s + jj % s, (ii // s) * ws + jj // s:]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _im2col(x, n0, n1, phases, cols, kh, kw, stride, dilation, top, left, ws, q_):
    """cols[(c, i, j), (n - n0)*Q + q] = what tap (i, j) meets in channel c of sample n at wide position q: one
    contiguous run of a phase plane each, whatever the stride."""
    for n in range(n0, n1):
        _exchange(x, n, phases, stride, top, left, ws, kh, kw, dilation, True)
        base = (n - n0) * q_
        for c in range(x.shape[1]):
            for i in range(kh):
                for j in range(kw):
                    copy(cols[(c * kh + i) * kw + j, base:base + q_], _tap(phases, c, i, j, stride, dilation, ws)[:q_])


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _col2im(cols, dx, n0, n1, dphases, kh, kw, stride, dilation, top, left, ws, q_):
    """dx[n0:n1] = the adjoint of :func:`_im2col`, summed in phase planes and merged."""
    one = np.float32(1.0)
    for n in range(n0, n1):
        dphases[:, :, :] = 0.0
        base = (n - n0) * q_
        for c in range(dx.shape[1]):
            for i in range(kh):
                for j in range(kw):
                    axpy(_tap(dphases, c, i, j, stride, dilation, ws)[:q_], cols[(c * kh + i) * kw + j, base:base + q_],
                         one)
        _exchange(dx, n, dphases, stride, top, left, ws, kh, kw, dilation, False)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _widen(dy, y, relu, n0, n1, wide, wq, q_, db):
    """wide (F, chunk*Q) = dy[n0:n1] (gated by the ReLU output y when ``relu``) with zeros in the dropped columns;
    db[f] += its sums."""
    col_sums = np.empty(dy.shape[3], np.float32)
    for f in range(dy.shape[1]):
        col_sums[:] = 0.0
        widen_rows(dy, y, relu, n0, n1, f, wide[f], wq, q_, col_sums)
        db[f] += col_sums.sum()


@njit(cache=True, nogil=True, fastmath=False)
def _forward_chunk(x, w2, b, y, n0, n1, phases, cols, wide, kh, kw, stride, dilation, top, left, ws, q_, relu):
    """One chunk of :func:`gemm_forward` in one call (blas.sgemm): im2col, the product, the narrowing."""
    _im2col(x, n0, n1, phases, cols, kh, kw, stride, dilation, top, left, ws, q_)
    f, ck = w2.shape
    m = cols.shape[1]
    sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, f, m, ck, np.float32(1.0), w2.ctypes, ck, cols.ctypes, m, np.float32(0.0),
          wide.ctypes, m)
    narrow(wide, b, y, n0, n1, ws, q_, relu)


@njit(cache=True, nogil=True, fastmath=False)
def _backward_chunk(x, w2, dy, y, relu, dx, need_dx, n0, n1, phases, dphases, cols, wide, dwt, db, kh, kw, stride,
                    dilation, top, left, ws, q_):
    """One chunk of :func:`gemm_backward` in one call: dwt (C*kh*kw, F) and db of the chunk, dx[n0:n1] too when
    ``need_dx``."""
    _widen(dy, y, relu, n0, n1, wide, ws, q_, db)
    _im2col(x, n0, n1, phases, cols, kh, kw, stride, dilation, top, left, ws, q_)
    f, ck = w2.shape
    m = cols.shape[1]
    one, zero = np.float32(1.0), np.float32(0.0)
    sgemm(ROW_MAJOR, NO_TRANS, TRANS, ck, f, m, one, cols.ctypes, m, wide.ctypes, m, zero, dwt.ctypes, f)
    if need_dx:
        sgemm(ROW_MAJOR, TRANS, NO_TRANS, ck, m, f, one, w2.ctypes, ck, wide.ctypes, m, zero, cols.ctypes, m)
        _col2im(cols, dx, n0, n1, dphases, kh, kw, stride, dilation, top, left, ws, q_)


def _phased(g: Geometry, stride: int) -> tuple[int, int, int]:
    """Rows and columns of each of the stride² phase planes of a padded sample, and the wide length Q over them
    (output row r at r·columns: the columns past OW are computed and dropped)."""
    hs, ws = -(-g.hp // stride), -(-g.wp // stride)
    return hs, ws, (g.oh - 1) * ws + g.ow


def _chunk(ck: int, f: int, q: int) -> int:
    """Samples per chunk: columns within _CHUNK_FLOATS, and fewer where that lets each chunk's products fit OpenBLAS's
    small-matrix kernels (where it has them, see blas.py) while a chunk still holds 2 samples (3.5× on the seed
    CNN's conv1 dW on AVX-512, 5% on its training step; one sample per chunk costs more than it saves)."""
    by_cache = max(1, _CHUNK_FLOATS // (ck * q))
    small = _SMALL_GEMM // (ck * f * q)
    return min(by_cache, small) if small >= 2 and SMALL_MATRIX_KERNELS else by_cache


def _products(worker: int, rows: tuple[int, ...], cb: int, q: int):
    """``view(i, m)``: the first ``rows[i] × m`` floats of the worker's i-th buffer (columns, products; sized for
    chunks of ``cb`` samples) as a C-contiguous (rows[i], m) array, the only layout np.dot writes into. np.dot, not
    np.matmul: matmul keeps the GIL for some of these shapes (the seed CNN's 27×16 dW), serialising the threads."""
    bufs = [workspace(f"gemm{i}.{worker}", (r * cb * q,)) for i, r in enumerate(rows)]
    return lambda i, m: bufs[i][:rows[i] * m].reshape(rows[i], m)


def gemm_forward(x, w, b, y, g: Geometry, stride, pads, dilation, relu):
    """y (N,F,OH,OW) = conv(x, w) + b (through a ReLU when ``relu``) via chunked im2col and sgemm."""
    f, c, kh, kw = w.shape
    ck = c * kh * kw
    w2 = w.reshape(f, ck)
    hs, ws, q = _phased(g, stride)
    cb = _chunk(ck, f, q)

    def work(worker, chunks):
        phases = workspace(f"plane{worker}", (c, stride * stride, hs * ws))
        phases[:] = 0.0
        view = _products(worker, (ck, f), cb, q)
        for n0, n1 in chunks:
            m = (n1 - n0) * q
            cols, wide = view(0, m), view(1, m)
            if SGEMM:
                _forward_chunk(x, w2, b, y, n0, n1, phases, cols, wide, kh, kw, stride, dilation, pads[0], pads[2],
                               ws, q, relu)
                continue
            _im2col(x, n0, n1, phases, cols, kh, kw, stride, dilation, pads[0], pads[2], ws, q)
            np.dot(w2, cols, out=wide)
            narrow(wide, b, y, n0, n1, ws, q, relu)

    run_shared(work, x.shape[0], cb)


def gemm_backward(x, w, dy, y, relu, dx, g: Geometry, stride, pads, dilation):
    """(dw, db) of the im2col convolution, through the ReLU whose output is y when ``relu``; fills dx (N,C,H,W) too,
    through col2im, unless it is None.

    Each chunk's dW and db go to a slot of their own, summed in chunk order at the end, so the result does not
    depend on which thread took which chunk (training is bit-reproducible)."""
    f, c, kh, kw = w.shape
    ck = c * kh * kw
    w2 = w.reshape(f, ck)
    hs, ws, q = _phased(g, stride)
    cb = _chunk(ck, f, q)
    nchunks = -(-x.shape[0] // cb)
    dwts = np.empty((nchunks, ck, f), np.float32)
    dbs = np.zeros((nchunks, f), np.float32)

    def work(worker, chunks):
        phases = workspace(f"plane{worker}", (c, stride * stride, hs * ws))
        phases[:] = 0.0
        view = _products(worker, (ck, f), cb, q)
        dphases = workspace(f"dplane{worker}", (c, stride * stride, hs * ws))
        for n0, n1 in chunks:
            m = (n1 - n0) * q
            cols, wide = view(0, m), view(1, m)
            if SGEMM:
                _backward_chunk(x, w2, dy, y, relu, x[:0] if dx is None else dx, dx is not None, n0, n1, phases,
                                dphases, cols, wide, dwts[n0 // cb], dbs[n0 // cb], kh, kw, stride, dilation, pads[0],
                                pads[2], ws, q)
                continue
            _widen(dy, y, relu, n0, n1, wide, ws, q, dbs[n0 // cb])
            _im2col(x, n0, n1, phases, cols, kh, kw, stride, dilation, pads[0], pads[2], ws, q)
            np.dot(cols, wide.T, out=dwts[n0 // cb])
            if dx is not None:
                np.dot(w2.T, wide, out=cols)
                _col2im(cols, dx, n0, n1, dphases, kh, kw, stride, dilation, pads[0], pads[2], ws, q)

    run_shared(work, x.shape[0], cb)
    return np.ascontiguousarray(dwts.sum(0).T).reshape(w.shape), dbs.sum(0)
