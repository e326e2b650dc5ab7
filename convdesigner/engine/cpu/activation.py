"""Element-wise activation kernels on flat views: forward writes ``y``, backward writes ``dx`` from ``dy``.

Every kernel writes its whole output, so the layers can hand them uninitialised, preallocated buffers. The
exponential ones use vexp's float32 exp/expm1 and stay free of branches, so their loops vectorise.
"""
import math

import numpy as np
from numba import njit, prange

from convdesigner.engine.cpu.parallel import by_size, elementwise
from convdesigner.engine.cpu.planes import gated
from convdesigner.engine.cpu.vexp import exp_f32, expm1_f32

_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
# Past ±104, sigmoid and 1 − sigmoid are exactly 0 or 1 in float32: clamping x there keeps ±inf · 0 out of SiLU.
_SATURATED = np.float32(104.0)
_LANES = 8  # float32s in an AVX2 register
# Elements from which a kernel's slices go to two threads (parallel.elementwise), measured on two cores: those with
# an exponential gain from 512K (SiLU over 1M floats: 1.35 ms serial, 1.06 split), the rest only from 4M (ReLU over
# 4M: 1.83 ms serial, 1.55 split; over 1M splitting doubles its 0.18 ms)
EXP_SPLIT = 1 << 19
CHEAP_SPLIT = 1 << 22


@elementwise(CHEAP_SPLIT)
def relu_forward(x, y):
    for i in range(x.size):
        v = x[i]
        y[i] = 0.0 if v < 0.0 else v


@elementwise(CHEAP_SPLIT)
def relu_backward(y, dy, dx):
    for i in range(y.size):
        dx[i] = gated(dy[i], y[i])


@njit(cache=True, nogil=True, fastmath=False)
def leaky_relu_forward(x, alpha, y):
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > 0.0 else alpha * v


@njit(cache=True, nogil=True, fastmath=False)
def leaky_relu_backward(x, dy, alpha, dx):
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0.0 else alpha * dy[i]


@elementwise(EXP_SPLIT)
def elu_forward(x, alpha, y):
    a = np.float32(alpha)
    for i in range(x.size):
        v = x[i]
        e = expm1_f32(v)  # for every v, so the choice below is a select, not a branch
        y[i] = v if v > 0.0 else a * e


@elementwise(CHEAP_SPLIT)
def elu_backward(x, y, dy, alpha, dx):
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0.0 else dy[i] * (y[i] + alpha)


@njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def _quotient(a, b):
    """a / b without Python's zero-divisor check, whose branch stops a loop from vectorising (callers' b is >= 1)."""
    return a / b


@njit(inline="always", cache=True, nogil=True, fastmath=False)
def _sigmoid_pair(v):
    """sigmoid(v) and 1 − sigmoid(v) = sigmoid(−v), each to full relative precision, from e = exp(−|v|) <= 1, which
    cannot overflow."""
    e = exp_f32(-abs(v))
    positive = v >= 0.0
    return _quotient(_ONE if positive else e, _ONE + e), _quotient(e if positive else _ONE, _ONE + e)


@elementwise(EXP_SPLIT)
def sigmoid_forward(x, y):
    for i in range(x.size):
        y[i] = _sigmoid_pair(x[i])[0]


@elementwise(CHEAP_SPLIT)
def sigmoid_backward(y, dy, dx):
    for i in range(y.size):
        dx[i] = dy[i] * y[i] * (1.0 - y[i])


@elementwise(EXP_SPLIT)
def silu_forward(x, y):
    for i in range(x.size):
        v = x[i]
        low = -_SATURATED if v < -_SATURATED else v  # silu(−inf) = −0, not −inf · 0
        y[i] = low * _sigmoid_pair(v)[0]


@elementwise(EXP_SPLIT)
def silu_backward(x, dy, dx):
    for i in range(x.size):
        v = x[i]
        s, rest = _sigmoid_pair(v)
        v = -_SATURATED if v < -_SATURATED else v  # where s or rest is 0, so that ±inf · 0 cannot make a NaN
        v = _SATURATED if v > _SATURATED else v
        dx[i] = dy[i] * s * (_ONE + v * rest)


@elementwise(EXP_SPLIT)
def tanh_forward(x, y):
    """tanh(x) = −expm1(−2|x|) / (2 + expm1(−2|x|)) with the sign of x, exact in sign for ±0."""
    for i in range(x.size):
        v = x[i]
        e = expm1_f32(-_TWO * abs(v))
        y[i] = math.copysign(_quotient(-e, _TWO + e), v)


@elementwise(CHEAP_SPLIT)
def tanh_backward(y, dy, dx):
    for i in range(y.size):
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
    """Softmax over axis 1 of (N, C, L), shifted by the maximum so large scores cannot overflow; sums in float64.
    The exponentials vectorise along whichever axis is contiguous in the inner loop: C for flat vectors (L = 1),
    L for images with at least a vector's worth of positions."""
    n, c, hw = x.shape
    if hw < _LANES:
        for i in prange(n):
            for k in range(hw):
                m = x[i, 0, k]
                for j in range(1, c):
                    m = max(m, x[i, j, k])
                for j in range(c):
                    y[i, j, k] = exp_f32(x[i, j, k] - m)
                s = 0.0
                for j in range(c):
                    s += y[i, j, k]
                inv = 1.0 / s
                for j in range(c):
                    y[i, j, k] *= inv
        return
    peak = np.empty((n, hw), np.float32)
    total = np.empty((n, hw), np.float64)
    for i in prange(n):
        for k in range(hw):
            peak[i, k] = x[i, 0, k]
            total[i, k] = 0.0
        for j in range(1, c):
            for k in range(hw):
                peak[i, k] = max(peak[i, k], x[i, j, k])
        for j in range(c):
            for k in range(hw):  # its own loop: with the sum folded in, LLVM leaves it scalar
                y[i, j, k] = exp_f32(x[i, j, k] - peak[i, k])
            for k in range(hw):
                total[i, k] += y[i, j, k]
        for k in range(hw):
            total[i, k] = 1.0 / total[i, k]
        for j in range(c):
            for k in range(hw):
                y[i, j, k] *= total[i, k]


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
