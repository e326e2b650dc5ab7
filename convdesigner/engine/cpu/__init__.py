"""The CPU backend's kernels (numba, numpy's OpenBLAS).

numba's parallel kernels run on its 'workqueue' threading layer, whose workers sleep between kernels. The OpenMP
layer shares the process's libgomp: where anything loaded it first without OMP_WAIT_POLICY=PASSIVE (PyTorch does),
its workers spin after every parallel kernel and steal the cores from the threads of blas_threads.run_shared
(measured: a seed-CNN training step 30% slower, up to 5× on a busy machine). Workqueue allows one thread at a time in
parallel kernels, which the engine's one-worker-thread rule guarantees. NUMBA_THREADING_LAYER, if set, wins; the
choice is made before the first parallel kernel runs, as numba requires.
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
