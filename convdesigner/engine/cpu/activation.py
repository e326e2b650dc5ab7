"""Element-wise activation kernels on flat views: forward writes ``y``, backward writes ``dx`` from ``dy``.

Every kernel writes its whole output, so the layers can hand them uninitialised, preallocated buffers.
"""
import math

from numba import njit, prange

from convdesigner.engine.cpu.parallel import by_size


@by_size
def relu_forward(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0.0 if v < 0.0 else v


@by_size
def relu_backward(y, dy, dx):
    for i in prange(y.size):
        dx[i] = dy[i] if y[i] > 0.0 else 0.0


@njit(cache=True, nogil=True, fastmath=False)
def leaky_relu_forward(x, alpha, y):
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > 0.0 else alpha * v


@njit(cache=True, nogil=True, fastmath=False)
def leaky_relu_backward(x, dy, alpha, dx):
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0.0 else alpha * dy[i]


@by_size
def elu_forward(x, alpha, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0.0 else alpha * math.expm1(v)


@by_size
def elu_backward(x, y, dy, alpha, dx):
    for i in prange(x.size):
        dx[i] = dy[i] if x[i] > 0.0 else dy[i] * (y[i] + alpha)


@njit(cache=True, nogil=True, fastmath=False)
def _sigmoid(v):
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@by_size
def sigmoid_forward(x, y):
    for i in prange(x.size):
        y[i] = _sigmoid(x[i])


@by_size
def sigmoid_backward(y, dy, dx):
    for i in prange(y.size):
        dx[i] = dy[i] * y[i] * (1.0 - y[i])


@by_size
def silu_forward(x, y):
    for i in prange(x.size):
        y[i] = x[i] * _sigmoid(x[i])


@by_size
def silu_backward(x, dy, dx):
    for i in prange(x.size):
        s = _sigmoid(x[i])
        dx[i] = dy[i] * s * (1.0 + x[i] * (1.0 - s))


@by_size
def tanh_forward(x, y):
    for i in prange(x.size):
        y[i] = math.tanh(x[i])


@by_size
def tanh_backward(y, dy, dx):
    for i in prange(y.size):
        dx[i] = dy[i] * (1.0 - y[i] * y[i])


@by_size
def prelu_forward(x, slope, y):
    """x, y: (N, C, L); slope: (C,) — one learned negative slope per channel."""
    n, c, hw = x.shape
    for i in prange(n):
        for j in range(c):
            a = slope[j]
            for k in range(hw):
                v = x[i, j, k]
                y[i, j, k] = v if v > 0.0 else a * v


@by_size
def prelu_backward(x, slope, dy, dx, dslope):
    n, c, hw = x.shape
    for j in prange(c):
        a = slope[j]
        s = 0.0
        for i in range(n):
            for k in range(hw):
                v = x[i, j, k]
                if v > 0.0:
                    dx[i, j, k] = dy[i, j, k]
                else:
                    dx[i, j, k] = a * dy[i, j, k]
                    s += dy[i, j, k] * v
        dslope[j] = s


@by_size
def softmax_forward(x, y):
    """Softmax over axis 1 of (N, C, L), shifted by the maximum so large scores cannot overflow."""
    n, c, hw = x.shape
    for i in prange(n):
        for k in range(hw):
            m = x[i, 0, k]
            for j in range(1, c):
                m = max(m, x[i, j, k])
            s = 0.0
            for j in range(c):
                e = math.exp(x[i, j, k] - m)
                y[i, j, k] = e
                s += e
            inv = 1.0 / s
            for j in range(c):
                y[i, j, k] *= inv


@by_size
def softmax_backward(y, dy, dx):
    n, c, hw = y.shape
    for i in prange(n):
        for k in range(hw):
            s = 0.0
            for j in range(c):
                s += dy[i, j, k] * y[i, j, k]
            for j in range(c):
                dx[i, j, k] = y[i, j, k] * (dy[i, j, k] - s)
