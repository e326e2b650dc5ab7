"""Fully connected kernels, y = x·Wᵀ + b with W of shape (units, inputs): the tiled product of :mod:`gemm` with the
bias fused into its epilogue; the contracts of cpu/dense.py."""
from numba import cuda, float64

from convdesigner.engine.cuda.gemm import COLUMN_BIAS, gemm
from convdesigner.engine.cuda.launch import THREADS, block_sum


@cuda.jit(cache=True)
def _column_sums(dy, db):
    """db[j] = Σ_i dy[i, j]: one block per column."""
    buf = cuda.shared.array(THREADS, float64)
    j = cuda.blockIdx.x
    s = 0.0
    for i in range(cuda.threadIdx.x, dy.shape[0], THREADS):
        s += dy[i, j]
    total = block_sum(buf, s)
    if cuda.threadIdx.x == 0:
        db[j] = total


def dense_forward(x, w, b, y):
    n, i = x.shape
    u = w.shape[0]
    gemm(x.reshape(-1), i, 1, w.reshape(-1), 1, i, y.reshape(-1), n, u, i, bias=b, bias_mode=COLUMN_BIAS)


def dense_backward(x, w, dy, dx, dw, db):
    """Writes dW = dyᵀ·x, db = Σ dy over the batch, and dx = dy·W when ``dx`` is given."""
    n, i = x.shape
    u = w.shape[0]
    gemm(dy.reshape(-1), 1, u, x.reshape(-1), i, 1, dw.reshape(-1), u, i, n)
    if dx is not None:
        gemm(dy.reshape(-1), u, 1, w.reshape(-1), i, 1, dx.reshape(-1), n, i, u)
    if db is not None:
        _column_sums[u, THREADS](dy, db)
