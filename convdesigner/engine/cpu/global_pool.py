"""Global average pooling kernels: (N, C, L) → (N, C) means and the gradient spread back evenly."""
from numba import prange

from convdesigner.engine.cpu.parallel import by_size


@by_size
def gap_forward(x, y):
    n, c, hw = x.shape
    for i in prange(n):
        for j in range(c):
            s = 0.0
            for k in range(hw):
                s += x[i, j, k]
            y[i, j] = s / hw


@by_size
def gap_backward(dy, dx):
    n, c, hw = dx.shape
    for i in prange(n):
        for j in range(c):
            g = dy[i, j] / hw
            for k in range(hw):
                dx[i, j, k] = g
