"""im2col + sgemm convolution (groups=1) for layers with many filters, where OpenBLAS beats the direct loops.

The threads of :func:`blas_threads.run_shared` draw chunks of the batch small enough that the columns
``(C*kh*kw, chunk*Q)`` (wide layout of :mod:`planes`: one contiguous copy per tap and sample at stride 1) stay in
cache: im2col, one sgemm, and the narrowing to NCHW; backward adds dW and the col2im scatter the same way.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from convdesigner.engine.cpu.blas_threads import run_shared
from convdesigner.engine.cpu.planes import Geometry, copy_tap, crop_into, pad_into, scatter_tap, widen_rows, workspace

_CHUNK_FLOATS = 1 << 18  # 1 MiB of columns per chunk


@njit(cache=True, nogil=True, fastmath=False)
def _im2col(x, n0, n1, plane, cols, kh, kw, stride, dilation, top, left, wp, oh_, ow_, q_):
    """cols[(c, i, j), (n - n0)*Q + q] = what tap (i, j) meets in channel c of sample n at wide position q."""
    for n in range(n0, n1):
        pad_into(plane, x, n, top, left, wp)
        base = (n - n0) * q_
        for c in range(x.shape[1]):
            for i in range(kh):
                for j in range(kw):
                    copy_tap(cols[(c * kh + i) * kw + j, base:base + q_], plane[c], (i * wp + j) * dilation,
                             stride, wp, oh_, ow_)


@njit(cache=True, nogil=True, fastmath=False)
def _col2im(cols, dx, n0, n1, dplane, kh, kw, stride, dilation, top, left, wp, oh_, ow_, q_):
    """dx[n0:n1] = the adjoint of :func:`_im2col`, summed in a padded plane and cropped."""
    for n in range(n0, n1):
        dplane[:, :] = 0.0
        base = (n - n0) * q_
        for c in range(dx.shape[1]):
            for i in range(kh):
                for j in range(kw):
                    scatter_tap(dplane[c], cols[(c * kh + i) * kw + j, base:base + q_], np.float32(1.0),
                                (i * wp + j) * dilation, stride, wp, oh_, ow_)
        crop_into(dx, n, dplane, top, left, wp)


@njit(cache=True, nogil=True, fastmath=False)
def _narrow(wide, b, y, n0, n1, wq, q_):
    """y[n0:n1] = wide (F, chunk*Q) without the dropped columns, plus bias."""
    oh_, ow_ = y.shape[2], y.shape[3]
    for f in range(y.shape[1]):
        bias = b[f]
        for n in range(n0, n1):
            for oh in range(oh_):
                src = wide[f, (n - n0) * q_ + oh * wq:(n - n0) * q_ + oh * wq + ow_]
                dst = y[n, f, oh]
                for ow in range(ow_):
                    dst[ow] = src[ow] + bias


@njit(cache=True, nogil=True, fastmath=False)
def _widen(dy, n0, n1, wide, wq, q_, db):
    """wide (F, chunk*Q) = dy[n0:n1] with zeros in the dropped columns; db[f] += its sums."""
    col_sums = np.empty(dy.shape[3], np.float32)
    for f in range(dy.shape[1]):
        col_sums[:] = 0.0
        widen_rows(dy, n0, n1, f, wide[f], wq, q_, col_sums)
        db[f] += col_sums.sum()


def _chunk(ck: int, q: int) -> int:
    return max(1, _CHUNK_FLOATS // (ck * q))


def _products(worker: int, rows: tuple[int, ...], cb: int, q: int):
    """``view(i, m)``: the first ``rows[i] × m`` floats of the worker's i-th buffer (columns, products; sized for
    chunks of ``cb`` samples) as a C-contiguous (rows[i], m) array, the only layout np.dot writes into. np.dot, not
    np.matmul: matmul keeps the GIL for some of these shapes (the seed CNN's 27×16 dW), serialising the threads."""
    bufs = [workspace(f"gemm{i}.{worker}", (r * cb * q,)) for i, r in enumerate(rows)]
    return lambda i, m: bufs[i][:rows[i] * m].reshape(rows[i], m)


def gemm_forward(x, w, b, y, g: Geometry, stride, pads, dilation):
    """y (N,F,OH,OW) = conv(x, w) + b via chunked im2col and sgemm."""
    f, c, kh, kw = w.shape
    ck = c * kh * kw
    w2 = w.reshape(f, ck)
    cb = _chunk(ck, g.q)

    def work(worker, chunks):
        plane = workspace(f"plane{worker}", (c, g.hp * g.wp))
        plane[:] = 0.0
        view = _products(worker, (ck, f), cb, g.q)
        for n0, n1 in chunks:
            m = (n1 - n0) * g.q
            cols, wide = view(0, m), view(1, m)
            _im2col(x, n0, n1, plane, cols, kh, kw, stride, dilation, pads[0], pads[2], g.wp, g.oh, g.ow, g.q)
            np.dot(w2, cols, out=wide)
            _narrow(wide, b, y, n0, n1, g.wq, g.q)

    run_shared(work, x.shape[0], cb)


def gemm_backward(x, w, dy, dx, g: Geometry, stride, pads, dilation):
    """(dw, db) of the im2col convolution; fills dx (N,C,H,W) too unless it is None.

    Each chunk's dW and db go to a slot of their own, summed in chunk order at the end, so the result does not
    depend on which thread took which chunk (training is bit-reproducible)."""
    f, c, kh, kw = w.shape
    ck = c * kh * kw
    w2t = w.reshape(f, ck).T
    cb = _chunk(ck, g.q)
    nchunks = -(-x.shape[0] // cb)
    dwts = np.empty((nchunks, ck, f), np.float32)
    dbs = np.zeros((nchunks, f), np.float32)

    def work(worker, chunks):
        plane = workspace(f"plane{worker}", (c, g.hp * g.wp))
        plane[:] = 0.0
        view = _products(worker, (ck, f), cb, g.q)
        dplane = workspace(f"dplane{worker}", (c, g.hp * g.wp))
        for n0, n1 in chunks:
            m = (n1 - n0) * g.q
            cols, wide = view(0, m), view(1, m)
            _widen(dy, n0, n1, wide, g.wq, g.q, dbs[n0 // cb])
            _im2col(x, n0, n1, plane, cols, kh, kw, stride, dilation, pads[0], pads[2], g.wp, g.oh, g.ow, g.q)
            np.dot(cols, wide.T, out=dwts[n0 // cb])
            if dx is not None:
                np.dot(w2t, wide, out=cols)
                _col2im(cols, dx, n0, n1, dplane, kh, kw, stride, dilation, pads[0], pads[2], g.wp, g.oh, g.ow,
                        g.q)

    run_shared(work, x.shape[0], cb)
    return np.ascontiguousarray(dwts.sum(0).T).reshape(w.shape), dbs.sum(0)
