"""Loss-head kernels: each returns the mean loss (float64) and writes dL/dlogits into ``grad``."""
import math

from numba import njit


@njit(cache=True, nogil=True, fastmath=False)
def softmax_cross_entropy(logits, labels, smoothing, grad):
    """Cross-entropy of softmax(logits) against labels smoothed to (1 − s)·onehot + s/K, via log-sum-exp."""
    n, k = logits.shape
    total = 0.0
    off = smoothing / k
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, k):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(k):
            s += math.exp(logits[i, j] - m)
        lse = m + math.log(s)
        t = labels[i]
        for j in range(k):
            target = off + (1.0 - smoothing if j == t else 0.0)
            logp = logits[i, j] - lse
            total -= target * logp
            grad[i, j] = (math.exp(logp) - target) / n
    return total / n


@njit(cache=True, nogil=True, fastmath=False)
def sigmoid_bce(logits, targets, grad):
    """Binary cross-entropy on logits, max(z, 0) − z·t + log1p(exp(−|z|)), averaged over every output."""
    size = logits.size
    total = 0.0
    for i in range(size):
        z = float(logits[i])
        t = float(targets[i])
        total += max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))
        if z >= 0.0:
            p = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            p = e / (1.0 + e)
        grad[i] = (p - t) / size
    return total / size


@njit(cache=True, nogil=True, fastmath=False)
def mean_squared_error(y, targets, grad):
    size = y.size
    total = 0.0
    for i in range(size):
        d = float(y[i]) - float(targets[i])
        total += d * d
        grad[i] = 2.0 * d / size
    return total / size
