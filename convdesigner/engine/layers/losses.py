"""Output heads. In the network a head passes its input through (the logits); ``loss`` takes the mean loss against
targets and keeps dL/dlogits for backward; ``proba`` turns outputs (on the host or the device) into what a user
reads (probabilities), a fresh numpy array."""
from __future__ import annotations

import numpy as np

from ...graph.layers import fmt
from .base import Layer, channels, flat


class _Head(Layer):
    def forward(self, xs, training):
        return xs[0]

    def backward(self, dy, need):
        return [dy]

    def _float_targets(self, y, targets):
        t = np.ascontiguousarray(targets, dtype=np.float32)
        if t.shape != y.shape:
            raise ValueError(f"{self.kind} '{self.name}' needs float targets of shape {fmt(y.shape)} (one row per "
                             f"sample) but got {fmt(t.shape)}")
        return t


class SoftmaxCrossEntropy(_Head):
    kind = "SoftmaxCrossEntropy"

    def loss(self, y, targets):
        labels = np.asarray(targets)
        classes = y.shape[1]
        if labels.shape != (y.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{self.kind} '{self.name}' needs one integer class label per sample, shape "
                             f"({y.shape[0]},), but got {labels.dtype} of shape {fmt(labels.shape)}")
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"{self.kind} '{self.name}': labels must lie in 0..{classes - 1} for {classes} classes, "
                             f"found {labels.min()}..{labels.max()}; give the last Dense units = number of classes")
        self.grad = self.like(y, "grad")
        return float(self.k.softmax_cross_entropy(y, labels.astype(np.int64, copy=False),
                                                  self.params["label_smoothing"], self.grad))

    def proba(self, y):
        y = self.backend.upload(y, "proba")
        p = self.backend.empty(y.shape)
        self.k.softmax_forward(channels(y), channels(p))
        return self.backend.host(p)


class SigmoidBCE(_Head):
    kind = "SigmoidBCE"

    def loss(self, y, targets):
        self.grad = self.like(y, "grad")
        return float(self.k.sigmoid_bce(flat(y), flat(self._float_targets(y, targets)), flat(self.grad)))

    def proba(self, y):
        y = self.backend.upload(y, "proba")
        p = self.backend.empty(y.shape)
        self.k.sigmoid_forward(flat(y), flat(p))
        return self.backend.host(p)


class MSE(_Head):
    kind = "MSE"

    def loss(self, y, targets):
        self.grad = self.like(y, "grad")
        return float(self.k.mean_squared_error(flat(y), flat(self._float_targets(y, targets)), flat(self.grad)))

    def proba(self, y):
        return self.backend.to_host(self.backend.upload(y, "proba"))
