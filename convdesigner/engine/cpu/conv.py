"""2-D convolution kernels (NCHW, float32), forward and backward, for the CPU backend.

Six strategies, chosen per call and pass (see :func:`strategy`): Winograd F(2×2, 3×3) (:mod:`winograd`, 3×3
stride-1 convs of many channels and filters), one sgemm per sample (:mod:`pointwise`, unpadded 1×1 convs),
register-blocked direct sums (:mod:`blocked`, other stride-1 ungrouped convs), im2col + OpenBLAS sgemm
(:mod:`im2col`, strided ungrouped convs, and the backward of stride-1 kernels other than 3×3), per-plane
phase-split loops (:mod:`depthwise`, groups = channels) and direct loops over zero-padded flat planes (other grouped
convs); the last four use the wide layout of :mod:`planes`.
The direct loops are axpys over a whole output plane per kernel tap, parallel over the batch; dW sums tap products
over the batch first (an axpy, which vectorises without fastmath) and over positions last.  Returned arrays are
fresh unless ``out=``/``dx_out=`` is given.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from convdesigner.engine.cpu import blocked, im2col, pointwise, winograd
from convdesigner.engine.cpu.activation import relu_forward
from convdesigner.engine.cpu.depthwise import depthwise_backward, depthwise_forward
from convdesigner.engine.cpu.planes import (
    copy,
    crop_into,
    geometry,
    pad_batch,
    pad_into,
    scatter_tap,
    tap,
    tap_products,
    widen,
    workspace,
)

METHODS = ("direct", "gemm", "depthwise", "winograd", "pointwise", "blocked")


def uses_gemm(groups: int) -> bool:
    """True when im2col + sgemm is the strategy: every ungrouped conv, down to LeNet-5's 1->6 (1.3-2× the direct loops,
    measured with benchmarks/kernels.py); depthwise convs (groups = channels) go to :mod:`depthwise`, other grouped
    convs to the direct loops."""
    return groups == 1


def strategy(channels: int, w_shape, stride: int, pads, dilation: int, groups: int, backward: bool = False) -> str:
    """The method a call with ``method=None`` runs, forward or (``backward``) for dx and dW: 'winograd' for the 3×3
    stride-1 convs it supports with winograd.MIN_CHANNELS channels and filters or more; 'pointwise' for unpadded
    1×1 convs; 'blocked' for other stride-1 ungrouped convs, 3×3 only backward; else 'gemm' (:func:`uses_gemm`);
    'depthwise' when every channel is its own group (1.5-7× the direct loops' forward + backward at
    EfficientNet-small's shapes); else 'direct'.

    Measured on one core of a Zen 4 (benchmarks/kernels.py's shapes, ms forward / backward at batch 64): ResNet's
    16-channel 3×3 blocked 4.9 / 11.0, Winograd 6.0 / 11.4, im2col 6.9 / 14.0; DenseNet's 48 -> 12 blocked
    10.7 / 20.9, Winograd 12.2 / 23.5; its 64-channel 3×3 on 8×8 planes Winograd 3.9 / 8.7, blocked 5.7 / 10.9;
    LeNet-5's 5×5 6 -> 16 backward im2col 2.1, blocked 2.6 (dx as a forward of 6 filters, rounded up to 8)."""
    f = w_shape[0]
    if min(channels, f) >= winograd.MIN_CHANNELS and winograd.supports(w_shape, stride, pads, dilation, groups):
        return "winograd"
    if pointwise.supports(w_shape, pads, groups):
        return "pointwise"
    if blocked.supports(stride, groups) and (not backward or tuple(w_shape[2:]) == (3, 3)):
        return "blocked"
    if uses_gemm(groups):
        return "gemm"
    return "depthwise" if groups == channels else "direct"


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def _direct_forward(x, w, b, y, stride, dilation, top, left, hp, wp, wq, q_, nchunks):
    n_, c_ = x.shape[0], x.shape[1]
    f_, cg, kh, kw = w.shape
    fg = f_ // (c_ // cg)
    oh_, ow_ = y.shape[2], y.shape[3]
    for t in prange(nchunks):
        plane = np.zeros((c_, hp * wp), np.float32)
        acc = np.empty(q_, np.float32)
        for n in range(t * n_ // nchunks, (t + 1) * n_ // nchunks):
            pad_into(plane.reshape(-1), 0, plane.shape[1], x, n, top, left, wp, None)
            for f in range(f_):
                c0 = (f // fg) * cg
                acc[:] = b[f]
                for c in range(cg):
                    for i in range(kh):
                        for j in range(kw):
                            tap(acc, plane[c0 + c], w[f, c, i, j], (i * wp + j) * dilation, stride, wp, oh_, ow_)
                for oh in range(oh_):
                    copy(y[n, f, oh], acc[oh * wq:oh * wq + ow_])


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def _direct_dw(planes, wide, dw, stride, dilation, wp, oh_, ow_):
    """dw[f, c, i, j] = sum over n, q of wide[f, n, q] * (tap (i, j) of channel c at q); parallel over (f, c)."""
    n_, c_ = planes.shape[0], planes.shape[1]
    f_, cg, kh, kw = dw.shape
    fg = f_ // (c_ // cg)
    q_ = wide.shape[2]
    for fc in prange(f_ * cg):
        f, c = fc // cg, fc % cg
        ch = (f // fg) * cg + c
        acc = np.empty((kw, q_), np.float32)
        for i in range(kh):
            acc[:, :] = 0.0
            for n in range(n_):
                for j in range(kw):
                    tap_products(acc[j], wide[f, n], planes[n, ch], (i * wp + j) * dilation, stride, wp, oh_, ow_)
            for j in range(kw):
                dw[f, c, i, j] = acc[j].sum()


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def _direct_dx(wide, w, dx, stride, dilation, top, left, hp, wp, oh_, ow_):
    """dx = the adjoint of the direct forward, scattered per sample into padded planes and cropped."""
    n_, c_ = dx.shape[0], dx.shape[1]
    f_, cg, kh, kw = w.shape
    fg = f_ // (c_ // cg)
    for n in prange(n_):
        dplane = np.zeros((c_, hp * wp), np.float32)
        for f in range(f_):
            c0 = (f // fg) * cg
            g = wide[f, n]
            for c in range(cg):
                for i in range(kh):
                    for j in range(kw):
                        scatter_tap(dplane[c0 + c], g, w[f, c, i, j], (i * wp + j) * dilation, stride, wp, oh_, ow_)
        crop_into(dx, n, dplane, top, left, wp)


def _prepare(x, w, stride, pads, dilation, groups, method, backward=False):
    """Checked contiguous (x, w) and the method to run (see :data:`METHODS`)."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    if x.dtype != np.float32 or w.dtype != np.float32:
        raise TypeError(f"convolution kernels take float32 arrays, not {x.dtype} and {w.dtype}")
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise ValueError(f"input {x.shape} and kernel {w.shape} do not match groups={groups}")
    if method is None:
        return x, w, strategy(x.shape[1], w.shape, stride, pads, dilation, groups, backward)
    depthwise = groups == x.shape[1] > 1
    if method not in METHODS or (method == "gemm" and groups != 1) or (method == "depthwise" and not depthwise) or \
            (method == "winograd" and not winograd.supports(w.shape, stride, pads, dilation, groups)) or \
            (method == "pointwise" and not pointwise.supports(w.shape, pads, groups)) or \
            (method == "blocked" and not blocked.supports(stride, groups)):
        raise ValueError(f"method must be None, 'direct', 'gemm' (groups=1 only), 'depthwise' (groups = channels "
                         f"> 1 only), 'winograd' (3×3, stride 1, no dilation, groups=1, padding ≤ 2) or "
                         f"'pointwise' (1×1, no padding, groups=1) or 'blocked' (stride 1, groups=1), not {method!r} "
                         f"for a "
                         f"{w.shape[2]}×{w.shape[3]} kernel, stride {stride}, padding {tuple(pads)}, groups={groups}")
    return x, w, method


def _flipped_pads(w_shape, pads, dilation) -> tuple[int, int, int, int] | None:
    """The padding under which dx of a stride-1 convolution is the convolution of dy with the flipped, transposed
    kernel; None where the input's padding reaches past the kernel (some border of dx then sees no tap)."""
    _, _, kh, kw = w_shape
    top, bottom, left, right = pads
    reach_h, reach_w = dilation * (kh - 1), dilation * (kw - 1)
    flipped = (reach_h - top, reach_h - bottom, reach_w - left, reach_w - right)
    return flipped if min(flipped) >= 0 else None


def _backward_with_flipped_dx(x, w, dy, relu_out, dx, flipped, g, pads, dilation, kind):
    """(dx, dw, db) with dx, where asked for, the forward convolution of dy with the flipped, transposed kernel, by
    Winograd or the blocked sums (whichever suits its F input channels). Every method here gates dy by relu_out as it
    reads it, so no gated copy of dy is made (it cost batch 64's seed CNN a tenth of its peak memory). im2col takes
    this road where the filters are few next to the channels, whose rank-F product scattered back by col2im writes
    C*kh*kw rows from only F; Winograd always (where the padding allows), having no col2im."""
    relu = relu_out is not None
    if kind == "winograd":
        dw, db = winograd.backward(x, w, dy, pads, relu_out)
    elif kind == "blocked":
        dw, db = blocked.weight_gradient(x, w.shape, dy, relu_out if relu else dy, relu, g, pads, dilation)
    else:
        dw, db = im2col.gemm_backward(x, w, dy, relu_out if relu else dy, relu, None, g, 1, pads, dilation)
    if dx is not None:
        wt = _flipped_kernel(w)
        bias = np.zeros(wt.shape[0], np.float32)
        if strategy(wt.shape[1], wt.shape, 1, flipped, dilation, 1) == "winograd":
            winograd.forward(dy, wt, bias, dx, flipped, False, relu_out)
        else:
            gd = geometry(dy.shape, wt.shape, 1, flipped, dilation)
            blocked.forward(dy, wt, bias, dx, gd, flipped, dilation, False, relu_out)
    return dx, dw, db


def _flipped_kernel(w):
    return np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])


def _checked(buf, shape, name):
    if buf.shape != shape or buf.dtype != np.float32 or not buf.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous float32 array of shape {shape}, not {buf.dtype} {buf.shape}")
    return buf


def _chunks(n: int) -> int:
    """Batch chunks for a parallel kernel: a few per thread so a core busy elsewhere does not stall the step."""
    return max(1, min(n, 4 * numba.get_num_threads()))


def conv2d_forward(x, w, b, stride, pads, dilation, groups, *, out=None, method=None, relu=False):
    """y = conv(x, w) + b for NCHW float32 x (N,C,H,W), w (F,C/groups,kh,kw), pads (top,bottom,left,right);
    y = relu(conv(x, w) + b) with ``relu`` (a Conv2D fused with the ReLU after it).

    ``out`` (N,F,OH,OW) float32 C-contiguous, if given, receives the result; otherwise a fresh array is returned.
    ``method`` forces one of :data:`METHODS` (benchmarks, tests); None picks by :func:`strategy`.
    """
    x, w, kind = _prepare(x, w, stride, pads, dilation, groups, method)
    n, f = x.shape[0], w.shape[0]
    g = geometry(x.shape, w.shape, stride, pads, dilation)
    y = np.empty((n, f, g.oh, g.ow), np.float32) if out is None else _checked(out, (n, f, g.oh, g.ow), "out")
    bias = np.zeros(f, np.float32) if b is None else np.ascontiguousarray(b, np.float32)
    if kind == "winograd":
        winograd.forward(x, w, bias, y, pads, relu)
    elif kind == "pointwise":
        pointwise.forward(x, w, bias, y, relu, stride)
    elif kind == "blocked":
        blocked.forward(x, w, bias, y, g, pads, dilation, relu)
    elif kind == "gemm":
        im2col.gemm_forward(x, w, bias, y, g, stride, pads, dilation, relu)
    elif kind == "depthwise":
        depthwise_forward(x, w, bias, y, g, stride, pads, dilation, relu, _chunks(n))
    else:
        _direct_forward(x, w, bias, y, stride, dilation, pads[0], pads[2], g.hp, g.wp, g.wq, g.q, _chunks(n))
        if relu:
            relu_forward(y.reshape(-1), y.reshape(-1))
    return y


def conv2d_backward(x, w, dy, stride, pads, dilation, groups, need_dx=True, *, dx_out=None, method=None,
                    relu_out=None):
    """Gradients (dx or None, dw, db) of conv2d_forward given dy = dL/dy; db = dy.sum((0, 2, 3)).

    With ``relu_out`` (the output of a ``relu=True`` forward), dy is the gradient after the ReLU, gated where
    relu_out <= 0 on the way in.

    Pass ``need_dx=False`` for a layer fed by the network input to skip the dx work.  ``dx_out``, if given,
    receives dx; dw and db are always fresh arrays.  ``method`` as for :func:`conv2d_forward`.
    """
    x, w, kind = _prepare(x, w, stride, pads, dilation, groups, method, backward=True)
    dy = np.ascontiguousarray(dy, np.float32)
    n, c, f = x.shape[0], x.shape[1], w.shape[0]
    g = geometry(x.shape, w.shape, stride, pads, dilation)
    if dy.shape != (n, f, g.oh, g.ow):
        raise ValueError(f"dy has shape {dy.shape}, expected {(n, f, g.oh, g.ow)}")
    dx = (np.empty(x.shape, np.float32) if dx_out is None else _checked(dx_out, x.shape, "dx_out")) if need_dx else None
    relu = relu_out is not None
    gate_by = _checked(relu_out, dy.shape, "relu_out") if relu else dy
    flipped = _flipped_pads(w.shape, pads, dilation) if need_dx and stride == 1 else None
    if (kind == "blocked" and (flipped is not None or not need_dx)) or kind == "winograd" or \
            (kind == "gemm" and flipped is not None and 2 * f <= c):
        return _backward_with_flipped_dx(x, w, dy, relu_out, dx, flipped, g, pads, dilation, kind)
    if kind in ("gemm", "blocked"):
        dw, db = im2col.gemm_backward(x, w, dy, gate_by, relu, dx, g, stride, pads, dilation)
        return dx, dw, db
    if kind == "pointwise":
        dw, db = pointwise.backward(x, w, dy, gate_by, relu, dx, stride)
        return dx, dw, db
    if kind == "depthwise":
        dw, db = depthwise_backward(x, w, dy, gate_by, relu, dx, g, stride, pads, dilation)
        return dx, dw, db
    planes = workspace("planes", (n, c, g.hp * g.wp))
    pad_batch(x, planes, pads[0], pads[2], g.wp)
    wide = workspace("wide", (f, n, g.q))
    db = np.empty(f, np.float32)
    widen(dy, gate_by, relu, wide, g.wq, db)
    dw = np.empty(w.shape, np.float32)
    _direct_dw(planes, wide, dw, stride, dilation, g.wp, g.oh, g.ow)
    if need_dx:
        _direct_dx(wide, w, dx, stride, dilation, pads[0], pads[2], g.hp, g.wp, g.oh, g.ow)
    return dx, dw, db
