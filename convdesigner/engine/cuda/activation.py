"""Element-wise activation kernels on flat device views, PReLU and Softmax on (N, C, L) views: the contracts of
cpu/activation.py (forward writes ``y``, backward writes ``dx`` from ``dy``; every output written whole)."""
import math

from numba import cuda, float64

from convdesigner.engine.cuda.launch import THREADS, block_sum, blocks


@cuda.jit(device=True)
def sigmoid(v):
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@cuda.jit(cache=True)
def _relu_forward(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = 0.0 if v < 0.0 else v


@cuda.jit(cache=True)
def _relu_backward(y, dy, dx):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        dx[i] = dy[i] if y[i] > 0.0 else 0.0


@cuda.jit(cache=True)
def _leaky_relu_forward(x, alpha, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = v if v > 0.0 else alpha * v


@cuda.jit(cache=True)
def _leaky_relu_backward(x, dy, alpha, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        dx[i] = dy[i] if x[i] > 0.0 else alpha * dy[i]


@cuda.jit(cache=True)
def _elu_forward(x, alpha, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = v if v > 0.0 else alpha * math.expm1(v)


@cuda.jit(cache=True)
def _elu_backward(x, y, dy, alpha, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        dx[i] = dy[i] if x[i] > 0.0 else dy[i] * (y[i] + alpha)


@cuda.jit(cache=True)
def _sigmoid_forward(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = sigmoid(x[i])


@cuda.jit(cache=True)
def _sigmoid_backward(y, dy, dx):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        dx[i] = dy[i] * y[i] * (1.0 - y[i])


@cuda.jit(cache=True)
def _silu_forward(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = x[i] * sigmoid(x[i])


@cuda.jit(cache=True)
def _silu_backward(x, dy, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = sigmoid(x[i])
        dx[i] = dy[i] * s * (1.0 + x[i] * (1.0 - s))


@cuda.jit(cache=True)
def _tanh_forward(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = math.tanh(x[i])


@cuda.jit(cache=True)
def _tanh_backward(y, dy, dx):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        dx[i] = dy[i] * (1.0 - y[i] * y[i])


@cuda.jit(cache=True)
def _prelu_forward(x, slope, y):
    c, hw = x.shape[1], x.shape[2]
    for t in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j, k = t // (c * hw), (t // hw) % c, t % hw
        v = x[i, j, k]
        y[i, j, k] = v if v > 0.0 else slope[j] * v


@cuda.jit(cache=True)
def _prelu_backward(x, slope, dy, dx, dslope):
    """One block per channel: dx for its elements and their sum into dslope."""
    buf = cuda.shared.array(THREADS, float64)
    n, hw = x.shape[0], x.shape[2]
    j = cuda.blockIdx.x
    a = slope[j]
    s = 0.0
    for t in range(cuda.threadIdx.x, n * hw, THREADS):
        i, k = t // hw, t % hw
        v = x[i, j, k]
        if v > 0.0:
            dx[i, j, k] = dy[i, j, k]
        else:
            dx[i, j, k] = a * dy[i, j, k]
            s += dy[i, j, k] * v
    total = block_sum(buf, s)
    if cuda.threadIdx.x == 0:
        dslope[j] = total


@cuda.jit(cache=True)
def _softmax_forward(x, y):
    c, hw = x.shape[1], x.shape[2]
    for t in range(cuda.grid(1), x.shape[0] * hw, cuda.gridsize(1)):
        i, k = t // hw, t % hw
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


@cuda.jit(cache=True)
def _softmax_backward(y, dy, dx):
    c, hw = y.shape[1], y.shape[2]
    for t in range(cuda.grid(1), y.shape[0] * hw, cuda.gridsize(1)):
        i, k = t // hw, t % hw
        s = 0.0
        for j in range(c):
            s += dy[i, j, k] * y[i, j, k]
        for j in range(c):
            dx[i, j, k] = y[i, j, k] * (dy[i, j, k] - s)


def relu_forward(x, y):
    _relu_forward[blocks(x.size), THREADS](x, y)


def relu_backward(y, dy, dx):
    _relu_backward[blocks(y.size), THREADS](y, dy, dx)


def leaky_relu_forward(x, alpha, y):
    _leaky_relu_forward[blocks(x.size), THREADS](x, alpha, y)


def leaky_relu_backward(x, dy, alpha, dx):
    _leaky_relu_backward[blocks(x.size), THREADS](x, dy, alpha, dx)


def elu_forward(x, alpha, y):
    _elu_forward[blocks(x.size), THREADS](x, alpha, y)


def elu_backward(x, y, dy, alpha, dx):
    _elu_backward[blocks(x.size), THREADS](x, y, dy, alpha, dx)


def sigmoid_forward(x, y):
    _sigmoid_forward[blocks(x.size), THREADS](x, y)


def sigmoid_backward(y, dy, dx):
    _sigmoid_backward[blocks(y.size), THREADS](y, dy, dx)


def silu_forward(x, y):
    _silu_forward[blocks(x.size), THREADS](x, y)


def silu_backward(x, dy, dx):
    _silu_backward[blocks(x.size), THREADS](x, dy, dx)


def tanh_forward(x, y):
    _tanh_forward[blocks(x.size), THREADS](x, y)


def tanh_backward(y, dy, dx):
    _tanh_backward[blocks(y.size), THREADS](y, dy, dx)


def prelu_forward(x, slope, y):
    """x, y: (N, C, L); slope: (C,) — one learned negative slope per channel."""
    _prelu_forward[blocks(x.size), THREADS](x, slope, y)


def prelu_backward(x, slope, dy, dx, dslope):
    _prelu_backward[x.shape[1], THREADS](x, slope, dy, dx, dslope)


def softmax_forward(x, y):
    """Softmax over axis 1 of (N, C, L), shifted by the maximum so large scores cannot overflow."""
    _softmax_forward[blocks(x.shape[0] * x.shape[2]), THREADS](x, y)


def softmax_backward(y, dy, dx):
    _softmax_backward[blocks(y.shape[0] * y.shape[2]), THREADS](y, dy, dx)
