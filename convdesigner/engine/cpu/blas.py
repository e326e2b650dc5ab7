"""Keeps numpy's OpenBLAS on the calling thread. numba's parallel kernels already use every core; OpenBLAS's worker
threads, spinning between calls, starve numba's workers on a small machine (LeNet-5 training ran 4× slower on two
cores with both pools active), so the engine gives the cores to numba and runs each matrix product on one thread."""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np


def _openblas_threads():
    """(get, set) for the thread count of the OpenBLAS bundled with numpy, or None where it cannot be found."""
    here = os.path.dirname(np.__file__)
    for path in glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*")) + \
            glob.glob(os.path.join(here, ".dylibs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"),
                               ("openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                set_.argtypes = [ctypes.c_int]
                return get, set_
    return None


OPENBLAS_THREADS = _openblas_threads()


def single_threaded_blas() -> bool:
    """Sets numpy's bundled OpenBLAS to one thread; False where none is found (another BLAS, left alone)."""
    if OPENBLAS_THREADS is None:
        return False
    OPENBLAS_THREADS[1](1)
    return True
