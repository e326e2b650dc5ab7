"""The CUDA backend's kernels (numba.cuda, from the numba-cuda package), with the contracts of ``engine/cpu``.

Nothing here imports numba.cuda until the CUDA backend is asked for, so a process can still choose the simulator
(NUMBA_ENABLE_CUDASIM=1) and a machine without the ``cuda`` extra imports the engine as before.
"""
