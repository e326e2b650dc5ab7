"""Optimizer updates on the device, the rules of engine/optimizers.py's CPU kernels with the same signatures (one
thread per weight), and the global gradient norm and clipping scale that training needs every batch."""
import math

import numpy as np
from numba import cuda

from convdesigner.engine.cuda.launch import THREADS, blocks, fill, sums_to_host


@cuda.jit(cache=True)
def _sgd(p, g, buf, lr, wd, momentum, nesterov):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + wd * p[i]
        if momentum != 0:
            b = momentum * buf[i] + d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


@cuda.jit(cache=True)
def _adam(p, g, m, v, step_size, beta1, beta2, eps, inv_sqrt_bc2, wd, shrink):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i] *= shrink
        d = g[i] + wd * p[i]
        mi = beta1 * m[i] + (1 - beta1) * d
        vi = beta2 * v[i] + (1 - beta2) * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


@cuda.jit(cache=True)
def _rmsprop(p, g, sq, buf, lr, alpha, eps, wd, momentum):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + wd * p[i]
        s = alpha * sq[i] + (1 - alpha) * d * d
        sq[i] = s
        step = d / (math.sqrt(s) + eps)
        if momentum != 0:
            step = momentum * buf[i] + step
            buf[i] = step
        p[i] -= lr * step


@cuda.jit(cache=True)
def _adagrad(p, g, acc, lr, eps, wd):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + wd * p[i]
        a = acc[i] + d * d
        acc[i] = a
        p[i] -= lr * d / (math.sqrt(a) + eps)


@cuda.jit(cache=True)
def _scale(a, s):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] *= s


def sgd(p, g, buf, lr, wd, momentum, nesterov):
    _sgd[blocks(p.size), THREADS](p, g, buf, lr, wd, momentum, nesterov)


def adam(p, g, m, v, step_size, beta1, beta2, eps, inv_sqrt_bc2, wd, shrink):
    _adam[blocks(p.size), THREADS](p, g, m, v, step_size, beta1, beta2, eps, inv_sqrt_bc2, wd, shrink)


def rmsprop(p, g, sq, buf, lr, alpha, eps, wd, momentum):
    _rmsprop[blocks(p.size), THREADS](p, g, sq, buf, lr, alpha, eps, wd, momentum)


def adagrad(p, g, acc, lr, eps, wd):
    _adagrad[blocks(p.size), THREADS](p, g, acc, lr, eps, wd)


def global_norm(grads) -> float:
    """The L2 norm of all the flat gradient arrays together (inf or nan when any gradient is), one copy down."""
    return math.sqrt(sums_to_host(grads, square=True))


def scale(arrays, s) -> None:
    """Every array (any shape) multiplied in place by the scalar ``s``."""
    for a in arrays:
        _scale[blocks(a.size), THREADS](a.reshape(-1), s)


def zeros_like(a):
    """A zeroed device array of ``a``'s shape (an optimizer slot)."""
    z = cuda.device_array(a.shape, np.float32)
    fill(z.reshape(-1), 0.0)
    return z


def to_host(a) -> np.ndarray:
    return a.copy_to_host()


def from_host(a: np.ndarray):
    return cuda.to_device(a)
