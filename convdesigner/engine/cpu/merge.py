"""Kernels for the blocks that join branches: Add, Concat (channel axis 1) and Multiply (with a per-channel gate)."""
import numpy as np
from numba import prange

from convdesigner.engine.cpu.parallel import by_size


def add_forward(xs, y):
    np.add(xs[0], xs[1], out=y)
    for x in xs[2:]:
        np.add(y, x, out=y)


def concat_forward(xs, y):
    start = 0
    for x in xs:
        stop = start + x.shape[1]
        y[:, start:stop] = x
        start = stop


def concat_backward(dy, channels, dxs):
    """Copies each input's channel slice of ``dy`` into its own contiguous buffer (None where not needed)."""
    start = 0
    for c, dx in zip(channels, dxs, strict=True):
        if dx is not None:
            dx[...] = dy[:, start:start + c]
        start += c


def multiply_forward(a, b, y):
    np.multiply(a, b, out=y)


def multiply_backward(a, b, dy, da, db):
    if da is not None:
        np.multiply(dy, b, out=da)
    if db is not None:
        np.multiply(dy, a, out=db)


@by_size
def gate_forward(x, g, y):
    """y[n, c, :] = x[n, c, :] · g[n, c] — a C×1×1 (or C) gate scaling a C×H×W input."""
    n, c, hw = x.shape
    for i in prange(n):
        for j in range(c):
            a = g[i, j]
            for k in range(hw):
                y[i, j, k] = x[i, j, k] * a


@by_size
def gate_backward(x, g, dy, need_dx, need_dg, dx, dg):
    """Gradients of a gated product; the gate's gradient sums the broadcast positions."""
    n, c, hw = x.shape
    for i in prange(n):
        for j in range(c):
            a = g[i, j]
            s = 0.0
            for k in range(hw):
                d = dy[i, j, k]
                if need_dx:
                    dx[i, j, k] = d * a
                s += d * x[i, j, k]
            if need_dg:
                dg[i, j] = s
