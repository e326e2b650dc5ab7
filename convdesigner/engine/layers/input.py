"""Input: where images enter; checks the batch's shape so a wrong dataset fails with a clear message."""
from __future__ import annotations

import numpy as np

from ...graph.layers import ShapeError, fmt
from .base import Layer


class Input(Layer):
    kind = "Input"

    def forward(self, xs, training):
        x = np.asarray(xs[0])
        if x.ndim != 4 or tuple(x.shape[1:]) != self.output_shape:
            shape = fmt(self.output_shape)
            raise ShapeError(f"the network takes batches of {shape} images (N×{shape}) but was given an array of "
                             f"{fmt(x.shape)}; resize the data or edit the Input block")
        return np.ascontiguousarray(x, dtype=np.float32)

    def backward(self, dy, need):
        return []
