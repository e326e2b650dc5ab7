"""2-D convolution kernels (NCHW, float32) for the CUDA backend, with the contracts of cpu/conv.py.

Ungrouped convolutions are im2col + the tiled product of :mod:`gemm`, in batch chunks whose columns fit a fixed
budget: the forward's epilogue adds the bias, applies a fused ReLU and scatters straight into NCHW; backward gates
dy by the ReLU while widening it to (F, chunk·P), and dW accumulates over the chunks in the product's epilogue; dx
is a col2im gather (each input cell sums the taps that met it, so no atomics and a deterministic sum). Grouped and
depthwise convolutions, whose products are too thin for tiles, run direct kernels: one thread per output (forward)
or input (dx) cell, one block per weight (dW).
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float64

from convdesigner.engine.cpu.planes import geometry
from convdesigner.engine.cuda.gemm import ROW_BIAS, gemm
from convdesigner.engine.cuda.launch import THREADS, block_sum, blocks, fill, scratch

CHUNK_FLOATS = 1 << 25  # columns of one batch chunk: 128 MiB


@cuda.jit(cache=True)
def _im2col(x, n0, cols, kh, kw, stride, dilation, top, left, oh_, ow_, count):
    """cols[(c, i, j), (n - n0)·P + q] = x[n, c] at tap (i, j) of output position q, 0 in the padding."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    p_ = oh_ * ow_
    width = count * p_
    for t in range(cuda.grid(1), c_ * kh * kw * width, cuda.gridsize(1)):
        row, col = t // width, t % width
        c, ij = row // (kh * kw), row % (kh * kw)
        i, j = ij // kw, ij % kw
        n, q = n0 + col // p_, col % p_
        h = (q // ow_) * stride - top + i * dilation
        w = (q % ow_) * stride - left + j * dilation
        cols[t] = x[n, c, h, w] if 0 <= h < h_ and 0 <= w < w_ else 0.0


@cuda.jit(cache=True)
def _widen(dy, gate_by, relu, n0, wide, count):
    """wide[f, (n - n0)·P + q] = dy[n, f, q], zero where a fused ReLU's output was not positive."""
    f_, p_ = dy.shape[1], dy.shape[2]
    width = count * p_
    for t in range(cuda.grid(1), f_ * width, cuda.gridsize(1)):
        f, col = t // width, t % width
        n, q = n0 + col // p_, col % p_
        g = dy[n, f, q]
        wide[t] = 0.0 if relu and gate_by[n, f, q] <= 0.0 else g


@cuda.jit(cache=True)
def _col2im(dcols, dx, n0, count, kh, kw, stride, dilation, top, left, oh_, ow_):
    """dx[n0:n0+count] = the adjoint of :func:`_im2col`: every input cell gathers the column entries it fed."""
    c_, h_, w_ = dx.shape[1], dx.shape[2], dx.shape[3]
    p_ = oh_ * ow_
    width = count * p_
    for t in range(cuda.grid(1), count * c_ * h_ * w_, cuda.gridsize(1)):
        n, c = t // (c_ * h_ * w_), (t // (h_ * w_)) % c_
        h, w = (t // w_) % h_, t % w_
        s = 0.0
        for i in range(kh):
            hh = h + top - i * dilation
            if hh < 0 or hh % stride != 0 or hh // stride >= oh_:
                continue
            for j in range(kw):
                ww = w + left - j * dilation
                if ww < 0 or ww % stride != 0 or ww // stride >= ow_:
                    continue
                s += dcols[((c * kh + i) * kw + j) * width + n * p_ + (hh // stride) * ow_ + ww // stride]
        dx[n0 + n, c, h, w] = s


@cuda.jit(cache=True)
def _bias_grad(dy, gate_by, relu, db):
    """db[f] = Σ over samples and positions of the (ReLU-gated) dy: one block per filter."""
    buf = cuda.shared.array(THREADS, float64)
    n_, f, p_ = dy.shape[0], cuda.blockIdx.x, dy.shape[2]
    s = 0.0
    for t in range(cuda.threadIdx.x, n_ * p_, THREADS):
        n, q = t // p_, t % p_
        if not (relu and gate_by[n, f, q] <= 0.0):
            s += dy[n, f, q]
    total = block_sum(buf, s)
    if cuda.threadIdx.x == 0:
        db[f] = total


@cuda.jit(cache=True)
def _direct_forward(x, w, b, y, stride, dilation, top, left, relu):
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    f_, cg, kh, kw = w.shape
    fg = f_ // (c_ // cg)
    oh_, ow_ = y.shape[2], y.shape[3]
    for t in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, f = t // (f_ * oh_ * ow_), (t // (oh_ * ow_)) % f_
        oh, ow = (t // ow_) % oh_, t % ow_
        c0 = (f // fg) * cg
        s = b[f]
        for c in range(cg):
            for i in range(kh):
                h = oh * stride - top + i * dilation
                if 0 <= h < h_:
                    for j in range(kw):
                        ww = ow * stride - left + j * dilation
                        if 0 <= ww < w_:
                            s += w[f, c, i, j] * x[n, c0 + c, h, ww]
        y[n, f, oh, ow] = 0.0 if relu and s < 0.0 else s


@cuda.jit(cache=True)
def _direct_dx(dy, gate_by, relu, w, dx, stride, dilation, top, left):
    c_, h_, w_ = dx.shape[1], dx.shape[2], dx.shape[3]
    f_, cg, kh, kw = w.shape
    fg = f_ // (c_ // cg)
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for t in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, ch = t // (c_ * h_ * w_), (t // (h_ * w_)) % c_
        h, ww = (t // w_) % h_, t % w_
        g, c = ch // cg, ch % cg
        s = 0.0
        for f in range(g * fg, (g + 1) * fg):
            for i in range(kh):
                hh = h + top - i * dilation
                if hh < 0 or hh % stride != 0 or hh // stride >= oh_:
                    continue
                for j in range(kw):
                    wq = ww + left - j * dilation
                    if wq < 0 or wq % stride != 0 or wq // stride >= ow_:
                        continue
                    oh, ow = hh // stride, wq // stride
                    if not (relu and gate_by[n, f, oh, ow] <= 0.0):
                        s += dy[n, f, oh, ow] * w[f, c, i, j]
        dx[n, ch, h, ww] = s


@cuda.jit(cache=True)
def _direct_dw(x, dy, gate_by, relu, dw, stride, dilation, top, left):
    """One block per weight (f, c, i, j): the sum over samples and output positions of dy times the tap's input."""
    buf = cuda.shared.array(THREADS, float64)
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    f_, cg, kh, kw = dw.shape
    fg = f_ // (c_ // cg)
    n_, oh_, ow_ = dy.shape[0], dy.shape[2], dy.shape[3]
    e = cuda.blockIdx.x
    f, c, i, j = e // (cg * kh * kw), (e // (kh * kw)) % cg, (e // kw) % kh, e % kw
    ch = (f // fg) * cg + c
    s = 0.0
    for t in range(cuda.threadIdx.x, n_ * oh_ * ow_, THREADS):
        n, oh, ow = t // (oh_ * ow_), (t // ow_) % oh_, t % ow_
        h = oh * stride - top + i * dilation
        ww = ow * stride - left + j * dilation
        if 0 <= h < h_ and 0 <= ww < w_ and not (relu and gate_by[n, f, oh, ow] <= 0.0):
            s += dy[n, f, oh, ow] * x[n, ch, h, ww]
    total = block_sum(buf, s)
    if cuda.threadIdx.x == 0:
        dw[f, c, i, j] = total


def _zeros(tag, shape):
    buf = scratch(tag, shape)
    fill(buf, 0.0)
    return buf


def _chunk(n: int, k: int, p: int) -> int:
    return max(1, min(n, CHUNK_FLOATS // max(1, k * p)))


def _check(x, w, groups, method):
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise ValueError(f"input {x.shape} and kernel {w.shape} do not match groups={groups}")
    if method not in (None, "gemm", "direct") or (method == "gemm" and groups != 1):
        raise ValueError(f"method must be None, 'direct' or 'gemm' (groups=1 only), not {method!r}")
    return method == "gemm" if method is not None else groups == 1


def conv2d_forward(x, w, b, stride, pads, dilation, groups, *, out=None, method=None, relu=False):
    """y = conv(x, w) + b (through a ReLU with ``relu``) for device arrays x (N,C,H,W), w (F,C/groups,kh,kw)."""
    gemm_path = _check(x, w, groups, method)
    n, c, f = x.shape[0], x.shape[1], w.shape[0]
    kh, kw = w.shape[2], w.shape[3]
    g = geometry(x.shape, w.shape, stride, pads, dilation)
    y = cuda.device_array((n, f, g.oh, g.ow), np.float32) if out is None else out
    bias = _zeros("conv_no_bias", (f,)) if b is None else b
    if not gemm_path:
        _direct_forward[blocks(y.size), THREADS](x, w, bias, y, stride, dilation, pads[0], pads[2], relu)
        return y
    k, p = c * kh * kw, g.oh * g.ow
    chunk = _chunk(n, k, p)
    cols = scratch("conv_cols", (k * chunk * p,))
    flat_y, flat_w = y.reshape(-1), w.reshape(-1)
    for n0 in range(0, n, chunk):
        count = min(chunk, n - n0)
        _im2col[blocks(k * count * p), THREADS](x, n0, cols, kh, kw, stride, dilation, pads[0], pads[2], g.oh, g.ow,
                                                count)
        gemm(flat_w, k, 1, cols, count * p, 1, flat_y[n0 * f * p:(n0 + count) * f * p], f, count * p, k, p=p,
             cs=f * p, bias=bias, bias_mode=ROW_BIAS, relu=relu)
    return y


def conv2d_backward(x, w, dy, stride, pads, dilation, groups, need_dx=True, *, dx_out=None, method=None,
                    relu_out=None):
    """(dx or None, dw, db) of conv2d_forward given dy; with ``relu_out`` dy is gated where relu_out <= 0 first.
    dw and db are scratch arrays, valid until the next call (the layer copies them into its gradients)."""
    gemm_path = _check(x, w, groups, method)
    n, c, f = x.shape[0], x.shape[1], w.shape[0]
    kh, kw = w.shape[2], w.shape[3]
    g = geometry(x.shape, w.shape, stride, pads, dilation)
    p = g.oh * g.ow
    relu = relu_out is not None
    dy3 = dy.reshape(n, f, p)
    gate = relu_out.reshape(n, f, p) if relu else dy3
    dx = (cuda.device_array(x.shape, np.float32) if dx_out is None else dx_out) if need_dx else None
    dw = scratch("conv_dw", w.shape)
    db = scratch("conv_db", (f,))
    _bias_grad[f, THREADS](dy3, gate, relu, db)
    if not gemm_path:
        _direct_dw[dw.size, THREADS](x, dy, gate.reshape(dy.shape), relu, dw, stride, dilation, pads[0], pads[2])
        if need_dx:
            _direct_dx[blocks(dx.size), THREADS](dy, gate.reshape(dy.shape), relu, w, dx, stride, dilation, pads[0],
                                                 pads[2])
        return dx, dw, db
    k = c * kh * kw
    chunk = _chunk(n, max(k, f), p)
    cols = scratch("conv_cols", (k * chunk * p,))
    wide = scratch("conv_wide", (f * chunk * p,))
    flat_w, flat_dw = w.reshape(-1), dw.reshape(-1)
    for n0 in range(0, n, chunk):
        count = min(chunk, n - n0)
        width = count * p
        _im2col[blocks(k * width), THREADS](x, n0, cols, kh, kw, stride, dilation, pads[0], pads[2], g.oh, g.ow,
                                            count)
        _widen[blocks(f * width), THREADS](dy3, gate, relu, n0, wide, count)
        gemm(wide, width, 1, cols, 1, width, flat_dw, f, k, width, accumulate=n0 > 0)
        if need_dx:
            gemm(flat_w, 1, k, wide, width, 1, cols, k, width, f)  # the columns are spent: dcols overwrites them
            _col2im[blocks(count * c * x.shape[2] * x.shape[3]), THREADS](cols, dx, n0, count, kh, kw, stride,
                                                                         dilation, pads[0], pads[2], g.oh, g.ow)
    return dx, dw, db
