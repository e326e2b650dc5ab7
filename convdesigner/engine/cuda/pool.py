"""Max and average 2-D pooling kernels (NCHW, float32) for the CUDA backend, with the contracts and window rules of
cpu/pool.py. One thread per output (forward) or input (backward) cell: backward gathers from the windows that
contain its cell, in the order the CPU kernels add, so no atomics and the same sums."""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from convdesigner.engine.cuda.launch import THREADS, blocks


@cuda.jit(device=True)
def _first_window(h, k, stride, pad):
    """The first output index whose window (start oh·stride − pad, length k) reaches cell h."""
    lo = h + pad - k + 1
    return 0 if lo <= 0 else (lo + stride - 1) // stride


@cuda.jit(cache=True)
def _max_forward(x, k, stride, pad, y, arg):
    h_, w_ = x.shape[2], x.shape[3]
    c_, oh_, ow_ = y.shape[1], y.shape[2], y.shape[3]
    for t in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, c = t // (c_ * oh_ * ow_), (t // (oh_ * ow_)) % c_
        oh, ow = (t // ow_) % oh_, t % ow_
        h0, h1 = max(oh * stride - pad, 0), min(oh * stride - pad + k, h_)
        w0, w1 = max(ow * stride - pad, 0), min(ow * stride - pad + k, w_)
        best = -math.inf
        at = h0 * w_ + w0
        for h in range(h0, h1):
            for w in range(w0, w1):
                v = x[n, c, h, w]
                if v > best or v != v:  # a NaN wins, as in PyTorch
                    best = v
                    at = h * w_ + w
        y[n, c, oh, ow] = best
        arg[n, c, oh, ow] = at


@cuda.jit(cache=True)
def _max_backward(dy, arg, k, stride, pad, dx):
    c_, h_, w_ = dx.shape[1], dx.shape[2], dx.shape[3]
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for t in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, c = t // (c_ * h_ * w_), (t // (h_ * w_)) % c_
        h, w = (t // w_) % h_, t % w_
        me = h * w_ + w
        s = float32(0.0)
        for oh in range(_first_window(h, k, stride, pad), min(oh_, (h + pad) // stride + 1)):
            for ow in range(_first_window(w, k, stride, pad), min(ow_, (w + pad) // stride + 1)):
                if arg[n, c, oh, ow] == me:
                    s += dy[n, c, oh, ow]
        dx[n, c, h, w] = s


@cuda.jit(device=True)
def _window(o, stride, pad, k, size):
    start = o * stride - pad
    end = min(start + k, size + pad)
    return max(start, 0), min(end, size), end - start


@cuda.jit(cache=True)
def _avg_forward(x, k, stride, pad, y):
    h_, w_ = x.shape[2], x.shape[3]
    c_, oh_, ow_ = y.shape[1], y.shape[2], y.shape[3]
    for t in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, c = t // (c_ * oh_ * ow_), (t // (oh_ * ow_)) % c_
        oh, ow = (t // ow_) % oh_, t % ow_
        h0, h1, kh = _window(oh, stride, pad, k, h_)
        w0, w1, kw = _window(ow, stride, pad, k, w_)
        s = float32(0.0)
        for h in range(h0, h1):
            for w in range(w0, w1):
                s += x[n, c, h, w]
        y[n, c, oh, ow] = s / float32(kh * kw)


@cuda.jit(cache=True)
def _avg_backward(dy, k, stride, pad, dx):
    c_, h_, w_ = dx.shape[1], dx.shape[2], dx.shape[3]
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for t in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, c = t // (c_ * h_ * w_), (t // (h_ * w_)) % c_
        h, w = (t // w_) % h_, t % w_
        s = float32(0.0)
        for oh in range(_first_window(h, k, stride, pad), min(oh_, (h + pad) // stride + 1)):
            h0, h1, kh = _window(oh, stride, pad, k, h_)
            if h < h0 or h >= h1:
                continue
            for ow in range(_first_window(w, k, stride, pad), min(ow_, (w + pad) // stride + 1)):
                w0, w1, kw = _window(ow, stride, pad, k, w_)
                if w0 <= w < w1:
                    s += dy[n, c, oh, ow] / float32(kh * kw)
        dx[n, c, h, w] = s


def maxpool2d_forward(x, k, stride, pad, out_h, out_w, *, out=None, argmax_out=None):
    """(y, argmax): window maxima and, as int32, each winner's flat index into its H*W plane."""
    n, c = x.shape[0], x.shape[1]
    y = cuda.device_array((n, c, out_h, out_w), np.float32) if out is None else out
    arg = cuda.device_array((n, c, out_h, out_w), np.int32) if argmax_out is None else argmax_out
    _max_forward[blocks(y.size), THREADS](x, k, stride, pad, y, arg)
    return y, arg


def maxpool2d_backward(dy, argmax, k, stride, pad, in_h, in_w, *, dx_out=None):
    """dx: each output's gradient routed to its argmax cell (summed where windows overlap)."""
    dx = cuda.device_array(dy.shape[:2] + (in_h, in_w), np.float32) if dx_out is None else dx_out
    _max_backward[blocks(dx.size), THREADS](dy, argmax, k, stride, pad, dx)
    return dx


def avgpool2d_forward(x, k, stride, pad, out_h, out_w, *, out=None):
    """y: window means, padding counted as zeros (PyTorch count_include_pad=True)."""
    y = cuda.device_array(x.shape[:2] + (out_h, out_w), np.float32) if out is None else out
    _avg_forward[blocks(y.size), THREADS](x, k, stride, pad, y)
    return y


def avgpool2d_backward(dy, k, stride, pad, in_h, in_w, *, dx_out=None):
    """dx: each output's gradient spread evenly over its window's input cells."""
    dx = cuda.device_array(dy.shape[:2] + (in_h, in_w), np.float32) if dx_out is None else dx_out
    _avg_backward[blocks(dx.size), THREADS](dy, k, stride, pad, dx)
    return dx


