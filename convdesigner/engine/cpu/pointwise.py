"""1×1 convolutions (no padding, groups=1) as one sgemm per sample, forward and backward.

A sample's NCHW planes already are the (C, H*W) matrix that im2col would copy out, and its output planes the
(F, H*W) product, so OpenBLAS reads and writes them in place: y[n] = W x[n], dW = Σ dy[n] x[n]ᵀ, dx[n] = Wᵀ dy[n].
Only the bias and ReLU (forward) and the ReLU's gate (backward) take a pass of their own, on a sample still in cache.
A strided 1×1 (ResNet's shortcuts) first takes every stride-th row and column, and scatters dx back the same way.
Chunks of the batch go to the threads of :func:`blas_threads.run_shared`, one numba call each (blas.sgemm runs
without the GIL).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit

from convdesigner.engine.cpu.blas import NO_TRANS, ROW_MAJOR, SGEMM, TRANS, sgemm
from convdesigner.engine.cpu.blas_threads import run_shared
from convdesigner.engine.cpu.planes import gated, workspace


def supports(w_shape, pads, groups) -> bool:
    """True for the convolutions this module runs, where numpy's OpenBLAS lends its sgemm (blas.SGEMM)."""
    return SGEMM and tuple(w_shape[2:]) == (1, 1) and not any(pads) and groups == 1


def _sampled(x, stride):
    """x itself at stride 1, else the contiguous copy of every stride-th row and column (a workspace)."""
    if stride == 1:
        return x
    view = x[:, :, ::stride, ::stride]
    out = workspace("pointwise_x", view.shape)
    out[...] = view
    return out


@njit(cache=True, nogil=True, fastmath=False)
def _bias_rows(out, b, relu):
    """out (F, HW) += b[f] per row, through a ReLU when ``relu``."""
    for k in range(out.shape[0]):
        row, bias = out[k], b[k]
        for q in range(out.shape[1]):
            v = row[q] + bias
            row[q] = 0.0 if relu and v < 0.0 else v


@njit(cache=True, nogil=True, fastmath=False)
def _bias_columns(out, b, relu):
    """out (nb, F) += b along each row, through a ReLU when ``relu``."""
    for r in range(out.shape[0]):
        row = out[r]
        for k in range(out.shape[1]):
            v = row[k] + b[k]
            row[k] = 0.0 if relu and v < 0.0 else v


@njit(cache=True, nogil=True, fastmath=False)
def _gate(dy, y, relu, out):
    """out (flat) = dy where the ReLU output y > 0, all of dy without ``relu``."""
    src, keep = dy.reshape(dy.size), y.reshape(y.size)
    for q in range(src.shape[0]):
        out[q] = gated(src[q], keep[q]) if relu else src[q]


@njit(cache=True, nogil=True, fastmath=False)
def _forward_chunk(x, w, b, y, n0, n1, relu):
    """y[n0:n1]: per sample (F, HW) = W (F, C) @ x[n] (C, HW); for 1×1 planes (squeeze-excitation convs) the chunk at
    once, (nb, F) = x (nb, C) @ Wᵀ, instead of nb matrix-vector products."""
    f, c = w.shape[0], w.shape[1]
    hw = x.shape[2] * x.shape[3]
    one, zero = np.float32(1.0), np.float32(0.0)
    if hw == 1:
        out = y[n0:n1].reshape(n1 - n0, f)
        sgemm(ROW_MAJOR, NO_TRANS, TRANS, n1 - n0, f, c, one, x[n0:n1].ctypes, c, w.ctypes, c, zero, out.ctypes, f)
        _bias_columns(out, b, relu)
        return
    for n in range(n0, n1):
        out = y[n].reshape(f, hw)
        sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, f, hw, c, one, w.ctypes, c, x[n].ctypes, hw, zero, out.ctypes, hw)
        _bias_rows(out, b, relu)


@njit(cache=True, nogil=True, fastmath=False)
def _backward_chunk(x, w, dy, y, relu, dx, need_dx, n0, n1, kept, dw, db):
    """dw (F, C) and db (F,) of samples n0..n1, summed in sample order; dx[n] for each where ``need_dx``. For 1×1
    planes the chunk at once, as in the forward pass."""
    f, c = w.shape[0], w.shape[1]
    hw = x.shape[2] * x.shape[3]
    one, zero = np.float32(1.0), np.float32(0.0)
    db[:] = 0.0
    if hw == 1:
        nb = n1 - n0
        g = kept[:nb * f].reshape(nb, f)
        _gate(dy[n0:n1], y[n0:n1], relu, g.reshape(nb * f))
        for r in range(nb):
            for k in range(f):
                db[k] += g[r, k]
        sgemm(ROW_MAJOR, TRANS, NO_TRANS, f, c, nb, one, g.ctypes, f, x[n0:n1].ctypes, c, zero, dw.ctypes, c)
        if need_dx:
            sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, nb, c, f, one, g.ctypes, f, w.ctypes, c, zero, dx[n0:n1].ctypes, c)
        return
    g = kept[:f * hw].reshape(f, hw)
    for n in range(n0, n1):
        _gate(dy[n], y[n], relu, g.reshape(f * hw))
        for k in range(f):
            db[k] += g[k].sum()
        sgemm(ROW_MAJOR, NO_TRANS, TRANS, f, c, hw, one, g.ctypes, hw, x[n].ctypes, hw, zero if n == n0 else one,
              dw.ctypes, c)
        if need_dx:
            sgemm(ROW_MAJOR, TRANS, NO_TRANS, c, hw, f, one, w.ctypes, c, g.ctypes, hw, zero, dx[n].ctypes, hw)


def _chunk(n: int) -> int:
    """Samples per chunk: four chunks a thread, so a thread slowed by other work hands over its share."""
    return max(1, n // (4 * numba.get_num_threads()))


def forward(x, w, b, y, relu, stride):
    """y (N,F,OH,OW) = conv(x, w) + b (through a ReLU when ``relu``) for a 1×1 kernel (:func:`supports`)."""
    x = _sampled(x, stride)
    w2 = w.reshape(w.shape[0], w.shape[1])

    def work(worker, chunks):
        for n0, n1 in chunks:
            _forward_chunk(x, w2, b, y, n0, n1, relu)

    run_shared(work, x.shape[0], _chunk(x.shape[0]))


def backward(x, w, dy, y, relu, dx, stride):
    """(dw, db) of :func:`forward`, through the ReLU whose output is y when ``relu``; fills dx unless it is None.
    Each chunk sums into a slot of its own, added in chunk order: the result does not depend on thread timing."""
    full, x = dx, _sampled(x, stride)
    if dx is not None and stride > 1:
        dx = workspace("pointwise_dx", x.shape)
    f, c = w.shape[0], w.shape[1]
    n, hw = x.shape[0], x.shape[2] * x.shape[3]
    cb = _chunk(n)
    nchunks = -(-n // cb)
    dws, dbs = np.empty((nchunks, f, c), np.float32), np.empty((nchunks, f), np.float32)
    w2 = w.reshape(f, c)
    need_dx = dx is not None
    dx_ = dx if need_dx else x[:0]

    def work(worker, chunks):
        kept = workspace(f"gated{worker}", (f * hw * (cb if hw == 1 else 1),))
        for n0, n1 in chunks:
            _backward_chunk(x, w2, dy, y, relu, dx_, need_dx, n0, n1, kept, dws[n0 // cb], dbs[n0 // cb])

    run_shared(work, n, cb)
    if full is not None and stride > 1:
        full[...] = 0.0
        full[:, :, ::stride, ::stride] = dx
    return dws.sum(0).reshape(w.shape), dbs.sum(0)
