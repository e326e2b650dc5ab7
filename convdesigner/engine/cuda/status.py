"""Whether a device can run networks, and if not, the one thing to fix (what the CLI prints and the window shows
next to the greyed-out choice)."""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

INSTALL = "pip install 'convdesigner[cuda]'"


def device_status(name: str) -> tuple[bool, str]:
    """(available, reason): reason says why not (the missing extra with its install command, the driver, a
    device), or names the device that will run."""
    if name == "cpu":
        return True, f"the CPU ({os.cpu_count() or 1} cores)"
    if name != "cuda":
        return False, f"unknown device {name!r}; ConvDesigner runs networks on 'cpu' or 'cuda'"
    if importlib.util.find_spec("numba_cuda") is None:
        return False, f"the CUDA support is not installed; install it with: {INSTALL}"
    try:
        from numba import cuda
        if cuda.is_available():
            if _simulated():
                return True, "numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1: correct but very slow)"
            if not _compiler_works():
                return False, f"the CUDA compiler libraries (NVVM, NVRTC) are missing; install them with: {INSTALL}"
            return True, _device_name(cuda)
        from numba.cuda.cudadrv.driver import driver
        count = driver.get_device_count()
    except Exception as e:  # a broken driver or runtime raises anything from ImportError to OSError
        return False, _explain(str(e))
    if count == 0:
        return False, "no NVIDIA GPU was found (the driver is installed but reports no device)"
    return False, "the NVIDIA GPU cannot be used by numba-cuda (its driver or compute capability is too old)"


def _simulated() -> bool:
    from numba.core import config
    return bool(config.ENABLE_CUDASIM)


@lru_cache(maxsize=1)
def _compiler_works() -> bool:
    """Whether numba-cuda finds the libraries it compiles kernels with (they come as wheels with the extra)."""
    from numba import cuda

    def probe(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(probe, "void(float32[::1])", cc=(7, 5))
    except Exception:  # a missing library surfaces as one of several error types
        return False
    return True


def _device_name(cuda) -> str:
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    return f"{name} (compute capability {device.compute_capability[0]}.{device.compute_capability[1]})"


def _explain(error: str) -> str:
    text = " ".join(error.split())
    if "driver" in text.lower() and ("cannot be found" in text.lower() or "not found" in text.lower()):
        return "no NVIDIA driver was found; install the NVIDIA driver for your GPU (a machine without an NVIDIA " \
               "GPU cannot run CUDA)"
    if "no cuda-capable device" in text.lower() or "CUDA_ERROR_NO_DEVICE" in text:
        return "no NVIDIA GPU was found (the driver is installed but reports no device)"
    return f"CUDA could not start: {text}"
