"""Data parallelism on the CPU: a batch split between copies of the network, one per core, each running every
block on its part single-threaded, side by side (blas_threads.run_parts). These copies run on threads of this
process: before a network's worker processes are ready (engine.part_processes, which take the parts over where
they can), and for BatchNorm networks in training.

Small images leave little for two cores to share inside one kernel: on two threads a LeNet-5 training step at batch
64 took 1.6× as long as one thread's step at batch 32 (VGG-small 1.5×, the seed CNN 1.25×). Copies share the weight
arrays; each has its own activations and gradients, summed into the network's after backward. Loss values and
gradients are those of the whole batch: each part's loss gradient is scaled by its share of the batch, and a
BatchNorm in training trades its part's statistics and gradient sums with the other parts (:class:`Exchange`), so it
normalises with the whole batch's. The parts' Python still takes turns on the GIL, so a batch splits only where each
part has at least MIN_PART samples (measured on two cores: batch 128-256 trains 0-14 % faster and infers 3-21 %
faster; batch 64 infers 4-13 % faster).
"""
from __future__ import annotations

import threading

import numpy as np

# Samples per part below which a batch runs whole, by training: in parts of 32, training steps at batch 64 ran
# 0.93-1.01× as fast over the six small templates (backward's Python contends most), inference 1.04-1.13×.
MIN_PART = {True: 64, False: 32}
# Multiply-adds per block and sample under which a network with BatchNorm trains split. Each part waits for the
# other at every BatchNorm, twice a step (5-8 % of each part's time in ResNet-, DenseNet- and EfficientNet-small at
# batch 256), which pays only where the whole batch keeps two cores poorly busy: EfficientNet-small (78k a block)
# trained 1.01-1.14× as fast split at batch 128-256 (medians of interleaved rounds, three sittings); ResNet-small
# (385k) 0.94-1.06×, DenseNet-small (407k) 0.90-0.99×.
LIGHT_BLOCKS = 200_000


def splittable(network, training: bool, macs: int, threads: bool = True) -> bool:
    """Whether ``network`` (``macs`` multiply-adds a sample) may run as parts: its kernels run on any thread
    (grouped convolutions only depthwise: the direct grouped loops use numba's parallel layer, which allows one
    thread at a time), and on ``threads`` of this process in training with BatchNorm, its blocks are light
    (LIGHT_BLOCKS; worker processes, engine.part_processes, wait for each other at a BatchNorm without the GIL)."""
    if any(layer.kind == "Conv2D" and layer.params["groups"] not in (1, layer.input_shapes[0][0])
           for layer in network.layers):
        return False
    batchnorm = any(layer.kind == "BatchNorm" for layer in network.layers)
    return not (threads and training and batchnorm and macs >= LIGHT_BLOCKS * len(network.layers))


class Exchange:
    """Values the parts of one split step give each other, for blocks that need the whole batch (BatchNorm's
    statistics in training). Every part calls :meth:`gather` at the same points in the same order; two sets of slots
    alternate, so one barrier per call suffices (no part can be two calls ahead of another)."""

    def __init__(self, parties: int) -> None:
        self._barrier = threading.Barrier(parties)
        self._slots = [[None] * parties, [None] * parties]
        self._calls = [0] * parties

    def gather(self, part: int, value) -> list:
        """Every part's ``value`` of this call, in part order, once every part has given its own."""
        slots = self._slots[self._calls[part] % 2]
        self._calls[part] += 1
        slots[part] = value
        self._barrier.wait()
        return list(slots)

    def abort(self) -> None:
        """Wakes every part waiting in :meth:`gather` with threading.BrokenBarrierError (a part failed)."""
        self._barrier.abort()


class Seat:
    """One part's place at an :class:`Exchange`: what a block of that part's network holds while a step is split."""

    def __init__(self, exchange: Exchange, part: int) -> None:
        self.exchange, self.part = exchange, part

    def gather(self, value) -> list:
        return self.exchange.gather(self.part, value)


class Replicas:
    """The copies of ``network`` that run parts of its batches (``network`` itself runs the first part)."""

    def __init__(self, network, count: int) -> None:
        self.network = network
        self.copies = [type(network)(network.graph, network.backend, 0) for _ in range(count - 1)]
        for copy in self.copies:
            copy.split_batches = False
            for mine, theirs in zip(copy.parameters(), network.parameters(), strict=True):
                mine.value = theirs.value  # one set of weights: the optimizer's updates reach every copy
            for mine, theirs in zip(copy.layers, network.layers, strict=True):
                mine.state = theirs.state  # and one set of BatchNorm running statistics (read in evaluation)

    @property
    def networks(self) -> list:
        return [self.network, *self.copies]

    @staticmethod
    def parts(n: int, count: int) -> list[tuple[int, int]]:
        """(start, stop) of each of ``count`` near-equal parts of a batch of ``n``."""
        bounds = [n * i // count for i in range(count + 1)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def run(self, work, parts: list[tuple[int, int]]) -> list:
        """``work(network, start, stop)`` for each part, side by side; the results in order. Meanwhile each
        network's BatchNorm blocks hold their part's :class:`Seat` (``sync``); a part that fails aborts the exchange,
        so the others stop waiting for it."""
        exchange, failures = Exchange(len(parts)), []

        def job(part, net, lo, hi):
            try:
                return work(net, lo, hi)
            except threading.BrokenBarrierError:
                raise  # another part failed first
            except BaseException as error:
                failures.append(error)
                exchange.abort()
                raise

        networks = self.networks[:len(parts)]
        for part, net in enumerate(networks):
            for layer in net.layers:
                if layer.kind == "BatchNorm":
                    layer.sync = Seat(exchange, part)
        try:
            return self.network.backend.k.run_parts(
                [lambda p=p, net=net, lo=lo, hi=hi: job(p, net, lo, hi)
                 for p, (net, (lo, hi)) in enumerate(zip(networks, parts, strict=True))])
        except threading.BrokenBarrierError:
            if failures:
                raise failures[0] from None  # the cause, not a part that stopped waiting for it
            raise
        finally:
            for net in networks:
                for layer in net.layers:
                    if layer.kind == "BatchNorm":
                        layer.sync = None

    def forward(self, x: np.ndarray, parts: list, training: bool) -> list[np.ndarray]:
        return self.run(lambda net, lo, hi: net._forward(x[lo:hi], training), parts)

    def loss(self, targets: np.ndarray, parts: list, backward: bool) -> list[float]:
        """Each part's mean loss, its gradient times the part's share of the batch: the parts' gradients then add
        up to the whole batch's. (``backward`` is for engine.part_processes, whose parts run it ahead.)"""
        n = parts[-1][1]
        values = [net._loss(targets[lo:hi]) for net, (lo, hi) in zip(self.networks, parts, strict=False)]
        for net, (lo, hi) in zip(self.networks, parts, strict=False):
            np.multiply(net._loss_grad, np.float32((hi - lo) / n), out=net._loss_grad)
        return values

    def backward(self, grad: np.ndarray | None, parts: list, input_grad: bool) -> list[np.ndarray] | None:
        """Every part's dL/dx (None without ``input_grad``); the network's weight gradients += the copies'."""
        dxs = self.run(lambda net, lo, hi: net._backward(None if grad is None else grad[lo:hi], input_grad), parts)
        for i, p in enumerate(self.network.parameters()):
            for copy in self.copies[:len(parts) - 1]:
                np.add(p.grad, copy._parameters[i].grad, out=p.grad)
        return dxs if input_grad else None

    def reseed(self, seed: int, epoch: int, batch: int) -> None:
        """Dropout masks of copy k from np.random.default_rng([seed, epoch, batch, k])."""
        for k, copy in enumerate(self.copies, start=1):
            copy.use_rng(np.random.default_rng([seed, epoch, batch, k]))
