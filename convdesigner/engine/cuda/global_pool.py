"""Global average pooling kernels: (N, C, L) → (N, C) means and the gradient spread back evenly (cpu/global_pool.py's
contracts); one block per (sample, channel) for the means."""
from numba import cuda, float64

from convdesigner.engine.cuda.launch import THREADS, block_sum, blocks


@cuda.jit(cache=True)
def _gap_forward(x, y):
    buf = cuda.shared.array(THREADS, float64)
    c_, hw = x.shape[1], x.shape[2]
    i, j = cuda.blockIdx.x // c_, cuda.blockIdx.x % c_
    s = 0.0
    for k in range(cuda.threadIdx.x, hw, THREADS):
        s += x[i, j, k]
    total = block_sum(buf, s)
    if cuda.threadIdx.x == 0:
        y[i, j] = total / hw


@cuda.jit(cache=True)
def _gap_backward(dy, dx):
    c_, hw = dx.shape[1], dx.shape[2]
    for t in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i, j = t // (c_ * hw), (t // hw) % c_
        dx[i, j, t % hw] = dy[i, j] / hw


def gap_forward(x, y):
    _gap_forward[x.shape[0] * x.shape[1], THREADS](x, y)


def gap_backward(dy, dx):
    _gap_backward[blocks(dx.size), THREADS](dy, dx)
