"""Data parallelism on the CPU: a batch split between copies of the network, one per core, each running every
block on its part single-threaded, side by side (blas_threads.run_parts).

Small images leave little for two cores to share inside one kernel: on two threads a LeNet-5 training step at batch
64 took 1.6× as long as one thread's step at batch 32 (VGG-small 1.5×, the seed CNN 1.25×). Copies share the weight
arrays; each has its own activations and gradients, summed into the network's after backward. Loss values and
gradients are those of the whole batch: each part's loss gradient is scaled by its share of the batch. Only blocks
that treat samples independently are split: BatchNorm does so in evaluation (running statistics, shared with the
copies) but not in training (batch statistics). The parts' Python still takes turns on the GIL, so a batch splits
only where each part has at least MIN_PART samples (measured on two cores: batch 128-256 trains 0-14 % faster and
infers 3-21 % faster; batch 64 infers 4-13 % faster).
"""
from __future__ import annotations

import numpy as np

# Samples per part below which a batch runs whole, by training: in parts of 32, training steps at batch 64 ran
# 0.93-1.01× as fast over the six small templates (backward's Python contends most), inference 1.04-1.13×.
MIN_PART = {True: 64, False: 32}


def splittable(network, training: bool) -> bool:
    """Whether ``network``'s blocks compute each sample alone (so parts of a batch give the batch's results) on
    kernels that run on any thread: no BatchNorm in training, and grouped convolutions only depthwise (the direct
    grouped loops use numba's parallel layer, which allows one thread at a time)."""
    for layer in network.layers:
        if layer.kind == "BatchNorm" and training:
            return False
        if layer.kind == "Conv2D" and layer.params["groups"] not in (1, layer.input_shapes[0][0]):
            return False
    return True


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
        """``work(network, start, stop)`` for each part, side by side; the results in order."""
        jobs = [lambda net=net, lo=lo, hi=hi: work(net, lo, hi)
                for net, (lo, hi) in zip(self.networks, parts, strict=False)]
        return self.network.backend.k.run_parts(jobs)

    def scale_loss_gradients(self, parts: list[tuple[int, int]]) -> None:
        """Each part's mean-loss gradient times its share of the batch: the parts' gradients then add up to the
        whole batch's."""
        n = parts[-1][1]
        for net, (lo, hi) in zip(self.networks, parts, strict=False):
            np.multiply(net._loss_grad, np.float32((hi - lo) / n), out=net._loss_grad)

    def sum_gradients(self, used: int) -> None:
        """The network's weight gradients += those of the first ``used - 1`` copies."""
        for i, p in enumerate(self.network.parameters()):
            for copy in self.copies[:used - 1]:
                np.add(p.grad, copy._parameters[i].grad, out=p.grad)

    def reseed(self, seed: int, epoch: int, batch: int) -> None:
        """Dropout masks of copy k from np.random.default_rng([seed, epoch, batch, k])."""
        for k, copy in enumerate(self.copies, start=1):
            copy.use_rng(np.random.default_rng([seed, epoch, batch, k]))
