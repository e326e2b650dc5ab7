"""Share a batch between Python threads that each run nogil numba kernels and single-threaded OpenBLAS.

OpenBLAS's own threads, like spinning OpenMP workers, synchronise for every block and stall when a core is busy
elsewhere (measured on the shared 2-core box: one sgemm of the seed CNN's second conv took 0.6 ms split this way and
12-20 ms on two OpenBLAS threads); threads drawing chunks of the batch never wait for each other until the end.
Where numpy's BLAS offers no thread control (not the bundled OpenBLAS) the batch runs as one part on BLAS's threads.

:func:`run_parts` runs whole jobs side by side instead (engine.replicas: each core runs a copy of a small network on
its part of the batch); on those threads every kernel runs single-threaded (:func:`serial`).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba

from .blas import OPENBLAS_THREADS

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_local = threading.local()


def serial() -> bool:
    """True on a thread running a job of :func:`run_parts`: its kernels run on that thread alone (numba's parallel
    loops, whose workqueue layer allows one thread at a time, and run_shared's splits included)."""
    return getattr(_local, "serial", False)


def parts() -> int:
    """How many jobs :func:`run_parts` runs side by side: one per numba thread where numpy's BLAS can be held to
    one thread, else 1."""
    return 1 if OPENBLAS_THREADS is None else numba.get_num_threads()


def _threads(count: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool_size < count:
        _pool_size = count
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="convdesigner-cpu")
    return _pool


@contextmanager
def _one_blas_thread():
    """numpy's BLAS on one thread meanwhile, where it can be told (the bundled OpenBLAS)."""
    if OPENBLAS_THREADS is None:
        yield
        return
    get, set_ = OPENBLAS_THREADS
    before = get()
    set_(1)
    try:
        yield
    finally:
        set_(before)


def _alone(job):
    _local.serial = True
    try:
        return job()
    finally:
        _local.serial = False


def on_one_core(job):
    """``job()`` with every kernel single-threaded and BLAS on one thread: one part of a batch split between
    processes (engine.part_processes), the others running on the other cores."""
    with _one_blas_thread():
        return _alone(job)


def run_parts(jobs: list) -> list:
    """Each ``job()`` on its own thread (the first on the calling one), all at once, every kernel inside them
    single-threaded (:func:`serial`) and BLAS on one thread where it can be held to one; their results in order. The
    jobs may wait for each other (engine.replicas.Exchange). Every job has ended when this returns or raises (the
    first failure is raised)."""
    if len(jobs) == 1:
        return [jobs[0]()]
    pool = _threads(len(jobs) - 1)
    with _one_blas_thread():
        futures = [pool.submit(_alone, job) for job in jobs[1:]]
        try:
            first = _alone(jobs[0])
        finally:
            rest = [f.exception() for f in futures]  # waits for every job, failed or not
    for error in rest:
        if error is not None:
            raise error
    return [first] + [f.result() for f in futures]


def run_shared(job, n: int, chunk: int) -> list:
    """Each thread runs ``job(worker, chunks)``, drawing ``(lo, hi)`` chunks of range(n) from one shared iterator, so a
    thread slowed by other work simply takes fewer; returns each worker's result (worker 0 is the calling thread).

    BLAS runs single-threaded meanwhile.  Not reentrant: one engine thread at a time (the design's rule).
    """
    chunks = iter([(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)])  # list iterators are atomic under the GIL
    workers = 1 if OPENBLAS_THREADS is None or serial() else max(1, min(numba.get_num_threads(), -(-n // chunk)))
    if workers == 1:
        return [job(0, chunks)]
    pool = _threads(workers - 1)
    with _one_blas_thread():
        futures = [pool.submit(job, worker, chunks) for worker in range(1, workers)]
        return [job(0, chunks)] + [f.result() for f in futures]
