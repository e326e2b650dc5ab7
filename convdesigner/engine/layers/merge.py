"""Blocks that join branches: Add (2+ inputs), Concat (channel axis, 2+ inputs) and Multiply (equal shapes, or a
C×1×1 / C gate broadcast over a C×H×W input as in squeeze-excitation)."""
from __future__ import annotations

from .base import Layer, channels


class Add(Layer):
    kind = "Add"

    def forward(self, xs, training):
        y = self.out(xs[0])
        self.k.add_forward(xs, y)
        return y

    def backward(self, dy, need):
        return [dy if wanted else None for wanted in need]


class Concat(Layer):
    kind = "Concat"

    def forward(self, xs, training):
        y = self.out(xs[0])
        self.k.concat_forward(xs, y)
        return y

    def backward(self, dy, need):
        n = dy.shape[0]
        dxs = [self.buffer(f"dx{i}", (n,) + s) if wanted else None
               for i, (s, wanted) in enumerate(zip(self.input_shapes, need, strict=True))]
        self.k.concat_backward(dy, [s[0] for s in self.input_shapes], dxs)
        return dxs


class Multiply(Layer):
    kind = "Multiply"

    def __init__(self, *args) -> None:
        super().__init__(*args)
        a, b = self.input_shapes
        self.gate = None if a == b else (1 if a == self.output_shape else 0)  # index of the gate input

    def forward(self, xs, training):
        self._xs = xs
        y = self.out(xs[0])
        if self.gate is None:
            self.k.multiply_forward(xs[0], xs[1], y)
        else:
            x, g = xs[1 - self.gate], xs[self.gate]
            self.k.gate_forward(channels(x), g.reshape(g.shape[0], -1), channels(y))
        return y

    def backward(self, dy, need):
        n = dy.shape[0]
        grads = [self.buffer(f"dx{i}", (n,) + s) for i, s in enumerate(self.input_shapes)]
        wanted = [g if w else None for g, w in zip(grads, need, strict=True)]
        if self.gate is None:
            self.k.multiply_backward(*self._xs, dy, *wanted)
        else:
            big = 1 - self.gate
            x, g = self._xs[big], self._xs[self.gate]
            self.k.gate_backward(channels(x), g.reshape(n, -1), channels(dy), need[big], need[self.gate],
                                 channels(grads[big]), grads[self.gate].reshape(n, -1))
        return wanted
