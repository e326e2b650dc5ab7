"""Keeps numpy's OpenBLAS on the calling thread. numba's parallel kernels already use every core; OpenBLAS's worker
threads, spinning between calls, starve numba's workers on a small machine (LeNet-5 training ran 4× slower on two
cores with both pools active), so the engine gives the cores to numba and runs each matrix product on one thread."""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np


def _openblas():
    """The OpenBLAS library bundled with numpy and its symbols' (prefix, suffix), or (None, None)."""
    here = os.path.dirname(np.__file__)
    for path in glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*")) + \
            glob.glob(os.path.join(here, ".dylibs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"),
                               ("openblas", "")):
            if getattr(lib, f"{prefix}_get_num_threads{suffix}", None) is not None:
                return lib, (prefix, suffix)
    return None, None


def _openblas_threads(lib, names):
    """(get, set) for the thread count of numpy's OpenBLAS, or None where it cannot be found."""
    if lib is None:
        return None
    prefix, suffix = names
    get = getattr(lib, f"{prefix}_get_num_threads{suffix}")
    set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
    if set_ is None:
        return None
    set_.argtypes = [ctypes.c_int]
    return get, set_


def _openblas_core(lib, names) -> str:
    """The CPU kernels OpenBLAS picked at start-up ('Haswell', 'SkylakeX', …), '' where it cannot say."""
    corename = getattr(lib, f"{names[0]}_get_corename{names[1]}", None) if lib is not None else None
    if corename is None:
        return ""
    corename.restype = ctypes.c_char_p
    return (corename() or b"").decode(errors="replace")


_LIB, _NAMES = _openblas()
OPENBLAS_THREADS = _openblas_threads(_LIB, _NAMES)
OPENBLAS_CORE = _openblas_core(_LIB, _NAMES)
# OpenBLAS has small-matrix sgemm kernels (no packing) for AVX-512 cores only: elsewhere splitting products to fit
# them only makes more calls (measured on Zen 3 'Haswell' kernels: seed CNN 3-17 % slower with the split)
SMALL_MATRIX_KERNELS = OPENBLAS_CORE in ("SkylakeX", "Cooperlake", "SapphireRapids")


def single_threaded_blas() -> bool:
    """Sets numpy's bundled OpenBLAS to one thread; False where none is found (another BLAS, left alone)."""
    if OPENBLAS_THREADS is None:
        return False
    OPENBLAS_THREADS[1](1)
    return True
