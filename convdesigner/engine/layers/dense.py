"""Dense: the fully connected layer, y = x·Wᵀ + b."""
from __future__ import annotations

from .base import Layer


class Dense(Layer):
    kind = "Dense"

    def forward(self, xs, training):
        self._x = x = xs[0]
        y = self.out(x)
        bias = self.weights.get("bias")
        self.k.dense_forward(x, self.weights["kernel"].value, bias.value if bias else None, y)
        return y

    def backward(self, dy, need):
        kernel, bias = self.weights["kernel"], self.weights.get("bias")
        dx = self.like(self._x, "dx") if need[0] else None
        self.k.dense_backward(self._x, kernel.value, dy, dx, kernel.grad, bias.grad if bias else None)
        return [dx]
