"""Kernels compiled twice, parallel and serial, called by size: waking numba's threads costs ~0.06 ms, and the
element-wise and pooling loops only gain from a second core past about 2M elements (measured on two cores: a ReLU
over 1M floats took 0.19 ms parallel and 0.10 ms serial, a 2×2 max-pool over 4M 1.0 ms and 1.4 ms)."""
from __future__ import annotations

import functools
import types

import numpy as np
from numba import njit

PARALLEL_FROM = 1 << 21  # elements in the largest array argument from which the parallel version runs


def by_size(fn):
    """``fn`` (a loop over ``prange``) as a numba kernel that runs in parallel only when its largest array argument
    has at least PARALLEL_FROM elements."""
    parallel = njit(parallel=True, cache=True, nogil=True, fastmath=False)(fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}_serial"  # its own numba cache file
    serial = njit(cache=True, nogil=True, fastmath=False)(twin)

    @functools.wraps(fn)
    def run(*args):
        big = max(a.size for a in args if isinstance(a, np.ndarray)) >= PARALLEL_FROM
        return (parallel if big else serial)(*args)

    return run
