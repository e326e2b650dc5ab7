"""Flatten: C×H×W to a flat vector for Dense layers — a view both ways, never a copy."""
from __future__ import annotations

from .base import Layer


class Flatten(Layer):
    kind = "Flatten"

    def forward(self, xs, training):
        x = xs[0]
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need):
        return [dy.reshape((dy.shape[0],) + self.input_shapes[0])]
