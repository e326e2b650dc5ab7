"""The one matrix-product kernel of the CUDA backend: C = op(A)·op(B), tiled in shared memory with register
blocking, with the epilogues the layers need fused in (bias per row or column, ReLU, accumulate, and the NCHW
scatter of a convolution's output).

Each block computes a BM×BN tile of C from BK-wide slabs of A and B staged in shared memory; each of its 256
threads keeps a TM×TN sub-tile in registers (a naive one-output-per-thread 32×32 tile is bound by shared-memory
traffic at a fraction of the device's fp32 rate). Operands are flat arrays with element strides, so transposes are
free: A(m, k) = a[m·sam + k·sak], B(k, n) = b[k·sbk + n·sbn]. C(m, n) lands at c[(n // P)·cs + m·P + n % P]: with
P = N a plain row-major M×N matrix, with P = OH·OW and cs = M·P the NCHW output of a convolution whose columns are
(sample, position) pairs.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32

BM, BN, BK = 64, 64, 16
TM, TN = 4, 4
TX = BN // TN  # threads along n; along m: BM // TM
GEMM_THREADS = (BM // TM) * (BN // TN)
A_ROW, B_ROW = BM + 1, BN + 1  # shared tiles one wider than a row: the transposing stores hit 16 banks, not one

NO_BIAS, ROW_BIAS, COLUMN_BIAS = 0, 1, 2


@cuda.jit(cache=True)
def _gemm(a, sam, sak, b, sbk, sbn, c, p, cs, m_, n_, k_, bias, bias_mode, relu, accumulate):
    a_tile = cuda.shared.array((BK, A_ROW), float32)
    b_tile = cuda.shared.array((BK, B_ROW), float32)
    acc = cuda.local.array((TM, TN), float32)
    ra = cuda.local.array(TM, float32)
    rb = cuda.local.array(TN, float32)
    t = cuda.threadIdx.x
    tr, tc = t // TX, t % TX
    m0, n0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BN
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = 0.0
    for k0 in range(0, k_, BK):
        for e in range(t, BM * BK, GEMM_THREADS):  # consecutive threads read consecutive addresses
            if sak == 1:
                mm, kk = e // BK, e % BK
            else:
                mm, kk = e % BM, e // BM
            gm, gk = m0 + mm, k0 + kk
            a_tile[kk, mm] = a[gm * sam + gk * sak] if gm < m_ and gk < k_ else 0.0
        for e in range(t, BN * BK, GEMM_THREADS):
            if sbn == 1:
                nn, kk = e % BN, e // BN
            else:
                nn, kk = e // BK, e % BK
            gn, gk = n0 + nn, k0 + kk
            b_tile[kk, nn] = b[gk * sbk + gn * sbn] if gn < n_ and gk < k_ else 0.0
        cuda.syncthreads()
        for kk in range(BK):
            for i in range(TM):
                ra[i] = a_tile[kk, tr + i * (BM // TM)]
            for j in range(TN):
                rb[j] = b_tile[kk, tc + j * TX]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += ra[i] * rb[j]
        cuda.syncthreads()
    for i in range(TM):
        gm = m0 + tr + i * (BM // TM)
        if gm < m_:
            for j in range(TN):
                gn = n0 + tc + j * TX
                if gn < n_:
                    at = (gn // p) * cs + gm * p + gn % p
                    v = acc[i, j]
                    if accumulate:
                        v += c[at]
                    if bias_mode == ROW_BIAS:
                        v += bias[gm]
                    elif bias_mode == COLUMN_BIAS:
                        v += bias[gn]
                    if relu and v < 0.0:
                        v = 0.0
                    c[at] = v


_NO_BIAS = {}


def _dummy_bias():
    if "b" not in _NO_BIAS:
        _NO_BIAS["b"] = cuda.to_device(np.zeros(1, np.float32))
    return _NO_BIAS["b"]


def gemm(a, sam, sak, b, sbk, sbn, c, m, n, k, *, p=None, cs=0, bias=None, bias_mode=NO_BIAS, relu=False,
         accumulate=False):
    """C (m×n, laid out as the module docstring says) = A·B (+ C when ``accumulate``) + bias, through a ReLU."""
    if m == 0 or n == 0:
        return
    grid = (-(-n // BN), -(-m // BM))
    _gemm[grid, GEMM_THREADS](a, sam, sak, b, sbk, sbn, c, n if p is None else p, cs, m, n, k,
                              _dummy_bias() if bias is None else bias, NO_BIAS if bias is None else bias_mode,
                              relu, accumulate)
