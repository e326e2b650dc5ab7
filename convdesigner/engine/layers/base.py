"""What every layer class shares: its learnable arrays (Parameters), its state arrays and its cached buffers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...graph.layers import KINDS, Shape


@dataclass(eq=False)
class Parameter:
    """A learnable array; optimizers update ``value`` in place from ``grad``. ``decay``: weight decay applies."""

    block: str
    name: str
    value: np.ndarray
    grad: np.ndarray
    decay: bool

    def __repr__(self) -> str:
        return f"Parameter({self.block}/{self.name}, {'×'.join(map(str, self.value.shape))})"


class Layer:
    """One block of a compiled network. ``forward(xs, training)`` takes the list of input batches and returns the
    output batch; ``backward(dy, need)`` returns one gradient per input (None where ``need`` says it is not wanted)
    and overwrites the grads of its Parameters. Outputs live in buffers reused for every batch of the same size."""

    kind = ""
    uses_rng = False  # Dropout: the network hands it the shared, reseedable generator
    gradients = None  # the network's GradientPool, where its ``dx`` buffers come from (None: kept per layer)

    def __init__(self, name: str, params: dict, input_shapes: list[Shape], output_shape: Shape, backend) -> None:
        self.name, self.params = name, params
        self.input_shapes, self.output_shape = input_shapes, output_shape
        self.backend, self.k = backend, backend.k
        spec = KINDS[self.kind]
        self.weights = {n: Parameter(name, n, backend.zeros(s), backend.zeros(s), decay=n == "kernel")
                        for n, s in spec.weight_shapes(params, input_shapes).items()}
        self.state = {n: backend.zeros(s) for n, s in spec.state_shapes(params, input_shapes).items()}
        self._buffers: dict[tuple, np.ndarray] = {}

    def init(self, rng: np.random.Generator) -> None:
        """Initial values: weights He-normal over their fan-in, biases zero (layers with other rules override)."""
        if "kernel" in self.weights:
            kernel = self.weights["kernel"].value
            w = np.empty(kernel.shape, np.float32)
            rng.standard_normal(out=w, dtype=np.float32)
            w *= np.float32(np.sqrt(2.0 / int(np.prod(w.shape[1:]))))
            self.backend.write(kernel, w)

    def buffer(self, tag: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A scratch array kept for the next batch of the same shape (allocated once per batch size); input gradients
        (tags "dx…") come from the network's pool instead, free again once their consumer has read them."""
        if self.gradients is not None and tag.startswith("dx") and dtype == np.float32:
            return self.gradients.take(shape)
        key = (tag, shape)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = self.backend.empty(shape, dtype)
        return buf

    def out(self, x: np.ndarray, tag: str = "y", dtype=np.float32) -> np.ndarray:
        """The output buffer for a batch of ``x``'s size."""
        return self.buffer(tag, (x.shape[0],) + self.output_shape, dtype)

    def like(self, x: np.ndarray, tag: str) -> np.ndarray:
        return self.buffer(tag, x.shape)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}('{self.name}'{', ' + shown if shown else ''})"


def flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view (a copy only if ``a`` is not contiguous) for the element-wise kernels."""
    return a.reshape(-1)


def channels(a: np.ndarray) -> np.ndarray:
    """An (N, C, L) view: images fold height and width into L, flat (N, F) vectors get L = 1."""
    return a.reshape(a.shape[0], a.shape[1], -1)
