"""Records, in the simulator, every kernel launch's argument types, so that test_simulator.py can compile each
kernel for a real GPU with exactly those types (the simulator runs kernels as Python and checks no typing).
A host numpy array handed to a kernel is recorded as such: on a GPU it would be copied up and down at every launch."""
import atexit
import json

import numba
from numba.cuda.simulator import kernel as simulated
from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray


def _describe(arg):
    if isinstance(arg, FakeCUDAArray):
        ty = numba.typeof(arg._ary)
        return ["array", str(ty.dtype), ty.ndim, ty.layout]
    if hasattr(arg, "ndim") and getattr(arg, "ndim", 0) > 0:
        return ["host array"]
    return ["scalar", str(numba.typeof(arg))]


def record_to(path: str) -> None:
    seen = set()
    launch = simulated.FakeCUDAKernel.__call__

    def recording(self, *args):
        if not self._device and not simulated._kernel_context:
            seen.add(json.dumps([self.fn.__module__, self.fn.__name__, [_describe(a) for a in args]]))
        return launch(self, *args)

    simulated.FakeCUDAKernel.__call__ = recording
    atexit.register(lambda: open(path, "w").write(json.dumps(sorted(json.loads(s) for s in seen))))
