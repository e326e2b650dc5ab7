"""Kernels for the blocks that join branches (cpu/merge.py's contracts): Add, Concat (channel axis 1) and Multiply
(with a per-channel gate)."""
from numba import cuda, float64

from convdesigner.engine.cuda.launch import THREADS, block_sum, blocks


@cuda.jit(cache=True)
def _add(a, b, y):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i] = a[i] + b[i]


@cuda.jit(cache=True)
def _copy_channels(src, dst, start, to_dst):
    """Copies src (N, c, L) into channels start.. of dst (N, C, L), or back with ``to_dst`` False."""
    c, hw = src.shape[1], src.shape[2]
    for t in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        i, j, k = t // (c * hw), (t // hw) % c, t % hw
        if to_dst:
            dst[i, start + j, k] = src[i, j, k]
        else:
            src[i, j, k] = dst[i, start + j, k]


@cuda.jit(cache=True)
def _multiply(a, b, y):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i] = a[i] * b[i]


@cuda.jit(cache=True)
def _gate_forward(x, g, y):
    c, hw = x.shape[1], x.shape[2]
    for t in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j, k = t // (c * hw), (t // hw) % c, t % hw
        y[i, j, k] = x[i, j, k] * g[i, j]


@cuda.jit(cache=True)
def _gate_backward(x, g, dy, need_dx, need_dg, dx, dg):
    """One block per (sample, channel): dx for its positions and the gate's gradient, their sum."""
    buf = cuda.shared.array(THREADS, float64)
    c, hw = x.shape[1], x.shape[2]
    i, j = cuda.blockIdx.x // c, cuda.blockIdx.x % c
    a = g[i, j]
    s = 0.0
    for k in range(cuda.threadIdx.x, hw, THREADS):
        d = dy[i, j, k]
        if need_dx:
            dx[i, j, k] = d * a
        s += d * x[i, j, k]
    total = block_sum(buf, s)
    if need_dg and cuda.threadIdx.x == 0:
        dg[i, j] = total


def _flat(a):
    return a.reshape(-1)


def _as3(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


def add_forward(xs, y):
    _add[blocks(y.size), THREADS](_flat(xs[0]), _flat(xs[1]), _flat(y))
    for x in xs[2:]:
        _add[blocks(y.size), THREADS](_flat(y), _flat(x), _flat(y))


def concat_forward(xs, y):
    start = 0
    for x in xs:
        _copy_channels[blocks(x.size), THREADS](_as3(x), _as3(y), start, True)
        start += x.shape[1]


def concat_backward(dy, channels, dxs):
    """Copies each input's channel slice of ``dy`` into its own buffer (None where not needed)."""
    start = 0
    for c, dx in zip(channels, dxs, strict=True):
        if dx is not None:
            _copy_channels[blocks(dx.size), THREADS](_as3(dx), _as3(dy), start, False)
        start += c


def multiply_forward(a, b, y):
    _multiply[blocks(y.size), THREADS](_flat(a), _flat(b), _flat(y))


def multiply_backward(a, b, dy, da, db):
    if da is not None:
        _multiply[blocks(dy.size), THREADS](_flat(dy), _flat(b), _flat(da))
    if db is not None:
        _multiply[blocks(dy.size), THREADS](_flat(dy), _flat(a), _flat(db))


def gate_forward(x, g, y):
    """y[n, c, :] = x[n, c, :] · g[n, c] — a C×1×1 (or C) gate scaling a C×H×W input."""
    _gate_forward[blocks(x.size), THREADS](x, g, y)


def gate_backward(x, g, dy, need_dx, need_dg, dx, dg):
    """Gradients of a gated product; the gate's gradient sums the broadcast positions."""
    _gate_backward[x.shape[0] * x.shape[1], THREADS](x, g, dy, need_dx, need_dg, dx, dg)
