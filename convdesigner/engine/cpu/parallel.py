"""Kernels compiled twice, parallel and serial, called by size: waking numba's threads costs ~0.1 ms, more than a
small array's whole loop (LeNet-5's ReLUs and pools at batch 64 ran 2× slower parallel)."""
from __future__ import annotations

import functools
import types

from numba import njit

PARALLEL_FROM = 1 << 17  # elements in the first argument from which the parallel version runs


def by_size(fn):
    """``fn`` (a loop over ``prange``) as a numba kernel that runs in parallel only when its first argument has at
    least PARALLEL_FROM elements."""
    parallel = njit(parallel=True, cache=True, nogil=True, fastmath=False)(fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}_serial"  # its own numba cache file
    serial = njit(cache=True, nogil=True, fastmath=False)(twin)

    @functools.wraps(fn)
    def run(first, *args):
        return (parallel if first.size >= PARALLEL_FROM else serial)(first, *args)

    return run
