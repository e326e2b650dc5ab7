"""Loss-head kernels (cpu/losses.py's contracts): each writes dL/dlogits into ``grad`` on the device and returns the
mean loss as a float, the one number per batch that comes down. Targets come from the host and go up."""
import math

import numpy as np
from numba import cuda

from convdesigner.engine.cuda.launch import THREADS, blocks, scratch, sums_to_host, upload


@cuda.jit(cache=True)
def _softmax_cross_entropy(logits, labels, smoothing, grad, terms):
    n, k = logits.shape
    off = smoothing / k
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        m = logits[i, 0]
        for j in range(1, k):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(k):
            s += math.exp(logits[i, j] - m)
        lse = m + math.log(s)
        t = labels[i]
        total = 0.0
        for j in range(k):
            target = off + (1.0 - smoothing if j == t else 0.0)
            logp = logits[i, j] - lse
            total -= target * logp
            grad[i, j] = (math.exp(logp) - target) / n
        terms[i] = total


@cuda.jit(cache=True)
def _sigmoid_bce(logits, targets, grad, terms):
    size = logits.size
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        z = float(logits[i])
        t = float(targets[i])
        terms[i] = max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))
        if z >= 0.0:
            p = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            p = e / (1.0 + e)
        grad[i] = (p - t) / size


@cuda.jit(cache=True)
def _mean_squared_error(y, targets, grad, terms):
    size = y.size
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        d = float(y[i]) - float(targets[i])
        terms[i] = d * d
        grad[i] = 2.0 * d / size


def _terms(size: int):
    return scratch("loss_terms", (size,), np.float64)


def softmax_cross_entropy(logits, labels, smoothing, grad):
    """Cross-entropy of softmax(logits) against labels smoothed to (1 − s)·onehot + s/K, via log-sum-exp."""
    n = logits.shape[0]
    terms = _terms(n)
    _softmax_cross_entropy[blocks(n), THREADS](logits, upload(labels, "labels"), smoothing, grad, terms)
    return sums_to_host([terms]) / n


def sigmoid_bce(logits, targets, grad):
    """Binary cross-entropy on logits, max(z, 0) − z·t + log1p(exp(−|z|)), averaged over every output."""
    terms = _terms(logits.size)
    _sigmoid_bce[blocks(logits.size), THREADS](logits, upload(targets, "targets"), grad, terms)
    return sums_to_host([terms]) / logits.size


def mean_squared_error(y, targets, grad):
    terms = _terms(y.size)
    _mean_squared_error[blocks(y.size), THREADS](y, upload(targets, "targets"), grad, terms)
    return sums_to_host([terms]) / y.size
