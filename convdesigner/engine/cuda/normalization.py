"""Batch-normalisation kernels on (N, C, L) device views (cpu/normalization.py's contracts): one block per channel
for the statistics and the gradient, one thread per element for the normalisation."""
import math

from numba import cuda, float64

from convdesigner.engine.cuda.launch import THREADS, block_sum, blocks


@cuda.jit(cache=True)
def _bn_stats(x, mean, var):
    buf = cuda.shared.array(THREADS, float64)
    n, hw = x.shape[0], x.shape[2]
    j, m = cuda.blockIdx.x, x.shape[0] * x.shape[2]
    s = 0.0
    for t in range(cuda.threadIdx.x, n * hw, THREADS):
        s += x[t // hw, j, t % hw]
    mu = block_sum(buf, s) / m
    q = 0.0
    for t in range(cuda.threadIdx.x, n * hw, THREADS):
        d = x[t // hw, j, t % hw] - mu
        q += d * d
    total = block_sum(buf, q)
    if cuda.threadIdx.x == 0:
        mean[j] = mu
        var[j] = total / m


@cuda.jit(cache=True)
def _bn_update_running(running_mean, running_var, mean, var, momentum, unbias, eps, invstd):
    for j in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        running_mean[j] = (1.0 - momentum) * running_mean[j] + momentum * mean[j]
        running_var[j] = (1.0 - momentum) * running_var[j] + momentum * var[j] * unbias
        invstd[j] = 1.0 / math.sqrt(var[j] + eps)


@cuda.jit(cache=True)
def _bn_invstd(var, eps, invstd):
    for j in range(cuda.grid(1), var.size, cuda.gridsize(1)):
        invstd[j] = 1.0 / math.sqrt(var[j] + eps)


@cuda.jit(cache=True)
def _bn_normalize(x, mean, invstd, gamma, beta, y):
    c, hw = x.shape[1], x.shape[2]
    for t in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j, k = t // (c * hw), (t // hw) % c, t % hw
        a = gamma[j] * invstd[j]
        y[i, j, k] = x[i, j, k] * a + (beta[j] - mean[j] * a)


@cuda.jit(cache=True)
def _bn_backward(x, dy, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta):
    buf = cuda.shared.array(THREADS, float64)
    n, hw = x.shape[0], x.shape[2]
    j, m = cuda.blockIdx.x, x.shape[0] * x.shape[2]
    mu, r = mean[j], invstd[j]
    s1 = 0.0
    s2 = 0.0
    for t in range(cuda.threadIdx.x, n * hw, THREADS):
        g = dy[t // hw, j, t % hw]
        s1 += g
        s2 += g * (x[t // hw, j, t % hw] - mu) * r
    sdy = block_sum(buf, s1)
    sdyx = block_sum(buf, s2)
    if cuda.threadIdx.x == 0:
        dgamma[j] = sdyx
        dbeta[j] = sdy
    a = gamma[j] * r
    mdy, mdyx = sdy / m, sdyx / m
    for t in range(cuda.threadIdx.x, n * hw, THREADS):
        i, k = t // hw, t % hw
        if batch_stats:
            dx[i, j, k] = a * (dy[i, j, k] - mdy - (x[i, j, k] - mu) * r * mdyx)
        else:
            dx[i, j, k] = a * dy[i, j, k]


def bn_stats(x, mean, var):
    """Per-channel batch mean and biased variance (two passes, float64 sums)."""
    _bn_stats[x.shape[1], THREADS](x, mean, var)


def bn_update_running(running_mean, running_var, mean, var, momentum, count, eps, invstd):
    """PyTorch's rule with the unbiased batch variance; also 1/sqrt(var + eps)."""
    unbias = count / (count - 1.0) if count > 1 else 1.0
    _bn_update_running[blocks(mean.size), THREADS](running_mean, running_var, mean, var, momentum, unbias, eps,
                                                   invstd)


def bn_invstd(var, eps, invstd):
    _bn_invstd[blocks(var.size), THREADS](var, eps, invstd)


def bn_normalize(x, mean, invstd, gamma, beta, y):
    _bn_normalize[blocks(x.size), THREADS](x, mean, invstd, gamma, beta, y)


def bn_backward(x, dy, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta):
    """Gradients of gamma, beta and x; with batch statistics the mean and variance depend on x too."""
    _bn_backward[x.shape[1], THREADS](x, dy, mean, invstd, gamma, batch_stats, dx, dgamma, dbeta)
