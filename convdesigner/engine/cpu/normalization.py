"""Batch-normalisation kernels on C-contiguous (N, C, L) views: per-channel statistics, the affine normalisation, its
gradient.

The per-channel reductions run over groups of whole channels, each image's slice of a group one contiguous row, into
rows of float64 partial sums (acc[t] += x[i, t] over i): that vectorises without fastmath, where a loop-carried scalar
sum never does, and vectors (N, F, 1) vectorise across features. Per-channel constants are spread into rows alike.
The groups depend on the shape only, never on the thread count, so serial and parallel runs give the same bits."""
import math

import numpy as np
from numba import njit

from convdesigner.engine.cpu.parallel import split_range
from convdesigner.engine.cpu.planes import gated

GROUP_BYTES = 1 << 18  # a channel group's x and dy over the batch: the backward's second pass re-reads them from L2
GROUP_CELLS = 4096  # at most this many positions (channels × L) per group, for its rows of partial sums
# Elements from which channel groups (or samples) are shared between the threads of run_shared, measured on two
# cores: the backward 1.25-1.6× faster from 1M floats, the two forward passes (lighter) 1.3× only from 3M
SPLIT_FROM, SPLIT_FORWARD_FROM = 1 << 19, 1 << 21


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _groups(n, c, hw):
    """(channels per group, number of groups)."""
    per = max(1, min(GROUP_CELLS, GROUP_BYTES // (8 * n)) // hw)
    return per, (c + per - 1) // per


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _spread(values, j0, j1, hw, row):
    """row[(j - j0)·hw + k] = values[j] for the channels j0 ≤ j < j1 of a group."""
    for j in range(j0, j1):
        row[(j - j0) * hw:(j - j0 + 1) * hw] = values[j]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _channel_sum(acc, j, hw):
    """The sum of channel j's positions (j counted from the group's first) in a row of partial sums."""
    s = 0.0
    for k in range(j * hw, (j + 1) * hw):
        s += acc[k]
    return s


def bn_stats(x, mean, var):
    """Per-channel batch mean and biased variance: float64 sums of x - s and (x - s)² in one pass, s each channel's
    first value. s is a sample, so (s - mean)² ≤ count·var and the cancellation in var = E[(x-s)²] - E[x-s]² costs
    at most count·2⁻⁵³ relative, far below float32 rounding (and nothing for data far from 0, mean 1e3 std 1)."""
    split_range(_stats, _groups(*x.shape)[1], x.size, SPLIT_FORWARD_FROM, x, mean, var)


@njit(cache=True, nogil=True, fastmath=False)
def _stats(x, mean, var, g0, g1):
    n, c, hw = x.shape
    xf = x.reshape(n, c * hw)
    m = n * hw
    per, _ = _groups(n, c, hw)
    for q in range(g0, g1):
        j0, j1 = q * per, min(q * per + per, c)
        t0, t1 = j0 * hw, j1 * hw
        shift = np.empty(t1 - t0)
        _spread(x[0, :, 0], j0, j1, hw, shift)
        s1, s2 = np.zeros(t1 - t0), np.zeros(t1 - t0)
        for i in range(n):
            row = xf[i, t0:t1]
            for t in range(t1 - t0):
                d = row[t] - shift[t]
                s1[t] += d
                s2[t] += d * d
        for j in range(j0, j1):
            mu = _channel_sum(s1, j - j0, hw) / m
            mean[j] = shift[(j - j0) * hw] + mu
            var[j] = max(_channel_sum(s2, j - j0, hw) / m - mu * mu, 0.0)


@njit(cache=True, nogil=True, fastmath=False)
def bn_update_running(running_mean, running_var, mean, var, momentum, count, eps, invstd):
    """PyTorch's rule, running = (1 - m)·running + m·batch with the unbiased batch variance; also 1/sqrt(var + eps)."""
    unbias = count / (count - 1.0) if count > 1 else 1.0
    for j in range(mean.size):
        running_mean[j] = (1.0 - momentum) * running_mean[j] + momentum * mean[j]
        running_var[j] = (1.0 - momentum) * running_var[j] + momentum * var[j] * unbias
        invstd[j] = 1.0 / math.sqrt(var[j] + eps)


@njit(cache=True, nogil=True, fastmath=False)
def bn_invstd(var, eps, invstd):
    for j in range(var.size):
        invstd[j] = 1.0 / math.sqrt(var[j] + eps)


def bn_normalize(x, mean, invstd, gamma, beta, y):
    """y = x·a + b with a = gamma·invstd and b = beta - mean·a per channel."""
    _normalize(x, mean, invstd, gamma, beta, False, y)


def bn_normalize_relu(x, mean, invstd, gamma, beta, y):
    """y = max(x·a + b, 0): the normalisation and the ReLU after it in one pass (a BatchNorm fused with its ReLU)."""
    _normalize(x, mean, invstd, gamma, beta, True, y)


def _normalize(x, mean, invstd, gamma, beta, relu, y):
    split_range(_normalize_samples, x.shape[0], x.size, SPLIT_FORWARD_FROM, x, mean, invstd, gamma, beta, relu, y)


@njit(cache=True, nogil=True, fastmath=False)
def _normalize_samples(x, mean, invstd, gamma, beta, relu, y, n0, n1):
    """y[n0:n1] = x·a + b, through a ReLU with ``relu``. Short channels (L < 64: vectors, small maps) take a and b
    spread into rows over C·L, so each image is one contiguous vector loop whatever L is."""
    n, c, hw = x.shape
    zero = np.float32(0.0)
    if hw >= 64:
        for i in range(n0, n1):
            for j in range(c):
                aj = gamma[j] * invstd[j]
                bj = beta[j] - mean[j] * aj
                for k in range(hw):
                    v = x[i, j, k] * aj + bj
                    y[i, j, k] = zero if relu and v < zero else v
        return
    a, b = np.empty(c * hw, y.dtype), np.empty(c * hw, y.dtype)
    for j in range(c):
        aj = gamma[j] * invstd[j]
        bj = beta[j] - mean[j] * aj
        for t in range(j * hw, (j + 1) * hw):
            a[t] = aj
            b[t] = bj
    xf, yf = x.reshape(n, c * hw), y.reshape(n, c * hw)
    for i in range(n0, n1):
        xr, yr = xf[i], yf[i]
        for t in range(c * hw):
            v = xr[t] * a[t] + b[t]
            yr[t] = zero if relu and v < zero else v


SUMS_PASS, DX_PASS, BOTH_PASSES = 1, 2, 3  # which of the backward's two passes over a channel group run


def bn_backward(x, dy, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta):
    """Gradients of gamma, beta and x; with batch statistics the mean and variance depend on x too."""
    _backward(x, dy, dy, False, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta, BOTH_PASSES, 0)


def bn_backward_relu(x, dy, y, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta):
    """:func:`bn_backward` of a BatchNorm fused with its ReLU, whose output is y: dy counts only where y > 0."""
    _backward(x, dy, y, True, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta, BOTH_PASSES, 0)


def bn_backward_sums(x, dy, y, relu, mean, invstd, dgamma, dbeta):
    """The first pass of the backward alone: dgamma and dbeta of this part of a batch (the sums that dx needs from
    every part, engine.replicas); dy gated by the ReLU output y with ``relu``."""
    _backward(x, dy, y, relu, mean, invstd, invstd, True, dy, dgamma, dbeta, SUMS_PASS, 0)


def bn_backward_dx(x, dy, y, relu, mean, invstd, gamma, dgamma, dbeta, count, dx):
    """The second pass alone: dx of this part of a batch of ``count`` positions per channel, from the whole batch's
    dgamma and dbeta (read, not written)."""
    _backward(x, dy, y, relu, mean, invstd, gamma, True, dx, dgamma, dbeta, DX_PASS, count)


def _backward(x, dy, y, relu, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta, passes, count):
    split_range(_backward_groups, _groups(*x.shape)[1], x.size, SPLIT_FROM, x, dy, y, relu, mean, invstd, gamma,
                batch_stats, dx, dgamma, dbeta, passes, count)


@njit(cache=True, nogil=True, fastmath=False)
def _backward_groups(x, dy, y, relu, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta, passes, count, g0, g1):
    """Per channel group g0 ≤ q < g1, one pass for the sums and one for dx, while the group's slices are still in
    cache; with ``relu`` each dy is gated by the ReLU output y on the way in (no gated copy of dy is written).
    ``passes`` runs the first (SUMS_PASS: writes dgamma, dbeta), the second (DX_PASS: reads them as the sums of a
    batch of ``count`` positions per channel) or both."""
    n, c, hw = x.shape
    m = count if passes == DX_PASS else n * hw
    xf, gf, df = x.reshape(n, c * hw), dy.reshape(n, c * hw), dx.reshape(n, c * hw)
    yf = y.reshape(n, c * hw)
    per, _ = _groups(n, c, hw)
    for q in range(g0, g1):
        j0, j1 = q * per, min(q * per + per, c)
        t0, t1 = j0 * hw, j1 * hw
        size = t1 - t0
        mu = np.empty(size, x.dtype)
        _spread(mean, j0, j1, hw, mu)
        s1, s2 = np.zeros(size), np.zeros(size)
        if passes & SUMS_PASS:
            for i in range(n):
                xr, gr, yr = xf[i, t0:t1], gf[i, t0:t1], yf[i, t0:t1]
                if relu:  # a loop per case, as for dx below (where flags tested inside ran 1.3-1.4× slower)
                    for t in range(size):
                        g = gated(gr[t], yr[t])
                        s1[t] += g
                        s2[t] += g * (xr[t] - mu[t])  # invstd, a per-channel factor, applied to the sum
                else:
                    for t in range(size):
                        s1[t] += gr[t]
                        s2[t] += gr[t] * (xr[t] - mu[t])
        a, mdy, k = np.empty(size, x.dtype), np.empty(size), np.empty(size)
        for j in range(j0, j1):
            r = np.float64(invstd[j])
            if passes & SUMS_PASS:
                sdy, sdyx = _channel_sum(s1, j - j0, hw), _channel_sum(s2, j - j0, hw) * r
                dgamma[j] = sdyx
                dbeta[j] = sdy
            else:
                sdy, sdyx = np.float64(dbeta[j]), np.float64(dgamma[j])
            cells = slice((j - j0) * hw, (j - j0 + 1) * hw)
            a[cells] = gamma[j] * invstd[j]
            mdy[cells] = sdy / m
            k[cells] = r * sdyx / m  # xhat·mean(dy·xhat) = (x - mean)·k
        if not passes & DX_PASS:
            continue
        for i in range(n):
            xr, gr, yr, dr = xf[i, t0:t1], gf[i, t0:t1], yf[i, t0:t1], df[i, t0:t1]
            if batch_stats and relu:
                for t in range(size):
                    g = gated(gr[t], yr[t])
                    dr[t] = a[t] * (g - mdy[t] - (xr[t] - mu[t]) * k[t])
            elif batch_stats:
                for t in range(size):
                    dr[t] = a[t] * (gr[t] - mdy[t] - (xr[t] - mu[t]) * k[t])
            elif relu:
                for t in range(size):
                    dr[t] = a[t] * gated(gr[t], yr[t])
            else:
                for t in range(size):
                    dr[t] = a[t] * gr[t]
