"""Tests that run the CUDA backend's kernels, collected only in a process that chose numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1, set before numba.cuda is first imported: test_simulator.py starts such a pytest) or a real
GPU (CONVDESIGNER_CUDA_TESTS=gpu, as benchmarks/cuda_check.sh runs them). Each kernel runs on both backends on copies
of the same arguments and everything it leaves behind is compared."""
import copy
import os

import numpy as np

ON = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or os.environ.get("CONVDESIGNER_CUDA_TESTS") == "gpu"
# larger shapes on a real GPU: several blocks per launch, partial tiles in every direction of the products
REAL_SIZES = os.environ.get("CONVDESIGNER_CUDA_TESTS") == "gpu"

if not ON:
    collect_ignore_glob = ["test_*.py"]
else:
    from numba import cuda

    from convdesigner.engine.backend import cpu_backend, cuda_backend, on_device

    CPU, GPU = cpu_backend(), cuda_backend()
    if os.environ.get("CONVDESIGNER_RECORD_KERNEL_TYPES"):
        from .launches import record_to
        record_to(os.environ["CONVDESIGNER_RECORD_KERNEL_TYPES"])

    def up(a):
        """Arrays (also inside lists) copied to the device; everything else as it is."""
        if isinstance(a, np.ndarray):
            return cuda.to_device(a)
        if isinstance(a, list | tuple):
            return type(a)(up(v) for v in a)
        return a

    def down(a):
        if on_device(a):
            return a.copy_to_host()
        if isinstance(a, list | tuple):
            return type(a)(down(v) for v in a)
        if isinstance(a, dict):
            return {k: down(v) for k, v in a.items()}
        return a

    def run_both(name, *args, **kwargs):
        """Kernel ``name`` of each backend on its own copy of the arguments: ((args, kwargs, result) on the CPU,
        the same from the GPU brought to the host)."""
        cpu_args, cpu_kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
        cpu_result = getattr(CPU.k, name)(*cpu_args, **cpu_kwargs)
        gpu_args, gpu_kwargs = up(args), {k: up(v) for k, v in kwargs.items()}
        gpu_result = getattr(GPU.k, name)(*gpu_args, **gpu_kwargs)
        return (cpu_args, cpu_kwargs, cpu_result), down((gpu_args, gpu_kwargs, gpu_result))


def assert_same(a, b, what="", tol=1e-5):
    """Equal structure; arrays and floats equal to float32 tolerance (relative to the largest value)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a!r} vs {b!r}"
        if a.dtype.kind in "iub":
            np.testing.assert_array_equal(a, b, err_msg=what)
        else:
            scale = max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol * scale, err_msg=what)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), what
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            assert_same(u, v, f"{what}[{i}]", tol)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            assert_same(a[k], b[k], f"{what}.{k}", tol)
    elif isinstance(a, float):
        assert abs(a - b) <= tol * max(1.0, abs(a)), f"{what}: {a} vs {b}"
    else:
        assert a == b, f"{what}: {a!r} vs {b!r}"
