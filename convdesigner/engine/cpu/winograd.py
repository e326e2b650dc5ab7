"""Winograd F(2×2, 3×3) convolution (3×3 kernels, stride 1, no dilation, groups=1), forward and dW.

Each 2×2 output tile comes from a 4×4 input tile d: y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so the sums over channels become
16 matrix products (one per element of the transformed tile) of (F, C) by (C, tiles), 16 multiplies per tile where
the direct sum has 36: 2.25× fewer. Read the other way, the same identity gives dW = Gᵀ[Σ_tiles (A e Aᵀ) ⊙ (Bᵀ d B)]G
for the 2×2 gradient tiles e: 16 products over tiles. dx is the forward convolution of dy with the flipped kernel
(conv.py runs it). The transforms only add and halve, so results stay within a few ulps of im2col's.

The 16 products have only C (forward) or F (dx) as their inner dimension, where im2col's one has 9C: OpenBLAS runs
them at 40-75 % of its large-matrix rate, so Winograd pays from 32 channels (see MIN_CHANNELS). Chunks of the batch
go to the threads of :func:`blas_threads.run_shared`, each chunk one numba call (transform, 16 sgemms through
blas.sgemm without the GIL, transform back): numpy's np.dot from two threads, 16 times a chunk, ran no faster than
one thread.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit

from convdesigner.engine.cpu.blas import NO_TRANS, ROW_MAJOR, SGEMM, TRANS, sgemm
from convdesigner.engine.cpu.blas_threads import run_shared
from convdesigner.engine.cpu.planes import gated as through_relu
from convdesigner.engine.cpu.planes import workspace

_CHUNK_FLOATS = 1 << 18  # 1 MiB of transformed input per chunk (5-20 % faster than 512 KiB, 2 MiB no faster)

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], np.float32)
_GG = np.kron(_G, _G)  # (16, 9): G ⊗ G, row 4i + j column 3k + l = G[i, k]·G[j, l] (products of 0, ±1/2, 1: exact)


# Channels from which the 16 products (inner dimension C) beat im2col's one (inner dimension 9C), forward and
# backward, on the templates' shapes (2-core Zen 3): C = 32 and 64 1.2-1.5×; C = 16 0.9-1.1×; C = 3 0.5-0.7×.
# conv.strategy asks as many filters too: below, the blocked sums win (Zen 4: DenseNet's 48 -> 12 1.1×).
MIN_CHANNELS = 32


def supports(w_shape, stride, pads, dilation, groups) -> bool:
    """True for the convolutions this module runs: 3×3, stride 1, dilation 1, ungrouped, padding at most 2 a side
    (so that dx is a padded convolution too), where numpy's OpenBLAS lends its sgemm (blas.SGEMM)."""
    return (SGEMM and tuple(w_shape[2:]) == (3, 3) and stride == 1 and dilation == 1 and groups == 1
            and max(pads) <= 2 and min(pads) >= 0)


def _tiles(oh: int, ow: int) -> tuple[int, int, int]:
    """Tile rows and columns of an (oh, ow) output, and tiles per sample in the wide order (one dropped a row)."""
    th, tw = -(-oh // 2), -(-ow // 2)
    return th, tw, (th - 1) * (tw + 1) + tw


# Layout of a chunk of nb samples.  The padded planes are split into their four phases (row and column parity), each
# (TH+1, TW+1) with the chunk's samples innermost: phases[c, 2a + b, (r*(TW+1) + k)*nb + n] is padded row 2r + a,
# column 2k + b of sample n.  Element (k, l) of the 4×4 input tile of every tile (th, tw) of every sample is then ONE
# contiguous run of a phase plane, in the 'wide' tile order t = (th*(TW+1) + tw)*nb + n (the tiles tw = TW are
# computed and dropped, as planes.py does for positions), so each transform is a few long vector loops per channel.
# Bᵀ has two non-zeros a row, so a transformed element is a signed sum of four runs.
_BT_ROWS = np.array([[0, 2], [1, 2], [2, 1], [1, 3]])  # row i of Bᵀ: s d[k] + r d[l], k and l here, s and r below
_BT_SIGNS = np.array([[1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [1.0, -1.0]], np.float32)


@njit(cache=True, nogil=True, fastmath=False)
def _quad(out, p0, p1, p2, p3, s0, s1, s2, s3):
    for q in range(out.shape[0]):
        out[q] = s0 * p0[q] + s1 * p1[q] + s2 * p2[q] + s3 * p3[q]


@njit(cache=True, nogil=True, fastmath=False)
def _tri(out, p0, p1, p2, s1, s2):
    for q in range(out.shape[0]):
        out[q] = p0[q] + s1 * p1[q] + s2 * p2[q]


@njit(cache=True, nogil=True, fastmath=False)
def _split(src, gate, gated, n0, n1, phases, top, left, w1):
    """phases (C, 4, size) = src[n0:n1] padded by (top, left) and zeros, in the chunk layout above; with ``gated``,
    src times (gate > 0) (a gradient through a ReLU, with no gated copy of it; a product, as planes.gated: the
    select it replaced made a gated split cost 1.5-2.5× the plain one).  Unsigned indices: numba checks signed ones
    for wraparound, which cost 2-3× here."""
    nb = n1 - n0
    phases[:] = 0.0
    size = phases.shape[2]
    for c in range(src.shape[1]):
        flat = phases[c].reshape(4 * size)
        for n in range(nb):
            img, opens = src[n0 + n, c], gate[n0 + n, c]
            for h in range(src.shape[2]):
                a, r = (h + top) % 2, (h + top) // 2
                row, open_ = img[h], opens[h]
                for w in range(src.shape[3]):
                    col = w + left
                    value = through_relu(row[w], open_[w]) if gated else row[w]
                    flat[np.uint64((2 * a + col % 2) * size + (r * w1 + col // 2) * nb + n)] = value


@njit(cache=True, nogil=True, fastmath=False)
def _transform_inputs(x, gate, gated, n0, n1, phases, v, top, left, th_, tw_):
    """v[(i, j), c, t] = (Bᵀ d B)[i, j] of each 4×4 input tile t (wide order) of x[n0:n1], padded by (top, left)
    (x gated as in :func:`_split`)."""
    w1, nb = tw_ + 1, n1 - n0
    run = ((th_ - 1) * w1 + tw_) * nb
    _split(x, gate, gated, n0, n1, phases, top, left, w1)
    for c in range(x.shape[1]):
        ph = phases[c]
        for i in range(4):
            ki, li, si, ri = _BT_ROWS[i, 0], _BT_ROWS[i, 1], _BT_SIGNS[i, 0], _BT_SIGNS[i, 1]
            for j in range(4):
                kj, lj, sj, rj = _BT_ROWS[j, 0], _BT_ROWS[j, 1], _BT_SIGNS[j, 0], _BT_SIGNS[j, 1]
                _quad(v[4 * i + j, c, :run],
                      ph[2 * (ki % 2) + kj % 2, ((ki // 2) * w1 + kj // 2) * nb:],
                      ph[2 * (ki % 2) + lj % 2, ((ki // 2) * w1 + lj // 2) * nb:],
                      ph[2 * (li % 2) + kj % 2, ((li // 2) * w1 + kj // 2) * nb:],
                      ph[2 * (li % 2) + lj % 2, ((li // 2) * w1 + lj // 2) * nb:],
                      si * sj, si * rj, ri * sj, ri * rj)


@njit(cache=True, nogil=True, fastmath=False)
def _output_tiles(m, b, y, n0, n1, th_, tw_, relu):
    """y[n0:n1] = Aᵀ m A for each tile of m (16, F, wide tiles), plus bias, through a ReLU when ``relu``; Aᵀ's rows
    are m0 + m1 + m2 and m1 - m2 - m3."""
    oh_, ow_ = y.shape[2], y.shape[3]
    w1, nb = tw_ + 1, n1 - n0
    run = ((th_ - 1) * w1 + tw_) * nb
    s = np.empty((2, 4, run), np.float32)
    out = np.empty((4, run), np.float32)
    flat = out.reshape(4 * run)
    one = np.float32(1.0)
    for f in range(y.shape[1]):
        bias = b[f]
        for j in range(4):
            _tri(s[0, j], m[j, f, :run], m[4 + j, f], m[8 + j, f], one, one)
            _tri(s[1, j], m[4 + j, f, :run], m[8 + j, f], m[12 + j, f], -one, -one)
        for a in range(2):
            _tri(out[2 * a], s[a, 0], s[a, 1], s[a, 2], one, one)
            _tri(out[2 * a + 1], s[a, 1], s[a, 2], s[a, 3], -one, -one)
        for n in range(nb):
            for r in range(oh_):
                row = y[n0 + n, f, r]
                for col in range(ow_):
                    val = flat[np.uint64((2 * (r % 2) + col % 2) * run + ((r // 2) * w1 + col // 2) * nb + n)] + bias
                    row[col] = 0.0 if relu and val < 0.0 else val


@njit(cache=True, nogil=True, fastmath=False)
def _gradient_tiles(dy, gate, gated, n0, n1, phases, g, db, th_, tw_):
    """g[(i, j), f, t] = (A e Aᵀ)[i, j] for each 2×2 tile e of dy[n0:n1] (zero past its edge, gated as in
    :func:`_split`), in the wide tile order with zeros in the dropped tiles, and db[f] its sum; phases (F, 4, size)
    is scratch. A's rows are e0, e0 + e1, e0 - e1, -e1."""
    w1, nb = tw_ + 1, n1 - n0
    run = ((th_ - 1) * w1 + tw_) * nb
    rows = np.empty((4, 2, run), np.float32)
    one, zero = np.float32(1.0), np.float32(0.0)
    _split(dy, gate, gated, n0, n1, phases, 0, 0, w1)
    for f in range(dy.shape[1]):
        db[f] = phases[f].sum()
        for b in range(2):
            e0, e1 = phases[f, b, :run], phases[f, 2 + b, :run]
            _tri(rows[0, b], e0, e1, e1, zero, zero)
            _tri(rows[1, b], e0, e1, e1, one, zero)
            _tri(rows[2, b], e0, e1, e1, -one, zero)
            _tri(rows[3, b], e1, e1, e1, -one - one, zero)
        for i in range(4):
            e0, e1 = rows[i, 0], rows[i, 1]
            _tri(g[4 * i, f, :run], e0, e1, e1, zero, zero)
            _tri(g[4 * i + 1, f, :run], e0, e1, e1, one, zero)
            _tri(g[4 * i + 2, f, :run], e0, e1, e1, -one, zero)
            _tri(g[4 * i + 3, f, :run], e1, e1, e1, -one - one, zero)


@njit(cache=True, nogil=True, fastmath=False)
def _products(a, b, out, trans_b):
    """out[e] = a[e] @ b[e] (b[e].T with ``trans_b``) for the 16 tile elements, by OpenBLAS (blas.sgemm)."""
    for e in range(16):
        ae, be, oe = a[e], b[e], out[e]
        sgemm(ROW_MAJOR, NO_TRANS, TRANS if trans_b else NO_TRANS, oe.shape[0], oe.shape[1], ae.shape[1],
              np.float32(1.0), ae.ctypes, ae.shape[1], be.ctypes, be.shape[1], np.float32(0.0), oe.ctypes,
              oe.shape[1])


@njit(cache=True, nogil=True, fastmath=False)
def _forward_chunk(x, gate, gated, n0, n1, phases, u, v, prod, b, y, top, left, th_, tw_, relu):
    _transform_inputs(x, gate, gated, n0, n1, phases, v, top, left, th_, tw_)
    _products(u, v, prod, False)
    _output_tiles(prod, b, y, n0, n1, th_, tw_, relu)


@njit(cache=True, nogil=True, fastmath=False)
def _dw_chunk(x, dy, gate, gated, n0, n1, phases, dphases, v, g, slot, db, top, left, th_, tw_):
    _transform_inputs(x, x, False, n0, n1, phases, v, top, left, th_, tw_)
    _gradient_tiles(dy, gate, gated, n0, n1, dphases, g, db, th_, tw_)
    _products(v, g, slot, True)


def _chunk(c: int, tiles: int, n: int) -> int:
    """Samples per chunk: the transformed input within _CHUNK_FLOATS, and chunks enough for every thread to take as
    many (at least two each, so one thread slowed by other work can hand over)."""
    threads = numba.get_num_threads()
    chunks = max(-(-n // max(1, _CHUNK_FLOATS // (16 * c * tiles))), 2 * threads)
    return -(-n // (-(-chunks // threads) * threads))


def _buffers(worker: int, rows: tuple[int, ...], cb: int, tiles: int):
    """``view(i, m)``: the worker's i-th buffer as a C-contiguous (16, rows[i], m) array (see im2col._products; the
    same workspaces, so the two methods' scratch is held once, not twice)."""
    bufs = [workspace(f"gemm{i}.{worker}", (16 * r * cb * tiles,)) for i, r in enumerate(rows)]
    return lambda i, m: bufs[i][:16 * rows[i] * m].reshape(16, rows[i], m)


def _phases(worker: int, c: int, th: int, tw: int, cb: int) -> np.ndarray:
    """The worker's phase planes for chunks of up to cb samples (see the chunk layout)."""
    return workspace(f"plane{worker}", (c, 4, (th + 1) * (tw + 1) * cb))


def _kernel_tiles(w):
    """(16, F, C): G g Gᵀ for each 3×3 kernel g, as one product by G ⊗ G (3-4× two tensordots and their transposed
    copy: 0.2 ms a call for 64×64, three calls a layer's training step)."""
    f, c = w.shape[:2]
    return np.dot(_GG, w.reshape(f * c, 9).T).reshape(16, f, c)


def _kernel_gradient(total):
    """dW (F, C, 3, 3) = Gᵀ m G from the summed products m (4, 4, C, F), by (G ⊗ G)ᵀ as in :func:`_kernel_tiles`."""
    c, f = total.shape[2], total.shape[3]
    return np.ascontiguousarray(np.dot(_GG.T, total.reshape(16, c * f)).reshape(3, 3, c, f).transpose(3, 2, 0, 1))


def forward(x, w, b, y, pads, relu, gate=None):
    """y (N,F,OH,OW) = conv(x, w) + b (through a ReLU when ``relu``) for a 3×3 stride-1 kernel (:func:`supports`);
    with ``gate`` (x's shape), x counts only where gate > 0: dx of a ReLU-fused conv from its ungated dy."""
    f, c = w.shape[:2]
    th_, tw_, tiles = _tiles(y.shape[2], y.shape[3])
    u = _kernel_tiles(w)
    cb = _chunk(c, tiles, x.shape[0])

    def work(worker, chunks):
        view = _buffers(worker, (c, f), cb, tiles)
        for n0, n1 in chunks:
            m = (n1 - n0) * tiles
            phases = _phases(worker, c, th_, tw_, n1 - n0)
            _forward_chunk(x, x if gate is None else gate, gate is not None, n0, n1, phases, u, view(0, m),
                           view(1, m), b, y, pads[0], pads[2], th_, tw_, relu)

    run_shared(work, x.shape[0], cb)


def backward(x, w, dy, pads, relu_out=None):
    """(dw, db) of :func:`forward` given dy, gated where relu_out <= 0 when given (a ReLU-fused conv); dx is the
    forward convolution of the gated dy with the flipped kernel (conv.py runs it).

    Each chunk's dW products go to a slot of their own, summed in chunk order, so results do not depend on which
    thread took which chunk (training stays bit-reproducible)."""
    f, c = w.shape[:2]
    n = x.shape[0]
    th_, tw_, tiles = _tiles(dy.shape[2], dy.shape[3])
    cb = _chunk(max(c, f), tiles, n)
    slots = np.empty((-(-n // cb), 16, c, f), np.float32)
    dbs = np.empty((len(slots), f), np.float32)
    gate = dy if relu_out is None else relu_out

    def work(worker, chunks):
        view = _buffers(worker, (c, f), cb, tiles)
        for n0, n1 in chunks:
            m = (n1 - n0) * tiles
            phases = _phases(worker, c, th_, tw_, n1 - n0)
            dphases = workspace(f"dplane{worker}", (f, 4, (th_ + 1) * (tw_ + 1) * (n1 - n0)))
            _dw_chunk(x, dy, gate, relu_out is not None, n0, n1, phases, dphases, view(0, m), view(1, m),
                      slots[n0 // cb], dbs[n0 // cb], pads[0], pads[2], th_, tw_)

    run_shared(work, n, cb)
    return _kernel_gradient(slots.sum(0).reshape(4, 4, c, f)), dbs.sum(0)
