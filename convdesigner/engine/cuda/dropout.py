"""Inverted dropout with a seeded device RNG: the mask holds 0 or 1/(1 − rate), so evaluation needs no rescaling.

The uniform numbers are a counter-based hash of (element index, two 32-bit seeds drawn from the network's dropout
generator), made on the device: nothing goes up but two integers, and the same ``Network.reseed`` repeats the same
masks. (They are not the CPU backend's numbers: its masks come from numpy's generator on the host.)
"""
from numba import cuda

from convdesigner.engine.cuda.launch import THREADS, blocks

_M32 = 0xFFFFFFFF


@cuda.jit(device=True)
def _hash32(x):
    """A 32-bit integer mixer (low-bias 'lowbias32'); the arithmetic is masked, so it is the same in the simulator."""
    x = x & _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


@cuda.jit(cache=True)
def _uniform(out, seed_a, seed_b):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        h = _hash32(_hash32(i + seed_a) ^ seed_b)
        out[i] = (h >> 8) * (1.0 / 16777216.0)


@cuda.jit(cache=True)
def _dropout_forward(x, u, rate, y):
    scale = 1.0 / (1.0 - rate)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        m = scale if u[i] >= rate else 0.0
        u[i] = m
        y[i] = x[i] * m


@cuda.jit(cache=True)
def _dropout_backward(mask, dy, dx):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = dy[i] * mask[i]


def uniform(rng, out):
    """Fills ``out`` (float32, on the device) with uniform [0, 1) numbers seeded from the network's generator."""
    seed_a, seed_b = (int(s) for s in rng.integers(0, 1 << 32, size=2))
    _uniform[blocks(out.size), THREADS](out, seed_a, seed_b)


def dropout_forward(x, u, rate, y):
    """Turns the uniform numbers ``u`` into the mask in place and writes y = x · mask."""
    _dropout_forward[blocks(x.size), THREADS](x, u, rate, y)


def dropout_backward(mask, dy, dx):
    _dropout_backward[blocks(dy.size), THREADS](mask, dy, dx)
