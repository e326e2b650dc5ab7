"""Batch-normalisation kernels on (N, C, L) views: per-channel statistics, the affine normalisation, its gradient."""
import math

from numba import njit, prange

from convdesigner.engine.cpu.parallel import by_size


@by_size
def bn_stats(x, mean, var):
    """Per-channel batch mean and biased variance (two passes, float64 sums)."""
    n, c, hw = x.shape
    m = n * hw
    for j in prange(c):
        s = 0.0
        for i in range(n):
            for k in range(hw):
                s += x[i, j, k]
        mu = s / m
        q = 0.0
        for i in range(n):
            for k in range(hw):
                d = x[i, j, k] - mu
                q += d * d
        mean[j] = mu
        var[j] = q / m


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


@by_size
def bn_normalize(x, mean, invstd, gamma, beta, y):
    n, c, hw = x.shape
    for i in prange(n):
        for j in range(c):
            a = gamma[j] * invstd[j]
            b = beta[j] - mean[j] * a
            for k in range(hw):
                y[i, j, k] = x[i, j, k] * a + b


@by_size
def bn_backward(x, dy, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta):
    """Gradients of gamma, beta and x; with batch statistics the mean and variance depend on x too."""
    n, c, hw = x.shape
    m = n * hw
    for j in prange(c):
        mu = mean[j]
        r = invstd[j]
        sdy = 0.0
        sdyx = 0.0
        for i in range(n):
            for k in range(hw):
                g = dy[i, j, k]
                sdy += g
                sdyx += g * (x[i, j, k] - mu) * r
        dgamma[j] = sdyx
        dbeta[j] = sdy
        a = gamma[j] * r
        if batch_stats:
            mdy = sdy / m
            mdyx = sdyx / m
            for i in range(n):
                for k in range(hw):
                    dx[i, j, k] = a * (dy[i, j, k] - mdy - (x[i, j, k] - mu) * r * mdyx)
        else:
            for i in range(n):
                for k in range(hw):
                    dx[i, j, k] = a * dy[i, j, k]
