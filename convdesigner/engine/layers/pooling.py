"""Pooling layers: max and average over k×k windows (padding, ceil mode), and the global average to C×1×1."""
from __future__ import annotations

import numpy as np

from .base import Layer, channels


class _WindowPool(Layer):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        p = self.params
        self.window = (p["pool_size"], p["stride"] or p["pool_size"], p["padding"])
        self.in_hw = self.input_shapes[0][1:]
        self.out_hw = self.output_shape[1:]


class MaxPool2D(_WindowPool):
    kind = "MaxPool2D"

    def forward(self, xs, training):
        x = xs[0]
        y, self._argmax = self.k.maxpool2d_forward(x, *self.window, *self.out_hw, out=self.out(x),
                                                   argmax_out=self.out(x, "argmax", np.int32))
        return y

    def backward(self, dy, need):
        if not need[0]:
            return [None]
        dx = self.buffer("dx", (dy.shape[0],) + self.input_shapes[0])
        return [self.k.maxpool2d_backward(dy, self._argmax, *self.window, *self.in_hw, dx_out=dx)]


class AvgPool2D(_WindowPool):
    kind = "AvgPool2D"

    def forward(self, xs, training):
        return self.k.avgpool2d_forward(xs[0], *self.window, *self.out_hw, out=self.out(xs[0]))

    def backward(self, dy, need):
        if not need[0]:
            return [None]
        dx = self.buffer("dx", (dy.shape[0],) + self.input_shapes[0])
        return [self.k.avgpool2d_backward(dy, *self.window, *self.in_hw, dx_out=dx)]


class GlobalAvgPool2D(Layer):
    kind = "GlobalAvgPool2D"

    def forward(self, xs, training):
        x = xs[0]
        y = self.out(x)
        self.k.gap_forward(channels(x), y.reshape(y.shape[0], -1))
        return y

    def backward(self, dy, need):
        if not need[0]:
            return [None]
        dx = self.buffer("dx", (dy.shape[0],) + self.input_shapes[0])
        self.k.gap_backward(dy.reshape(dy.shape[0], -1), channels(dx))
        return [dx]
