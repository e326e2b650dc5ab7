"""Dropout: inverted, so evaluation is the identity; the mask comes from the network's reseedable generator."""
from __future__ import annotations

from .base import Layer, flat


class Dropout(Layer):
    kind = "Dropout"
    uses_rng = True
    rng = None  # set by Network.reseed

    def forward(self, xs, training):
        x = xs[0]
        self._active = training and self.params["rate"] > 0.0
        if not self._active:
            return x
        self._mask = mask = self.like(x, "mask")
        y = self.like(x, "y")
        self.k.uniform(self.rng, flat(mask))
        self.k.dropout_forward(flat(x), flat(mask), self.params["rate"], flat(y))
        return y

    def backward(self, dy, need):
        if not self._active:
            return [dy]
        dx = self.like(dy, "dx")
        self.k.dropout_backward(flat(self._mask), flat(dy), flat(dx))
        return [dx]
