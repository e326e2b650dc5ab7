"""Parts of split batches run in worker processes, one per further core, so that no part waits for another's GIL.

In one process the parts' Python takes turns on the GIL, and each wait for it costs a thread wake-up: two LeNet-5
training steps at batch 32 on two threads of one process ran 15-70 % slower than one alone, the seed CNN's 20-35 %;
in two processes they ran no slower (two cores). A worker (engine.part_worker) builds the same network from the
graph's dict and maps its weights from a file this process writes before every forward (in /dev/shm where there is
one); its inputs, outputs, targets and gradients pass through a second file of its own, and one JSON line each way
over a pipe says what to run. Its loss gradient is scaled by its share of the batch and its weight gradients are
added to the network's; in training its BatchNorm blocks trade statistics and gradient sums with part 0's through
the same pipe and files (:class:`HubSeat`, part_worker.SpokeSeat). The results are the whole batch's, the very
numbers engine.replicas' threads give.

Workers start in the background once a network has split SPAWN_AFTER batches (their start takes about 1 s with
Numba's cache filled) and the threads run the batches until every worker is ready. A worker that cannot start or
stops is shut down with the others and the network runs on without them (the step it failed in is run again
whole); ``failure`` keeps why.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import select
import subprocess
import sys
import tempfile
import time
import weakref
from contextlib import contextmanager

import numpy as np

from .cpu.blas_threads import on_one_core

# Samples per part below which a batch runs whole or on threads. In parts of 32 on two cores, against the threads
# (whole at batch 64 in training), medians of interleaved rounds: training at batch 64 ran 1.0-1.3× as fast
# (LeNet-5, the seed CNN, VGG-small, EfficientNet- and DenseNet-small; ResNet-small 0.98), inference 1.0-1.45×.
MIN_PART = 32
# Split batches after which a network starts its workers: a training epoch or a long evaluation, not a test's step.
SPAWN_AFTER = 20
START_TIMEOUT = 120.0  # seconds a worker may take to be ready (a cold Numba cache compiles every kernel)
_SHM = "/dev/shm"
_ALIGN = 64


class WorkerFailure(RuntimeError):
    """A worker process could not start, answered an error, or stopped."""


class Pipe:
    """JSON lines to and from the other process. Waiting for one polls for up to SPIN seconds before it sleeps: a
    core of a virtual machine that went idle took 0.7-0.9 ms to wake for a worker's answer (a loss of 0.05 ms)."""

    SPIN = 0.005

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self._buffer = b""

    def send(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.write_fd, data):]

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether a line (or the end of the input) can be read now, polling for up to ``timeout`` seconds."""
        end = time.perf_counter() + timeout
        while True:
            if b"\n" in self._buffer or select.select([self.read_fd], [], [], 0)[0]:
                return True
            if time.perf_counter() >= end:
                return False

    def receive(self) -> dict | None:
        """The next message; None once the other end has closed."""
        self.ready(self.SPIN)
        while b"\n" not in self._buffer:
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close_writing(self) -> None:
        """Ends the other side's input (a worker then exits)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        self.close_writing()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


class SharedArrays:
    """Named arrays laid out in one file that this process and a worker both map."""

    def __init__(self, path: str, layout: dict, size: int) -> None:
        self.path, self.layout = path, layout
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), size)
        self._arrays = {name: np.frombuffer(self._map, dtype, math.prod(shape), offset).reshape(shape)
                        for name, (offset, shape, dtype) in layout.items()}

    @classmethod
    def create(cls, specs: dict) -> SharedArrays:
        """A new file holding ``{name: (shape, dtype)}``; its space is reserved now (OSError if there is none), so
        that writing to it later cannot fail."""
        layout, size = {}, 0
        for name, (shape, dtype) in specs.items():
            layout[name] = (size, [int(s) for s in shape], np.dtype(dtype).str)
            size += -(-math.prod(shape) * np.dtype(dtype).itemsize // _ALIGN) * _ALIGN
        size = max(size, _ALIGN)
        fd, path = tempfile.mkstemp(prefix="convdesigner-", suffix=".part",
                                    dir=_SHM if os.access(_SHM, os.W_OK) else None)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
            else:  # macOS: a file on disk, grown as written
                os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return cls(path, layout, size)

    @classmethod
    def open(cls, description: dict) -> SharedArrays:
        return cls(description["path"], description["layout"], description["size"])

    def describe(self) -> dict:
        return {"path": self.path, "layout": self.layout, "size": len(self._map)}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def unlink(self) -> None:
        """Removes the file's name (the mappings stay until both processes drop them)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def io_specs(shapes: tuple, capacity: int) -> dict:
    """The arrays a worker's part passes through: input, output, their gradients, targets, weight gradients
    and the values of BatchNorm exchanges, its own and every part's (``shapes``: the network's input shape, output
    shape and weight shapes, the most numbers one part brings to an exchange, and the number of parts)."""
    input_shape, output_shape, weights, exchange, parts = shapes
    inputs, outputs = (capacity, *input_shape), (capacity, *output_shape)
    specs = {"x": (inputs, "f4"), "dx": (inputs, "f4"), "y": (outputs, "f4"), "dy": (outputs, "f4"),
             "t": ((capacity * math.prod(output_shape) * 8,), "u1"),
             "s": ((exchange,), "f8"), "r": ((exchange * parts,), "f8")}
    specs.update({f"g{i}": (shape, "f4") for i, shape in enumerate(weights)})
    return specs


def weight_specs(network) -> dict:
    """Every weight, then every state array (BatchNorm's running statistics), in the network's order."""
    return {f"v{i}": (a.shape, "f4") for i, a in enumerate(weight_arrays(network))}


def weight_arrays(network) -> list[np.ndarray]:
    return [p.value for p in network.parameters()] + network.states()


def pack(value: tuple, out: np.ndarray) -> list:
    """Writes a tuple of numbers and arrays into the float64 array ``out`` (exactly: every float32 and int is a
    float64); returns how :func:`unpack` reads it back."""
    spec, at = [], 0
    for item in value:
        a = np.asarray(item)
        out[at:at + a.size] = a.ravel()
        spec.append([list(a.shape), a.dtype.str])
        at += a.size
    return spec


def unpack(spec: list, data: np.ndarray) -> tuple:
    items, at = [], 0
    for shape, dtype in spec:
        size = math.prod(shape)
        a = data[at:at + size].astype(dtype).reshape(shape)
        items.append(a.item() if not shape else a)
        at += size
    return tuple(items)


class HubSeat:
    """Part 0's place at the BatchNorm exchanges of a step split between processes (replicas.Seat's contract):
    it takes each worker's values, then hands every part's values to every worker."""

    part = 0

    def __init__(self, workers: list) -> None:
        self.workers = workers

    def gather(self, value) -> list:
        values = [value]
        for worker in self.workers:
            values.append(unpack(worker.gathering(), worker.io["s"]))
        for worker in self.workers:
            at, specs = 0, []
            for v in values:
                specs.append([at, pack(v, worker.io["r"][at:])])
                at += sum(math.prod(shape) for shape, _ in specs[-1][1])
            worker.pipe.send({"values": specs})
        return values


class _Worker:
    """One worker process running part ``part`` of each split batch, and the pipes to it."""

    def __init__(self, network, weights: SharedArrays, part: int, parts: int) -> None:
        self.part, self.pending = part, 0
        channels = [layer.input_shapes[0][0] for layer in network.layers if layer.kind == "BatchNorm"]
        self.shapes = (network.input_shape, network.output_shape, [p.value.shape for p in network.parameters()],
                       1 + 2 * max(channels, default=0), parts)
        self.io: SharedArrays | None = None
        self._log = tempfile.TemporaryFile()
        to_worker, from_worker = os.pipe(), os.pipe()
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1",  # and this very copy of convdesigner imported
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "convdesigner.engine.part_worker", str(to_worker[0]), str(from_worker[1])],
                pass_fds=(to_worker[0], from_worker[1]), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._log, env=env)
        except OSError:
            os.close(to_worker[1])
            os.close(from_worker[0])
            self._log.close()
            raise
        finally:
            os.close(to_worker[0])
            os.close(from_worker[1])
        self.pipe = Pipe(from_worker[0], to_worker[1])
        self.send(op="start", graph=network.graph.to_dict(), weights=weights.describe(), part=part)

    def send(self, **message) -> None:
        try:
            self.pipe.send(message)
        except OSError as error:
            raise self._stopped(f"could not be written to ({error})") from None
        self.pending += 2 if message["op"] == "loss" and message["backward"] else 1

    def answered(self) -> bool:
        """Whether an answer waits to be read (without blocking)."""
        return self.pipe.ready()

    def _receive(self) -> dict:
        """The next message; a worker waiting at a BatchNorm exchange that this step will not reach (this part
        failed before it) is told to give up, and the next message read."""
        while True:
            message = self.pipe.receive()
            if message is None:
                raise self._stopped("stopped")
            if "gather" not in message:
                return message
            self.pipe.send({"abort": True})

    def gathering(self) -> list:
        """The spec of the values this worker brings to a BatchNorm exchange (in its ``s`` array)."""
        message = self.pipe.receive()
        if message is None:
            raise self._stopped("stopped")
        if "gather" not in message:
            self.pending -= 1
            raise WorkerFailure(f"the engine's worker process {self.part} failed: "
                                f"{message.get('error', 'it skipped a BatchNorm exchange')}")
        return message["gather"]

    def reply(self, strict: bool = True) -> dict:
        """The next answer; WorkerFailure if the worker has stopped or (``strict``) answered an error."""
        message = self._receive()
        self.pending -= 1
        if strict and "error" in message:
            raise WorkerFailure(f"the engine's worker process {self.part} failed: {message['error']}")
        return message

    def settle(self) -> None:
        """Reads the answers still owed by calls whose results are no longer wanted (a backward that ran ahead
        unasked, the rest of a step that failed here)."""
        while self.pending:
            self.reply(strict=False)

    def fit(self, samples: int) -> SharedArrays:
        """The worker's shared arrays, made (again) to hold a part of ``samples``."""
        if self.io is None or self.io["x"].shape[0] < samples:
            capacity = max(samples, 2 * self.io["x"].shape[0] if self.io is not None else 0)
            try:
                io = SharedArrays.create(io_specs(self.shapes, capacity))
            except OSError as error:
                raise WorkerFailure(f"no room to share a part of {capacity} samples with the engine's worker "
                                    f"processes ({error})") from None
            try:
                self.send(op="io", io=io.describe())
                self.reply()
            finally:
                io.unlink()
            self.io = io
        return self.io

    def _stopped(self, what: str) -> WorkerFailure:
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace").strip().splitlines()[-3:]
        code = self.process.poll()
        return WorkerFailure(f"the engine's worker process {self.part} {what}"
                             f"{f' (exit code {code})' if code is not None else ''}"
                             f"{': ' + ' / '.join(tail) if tail else ''}")


_exiting: list[subprocess.Popen] = []  # workers told to stop, reaped later


def _stop(workers: list[_Worker], weights: SharedArrays | None, kill: bool = False) -> None:
    """Closes the pipes: a worker exits when its input ends, which this does not wait for (its Python takes
    0.3-0.5 s to wind down, at every exit of a program that trained); ``kill``: a failed worker is ended now. The
    weights file loses its name (it has none left once the workers were ready)."""
    if weights is not None:
        weights.unlink()
    _exiting[:] = [process for process in _exiting if process.poll() is None]
    for worker in workers:
        worker.pipe.close()
        worker._log.close()
        if kill and worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        _exiting.append(worker.process)


class PartProcesses:
    """Workers for parts 1… of ``network``'s split batches (part 0 runs here); started here, ready in the background."""

    def __init__(self, network, count: int) -> None:
        self.network, self.failure = network, None
        self.workers: list[_Worker] = []
        self._ready = False
        self._started = time.monotonic()
        self._rng: list[int] | None = None
        self._eager = False  # the workers ran their backward after the loss without being asked
        self.weights: SharedArrays | None = None
        try:
            self.weights = SharedArrays.create(weight_specs(network))
            for part in range(1, count):
                self.workers.append(_Worker(network, self.weights, part, count))
        except OSError as error:
            self._fail(f"could not start the engine's worker processes ({error})")
        self._finalizer = weakref.finalize(self, _stop, list(self.workers), self.weights)

    def ready(self) -> bool:
        """Whether every worker has built its network (checked without waiting); False for good after a failure."""
        if self._ready or self.failure is not None:
            return self._ready
        try:
            if not all(w.answered() for w in self.workers):
                if time.monotonic() - self._started > START_TIMEOUT:
                    raise WorkerFailure(f"the engine's worker processes were not ready after {START_TIMEOUT:g} s")
                return False
            for worker in self.workers:
                worker.reply()
        except WorkerFailure as error:
            self._fail(str(error))
            return False
        self.weights.unlink()
        self._ready = True
        return True

    def wait(self, timeout: float = START_TIMEOUT) -> bool:
        """Waits until the workers are ready (True) or failed (False)."""
        end = time.monotonic() + timeout
        while not self.ready() and self.failure is None and time.monotonic() < end:
            time.sleep(0.02)
        return self._ready

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self.workers]

    def _fail(self, why: str) -> None:
        self.failure, self._ready = why, False
        _stop(self.workers, self.weights, kill=True)
        self.workers = []

    def failed(self, error: WorkerFailure) -> None:
        """Shuts the workers down after ``error`` in a step; the network runs on without them."""
        self._fail(str(error))

    def reseed(self, key: list[int]) -> None:
        """Dropout masks of part k from np.random.default_rng([*key, k]) from the next forward on (as replicas')."""
        self._rng = key

    @contextmanager
    def _seated(self, parts: list, training: bool):
        """Meanwhile, in training, the network's BatchNorm blocks exchange with this step's workers."""
        norms = [layer for layer in self.network.layers if layer.kind == "BatchNorm"] if training else []
        seat = HubSeat([worker for worker, _ in self._others(parts)])
        for layer in norms:
            layer.sync = seat
        try:
            yield
        finally:
            for layer in norms:
                layer.sync = None

    def _others(self, parts):
        return zip(self.workers, parts[1:], strict=False)

    def forward(self, x: np.ndarray, parts: list, training: bool) -> list[np.ndarray]:
        for i, value in enumerate(weight_arrays(self.network)):
            np.copyto(self.weights[f"v{i}"], value)
        for worker, (lo, hi) in self._others(parts):
            worker.settle()
            np.copyto(worker.fit(hi - lo)["x"][:hi - lo], x[lo:hi])
            worker.send(op="forward", n=hi - lo, training=training, rng=self._rng)
        self._rng, self._eager = None, False
        lo, hi = parts[0]
        with self._seated(parts, training):
            outputs = [on_one_core(lambda: self.network._forward(x[lo:hi], training))]
        for worker, (lo, hi) in self._others(parts):
            worker.reply()
            outputs.append(worker.io["y"][:hi - lo])
        return outputs

    def loss(self, targets: np.ndarray, parts: list, backward: bool) -> list[float]:
        """Each part's mean loss; its gradient scaled by the part's share. ``backward``: the workers go on with
        their backward right away (training's next call), so that it overlaps this process's."""
        n, targets = parts[-1][1], np.ascontiguousarray(targets)
        for worker, (lo, hi) in self._others(parts):
            part = targets[lo:hi]
            if part.nbytes > worker.io["t"].size:
                raise ValueError(f"targets of shape {part.shape[1:]} per sample do not fit outputs of shape "
                                 f"{self.network.output_shape}; give one target per sample")
            worker.io["t"][:part.nbytes] = part.view(np.uint8).reshape(-1)
            worker.send(op="loss", dtype=part.dtype.str, shape=part.shape, scale=(hi - lo) / n, backward=backward)
        self._eager = backward
        lo, hi = parts[0]
        values = [self.network._loss(targets[lo:hi])]
        np.multiply(self.network._loss_grad, np.float32((hi - lo) / n), out=self.network._loss_grad)
        return values + [worker.reply()["loss"] for worker, _ in self._others(parts)]

    def backward(self, grad: np.ndarray | None, parts: list, input_grad: bool) -> list[np.ndarray] | None:
        """Every part's dL/dx (None without ``input_grad``), the workers' weight gradients added to the network's."""
        eager, self._eager = self._eager and grad is None and not input_grad, False
        for worker, (lo, hi) in self._others(parts):
            if not eager:
                worker.settle()
                if grad is not None:
                    np.copyto(worker.io["dy"][:hi - lo], grad[lo:hi])
                worker.send(op="backward", grad=grad is not None, input_grad=input_grad)
        lo, hi = parts[0]
        with self._seated(parts, self.network._last["training"]):
            dxs = [on_one_core(lambda: self.network._backward(None if grad is None else grad[lo:hi], input_grad))]
        for worker, (lo, hi) in self._others(parts):
            worker.reply()
            if input_grad:
                dxs.append(worker.io["dx"][:hi - lo])
        for i, p in enumerate(self.network.parameters()):
            for worker, _ in self._others(parts):
                np.add(p.grad, worker.io[f"g{i}"], out=p.grad)
        return dxs if input_grad else None
