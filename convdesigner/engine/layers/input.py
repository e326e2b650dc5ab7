"""Input: where images enter; checks the batch's shape so a wrong dataset fails with a clear message."""
from __future__ import annotations

import numpy as np

from ...graph.layers import ShapeError, fmt
from .base import Layer


class Input(Layer):
    kind = "Input"

    def forward(self, xs, training):
        shape = np.shape(xs[0])
        if len(shape) != 4 or tuple(shape[1:]) != self.output_shape:
            shape = fmt(self.output_shape)
            raise ShapeError(f"the network takes batches of {shape} images (N×{shape}) but was given an array of "
                             f"{fmt(shape)}; resize the data or edit the Input block")
        return self.backend.upload(xs[0], "input")

    def backward(self, dy, need):
        return []
