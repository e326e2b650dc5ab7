"""Share a batch between Python threads that each run nogil numba kernels and single-threaded OpenBLAS.

OpenBLAS's own threads, like spinning OpenMP workers, synchronise for every block and stall when a core is busy
elsewhere (measured on the shared 2-core box: one sgemm of the seed CNN's second conv took 0.6 ms split this way and
12-20 ms on two OpenBLAS threads); threads drawing chunks of the batch never wait for each other until the end.
Where numpy's BLAS offers no thread control (not the bundled OpenBLAS) the batch runs as one part on BLAS's threads.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba

from .blas import OPENBLAS_THREADS

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def run_shared(job, n: int, chunk: int) -> list:
    """Each thread runs ``job(worker, chunks)``, drawing ``(lo, hi)`` chunks of range(n) from one shared iterator, so a
    thread slowed by other work simply takes fewer; returns each worker's result (worker 0 is the calling thread).

    BLAS runs single-threaded meanwhile.  Not reentrant: one engine thread at a time (the design's rule).
    """
    global _pool, _pool_size
    chunks = iter([(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)])  # list iterators are atomic under the GIL
    workers = 1 if OPENBLAS_THREADS is None else max(1, min(numba.get_num_threads(), -(-n // chunk)))
    if workers == 1:
        return [job(0, chunks)]
    if _pool_size < workers - 1:
        _pool_size = workers - 1
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="convdesigner-cpu")
    get, set_ = OPENBLAS_THREADS
    before = get()
    set_(1)
    try:
        futures = [_pool.submit(job, worker, chunks) for worker in range(1, workers)]
        return [job(0, chunks)] + [f.result() for f in futures]
    finally:
        set_(before)
