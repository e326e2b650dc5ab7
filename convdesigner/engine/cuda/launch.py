"""What every CUDA kernel module shares: the launch geometry, scratch buffers kept between batches, and the
partial-sum reduction that brings scalars (losses, gradient norms) down to the host in one small copy.

A cudaMalloc per batch would synchronise the device and cost more than a small network's whole step, so every
temporary a kernel wrapper needs comes from :func:`scratch`, allocated once per (tag, shape, dtype).
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float64

THREADS = 256  # threads per block of the element-wise and reduction kernels
MAX_BLOCKS = 8192  # grid-stride loops cover the rest
SUM_BLOCKS = 32  # partial sums per reduced array

_scratch: dict[tuple, object] = {}


def blocks(n: int) -> int:
    return max(1, min(MAX_BLOCKS, -(-n // THREADS)))


def scratch(tag: str, shape: tuple[int, ...], dtype=np.float32):
    """A device array for temporaries, the same one for every call with this tag and shape; valid until the next
    call with the same tag."""
    key = (tag, tuple(shape), np.dtype(dtype).str)
    buf = _scratch.get(key)
    if buf is None:
        buf = _scratch[key] = cuda.device_array(shape, dtype)
    return buf


def upload(host: np.ndarray, tag: str):
    """``host`` copied into a kept device buffer (one host-to-device copy, no allocation after the first)."""
    host = np.ascontiguousarray(host)
    buf = scratch(tag, host.shape, host.dtype)
    buf.copy_to_device(host)
    return buf


@cuda.jit(cache=True)
def _fill(a, value):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = value


def fill(a, value: float) -> None:
    """Every element of the flat device array ``a`` set to ``value``."""
    _fill[blocks(a.size), THREADS](a, value)


@cuda.jit(device=True)
def block_sum(buf, v):
    """The sum of ``v`` over the block's threads (``buf``: a shared float64 array of THREADS), seen by all."""
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    s = THREADS // 2
    while s > 0:
        if t < s:
            buf[t] += buf[t + s]
        cuda.syncthreads()
        s //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@cuda.jit(cache=True)
def _partial_sums(x, square, partials, slot):
    buf = cuda.shared.array(THREADS, float64)
    s = 0.0
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = float64(x[i])
        s += v * v if square else v
    total = block_sum(buf, s)
    if cuda.threadIdx.x == 0:
        partials[slot + cuda.blockIdx.x] = total


def sums_to_host(arrays, square: bool = False) -> float:
    """Σ x (or Σ x² with ``square``) over all the flat device ``arrays`` together, in float64: one small kernel
    per array into one partials buffer, then a single copy down (the only synchronisation)."""
    partials = scratch("partials", (SUM_BLOCKS * max(1, len(arrays)),), np.float64)
    used = []
    for k, x in enumerate(arrays):
        count = min(SUM_BLOCKS, blocks(x.size))
        _partial_sums[count, THREADS](x, square, partials, k * SUM_BLOCKS)
        used.append((k * SUM_BLOCKS, count))
    host = partials.copy_to_host()
    return float(sum(np.sum(host[at:at + count]) for at, count in used))
