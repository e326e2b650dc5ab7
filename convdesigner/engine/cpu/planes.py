"""Zero-padded flat planes and the 'wide' output layout shared by the direct and the im2col convolution paths.

A sample's channel is stored padded and flattened, ``(Hp*Wp,)``.  At stride 1 output position ``q = oh*Wp + ow``
reads ``plane[q + (i*Wp + j)*dilation]`` for kernel tap (i, j), so each tap is ONE contiguous run of
``Q = (OH-1)*Wp + OW`` values (the ``Wp-OW`` columns between rows are computed and dropped); at other strides
``Wq = OW`` and a tap is ``OH`` strided runs.  Gradients in this layout keep zeros in the dropped columns.

Workspaces are arrays kept per thread, one per tag, reused between calls (the engine's worker thread, and the threads
that run its parts of a batch side by side, see blas_threads.run_parts); arrays returned to callers never alias them.
"""
from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from convdesigner.engine.cpu.simd import WIDTH, vgate, vload, vstore

_local = threading.local()


def workspace(tag: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 scratch array of ``shape``, its contents undefined: a view of the one buffer kept for ``tag``, grown
    to the largest shape asked for (per thread, see above). One buffer per tag rather than per shape: every
    conv layer of VGG-small keeping its own im2col columns held more than PyTorch's whole training step."""
    size = math.prod(shape)  # not np.prod: ~10× slower on a tuple, 14 calls a LeNet-5 step
    spaces = _local.__dict__.setdefault("spaces", {})
    buf = spaces.get(tag)
    if buf is None or buf.size < size:
        buf = spaces[tag] = np.empty(size, np.float32)
    return buf[:size].reshape(shape)


class Geometry(NamedTuple):
    """Padded plane (hp, wp), output (oh, ow), wide row stride wq and wide length q of one convolution."""

    hp: int
    wp: int
    oh: int
    ow: int
    wq: int
    q: int


def geometry(x_shape, w_shape, stride: int, pads, dilation: int) -> Geometry:
    """The planes and output of conv(x, w); ValueError when the dilated kernel does not fit the padded input."""
    _, _, h, w = x_shape
    _, _, kh, kw = w_shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - dilation * (kh - 1) - 1) // stride + 1
    ow = (w + left + right - dilation * (kw - 1) - 1) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {kh}x{kw} (dilation {dilation}) does not fit the padded {h}x{w} input")
    hp = max(h + top, (oh - 1) * stride + dilation * (kh - 1) + 1)
    wp = max(w + left, (ow - 1) * stride + dilation * (kw - 1) + 1)
    wq = wp if stride == 1 else ow
    return Geometry(hp, wp, oh, ow, wq, (oh - 1) * wq + ow)


@njit(cache=True, nogil=True, fastmath=False)
def axpy(acc, src, a):
    """acc += a * src.  Callers pass slices, so indices are known non-negative and the loop vectorises."""
    for q in range(acc.shape[0]):
        acc[q] += a * src[q]


@njit(cache=True, nogil=True, fastmath=False)
def gated(g, y):
    """g where the ReLU output y is positive, else 0 (±0, or NaN for a NaN or infinite g): a product, not a select,
    whose load of g only on one side kept every gating loop from vectorising (half the speed or less)."""
    return g * np.float32(y > 0.0)


@njit(cache=True, nogil=True, fastmath=False)
def copy(dst, src):
    """dst[:] = src as a plain loop (numba's slice assignment checks overlap and does not vectorise)."""
    for q in range(dst.shape[0]):
        dst[q] = src[q]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def copy_run(dst, d, src, s, count, gate, through):
    """dst[d:d + count] = src[s:s + count] in flat contiguous arrays, times (gate[s + q] > 0) with ``through``: whole
    :mod:`simd` vectors, then the rest one by one. Padding a batch of 32×32 (16×16) planes this way is 2.3× (4×)
    :func:`copy` row by row, which builds two slices a row and a loop that LLVM compiles as for long runs."""
    whole = count - count % WIDTH
    for q in range(0, whole, WIDTH):
        v = vload(src, s + q)
        vstore(dst, d + q, vgate(v, vload(gate, s + q)) if through else v)
    if whole < count:  # on slices, whose loop counters numba need not check for negative indices (2-4× faster)
        rest, ins, opens = dst[d + whole:d + count], src[s + whole:s + count], gate[s + whole:s + count]
        for q in range(count - whole):
            rest[q] = gated(ins[q], opens[q]) if through else ins[q]


@njit(cache=True, nogil=True, fastmath=False)
def mul_add(acc, u, v):
    """acc += u * v elementwise."""
    for q in range(acc.shape[0]):
        acc[q] += u[q] * v[q]


@njit(cache=True, nogil=True, fastmath=False)
def copy_tap(dst, plane, off, stride, wp, oh_, ow_):
    """dst[q] = the plane value kernel tap ``off`` meets at wide output position q."""
    if stride == 1:
        copy(dst, plane[off:off + dst.shape[0]])
    else:
        for r in range(oh_):
            s0 = r * stride * wp + off
            copy(dst[r * ow_:(r + 1) * ow_], plane[s0:s0 + (ow_ - 1) * stride + 1:stride])


@njit(cache=True, nogil=True, fastmath=False)
def tap(acc, plane, a, off, stride, wp, oh_, ow_):
    """acc[q] += a * (value tap ``off`` meets at q): one kernel tap over the whole output."""
    if stride == 1:
        axpy(acc, plane[off:off + acc.shape[0]], a)
    else:
        for r in range(oh_):
            s0 = r * stride * wp + off
            axpy(acc[r * ow_:(r + 1) * ow_], plane[s0:s0 + (ow_ - 1) * stride + 1:stride], a)


@njit(cache=True, nogil=True, fastmath=False)
def scatter_tap(dplane, g, a, off, stride, wp, oh_, ow_):
    """The adjoint of :func:`tap`: adds a * g[q] where tap ``off`` reads for position q."""
    if stride == 1:
        axpy(dplane[off:off + g.shape[0]], g, a)
    else:
        for r in range(oh_):
            s0 = r * stride * wp + off
            axpy(dplane[s0:s0 + (ow_ - 1) * stride + 1:stride], g[r * ow_:(r + 1) * ow_], a)


@njit(cache=True, nogil=True, fastmath=False)
def tap_products(acc, g, plane, off, stride, wp, oh_, ow_):
    """acc[q] += g[q] * (value tap ``off`` meets at q): dW for one tap before its final sum over q."""
    if stride == 1:
        mul_add(acc, g, plane[off:off + acc.shape[0]])
    else:
        for r in range(oh_):
            s0 = r * stride * wp + off
            mul_add(acc[r * ow_:(r + 1) * ow_], g[r * ow_:(r + 1) * ow_],
                    plane[s0:s0 + (ow_ - 1) * stride + 1:stride])


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def narrow(wide, b, y, n0, n1, wq, q_, relu):
    """y[n0:n1] = wide (F, chunk*Q) without the dropped columns, plus bias, through a ReLU when ``relu``."""
    oh_, ow_ = y.shape[2], y.shape[3]
    for f in range(y.shape[1]):
        bias = b[f]
        for n in range(n0, n1):
            for oh in range(oh_):
                src = wide[f, (n - n0) * q_ + oh * wq:(n - n0) * q_ + oh * wq + ow_]
                dst = y[n, f, oh]
                for ow in range(ow_):
                    v = src[ow] + bias
                    dst[ow] = 0.0 if relu and v < 0.0 else v


@njit(cache=True, nogil=True, fastmath=False)
def pad_into(dst, at, ld, x, n, top, left, wp, gate):
    """Copy sample n of x into the interiors of zero-bordered flat planes in the flat array dst, channel c's from
    c·ld + at; with a ``gate`` (x's shape, else None), x times (gate > 0) (a gradient through a ReLU, with no gated
    copy of it). None, not a flag, so that numba compiles the plain copy alone where no gate is passed."""
    h_, w_ = x.shape[2], x.shape[3]
    src = x[n].reshape(-1)
    if gate is None:
        for c in range(x.shape[1]):
            for h in range(h_):
                copy_run(dst, c * ld + at + (h + top) * wp + left, src, (c * h_ + h) * w_, w_, src, False)
    else:
        opens = gate[n].reshape(-1)
        for c in range(x.shape[1]):
            for h in range(h_):
                copy_run(dst, c * ld + at + (h + top) * wp + left, src, (c * h_ + h) * w_, w_, opens, True)


@njit(cache=True, nogil=True, fastmath=False)
def crop_into(dx, n, dplane, top, left, wp):
    """dx[n] = the interior of the padded flat planes (C, Hp*Wp)."""
    h_, w_ = dx.shape[2], dx.shape[3]
    dst, src = dx[n].reshape(-1), dplane.reshape(-1)
    for c in range(dx.shape[1]):
        for h in range(h_):
            copy_run(dst, (c * h_ + h) * w_, src, c * dplane.shape[1] + (h + top) * wp + left, w_, src, False)


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def pad_batch(x, planes, top, left, wp):
    """planes (N, C, Hp*Wp): zero border, interior = x."""
    for n in prange(x.shape[0]):
        planes[n] = 0.0
        pad_into(planes[n].reshape(-1), 0, planes.shape[2], x, n, top, left, wp, None)


@njit(cache=True, nogil=True, fastmath=False)
def widen_rows(dy, y, relu, n0, n1, f, wide, wq, q_, col_sums):
    """wide[(n - n0)*Q:...] = dy[n, f] for n in [n0, n1), zeros in the dropped columns and, with ``relu``, where the
    ReLU output y is not positive (as relu_backward); col_sums += those rows.  One loop over slices per row, so every
    index is a non-negative loop counter and the loop vectorises (2.2× the copy, gate and sum done apart)."""
    oh_, ow_ = dy.shape[2], dy.shape[3]
    for n in range(n0, n1):
        row = wide[(n - n0) * q_:(n - n0 + 1) * q_]
        for oh in range(oh_):
            src, keep, out = dy[n, f, oh], y[n, f, oh], row[oh * wq:min((oh + 1) * wq, q_)]
            for ow in range(ow_):
                v = gated(src[ow], keep[ow]) if relu else src[ow]
                out[ow] = v
                col_sums[ow] += v
            for q in range(ow_, out.shape[0]):
                out[q] = 0.0


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def widen(dy, y, relu, wide, wq, db):
    """wide (F, N, Q) = dy (gated by the ReLU output y when ``relu``) in the wide layout with zeros between rows;
    db[f] = the sum of its row f."""
    n_, f_ = dy.shape[0], dy.shape[1]
    q_ = wide.shape[2]
    for f in prange(f_):
        col_sums = np.zeros(dy.shape[3], np.float32)
        widen_rows(dy, y, relu, 0, n_, f, wide[f].reshape(n_ * q_), wq, q_, col_sums)
        db[f] = col_sums.sum()
