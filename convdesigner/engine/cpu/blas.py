"""Keeps numpy's OpenBLAS on the calling thread, and lends its sgemm to numba kernels.

numba's parallel kernels already use every core; OpenBLAS's worker threads, spinning between calls, starve numba's
workers on a small machine (LeNet-5 training ran 4× slower on two cores with both pools active), so the engine gives
the cores to numba and runs each matrix product on one thread.

:data:`sgemm` is OpenBLAS's ``cblas_sgemm`` as a function numba kernels call by name (its library loaded into
LLVM's symbol table here, so cached kernels link in a new process too): a kernel runs a chunk's many small products
without the GIL and without numpy's per-call overhead (1.2-1.5× np.dot on the Winograd products). Kernels that use
it run only where :data:`SGEMM` is true."""
from __future__ import annotations

import ctypes
import glob
import os

import llvmlite.binding
import numpy as np
from numba import types


def _openblas():
    """The OpenBLAS library bundled with numpy, its path and its symbols' (prefix, suffix), or Nones."""
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
                return lib, path, (prefix, suffix)
    return None, None, (None, None)


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


def _sgemm(lib, path, names):
    """(name, int type) of the library's cblas_sgemm, loaded for numba's linker; None where there is none."""
    if lib is None:
        return None
    prefix, suffix = names
    name = ("scipy_cblas_sgemm" if prefix == "scipy_openblas" else "cblas_sgemm") + suffix.rstrip("_")
    name += "_" if suffix else ""
    if getattr(lib, name, None) is None:
        return None
    llvmlite.binding.load_library_permanently(path)
    return name, types.int64 if suffix else types.int32


_LIB, _PATH, _NAMES = _openblas()
OPENBLAS_THREADS = _openblas_threads(_LIB, _NAMES)
OPENBLAS_CORE = _openblas_core(_LIB, _NAMES)
# OpenBLAS has small-matrix sgemm kernels (no packing) for AVX-512 cores only: elsewhere splitting products to fit
# them only makes more calls (measured on Zen 3 'Haswell' kernels: seed CNN 3-17 % slower with the split)
SMALL_MATRIX_KERNELS = OPENBLAS_CORE in ("SkylakeX", "Cooperlake", "SapphireRapids")

_SGEMM = _sgemm(_LIB, _PATH, _NAMES)
SGEMM = _SGEMM is not None
_int = _SGEMM[1] if SGEMM else types.int64
_floats = types.CPointer(types.float32)
# sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), CBLAS's constants below
sgemm = types.ExternalFunction(_SGEMM[0] if SGEMM else "cblas_sgemm", types.void(
    types.int32, types.int32, types.int32, _int, _int, _int, types.float32, _floats, _int, _floats, _int,
    types.float32, _floats, _int))
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def single_threaded_blas() -> bool:
    """Sets numpy's bundled OpenBLAS to one thread; False where none is found (another BLAS, left alone)."""
    if OPENBLAS_THREADS is None:
        return False
    OPENBLAS_THREADS[1](1)
    return True
