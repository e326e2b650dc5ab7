"""A graph compiled into a runnable plan: layers in topological order, their weights, and cached buffers.

Gradients flow backwards along the plan; a block feeding several consumers gets the sum of their gradients, and no
gradient is computed where nothing upstream learns (the input image, unless asked for).  A ReLU whose only input is
a Conv2D or BatchNorm feeding nothing else is fused into it (fewer passes over the output, and one output kept instead
of two), except while ``keep_activations`` asks for every block's own output. On the CPU, big batches run as parts on
every core at once, with the whole batch's results: in worker processes once a run is long enough
(:mod:`engine.part_processes`), else on threads (:mod:`engine.replicas`).
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from functools import lru_cache

import numpy as np

from ..graph.graph import Graph
from ..graph.layers import KINDS, fmt
from .backend import Backend, cpu_backend, cuda_backend
from .cuda.status import device_status
from .grad_pool import GradientPool
from .layers import LAYER_CLASSES, Layer, Parameter
from .part_processes import MIN_PART as PROCESS_PART
from .part_processes import SPAWN_AFTER, PartProcesses, WorkerFailure
from .replicas import MIN_PART, Replicas, splittable


class CompileError(ValueError):
    """The graph cannot become a network (it has errors, or the device is not available)."""


def compile(graph: Graph, device: str = "cpu", seed: int = 0) -> Network:  # noqa: A001 - the engine's verb
    """A runnable network for ``graph`` on ``device`` ('cpu' or 'cuda'), weights initialised from ``seed``."""
    backend = _backend(device)
    info = graph.infer()
    errors = [p.message for p in info.problems if p.severity == "error"]
    if errors:
        raise CompileError("the network cannot be compiled until these problems are fixed:\n"
                           + "\n".join(f"- {m}" for m in errors))
    return Network(graph.copy(), backend(), seed)


def _backend(device: str):
    """The factory of ``device``'s backend; a CompileError saying what is missing when it cannot run here."""
    if device == "cpu":
        return _cpu
    available, reason = device_status(device)
    if device != "cuda":
        raise CompileError(reason)
    if not available:
        raise CompileError(f"the CUDA backend is not available: {reason}; use the CPU instead")
    return _cuda


@lru_cache(maxsize=1)
def _cpu() -> Backend:
    return cpu_backend()


@lru_cache(maxsize=1)
def _cuda() -> Backend:
    return cuda_backend()


FUSES_RELU = ("Conv2D", "BatchNorm")  # kinds whose layer computes a ReLU after it (``fused_relu``)


class _NoPool:
    """Stands in for a GradientPool where layers keep their own gradient buffers (device arrays)."""

    def reset(self) -> None: ...
    def hold(self, grad) -> None: ...
    def drop(self, grad) -> None: ...


_NO_POOL = _NoPool()


class Network:
    """Forward, loss, backward and weights of a compiled graph (see the engine contract in the docs)."""

    def __init__(self, graph: Graph, backend: Backend, seed: int) -> None:
        info = graph.infer()
        order = graph.topological_order()
        step_of = {node_id: i for i, node_id in enumerate(order)}
        self.graph, self.backend = graph, backend
        self.layers: list[Layer] = []
        self._sources: list[tuple[int, ...]] = []
        for node_id in order:
            node, ni = graph.nodes[node_id], info.nodes[node_id]
            self.layers.append(LAYER_CLASSES[node.kind](node.name, dict(node.params), ni.input_shapes,
                                                        ni.output_shape, backend))
            self._sources.append(tuple(step_of[src] for src in graph.inputs_of(node_id)))
        self._input = next(i for i, layer in enumerate(self.layers) if layer.kind == "Input")
        self._head = next(i for i, layer in enumerate(self.layers) if KINDS[layer.kind].is_loss)
        self.head = self.layers[self._head]
        self.input_shape = self.layers[self._input].output_shape
        self.output_shape = self.head.output_shape
        self.loss_kind = self.head.kind
        self._needs = {flag: self._gradient_needs(flag) for flag in (False, True)}
        self._fusions = self._relu_fusions()
        self._folds = self._batchnorm_folds() if backend.name == "cpu" else {}
        self._folded = False
        self._fused = False
        self._accumulators: dict[tuple, np.ndarray] = {}
        self._outputs: list[np.ndarray | None] = [None] * len(self.layers)
        self._loss_grad: np.ndarray | None = None
        self._parameters = [p for layer in self.layers for p in layer.weights.values()]
        # device arrays have no .base to count views by, so the pool is the CPU's
        self._pool = GradientPool(backend) if backend.name == "cpu" else None
        for layer in self.layers:
            layer.gradients = self._pool
        self.keep_activations = False
        self.activations: dict[str, np.ndarray] = {}
        self.split_batches = hasattr(backend.k, "run_parts")  # batches split between the cores: engine.replicas
        self.part_processes = True  # and their parts run in worker processes where they can: engine.part_processes
        self._splittable = {training: splittable(self, training, info.total_macs) for training in (False, True)}
        self._splittable["processes"] = splittable(self, True, info.total_macs, threads=False)
        self._replicas: Replicas | None = None
        self._processes: PartProcesses | None = None
        self._process_batches = 0  # batches that could have split between processes (SPAWN_AFTER)
        self._parts: list[tuple[int, int]] | None = None  # how the last forward's batch was split, if it was
        self._runner: Replicas | PartProcesses | None = None  # and what ran its parts
        self._last: dict = {}  # the last forward's input and mode, and its targets: a step run again whole
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.init(rng)
        self.reseed(seed, 0)

    def _gradient_needs(self, input_grad: bool) -> list[tuple[tuple[bool, ...], bool]]:
        """Per step: which inputs need a gradient, and whether its backward runs at all."""
        wants = [False] * len(self.layers)
        for i, (layer, sources) in enumerate(zip(self.layers, self._sources, strict=True)):
            wants[i] = bool(layer.weights) or (input_grad and i == self._input) or any(wants[j] for j in sources)
        needs = []
        for layer, sources in zip(self.layers, self._sources, strict=True):
            need = tuple(wants[j] for j in sources)
            needs.append((need, any(need) or bool(layer.weights)))
        return needs

    def _relu_fusions(self) -> dict[int, int]:
        """{ReLU step: producer step} for each ReLU whose input is a Conv2D or BatchNorm that feeds nothing else."""
        consumers = Counter(j for sources in self._sources for j in sources)
        return {i: sources[0] for i, (layer, sources) in enumerate(zip(self.layers, self._sources, strict=True))
                if layer.kind == "ReLU" and self.layers[sources[0]].kind in FUSES_RELU and consumers[sources[0]] == 1}

    def _batchnorm_folds(self) -> dict[int, int]:
        """{BatchNorm step: Conv2D step} for each BatchNorm whose input is a Conv2D that feeds nothing else: in
        evaluation its affine map is folded into the conv's kernel and bias (one pass over the output fewer)."""
        consumers = Counter(j for sources in self._sources for j in sources)
        return {i: sources[0] for i, (layer, sources) in enumerate(zip(self.layers, self._sources, strict=True))
                if layer.kind == "BatchNorm" and self.layers[sources[0]].kind == "Conv2D"
                and consumers[sources[0]] == 1}

    # ------------------------------------------------------------------------------------------- running
    def _split(self, n: int, training: bool) -> list[tuple[int, int]] | None:
        """The parts a batch of ``n`` runs as, one per core (None: whole), choosing what runs them: worker
        processes where they serve and are ready, else threads (making the copies they run)."""
        self._runner = None
        if not self.split_batches or self.keep_activations:
            return None
        cores = self.backend.k.parts()
        count = min(cores, n // PROCESS_PART)
        if count >= 2 and self._processes_serve() and self._ready_processes(cores):
            self._runner = self._processes
            return Replicas.parts(n, count)
        count = min(cores, n // MIN_PART[training])
        if count < 2 or not self._splittable[training]:
            return None
        if self._replicas is None or len(self._replicas.networks) < count:
            self._replicas = Replicas(self, count)
            self._replicas.reseed(*self._seeded)
        self._runner = self._replicas
        return self._replicas.parts(n, count)

    def _processes_serve(self) -> bool:
        """Whether worker processes may run parts: where the network splits at all, on a POSIX system, from a
        Python that can run a module (not a frozen application), unless they failed."""
        return (self.part_processes and self._splittable["processes"] and os.name == "posix"
                and not getattr(sys, "frozen", False)
                and (self._processes is None or self._processes.failure is None))

    def _ready_processes(self, cores: int) -> bool:
        """Whether the workers are ready, starting them once SPAWN_AFTER batches could have used them."""
        if self._processes is None:
            self._process_batches += 1
            if self._process_batches < SPAWN_AFTER:
                return False
            self._start_processes(cores)
        return self._processes.ready()

    def _start_processes(self, count: int) -> None:
        self._processes = PartProcesses(self, count)
        self._processes.reseed(list(self._seeded))

    def start_part_processes(self, timeout: float = 120.0) -> str | None:
        """Starts the worker processes now and waits until they are ready (a benchmark's steady state); returns
        why they cannot run this network's parts, or None."""
        if not (self.split_batches and self.backend.k.parts() > 1 and self._splittable["processes"]):
            return "the network runs on one core or as one part"
        if not self._processes_serve():
            return self._processes.failure if self._processes is not None else \
                "worker processes need a POSIX system and a Python that is not a frozen application"
        if self._processes is None:
            self._start_processes(self.backend.k.parts())
        self._processes.wait(timeout)
        return self._processes.failure

    def _without_processes(self, error: WorkerFailure) -> None:
        """After a worker failed mid-step: the workers stop, and the step runs again whole, here."""
        self._processes.failed(error)
        self._parts = self._runner = None
        self._forward(self._last["x"], self._last["training"])

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """The values fed into the head (logits for SoftmaxCrossEntropy), shape (N, *output_shape)."""
        self._parts = parts = self._split(len(x), training)
        self._last = {"x": x, "training": training}
        if parts is None:
            return self._forward(x, training)
        try:
            return np.concatenate(self._runner.forward(x, parts, training))
        except WorkerFailure as error:
            self._without_processes(error)
            return self.backend.to_host(self._outputs[self._head])

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        outs = self._outputs
        self._fused = not self.keep_activations
        self._folded = self._fused and not training and bool(self._folds)
        for producer in self._fusions.values():
            self.layers[producer].fused_relu = self._fused
        for bn, conv in self._folds.items():
            self.layers[conv].folded = self.layers[bn] if self._folded else None
        for i, (layer, sources) in enumerate(zip(self.layers, self._sources, strict=True)):
            if (self._fused and i in self._fusions) or (self._folded and i in self._folds):
                outs[i] = outs[sources[0]]  # the block before already applied this ReLU or BatchNorm
                continue
            outs[i] = layer.forward([outs[j] for j in sources] if sources else [x], training)
        self._loss_grad = None
        if self.keep_activations:
            self.activations = {layer.name: self.backend.to_host(out)
                                for layer, out in zip(self.layers, outs, strict=True)}
        return self.backend.to_host(outs[self._head])

    def loss(self, targets: np.ndarray) -> float:
        """Mean loss of the last forward against ``targets``; keeps dL/dy for :meth:`backward`."""
        parts = self._parts
        self._last["targets"] = targets
        if parts is None:
            return self._loss(targets)
        if len(targets) != parts[-1][1]:
            raise ValueError(f"{len(targets)} targets for a batch of {parts[-1][1]} outputs; give one per sample")
        try:
            values = self._runner.loss(targets, parts, backward=self._last["training"])
        except WorkerFailure as error:
            self._without_processes(error)
            return self._loss(targets)
        return sum(v * (hi - lo) for v, (lo, hi) in zip(values, parts, strict=True)) / parts[-1][1]

    def _loss(self, targets: np.ndarray) -> float:
        y = self._outputs[self._head]
        if y is None:
            raise RuntimeError("call forward() before loss()")
        value = self.head.loss(y, targets)
        self._loss_grad = self.head.grad
        return value

    def backward(self, grad: np.ndarray | None = None, input_grad: bool = True) -> np.ndarray | None:
        """Fills every Parameter.grad for the last forward and returns dL/dx (None with ``input_grad=False``,
        which skips the first layer's input gradient — what training wants)."""
        parts = self._parts
        if parts is None:
            return self._backward(grad, input_grad)
        if grad is not None:
            grad, whole = np.asarray(grad, np.float32), (parts[-1][1], *self.output_shape)
            if grad.shape != whole:
                raise ValueError(f"the gradient must match the last output, {fmt(whole)}, not {fmt(grad.shape)}")
        try:
            dxs = self._runner.backward(grad, parts, input_grad)
        except WorkerFailure as error:
            self._without_processes(error)
            if grad is None:
                self._loss(self._last["targets"])
            return self._backward(grad, input_grad)
        return np.concatenate(dxs) if input_grad else None

    def _backward(self, grad: np.ndarray | None, input_grad: bool) -> np.ndarray | None:
        y = self._outputs[self._head]
        if self._folded:
            raise RuntimeError("backward() needs the BatchNorm outputs that an evaluation forward() folds away: "
                               "run forward() in training mode or with keep_activations set first")
        if grad is None:
            if self._loss_grad is None:
                raise RuntimeError("call loss(targets) after forward() or pass the gradient to backward()")
            grad = self._loss_grad
        elif y is None or np.shape(grad) != y.shape:
            raise ValueError(f"the gradient must match the last output, {fmt(y.shape) if y is not None else 'none'}"
                             f", not {fmt(np.shape(grad))}")
        else:
            grad = self.backend.upload(grad, "output_grad")
        grads: list[np.ndarray | None] = [None] * len(self.layers)
        grads[self._head] = grad
        pool = self._pool or _NO_POOL
        pool.reset()
        pool.hold(grad)
        needs = self._needs[input_grad]
        for i in range(len(self.layers) - 1, -1, -1):
            layer, dy = self.layers[i], grads[i]
            need, runs = needs[i]
            if dy is None:
                for p in layer.weights.values():
                    self.backend.fill(p.grad, 0.0)  # a dangling block does not affect the loss
                continue
            if not runs:
                pool.drop(dy)
                continue
            if self._fused and i in self._fusions:
                grads[self._fusions[i]], grads[i] = dy, None  # the producer's backward applies this ReLU's gradient
                continue
            for j, dx in zip(self._sources[i], layer.backward(dy, need), strict=True):
                pool.hold(dx)
                if dx is not None and grads[j] is not None:
                    total = self._accumulate(j, grads[j], dx)
                    pool.drop(grads[j])
                    pool.drop(dx)
                    pool.hold(total)
                    dx = total
                if dx is not None:
                    grads[j] = dx
            pool.drop(dy)
            grads[i] = dy = None  # read for the last time: a buffer the pool lets go of is then freed at once
        dx = grads[self._input]
        return self.backend.to_host(dx) if input_grad and dx is not None else None

    def _accumulate(self, step: int, total: np.ndarray, dx: np.ndarray) -> np.ndarray:
        key = (step, dx.shape)
        acc = self._pool.take(dx.shape) if self._pool is not None else self._accumulators.get(key)
        if acc is None:
            acc = self._accumulators[key] = self.backend.empty(dx.shape)
        self.backend.k.add_forward([total, dx], acc)
        return acc

    def predict_proba(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Evaluation-mode outputs after the head: class probabilities, sigmoid outputs or regression values."""
        parts = []
        for i in range(0, len(x), batch_size):
            parts.append(self.head.proba(self.forward(x[i:i + batch_size], training=False)))
        return np.concatenate(parts) if parts else np.empty((0,) + self.output_shape, np.float32)

    # ------------------------------------------------------------------------------------------- weights
    def parameters(self) -> list[Parameter]:
        return list(self._parameters)

    def _arrays(self, layer: Layer) -> dict[str, np.ndarray]:
        return {**{n: p.value for n, p in layer.weights.items()}, **layer.state}

    def state_dict(self) -> dict[str, dict[str, np.ndarray]]:
        """Numpy copies of every learnable array and BatchNorm running statistic, by block name and array name
        (the same on every device, so a model file trained on one resumes on the other)."""
        return {layer.name: {n: self.backend.to_host(a) for n, a in self._arrays(layer).items()}
                for layer in self.layers if self._arrays(layer)}

    def load_state_dict(self, state: dict) -> None:
        """Copies arrays in after checking them all; a missing or misshapen one raises ValueError naming it."""
        pairs = []
        for layer in self.layers:
            arrays = self._arrays(layer)
            if not arrays:
                continue
            block = state.get(layer.name)
            if block is None:
                raise ValueError(f"the weights have no block '{layer.name}' ({layer.kind}); they belong to a "
                                 f"different network")
            for name, target in arrays.items():
                if name not in block:
                    raise ValueError(f"the weights of block '{layer.name}' have no array '{name}'")
                source = np.asarray(block[name])
                if source.shape != target.shape:
                    raise ValueError(f"array '{name}' of block '{layer.name}' is {fmt(source.shape)} but the network "
                                     f"needs {fmt(target.shape)}")
                pairs.append((target, source))
        for target, source in pairs:
            self.backend.write(target, source)

    def states(self) -> list[np.ndarray]:
        """The arrays a training forward pass changes besides the weights (BatchNorm running statistics)."""
        return [a for layer in self.layers for a in layer.state.values()]

    def reseed(self, seed: int, epoch: int, batch: int = 0) -> None:
        """Dropout masks from np.random.default_rng([seed, epoch, batch]), so a run resumed at any batch repeats
        the same masks."""
        self.use_rng(np.random.default_rng([seed, epoch, batch]))
        self._seeded = (seed, epoch, batch)  # what copies made later start from
        if self._replicas is not None:
            self._replicas.reseed(seed, epoch, batch)
        if self._processes is not None:
            self._processes.reseed([seed, epoch, batch])

    def use_rng(self, rng: np.random.Generator) -> None:
        """Dropout masks from ``rng`` (shared by every Dropout block)."""
        for layer in self.layers:
            if layer.uses_rng:
                layer.rng = rng

    def __repr__(self) -> str:
        return f"Network({len(self.layers)} blocks, {sum(p.value.size for p in self._parameters)} weights, " \
               f"{self.backend.name})"
