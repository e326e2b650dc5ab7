"""A worker process of engine.part_processes: ``python -m convdesigner.engine.part_worker READ_FD WRITE_FD``.

It reads one JSON line per call from READ_FD and answers each with one line on WRITE_FD: ``start`` (build the network
from the graph's dict, its weights mapped from the shared file), ``io`` (map a new file of part arrays), ``forward``,
``loss`` (then, when asked, the backward at once, answered with a second line) and ``backward``. A failing call is
answered with its error and the worker waits for the next; it exits when its input ends (the network is gone).
"""
from __future__ import annotations

import sys

import numpy as np


class SpokeSeat:
    """A worker's place at the BatchNorm exchanges of a split training step (replicas.Seat's contract): it hands
    its values to part 0 (engine.part_processes.HubSeat) and gets every part's back."""

    def __init__(self, pipe, io, part: int) -> None:
        self.pipe, self.io, self.part = pipe, io, part

    def gather(self, value) -> list:
        from .part_processes import pack, unpack
        self.pipe.send({"gather": pack(value, self.io["s"])})
        message = self.pipe.receive()
        if message is None or "abort" in message:
            raise RuntimeError("part 0 of the step stopped before this exchange")
        return [unpack(spec, self.io["r"][at:]) for at, spec in message["values"]]


class _Part:
    """The network this worker runs, its shared arrays, and the calls it answers."""

    def __init__(self, message: dict, pipe) -> None:
        from ..graph.graph import Graph
        from .network import compile
        from .part_processes import SharedArrays
        self.opener = SharedArrays.open
        self.part = message["part"]
        self.net = compile(Graph.from_dict(message["graph"]), seed=0)
        self.net.split_batches = False
        weights = self.opener(message["weights"])
        arrays = iter(weights[f"v{i}"] for i in range(len(weights.layout)))
        for p in self.net.parameters():
            p.value = next(arrays)
        for layer in self.net.layers:
            for name in list(layer.state):
                layer.state[name] = next(arrays)
        self._warm_up()
        self.io = None
        self.pipe, self.training = pipe, False
        self.norms = [layer for layer in self.net.layers if layer.kind == "BatchNorm"]

    def _warm_up(self) -> None:
        """A training step and an evaluation on two samples: the kernels load now, while the network still runs
        its batches whole, not in the first part it is given (the weights are overwritten before every part)."""
        from .cpu.blas_threads import on_one_core
        from .metrics import targets
        x = np.zeros((2, *self.net.input_shape), np.float32)
        labels = targets(self.net.loss_kind, np.zeros(2, np.int64), int(np.prod(self.net.output_shape)))

        def step():
            self.net._forward(x, True)
            self.net._loss(labels)
            self.net._backward(None, False)
            self.net._forward(x, False)

        on_one_core(step)

    def _seated(self, run):
        """``run()`` with the BatchNorm blocks at the step's exchanges when the last forward trained."""
        seat = SpokeSeat(self.pipe, self.io, self.part) if self.training and self.norms else None
        for layer in self.norms:
            layer.sync = seat
        try:
            return run()
        finally:
            for layer in self.norms:
                layer.sync = None

    def io_(self, message: dict) -> dict:
        self.io = self.opener(message["io"])
        for i, p in enumerate(self.net.parameters()):  # backward writes its gradients where the network reads them
            p.grad = self.io[f"g{i}"]
        return {}

    def forward(self, message: dict) -> dict:
        from .cpu.blas_threads import on_one_core
        if message["rng"] is not None:
            self.net.use_rng(np.random.default_rng([*message["rng"], self.part]))
        n, self.training = message["n"], message["training"]
        y = self._seated(lambda: on_one_core(lambda: self.net._forward(self.io["x"][:n], self.training)))
        np.copyto(self.io["y"][:n], y)
        return {}

    def loss(self, message: dict) -> dict:
        dtype, shape = np.dtype(message["dtype"]), tuple(message["shape"])
        count = int(np.prod(shape)) * dtype.itemsize
        targets = self.io["t"][:count].view(dtype).reshape(shape)
        value = self.net._loss(targets)
        np.multiply(self.net._loss_grad, np.float32(message["scale"]), out=self.net._loss_grad)
        return {"loss": value}

    def backward(self, message: dict) -> dict:
        from .cpu.blas_threads import on_one_core
        n = len(self.net._outputs[self.net._head])
        grad = self.io["dy"][:n] if message["grad"] else None
        dx = self._seated(lambda: on_one_core(lambda: self.net._backward(grad, message["input_grad"])))
        if dx is not None:
            np.copyto(self.io["dx"][:n], dx)
        return {}


def serve(pipe) -> None:
    say, part = pipe.send, None
    while (message := pipe.receive()) is not None:
        op = message["op"]
        answers = 2 if op == "loss" and message["backward"] else 1
        try:
            if op == "start":
                part = _Part(message, pipe)
                say({})
                continue
            calls = {"io": part.io_, "forward": part.forward, "loss": part.loss, "backward": part.backward}
            say(calls[op](message))
            answers -= 1
            if answers:
                say(part.backward({"grad": False, "input_grad": False}))
        except Exception as error:  # noqa: BLE001 - every failure is answered; the main process decides
            for _ in range(answers):
                say({"error": f"{type(error).__name__}: {error}"})


def main(argv: list[str]) -> int:
    from .part_processes import Pipe
    try:
        serve(Pipe(int(argv[0]), int(argv[1])))
    except BrokenPipeError:
        pass  # the main process has gone
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
