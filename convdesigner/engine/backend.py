"""A device: where arrays are allocated and which kernels run on them. Layer classes call kernels only through
``backend.k``, so the CUDA backend plugs into the same layers with kernels of the same contracts."""
from __future__ import annotations

from types import ModuleType, SimpleNamespace

import numpy as np


class Backend:
    def __init__(self, name: str, kernel_modules: list[ModuleType]) -> None:
        self.name = name
        self.k = SimpleNamespace(**{n: f for m in kernel_modules for n, f in vars(m).items()
                                    if not n.startswith("_") and _defined_in(f, m)})

    def empty(self, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        return np.empty(shape, dtype)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, np.float32)


def _defined_in(f: object, module: ModuleType) -> bool:
    """True for the module's own functions and numba kernels, not for what it imported."""
    return callable(f) and getattr(getattr(f, "py_func", f), "__module__", None) == module.__name__


def cpu_backend() -> Backend:
    """The CPU kernels; numba's threads get the cores and numpy's BLAS runs on one (see cpu/blas.py)."""
    from .cpu import activation, blas, conv, dense, dropout, global_pool, losses, merge, normalization, pool
    blas.single_threaded_blas()
    return Backend("cpu", [activation, conv, dense, dropout, global_pool, losses, merge, normalization, pool])
