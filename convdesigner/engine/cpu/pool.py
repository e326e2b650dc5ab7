"""Max and average 2-D pooling kernels (NCHW, float32), forward and backward, over the N*C planes (in parallel for
big batches, see :mod:`parallel`).

Max pooling with 2×2 windows at stride 2 and no padding (the classic pool) takes unrolled kernels that vectorise
(backward: where the windows tile the input); every other window takes the general loops.

Output sizes come from the caller (graph.layers.pool_output, PyTorch's ceil_mode rule); windows are clipped to the
input (max: padded cells never win) or to the padded input (average: padding counts as zeros, PyTorch's
count_include_pad=True, a ceil-mode window past the padded edge divides by its clipped size).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from convdesigner.engine.cpu.parallel import by_size


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _pick(best, at, v, i):
    """The running (max, argmax) after meeting value v at index i; a NaN wins, as in PyTorch. Branch-free, so the
    loops around it vectorise."""
    take = (v > best) | (v != v)
    return (v if take else best), (i if take else at)


@by_size
def _max_forward(x, k, stride, pad, y, arg):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    for p in prange(n_ * c_):
        n, c = p // c_, p % c_
        for oh in range(oh_):
            h0 = max(oh * stride - pad, 0)
            h1 = min(oh * stride - pad + k, h_)
            for ow in range(ow_):
                w0 = max(ow * stride - pad, 0)
                w1 = min(ow * stride - pad + k, w_)
                best, at = -np.inf, h0 * w_ + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        best, at = _pick(best, at, x[n, c, h, w], h * w_ + w)
                y[n, c, oh, ow] = best
                arg[n, c, oh, ow] = at


@by_size
def _max_forward_2x2(x, y, arg):
    """The classic 2×2 window at stride 2 with every window inside the input: unrolled, it vectorises over ow
    (12× the general loop on the templates' shapes)."""
    n_, c_, w_ = x.shape[0], x.shape[1], x.shape[3]
    oh_, ow_ = y.shape[2], y.shape[3]
    for p in prange(n_ * c_):
        n, c = p // c_, p % c_
        for oh in range(oh_):
            top, bottom = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
            yr, ar = y[n, c, oh], arg[n, c, oh]
            i = 2 * oh * w_
            for ow in range(ow_):
                j = 2 * ow
                best, at = _pick(-np.inf, i + j, top[j], i + j)
                best, at = _pick(best, at, top[j + 1], i + j + 1)
                best, at = _pick(best, at, bottom[j], i + w_ + j)
                best, at = _pick(best, at, bottom[j + 1], i + w_ + j + 1)
                yr[ow] = best
                ar[ow] = at


@by_size
def _max_backward(dy, arg, dx):
    n_, c_, oh_, ow_ = dy.shape
    w_ = dx.shape[3]
    for p in prange(n_ * c_):
        n, c = p // c_, p % c_
        dx[n, c] = 0.0
        for oh in range(oh_):
            for ow in range(ow_):
                at = arg[n, c, oh, ow]
                dx[n, c, at // w_, at % w_] += dy[n, c, oh, ow]


@by_size
def _max_backward_2x2(dy, arg, dx):
    """The adjoint of :func:`_max_forward_2x2` where the windows tile the input: every cell written once, its
    window's gradient at the winner and 0 elsewhere, instead of zeroing the planes and scattering adds (1.2-1.4×
    on the templates' shapes)."""
    n_, c_, oh_, ow_ = dy.shape
    w_ = dx.shape[3]
    zero = np.float32(0.0)
    for p in prange(n_ * c_):
        n, c = p // c_, p % c_
        for oh in range(oh_):
            top, bottom = dx[n, c, 2 * oh], dx[n, c, 2 * oh + 1]
            g, a = dy[n, c, oh], arg[n, c, oh]
            i = 2 * oh * w_
            for j in range(2 * ow_):
                v = zero + g[j >> 1]  # the bits of 0 + g, as the scattering kernel adds (-0.0 becomes 0.0)
                at = a[j >> 1] - i
                top[j] = v if at == j else zero
                bottom[j] = v if at == w_ + j else zero


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _window(o, stride, pad, k, size):
    """(first, end) of a window clipped to the input, and its length clipped to the padded input."""
    start = o * stride - pad
    end = min(start + k, size + pad)
    return max(start, 0), min(end, size), end - start


@by_size
def _avg_forward(x, k, stride, pad, y):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    for p in prange(n_ * c_):
        n, c = p // c_, p % c_
        for oh in range(oh_):
            h0, h1, kh = _window(oh, stride, pad, k, h_)
            for ow in range(ow_):
                w0, w1, kw = _window(ow, stride, pad, k, w_)
                s = np.float32(0.0)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s += x[n, c, h, w]
                y[n, c, oh, ow] = s / np.float32(kh * kw)


@by_size
def _avg_backward(dy, k, stride, pad, dx):
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for p in prange(n_ * c_):
        n, c = p // c_, p % c_
        dx[n, c] = 0.0
        for oh in range(oh_):
            h0, h1, kh = _window(oh, stride, pad, k, h_)
            for ow in range(ow_):
                w0, w1, kw = _window(ow, stride, pad, k, w_)
                g = dy[n, c, oh, ow] / np.float32(kh * kw)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        dx[n, c, h, w] += g


def _fresh(buf, shape, dtype=np.float32):
    """``buf`` when given (the layers pass buffers kept between batches: a fresh multi-MB array costs page faults
    worth several times the pooling itself), else a new array."""
    return np.empty(shape, dtype) if buf is None else buf


def maxpool2d_forward(x, k, stride, pad, out_h, out_w, *, out=None, argmax_out=None):
    """(y, argmax): window maxima and, as int32, each winner's flat index into its H*W plane; written into ``out``
    and ``argmax_out`` (N, C, out_h, out_w) when given."""
    x = np.ascontiguousarray(x, np.float32)
    n, c, h, w = x.shape
    y = _fresh(out, (n, c, out_h, out_w))
    arg = _fresh(argmax_out, (n, c, out_h, out_w), np.int32)
    if k == 2 and stride == 2 and pad == 0 and 2 * out_h <= h and 2 * out_w <= w:
        _max_forward_2x2(x, y, arg)
    else:
        _max_forward(x, k, stride, pad, y, arg)
    return y, arg


def maxpool2d_backward(dy, argmax, k, stride, pad, in_h, in_w, *, dx_out=None):
    """dx: each output's gradient routed to its argmax cell (summed where windows overlap)."""
    dy = np.ascontiguousarray(dy, np.float32)
    dx = _fresh(dx_out, dy.shape[:2] + (in_h, in_w))
    argmax = np.ascontiguousarray(argmax, np.int32)
    if k == 2 and stride == 2 and pad == 0 and (in_h, in_w) == (2 * dy.shape[2], 2 * dy.shape[3]):
        _max_backward_2x2(dy, argmax, dx)
    else:
        _max_backward(dy, argmax, dx)
    return dx


def avgpool2d_forward(x, k, stride, pad, out_h, out_w, *, out=None):
    """y: window means, padding counted as zeros (PyTorch count_include_pad=True)."""
    x = np.ascontiguousarray(x, np.float32)
    y = _fresh(out, x.shape[:2] + (out_h, out_w))
    _avg_forward(x, k, stride, pad, y)
    return y


def avgpool2d_backward(dy, k, stride, pad, in_h, in_w, *, dx_out=None):
    """dx: each output's gradient spread evenly over its window's input cells."""
    dy = np.ascontiguousarray(dy, np.float32)
    dx = _fresh(dx_out, dy.shape[:2] + (in_h, in_w))
    _avg_backward(dy, k, stride, pad, dx)
    return dx
