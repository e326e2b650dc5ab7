"""Max and average 2-D pooling kernels (NCHW, float32), forward and backward, over the N*C planes (in parallel for
big batches, see :mod:`parallel`).

Every loop is written so that LLVM vectorises it without fastmath (the dispatchers' inspect_llvm() shows the vector
bodies; tests/engine/test_pool_bn_kernels.py guards them): over a chunk of planes, each output row's window rows are
first reduced column by column into a buffer row, then the buffer is reduced along each window's columns in flat
loops over the whole chunk (rows of 8 or 16 outputs are too short for LLVM's vector loop once it needs runtime alias
checks). Max pooling with 2×2 windows at stride 2 and no padding (the classic pool) has its own kernels of the same
scheme, 3-5× faster still; the general max backward scatters. Max pooling keeps PyTorch's scan bit for bit (a NaN
wins, the first maximum wins a tie; see :func:`_wins`); average pooling sums columns first, so its roundings differ
from a row-major sum.

Output sizes come from the caller (graph.layers.pool_output, PyTorch's ceil_mode rule); windows are clipped to the
input (max: padded cells never win) or to the padded input (average: padding counts as zeros, PyTorch's
count_include_pad=True, a ceil-mode window past the padded edge divides by its clipped size).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from convdesigner.engine.cpu.parallel import by_size

CELLS = 4096  # buffer cells per chunk of planes: the chunk's buffers stay in L1/L2 cache
NEVER = np.int32(2 ** 31 - 1)  # the index of a cell outside the input: it loses every tie


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _pick(best, at, v, i):
    """The running (max, argmax) after meeting value v at a later index i; a NaN wins, as in PyTorch."""
    take = (v > best) | (v != v)
    return (v if take else best), (i if take else at)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _wins(u, iu, v, iv):
    """Whether (v, iv) beats (u, iu) whichever index comes first: a NaN beats a number and the later NaN wins,
    else the larger value and on ties the earlier index. A total order, so window maxima may be reduced in any
    grouping and still equal PyTorch's sequential scan."""
    return ((v != v) & ((u == u) | (iv > iu))) | (v > u) | ((v == u) & (iv < iu))


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _layout(k, stride, oh_, ow_, planes):
    """The general kernels' buffers: (outputs per buffer row, buffer cells per row, planes per chunk, chunks). A row
    holds one output row's input columns from -pad on, stride per output; past the real outputs come junk ones, so
    that every real window lies inside its row and one flat loop over the chunk serves all rows."""
    wo = ow_ + (k - 1) // stride
    wb = stride * wo
    per = max(1, CELLS // (wb * oh_))
    return wo, wb, per, (planes + per - 1) // per


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _column_max(plane, h0, h1, pad, vr, ir):
    """A buffer row (input columns -pad on): each column's (max, flat index) over the rows h0..h1-1, a column
    outside the input (-inf, NEVER), so that it never wins."""
    w_ = plane.shape[1]
    lo, hi = min(pad, vr.size), min(pad + w_, vr.size)
    for c in range(vr.size):  # loops, not slice assignments, which cost ~0.1 µs each to set up
        vr[c] = -np.inf
        ir[c] = NEVER
    v, i, src = vr[lo:hi], ir[lo:hi], plane[h0]
    for w in range(hi - lo):
        v[w] = src[w]
        i[w] = h0 * w_ + w
    for h in range(h0 + 1, h1):
        src = plane[h]
        for w in range(hi - lo):
            v[w], i[w] = _pick(v[w], i[w], src[w], h * w_ + w)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _window_max(vb, vi, tv, ti, stride, k):
    """(tv[m], ti[m]): the winner among the buffer cells m·stride ... m·stride + k - 1 (met in any order, see
    :func:`_wins`)."""
    for m in range(tv.size):
        tv[m] = vb[m * stride]
        ti[m] = vi[m * stride]
    for dw in range(1, k):
        for m in range(tv.size):
            u, iu, v, iv = tv[m], ti[m], vb[m * stride + dw], vi[m * stride + dw]
            take = _wins(u, iu, v, iv)
            tv[m] = v if take else u
            ti[m] = iv if take else iu


@by_size
def _max_forward(x, k, stride, pad, y, arg):
    """Any window, in two passes over a chunk of planes that vectorise: column maxima over each output row's window
    rows into a buffer row, then window maxima along the buffer, one flat loop per window column."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    planes = n_ * c_
    xs, ys, ars = x.reshape(planes, h_, w_), y.reshape(planes, oh_, ow_), arg.reshape(planes, oh_, ow_)
    wo, wb, per, chunks = _layout(k, stride, oh_, ow_, planes)
    for q in prange(chunks):
        p0, p1 = q * per, min(q * per + per, planes)
        rows = (p1 - p0) * oh_
        vb, vi = np.empty(rows * wb + k, np.float32), np.empty(rows * wb + k, np.int32)
        vb[rows * wb:], vi[rows * wb:] = -np.inf, NEVER  # read by the last row's junk windows only
        for p in range(p0, p1):
            for oh in range(oh_):
                r = (p - p0) * oh_ + oh
                _column_max(xs[p], max(oh * stride - pad, 0), min(oh * stride - pad + k, h_), pad,
                            vb[r * wb:(r + 1) * wb], vi[r * wb:(r + 1) * wb])
        tv, ti = np.empty(rows * wo, np.float32), np.empty(rows * wo, np.int32)
        if stride == 2:  # literal strides: inlined, the indices are known non-negative and the loops vectorise
            _window_max(vb, vi, tv, ti, 2, k)
        elif stride == 1:
            _window_max(vb, vi, tv, ti, 1, k)
        else:
            _window_max(vb, vi, tv, ti, stride, k)
        for p in range(p0, p1):
            for oh in range(oh_):
                r = (p - p0) * oh_ + oh
                yr, ar, t, i = ys[p, oh], ars[p, oh], tv[r * wo:], ti[r * wo:]
                for ow in range(ow_):
                    yr[ow] = t[ow]
                    ar[ow] = i[ow]


@by_size
def _max_forward_2x2(x, y, arg):
    """The classic 2×2 window at stride 2 with every window inside the input, in two passes over a chunk of planes
    so that every loop vectorises (rows of 16 floats are too short for LLVM's vector loop once it needs runtime
    alias checks): each output row's two input rows reduced column-wise into a buffer, then each buffer pair,
    contiguous over the whole chunk."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    planes, cells = n_ * c_, oh_ * ow_
    xs = x.reshape(planes, h_, w_)
    yf, af = y.reshape(-1), arg.reshape(-1)
    per = max(1, CELLS // (2 * cells))
    for q in prange((planes + per - 1) // per):
        p0, p1 = q * per, min(q * per + per, planes)
        vb = np.empty(((p1 - p0) * oh_, 2 * ow_), np.float32)
        vi = np.empty(((p1 - p0) * oh_, 2 * ow_), np.int32)
        for p in range(p0, p1):
            for oh in range(oh_):
                r = (p - p0) * oh_ + oh
                top, bottom, vr, ir = xs[p, 2 * oh], xs[p, 2 * oh + 1], vb[r], vi[r]
                i = 2 * oh * w_
                for w in range(2 * ow_):
                    best, at = _pick(top[w], i + w, bottom[w], i + w_ + w)
                    vr[w] = best
                    ir[w] = at
        vb, vi = vb.reshape(-1), vi.reshape(-1)
        yc, ac = yf[p0 * cells:p1 * cells], af[p0 * cells:p1 * cells]
        for m in range(yc.size):
            take = _wins(vb[2 * m], vi[2 * m], vb[2 * m + 1], vi[2 * m + 1])
            yc[m] = vb[2 * m + 1] if take else vb[2 * m]
            ac[m] = vi[2 * m + 1] if take else vi[2 * m]


@by_size
def _max_backward(dy, arg, dx):
    """Zeroed planes and each gradient added at its argmax, in output order (a scatter: it does not vectorise)."""
    n_, c_, oh_, ow_ = dy.shape
    planes = n_ * c_
    gs, ars = dy.reshape(planes, oh_ * ow_), arg.reshape(planes, oh_ * ow_)
    dxs = dx.reshape(planes, dx.shape[2] * dx.shape[3])
    for p in prange(planes):
        d, g, a = dxs[p], gs[p], ars[p]
        for t in range(d.size):
            d[t] = 0.0
        for o in range(g.size):
            d[a[o]] += g[o]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _doubled(a):
    """Each element of the flat array ``a`` twice in a row: a row of 2×2 windows' values per input column."""
    d = np.empty(2 * a.size, a.dtype)
    for m in range(a.size):
        d[2 * m] = a[m]
        d[2 * m + 1] = a[m]
    return d


@by_size
def _max_backward_2x2(dy, arg, dx):
    """The adjoint of :func:`_max_forward_2x2` where the windows tile the input: every cell written once, its
    window's gradient at the winner and 0 elsewhere, instead of zeroing the planes and scattering adds. Gradients
    and argmaxes are first doubled per column over a chunk of planes, so the row loops read contiguously."""
    n_, c_, oh_, ow_ = dy.shape
    w_ = dx.shape[3]
    planes, cells = n_ * c_, oh_ * ow_
    dxs = dx.reshape(planes, 2 * oh_, w_)
    gf, af = dy.reshape(-1), arg.reshape(-1)
    zero = np.float32(0.0)
    per = max(1, CELLS // (2 * cells))
    for q in prange((planes + per - 1) // per):
        p0, p1 = q * per, min(q * per + per, planes)
        gd = _doubled(gf[p0 * cells:p1 * cells]).reshape(-1, w_)
        ad = _doubled(af[p0 * cells:p1 * cells]).reshape(-1, w_)
        for p in range(p0, p1):
            for oh in range(oh_):
                r = (p - p0) * oh_ + oh
                top, bottom, g, a = dxs[p, 2 * oh], dxs[p, 2 * oh + 1], gd[r], ad[r]
                i = 2 * oh * w_
                for w in range(w_):
                    v = zero + g[w]  # the bits of 0 + g, as the scattering kernel adds (-0.0 becomes 0.0)
                    at = a[w] - i
                    top[w] = v if at == w else zero
                    bottom[w] = v if at == w_ + w else zero


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _window(o, stride, pad, k, size):
    """(first, end) of a window clipped to the input, and its length clipped to the padded input."""
    start = o * stride - pad
    end = min(start + k, size + pad)
    return max(start, 0), min(end, size), end - start


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _divisors(k, stride, pad, h_, w_, oh_, ow_):
    """Each average window's divisor: its size clipped to the padded input (PyTorch's count_include_pad=True)."""
    div = np.empty((oh_, ow_), np.float32)
    for oh in range(oh_):
        kh = _window(oh, stride, pad, k, h_)[2]
        for ow in range(ow_):
            div[oh, ow] = kh * _window(ow, stride, pad, k, w_)[2]
    return div


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _window_sum(vs, ts, stride, k):
    """ts[m]: the sum of the buffer cells m·stride ... m·stride + k - 1."""
    for m in range(ts.size):
        ts[m] = vs[m * stride]
    for dw in range(1, k):
        for m in range(ts.size):
            ts[m] += vs[m * stride + dw]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _window_spread(ts, vs, stride, k):
    """The adjoint of :func:`_window_sum`: ts[m] added to each of the buffer cells m·stride ... m·stride + k - 1."""
    for dw in range(k):
        for m in range(ts.size):
            vs[m * stride + dw] += ts[m]


@by_size
def _avg_forward(x, k, stride, pad, y):
    """In the passes of :func:`_max_forward`: column sums over each output row's window rows into a buffer row
    (padding columns 0), then window sums along the buffer, divided by the clipped window sizes."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    planes = n_ * c_
    xs, ys = x.reshape(planes, h_, w_), y.reshape(planes, oh_, ow_)
    wo, wb, per, chunks = _layout(k, stride, oh_, ow_, planes)
    div = _divisors(k, stride, pad, h_, w_, oh_, ow_)
    for q in prange(chunks):
        p0, p1 = q * per, min(q * per + per, planes)
        rows = (p1 - p0) * oh_
        vs = np.zeros(rows * wb + k, np.float32)
        lo, hi = min(pad, wb), min(pad + w_, wb)  # a buffer row's columns inside the input
        for p in range(p0, p1):
            for oh in range(oh_):
                h0, h1, _ = _window(oh, stride, pad, k, h_)
                v = vs[((p - p0) * oh_ + oh) * wb + lo:((p - p0) * oh_ + oh) * wb + hi]
                for h in range(h0, h1):
                    src = xs[p, h]
                    for w in range(hi - lo):
                        v[w] += src[w]
        ts = np.empty(rows * wo, np.float32)
        if stride == 2:  # literal strides, as in _max_forward
            _window_sum(vs, ts, 2, k)
        elif stride == 1:
            _window_sum(vs, ts, 1, k)
        else:
            _window_sum(vs, ts, stride, k)
        for p in range(p0, p1):
            for oh in range(oh_):
                t, yr, d = ts[((p - p0) * oh_ + oh) * wo:], ys[p, oh], div[oh]
                for ow in range(ow_):
                    yr[ow] = t[ow] / d[ow]


@by_size
def _avg_backward(dy, k, stride, pad, dx):
    """The adjoint of :func:`_avg_forward`, pass by pass: gradients over the divisors spread along buffer rows,
    then each buffer row added to its window's input rows."""
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dy.shape[2], dy.shape[3]
    planes = n_ * c_
    gs, dxs = dy.reshape(planes, oh_, ow_), dx.reshape(planes, h_, w_)
    wo, wb, per, chunks = _layout(k, stride, oh_, ow_, planes)
    div = _divisors(k, stride, pad, h_, w_, oh_, ow_)
    for q in prange(chunks):
        p0, p1 = q * per, min(q * per + per, planes)
        rows = (p1 - p0) * oh_
        ts = np.zeros(rows * wo, np.float32)  # junk outputs spread zeros
        for p in range(p0, p1):
            for oh in range(oh_):
                t, g, d = ts[((p - p0) * oh_ + oh) * wo:], gs[p, oh], div[oh]
                for ow in range(ow_):
                    t[ow] = g[ow] / d[ow]
        vs = np.zeros(rows * wb + k, np.float32)
        if stride == 2:
            _window_spread(ts, vs, 2, k)
        elif stride == 1:
            _window_spread(ts, vs, 1, k)
        else:
            _window_spread(ts, vs, stride, k)
        lo, hi = min(pad, wb), min(pad + w_, wb)
        for p in range(p0, p1):
            dxs[p] = 0.0
            for oh in range(oh_):
                h0, h1, _ = _window(oh, stride, pad, k, h_)
                v = vs[((p - p0) * oh_ + oh) * wb + lo:((p - p0) * oh_ + oh) * wb + hi]
                for h in range(h0, h1):
                    dst = dxs[p, h]
                    for w in range(hi - lo):
                        dst[w] += v[w]


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
