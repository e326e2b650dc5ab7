"""A device: where arrays are allocated and which kernels run on them. Layer classes call kernels only through
``backend.k`` and move or fill arrays only through the backend's methods, so the CUDA backend plugs into the same
layers with kernels of the same contracts."""
from __future__ import annotations

from types import ModuleType, SimpleNamespace

import numpy as np


class Backend:
    """The CPU: arrays are numpy arrays, so moving them to and from the host is free or a plain copy."""

    def __init__(self, name: str, kernel_modules: list[ModuleType]) -> None:
        self.name = name
        self.k = SimpleNamespace(**{n: f for m in kernel_modules for n, f in vars(m).items()
                                    if not n.startswith("_") and _defined_in(f, m)})

    def empty(self, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        return np.empty(shape, dtype)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, np.float32)

    def upload(self, x, tag: str):
        """A batch from the host as a contiguous float32 array of this device (``tag`` names its kept buffer)."""
        return np.ascontiguousarray(x, dtype=np.float32)

    def host(self, a) -> np.ndarray:
        """``a`` readable on the host (on the CPU, ``a`` itself)."""
        return a

    def to_host(self, a) -> np.ndarray:
        """A numpy copy of ``a`` that later batches do not overwrite."""
        return a.copy()

    def write(self, target, source) -> None:
        """target[...] = source, from a host array or an array of this device of the same shape."""
        target[...] = source

    def fill(self, target, value: float) -> None:
        target[...] = value

    def synchronize(self) -> None:
        """Waits until every kernel started has finished (timing); the CPU's kernels return finished."""


class CudaBackend(Backend):
    """An NVIDIA GPU through numba.cuda: weights, gradients, optimizer state and activations live on the device;
    batches go up through kept buffers and only what a caller reads comes down."""

    def __init__(self, kernel_modules: list[ModuleType]) -> None:
        super().__init__("cuda", kernel_modules)
        from numba import cuda
        from numba.cuda.core import config
        config.CUDA_LOW_OCCUPANCY_WARNINGS = 0  # small networks launch small grids by nature; no warning per launch

        from .cuda import launch
        self._cuda, self._launch = cuda, launch

    def empty(self, shape, dtype=np.float32):
        return self._cuda.device_array(shape, dtype)

    def zeros(self, shape):
        a = self._cuda.device_array(shape, np.float32)
        self.fill(a, 0.0)
        return a

    def upload(self, x, tag):
        if on_device(x):
            return x
        return self._launch.upload(np.asarray(x, dtype=np.float32), tag)

    def host(self, a):
        return a.copy_to_host()

    def to_host(self, a):
        return a.copy_to_host()

    def write(self, target, source):
        if on_device(source):
            target.copy_to_device(source)
        else:
            target.copy_to_device(np.ascontiguousarray(source, dtype=target.dtype).reshape(target.shape))

    def fill(self, target, value):
        self._launch.fill(target.reshape(-1), value)

    def synchronize(self):
        self._cuda.synchronize()


def on_device(a) -> bool:
    """True for a numba.cuda device array (the simulator's too), False for numpy arrays and anything else."""
    return not isinstance(a, np.ndarray) and hasattr(a, "copy_to_host")


def _defined_in(f: object, module: ModuleType) -> bool:
    """True for the module's own functions and numba kernels, not for what it imported."""
    return callable(f) and getattr(getattr(f, "py_func", f), "__module__", None) == module.__name__


def cpu_backend() -> Backend:
    """The CPU kernels; numba's threads get the cores and numpy's BLAS runs on one (see cpu/blas.py)."""
    from .cpu import (
        activation,
        blas,
        blas_threads,
        conv,
        dense,
        dropout,
        global_pool,
        losses,
        merge,
        normalization,
        pool,
    )
    blas.single_threaded_blas()
    return Backend("cpu", [activation, blas_threads, conv, dense, dropout, global_pool, losses, merge, normalization,
                           pool])


def cuda_backend() -> CudaBackend:
    """The numba.cuda kernels of engine/cuda (the caller has checked that a device is there)."""
    from .cuda import activation, conv, dense, dropout, global_pool, losses, merge, normalization, pool
    return CudaBackend([activation, conv, dense, dropout, global_pool, losses, merge, normalization, pool])
