"""Direct convolutions (3×3 and 5×5 kernels, stride 1, groups=1) as register-blocked row passes, forward and back.

Where a conv has few filters (LeNet-5's 1 -> 6), im2col's columns are 9-25× the input and its product is skinny
(6 rows by an inner dimension of 25): copies and packing cost more than the multiply-adds. These kernels read the padded input itself, a few filters at
a time over one kernel row: each input value is loaded once per kernel column and feeds the filters' multiply-adds
in registers (3×3: four filters, 12 weights; 5×5: two, 10 weights), a loop LLVM vectorises without reassociation
(contraction to FMA only, as a compiler fuses a*b + c).

Layout of a chunk of nb samples (``plane``): sample s is a block of Hp = H + max(top, bottom) rows of Wp = W +
max(left, right) floats, its values at row top + h, column left + w, zeros elsewhere, so a row's right padding is
the next row's left (and a sample's bottom the next one's top). Output (s, r, x) sits at flat index q = (s·Hp +
r)·Wp + x and reads the plane at q + i·Wp + j for tap (i, j): one flat loop over the chunk per kernel row. The
positions with x ≥ OW or r ≥ OH are junk, computed and dropped.

Backward, the gated gradient is stacked the same way (``gplane``) but offset by D = (kh-1)·Wp + kw-1: its value at D
+ q is the gradient at flat output q (zero at junk ones), so dW is a sum over q of gplane[D + q]·plane[q + i·Wp + j]
(reassociated into vector lanes, summed per chunk in float64) and dx, at every plane position, is the forward pass
of gplane with the flipped, transposed kernel.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit

from convdesigner.engine.cpu.blas_threads import run_shared
from convdesigner.engine.cpu.planes import workspace

_CHUNK_CELLS = 12000  # flat positions per chunk: each numba call (its dispatch holds the GIL) has work for ~50 µs
_BLOCK = {3: 4, 5: 2}  # filters per pass: their weights, the inputs and a sum fill AVX2's 16 vector registers


MAX_JUNK = 0.25  # the share of junk positions (unpadded convs have many) above which im2col keeps the conv


def supports(w_shape, stride, pads, dilation, groups) -> bool:
    """True for square 3×3 or 5×5 kernels at stride 1, undilated, ungrouped, padded by at most the kernel's reach."""
    k = w_shape[2]
    return k in _BLOCK and w_shape[3] == k and stride == 1 and dilation == 1 and groups == 1 and \
        0 <= min(pads) and max(pads) <= k - 1


def suits(x_shape, w_shape, pads) -> bool:
    """Whether these kernels beat im2col + sgemm on a supported conv: at most 8 filters (im2col's product has as
    many rows) over an inner dimension C·k² of 25 or more, and few junk positions. Measured on two Zen 3 cores, time
    over im2col's at batch 64, forward / backward: LeNet-5's 1 -> 6 5×5 0.58 / 0.78; 3×3s with 8 filters from 3, 8
    and 16 channels 0.6-0.75 / 0.6-0.9 (from 1 channel 1.0 / 1.4); with 16 filters 0.8-0.9 forward alone but no
    faster in whole networks (the seed CNN's and VGG-small's 3 -> 16 ran 0.86-0.98× as fast); unpadded 5×5 on 14×14
    (half the positions junk) 1.2 / 1.2."""
    _, c, h, w = x_shape
    f, k = w_shape[0], w_shape[2]
    top, bottom, left, right = pads
    real = (h + top + bottom - k + 1) * (w + left + right - k + 1)
    return f <= 8 and c * k * k >= 25 and real >= (1 - MAX_JUNK) * (h + max(top, bottom)) * (w + max(left, right))


@njit(cache=True, nogil=True, fastmath={"contract"})
def _pass3(p, out, w, k0, c, i, wp, n):
    """out[k0 + f, q] += sum over j of w[k0 + f, c, i, j]·p[q + i·Wp + j], four filters f, q < n."""
    a0, a1, a2 = w[k0, c, i, 0], w[k0, c, i, 1], w[k0, c, i, 2]
    b0, b1, b2 = w[k0 + 1, c, i, 0], w[k0 + 1, c, i, 1], w[k0 + 1, c, i, 2]
    c0, c1, c2 = w[k0 + 2, c, i, 0], w[k0 + 2, c, i, 1], w[k0 + 2, c, i, 2]
    d0, d1, d2 = w[k0 + 3, c, i, 0], w[k0 + 3, c, i, 1], w[k0 + 3, c, i, 2]
    base = i * wp
    u, v, s = p[base:base + n], p[base + 1:base + 1 + n], p[base + 2:base + 2 + n]  # slices: no wraparound checks
    o0, o1, o2, o3 = out[k0, :n], out[k0 + 1, :n], out[k0 + 2, :n], out[k0 + 3, :n]
    for q in range(n):
        o0[q] = o0[q] + a0 * u[q] + a1 * v[q] + a2 * s[q]
        o1[q] = o1[q] + b0 * u[q] + b1 * v[q] + b2 * s[q]
        o2[q] = o2[q] + c0 * u[q] + c1 * v[q] + c2 * s[q]
        o3[q] = o3[q] + d0 * u[q] + d1 * v[q] + d2 * s[q]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _pass5(p, out, w, k0, c, i, wp, n):
    """As :func:`_pass3` for 5-wide kernel rows, two filters."""
    a0, a1, a2, a3, a4 = w[k0, c, i, 0], w[k0, c, i, 1], w[k0, c, i, 2], w[k0, c, i, 3], w[k0, c, i, 4]
    b0, b1, b2, b3, b4 = w[k0 + 1, c, i, 0], w[k0 + 1, c, i, 1], w[k0 + 1, c, i, 2], w[k0 + 1, c, i, 3], \
        w[k0 + 1, c, i, 4]
    base = i * wp
    t, u, v, s, z = p[base:base + n], p[base + 1:base + 1 + n], p[base + 2:base + 2 + n], \
        p[base + 3:base + 3 + n], p[base + 4:base + 4 + n]
    o0, o1 = out[k0, :n], out[k0 + 1, :n]
    for q in range(n):
        o0[q] = o0[q] + a0 * t[q] + a1 * u[q] + a2 * v[q] + a3 * s[q] + a4 * z[q]
        o1[q] = o1[q] + b0 * t[q] + b1 * u[q] + b2 * v[q] + b3 * s[q] + b4 * z[q]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _convolve(plane, w, bias, out, wp, n):
    """out[:, :n] = bias + the convolution of a chunk's plane with w (its filters a multiple of the block)."""
    k = w.shape[2]
    for f in range(w.shape[0]):
        out[f, :n] = bias[f]
    for c in range(w.shape[1]):
        for i in range(k):
            if k == 3:
                for f0 in range(0, w.shape[0], 4):
                    _pass3(plane[c], out, w, f0, c, i, wp, n)
            else:
                for f0 in range(0, w.shape[0], 2):
                    _pass5(plane[c], out, w, f0, c, i, wp, n)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _stack(src, n0, n1, plane, hp, wp, top, left):
    """plane[c] = the samples n0..n1-1 of src (N, C, H, W), each in its (hp, wp) block from (top, left), zeros
    elsewhere."""
    h_, w_ = src.shape[2], src.shape[3]
    plane[:] = 0.0
    for c in range(src.shape[1]):
        for s in range(n1 - n0):
            for h in range(h_):
                at = (s * hp + top + h) * wp + left
                row, dst = src[n0 + s, c, h], plane[c, at:at + w_]
                for x in range(w_):
                    dst[x] = row[x]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _unstack(out, dst, n0, n1, hp, wp, top, left, relu):
    """dst[n0:n1] = the values of a chunk's flat out at each sample's (top, left) on (junk dropped), through a
    ReLU with relu."""
    h_, w_ = dst.shape[2], dst.shape[3]
    zero = np.float32(0.0)
    for c in range(dst.shape[1]):
        for s in range(n1 - n0):
            for h in range(h_):
                at = (s * hp + top + h) * wp + left
                row, res = out[c, at:at + w_], dst[n0 + s, c, h]
                if relu:
                    for x in range(w_):
                        res[x] = max(row[x], zero)
                else:
                    for x in range(w_):
                        res[x] = row[x]


@njit(cache=True, nogil=True, fastmath=False)
def _forward_chunk(x, w, bias, y, n0, n1, top, left, hp, wp, relu, plane, out):
    _stack(x, n0, n1, plane, hp, wp, top, left)
    _convolve(plane, w, bias, out, wp, (n1 - n0) * hp * wp)
    _unstack(out, y, n0, n1, hp, wp, 0, 0, relu)


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"})
def _sums3(g0, g1, p, base, n):
    """The sums over q < n of g0[q]·p[base + q + j] and g1[q]·p[base + q + j], j = 0, 1, 2."""
    u, v, s = p[base:base + n], p[base + 1:base + 1 + n], p[base + 2:base + 2 + n]
    g0, g1 = g0[:n], g1[:n]
    a0 = a1 = a2 = b0 = b1 = b2 = np.float32(0.0)
    for q in range(n):
        a0 += g0[q] * u[q]
        a1 += g0[q] * v[q]
        a2 += g0[q] * s[q]
        b0 += g1[q] * u[q]
        b1 += g1[q] * v[q]
        b2 += g1[q] * s[q]
    return a0, a1, a2, b0, b1, b2


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"})
def _sums5(g0, p, base, n):
    """The sums over q < n of g0[q]·p[base + q + j], j = 0 ... 4."""
    t, u, v, s, z = p[base:base + n], p[base + 1:base + 1 + n], p[base + 2:base + 2 + n], \
        p[base + 3:base + 3 + n], p[base + 4:base + 4 + n]
    g0 = g0[:n]
    a0 = a1 = a2 = a3 = a4 = np.float32(0.0)
    for q in range(n):
        a0 += g0[q] * t[q]
        a1 += g0[q] * u[q]
        a2 += g0[q] * v[q]
        a3 += g0[q] * s[q]
        a4 += g0[q] * z[q]
    return a0, a1, a2, a3, a4


@njit(cache=True, nogil=True, fastmath=False)
def _backward_chunk(x, dy, gate_by, relu, n0, n1, top, left, hp, wp, wflip, dw, db, dx, need_dx, plane, gplane,
                    out):
    """Adds the chunk's dW (F, C, k, k) and db into the float64 dw and db; writes its dx with need_dx."""
    f_, c_, k = dy.shape[1], x.shape[1], wflip.shape[2]
    n = (n1 - n0) * hp * wp
    _stack(x, n0, n1, plane, hp, wp, top, left)
    _stack(dy, n0, n1, gplane, hp, wp, k - 1, k - 1)
    if relu:
        gate = out[:f_]  # the forward's output stacked alike: the gradient passes where it was positive
        _stack(gate_by, n0, n1, gate, hp, wp, k - 1, k - 1)
        for f in range(f_):
            g, r = gplane[f], gate[f]
            for q in range(g.size):
                g[q] = g[q] if r[q] > 0.0 else np.float32(0.0)
    for f in range(f_):
        db[f] += gplane[f].astype(np.float64).sum()
    d = (k - 1) * wp + k - 1
    for c in range(c_):
        for i in range(k):
            if k == 3:
                for f0 in range(0, f_, 2):
                    f1 = min(f0 + 1, f_ - 1)
                    sums = _sums3(gplane[f0, d:], gplane[f1, d:], plane[c], i * wp, n)
                    for j in range(3):
                        dw[f0, c, i, j] += sums[j]
                        if f1 > f0:
                            dw[f1, c, i, j] += sums[3 + j]
            else:
                for f in range(f_):
                    sums5 = _sums5(gplane[f, d:], plane[c], i * wp, n)
                    for j in range(5):
                        dw[f, c, i, j] += sums5[j]
    if need_dx:
        _convolve(gplane, wflip, np.zeros(wflip.shape[0], np.float32), out, wp, n)
        _unstack(out[:c_], dx, n0, n1, hp, wp, top, left, False)


def _blocked(w):
    """w (F, C, k, k) with zero filters appended up to a multiple of the kernel size's block."""
    block = _BLOCK[w.shape[2]]
    f = -(-w.shape[0] // block) * block
    padded = np.zeros((f,) + w.shape[1:], np.float32)
    padded[:w.shape[0]] = w
    return padded


def _layout(x_shape, k, pads):
    """(samples per chunk, Hp, Wp, flat plane length): about _CHUNK_CELLS positions, two chunks a thread at least."""
    n, _, h, w = x_shape
    top, bottom, left, right = pads
    hp, wp = h + max(top, bottom), w + max(left, right)
    per = max(1, min(_CHUNK_CELLS // (hp * wp), -(-n // (2 * numba.get_num_threads()))))
    length = per * hp * wp + (k - 1) * (wp + 1) + k  # the junk outputs' and dx's taps read past the last block
    return per, hp, wp, -(-length // 16) * 16  # rows 64-byte aligned


def forward(x, w, bias, y, pads, relu) -> None:
    """y = conv(x, w) + bias (through a ReLU with relu) for x (N, C, H, W) float32 and w (F, C, k, k)."""
    wb = _blocked(w)
    bb = np.zeros(wb.shape[0], np.float32)
    bb[:bias.size] = bias
    n, c = x.shape[0], x.shape[1]
    per, hp, wp, length = _layout(x.shape, w.shape[2], pads)

    def job(worker, chunks):
        plane = workspace(f"plane{worker}", (c, length))
        out = workspace(f"gemm0.{worker}", (wb.shape[0], length))
        for lo, hi in chunks:
            _forward_chunk(x, wb, bb, y, lo, hi, pads[0], pads[2], hp, wp, relu, plane, out)

    run_shared(job, n, per)


def backward(x, w, dy, gate_by, relu, pads, dx):
    """(dw, db) of :func:`forward` given dy (gated where gate_by <= 0 with relu); dx written unless it is None."""
    n, c, f, k = x.shape[0], x.shape[1], w.shape[0], w.shape[2]
    wflip = _blocked(np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]))
    per, hp, wp, length = _layout(x.shape, k, pads)
    need_dx = dx is not None
    dx_arg = dx if need_dx else np.empty((0,) + x.shape[1:], np.float32)

    def job(worker, chunks):
        plane = workspace(f"plane{worker}", (c, length))
        gplane = workspace(f"dplane{worker}", (f, length))
        out = workspace(f"gemm0.{worker}", (max(wflip.shape[0], f), length))
        dw, db = np.zeros(w.shape, np.float64), np.zeros(f, np.float64)
        for lo, hi in chunks:
            _backward_chunk(x, dy, gate_by, relu, lo, hi, pads[0], pads[2], hp, wp, wflip, dw, db, dx_arg, need_dx,
                            plane, gplane, out)
        return dw, db

    parts = run_shared(job, n, per)
    return sum(p[0] for p in parts).astype(np.float32), sum(p[1] for p in parts).astype(np.float32)
