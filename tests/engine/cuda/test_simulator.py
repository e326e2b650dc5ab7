"""Runs the CUDA kernel tests in numba's CUDA simulator, in a pytest of their own, then compiles every kernel they
launched for a real GPU with the argument types it was launched with.

The simulator is chosen by NUMBA_ENABLE_CUDASIM=1 before numba.cuda is first imported, and it then replaces the
real CUDA target for the whole process; the rest of this suite must keep running the real engine (and tell a user
without a GPU the truth in device_status). So the simulated tests run in one child pytest with that variable set.
The simulator runs kernels as Python, so it cannot find a typing error that would stop numba compiling a kernel for
a GPU; compiling each launched kernel to PTX (which needs the CUDA compiler libraries of the cuda extra, not a GPU)
does.
"""
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).parent

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                                reason="numba-cuda is not installed (pip install -e '.[dev]' brings it)")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """(the child pytest's result, the launches it recorded)."""
    record = tmp_path_factory.mktemp("cuda") / "launches.json"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "CONVDESIGNER_RECORD_KERNEL_TYPES": str(record)}
    env.pop("CONVDESIGNER_CUDA_TESTS", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "simulated")],
                         env=env, capture_output=True, text=True, timeout=900, cwd=HERE.parents[2])
    return run, json.loads(record.read_text()) if record.exists() else []


def test_cuda_kernels_match_the_cpu_backend_in_the_simulator(simulated):
    run, launches = simulated
    assert run.returncode == 0, f"simulated CUDA tests failed:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout and " skipped" not in run.stdout.splitlines()[-1], run.stdout[-2000:]
    host = [f"{module}.{name}" for module, name, args in launches if ["host array"] in args]
    assert not host, f"kernels launched with host arrays (copied at every launch on a GPU): {host}"


def _compiler():
    """numba.cuda's compile_ptx, or a skip when the CUDA compiler libraries are not installed."""
    from numba import cuda

    def probe(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(probe, "void(float32[::1])", cc=(8, 0))
    except Exception as e:  # a missing NVVM or NVRTC library raises one of several error types
        pytest.skip(f"the CUDA compiler libraries are not installed ({type(e).__name__}); "
                    f"pip install -e '.[cuda]' brings them")
    return cuda.compile_ptx


def test_every_launched_kernel_compiles_for_a_gpu(simulated, monkeypatch):
    from numba import types
    from numba.cuda import dispatcher

    run, launches = simulated
    if not launches:
        pytest.skip("the simulated run recorded no launches")
    compile_ptx = _compiler()
    # device functions ask the current device for its compute capability; there is none here, so name one
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=(8, 0)))

    def numba_type(arg):
        if arg[0] == "array":
            return types.Array(getattr(types, arg[1]), arg[2], arg[3])
        return types.boolean if arg[1] == "bool" else getattr(types, arg[1])

    failures = []
    for module, name, args in launches:
        kernel = getattr(importlib.import_module(module), name)
        try:
            compile_ptx(kernel.py_func, tuple(numba_type(a) for a in args), cc=(8, 0))
        except Exception as e:  # any typing or lowering error, reported with its kernel
            failures.append(f"{module}.{name}{tuple(args)}: {type(e).__name__}: {str(e)[:400]}")
    assert not failures, "\n".join(failures)
