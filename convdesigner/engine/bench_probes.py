"""What `convdesigner bench` reports besides images per second: the machine's sgemm rate (the yardstick for GFLOP/s),
the peak memory of a training step, and the engine's cold and warm start.

Memory and start-up are measured in fresh child processes, one per engine and cell: a process that already ran the
other engine keeps its freed pages in malloc's arenas, so growth in the same process would flatter whichever ran
second. Peak memory is the growth of the child's peak resident set (VmHWM, reset after the imports) from compiling
the network through three training steps on one batch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .cpu.blas import OPENBLAS_CORE, OPENBLAS_THREADS

SGEMM_SIZE = 1024
__all__ = ["OPENBLAS_CORE", "gflops", "sgemm_rate", "start_times", "step_memory"]


def sgemm_rate(threads: int, size: int = SGEMM_SIZE) -> float:
    """GFLOP/s of numpy's sgemm on ``threads`` threads (best of several products of two size×size matrices); the
    engine keeps OpenBLAS on one thread, so the count is set for the measurement and put back."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    before = OPENBLAS_THREADS[0]() if OPENBLAS_THREADS else None
    if OPENBLAS_THREADS:
        OPENBLAS_THREADS[1](threads)
    try:
        np.dot(a, a, out=out)
        best = float("inf")
        for _ in range(7):
            start = time.perf_counter()
            np.dot(a, a, out=out)
            best = min(best, time.perf_counter() - start)
    finally:
        if before is not None:
            OPENBLAS_THREADS[1](before)
    return 2 * size ** 3 / best / 1e9


def gflops(macs: int, mode: str, images_per_second: float) -> float:
    """Achieved GFLOP/s of a cell from the catalogue's multiply-adds per image: a training step counts three passes
    (forward, the input gradient, the weight gradient), inference one; two floating-point operations per
    multiply-add."""
    return 2 * macs * (3 if mode == "train" else 1) * images_per_second / 1e9


# ------------------------------------------------------------------------------------------------ child processes

def _run(code: str, env: dict | None = None, timeout: float = 600) -> str:
    """Runs ``code`` in a fresh interpreter and returns what it printed; RuntimeError with its error output when it
    fails."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr.strip()[-2000:]}")
    return done.stdout


def _child(code: str) -> dict:
    """The JSON object that ``code``, run in a fresh interpreter, prints last."""
    return json.loads(_run(code).strip().splitlines()[-1])


def status_kib(field: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/{pid}/status has no {field}")


def _reset_peak(pid: int | str = "self") -> None:
    """Sets VmHWM back to the current resident set (Linux, 'echo 5 > /proc/self/clear_refs')."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def measure_step_memory(engine: str, template: str, batch: int, threads: int) -> dict:
    """In this process (a fresh child): peak resident growth in MiB of building ``template`` and taking three
    training steps at ``batch`` on ``engine`` ('ours' or 'torch'), after a warm-up step at batch 2 on a throw-away
    copy, so that loading compiled kernels and the library's own start-up are not counted. Ours with its worker
    processes running the batch's other parts (engine.part_processes), as in a long run: their growth from when they
    were ready (their Python and kernels loaded) is added, less the pages of the files they share with this process
    (weights, inputs, gradients: resident once, and counted in this process's peak; they were counted twice)."""
    import numba

    from ..graph.templates import build
    from . import bench, compile
    numba.set_num_threads(threads)
    graph = build(template)
    torch = bench._import_torch() if engine == "torch" else None
    if torch is not None:
        torch.set_num_threads(threads)

    def steps(size):
        net = compile(graph, seed=0)
        x, labels = bench.random_batch(net.input_shape, int(np.prod(net.output_shape)), size)
        train, _ = (bench.ours_steps(net, x, labels) if torch is None
                    else bench.TorchTwin(torch, graph, net).steps(x, labels))
        return train, (net if torch is None else None)

    steps(2)[0]()
    base = status_kib("VmRSS")
    _reset_peak()
    train, net = steps(batch)
    workers = []
    if net is not None and net.start_part_processes() is None:
        workers = [(pid, status_kib("VmRSS", pid), status_kib("RssShmem", pid)) for pid in net._processes.pids()]
        for pid, *_ in workers:
            _reset_peak(pid)
    for _ in range(3):
        train()
    grown = status_kib("VmHWM") - base + sum(status_kib("VmHWM", pid) - rss - (status_kib("RssShmem", pid) - shared)
                                             for pid, rss, shared in workers)
    return {"mib": grown / 1024}


def step_memory(template: str, batch: int, threads: int, with_torch: bool) -> tuple[float, float | None]:
    """(ours, PyTorch's or None) peak MiB of a training step, each from its own child process."""
    def one(engine):
        return _child(f"import json; from convdesigner.engine.bench_probes import measure_step_memory; "
                      f"print(json.dumps(measure_step_memory({engine!r}, {template!r}, {batch}, {threads})))")["mib"]
    return one("ours"), (one("torch") if with_torch else None)


def first_batch_then_exit(template: str) -> None:
    """Runs ``convdesigner train`` on ``template`` (the built-in sample) and ends the process as its first batch ends,
    so the parent's clock reads the start-up a user waits through."""
    from .trainer import Trainer

    class Exit:
        def on_batch_end(self, info):
            os._exit(0)

    init = Trainer.__init__

    def with_exit(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.add_callback(Exit())

    Trainer.__init__ = with_exit
    from ..cli import main
    with tempfile.TemporaryDirectory() as out:
        main(["train", "--template", template, "--epochs", "1", "--limit", "512", "--out", os.path.join(out, "m.h5")])
    raise RuntimeError("training ended without a batch")


def start_times(template: str = "lenet5") -> tuple[float, float]:
    """(cold, warm) seconds from starting ``convdesigner train`` to the end of its first batch: cold with an empty
    Numba cache (every kernel it needs compiled), warm with the cache the cold run filled."""
    code = f"from convdesigner.engine.bench_probes import first_batch_then_exit; first_batch_then_exit({template!r})"
    times = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(2):
            start = time.perf_counter()
            _run(code, {"NUMBA_CACHE_DIR": cache})
            times.append(time.perf_counter() - start)
    return times[0], times[1]
