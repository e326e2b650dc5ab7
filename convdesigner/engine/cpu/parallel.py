"""Kernels called by size. :func:`by_size` compiles a prange loop twice, parallel and serial: waking numba's threads
costs ~0.06 ms, and the pooling and normalisation loops only gain from a second core past about 2M elements
(measured on two cores: a 2×2 max-pool over 4M floats took 1.0 ms parallel and 1.4 ms serial). :func:`elementwise`
splits flat arrays between the threads of blas_threads.run_shared instead, which beat numba's parallel loops for
every element-wise kernel measured (SiLU over 4M floats: serial 5.4 ms, run_shared 3.2, numba's parallel 7.2)."""
from __future__ import annotations

import functools
import types

import numba
import numpy as np
from numba import njit

from .blas_threads import run_shared, serial

PARALLEL_FROM = 1 << 21  # elements in the largest array argument from which the parallel version runs
EVERY_SIZE = False  # tests set it: every kernel takes its multi-threaded path, whatever the size


def by_size(fn):
    """``fn`` (a loop over ``prange``) as a numba kernel that runs in parallel only when its largest array argument
    has at least PARALLEL_FROM elements, and never on a thread of blas_threads.run_parts."""
    parallel = njit(parallel=True, cache=True, nogil=True, fastmath=False)(fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}_serial"  # its own numba cache file
    alone = njit(cache=True, nogil=True, fastmath=False)(twin)

    @functools.wraps(fn)
    def run(*args):
        big = not serial() and (EVERY_SIZE or max(a.size for a in args if isinstance(a, np.ndarray)) >= PARALLEL_FROM)
        return (parallel if big else alone)(*args)

    return run


def elementwise(split_from: int):
    """A loop over the elements of equally long flat arrays (and scalars) as a serial numba kernel that, from
    ``split_from`` elements, runs on the threads of run_shared, each call on contiguous slices of every array."""
    def wrap(fn):
        # fastmath's 'contract' alone: a·b + c as one fused multiply-add (one rounding, not two), which every other
        # flag's licence (reassociation, no NaNs) stays out of; SiLU 27 % faster on Zen, its error no larger
        alone = njit(cache=True, nogil=True, fastmath={"contract"})(fn)

        @functools.wraps(fn)
        def run(*args):
            n = max(a.size for a in args if isinstance(a, np.ndarray))
            if (n < split_from and not EVERY_SIZE) or serial():
                return alone(*args)

            def job(worker, chunks):
                for lo, hi in chunks:
                    alone(*(a[lo:hi] if isinstance(a, np.ndarray) else a for a in args))

            run_shared(job, n, -(-n // (4 * numba.get_num_threads())))
            return None

        return run
    return wrap


def split_range(kernel, count: int, size: int, split_from: int, *args) -> None:
    """``kernel(*args, lo, hi)`` over [0, count): one call where the work's ``size`` (elements) is below
    ``split_from``, else ranges shared between the threads of run_shared (BatchNorm over channel groups: numba's
    parallel loops ran no faster than serial below 20M floats, these 1.5× faster from 1M)."""
    if (size < split_from and not EVERY_SIZE) or serial():
        kernel(*args, 0, count)
        return

    def job(worker, chunks):
        for lo, hi in chunks:
            kernel(*args, lo, hi)

    run_shared(job, count, max(1, count // (4 * numba.get_num_threads())))
