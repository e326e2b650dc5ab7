"""BatchNorm: per-channel (images) or per-feature (vectors) normalisation with batch statistics while training and
running statistics in evaluation, PyTorch's momentum convention."""
from __future__ import annotations

import numpy as np

from .base import Layer, channels, flat


def combine_moments(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, mean, biased variance) of a batch from those of its parts (Chan et al.'s pairwise rule, float64:
    each part's spread about its own mean plus its mean's offset from the whole's, so nothing cancels)."""
    total = sum(n for n, _, _ in parts)
    mean = sum(n * np.float64(m) for n, m, _ in parts) / total
    var = sum(n * (np.float64(v) + (np.float64(m) - mean) ** 2) for n, m, v in parts) / total
    return total, mean, var


class BatchNorm(Layer):
    kind = "BatchNorm"
    fused_relu = False  # set by the network: this block also computes the ReLU after it (its output is not kept)
    sync = None  # while a training step is split between the cores, this part's replicas.Seat

    def __init__(self, *args) -> None:
        super().__init__(*args)
        c = self.input_shapes[0][0]
        self._mean, self._var, self._invstd = (self.backend.zeros((c,)) for _ in range(3))

    def init(self, rng):
        self.backend.fill(self.weights["gamma"].value, 1.0)
        self.backend.fill(self.state["running_var"], 1.0)

    def forward(self, xs, training):
        self._x = x = xs[0]
        x3 = channels(x)
        eps, running_mean, running_var = self.params["eps"], self.state["running_mean"], self.state["running_var"]
        if training:
            self.k.bn_stats(x3, self._mean, self._var)
            self._count = x3.shape[0] * x3.shape[2]
            if self.sync is not None:  # the whole batch's statistics from every part's
                self._count, self._mean[:], self._var[:] = combine_moments(
                    self.sync.gather((self._count, self._mean.copy(), self._var.copy())))
            if self.sync is None or self.sync.part == 0:  # the running statistics are shared: one part updates
                self.k.bn_update_running(running_mean, running_var, self._mean, self._var, self.params["momentum"],
                                         self._count, eps, self._invstd)
            else:
                self.k.bn_invstd(self._var, eps, self._invstd)
            self._used_mean = self._mean
        else:
            self.k.bn_invstd(running_var, eps, self._invstd)
            self._used_mean = running_mean
        self._batch_stats = training
        y = self.like(x, "y")
        args = (x3, self._used_mean, self._invstd, self.weights["gamma"].value, self.weights["beta"].value,
                channels(y))
        if self.fused_relu and hasattr(self.k, "bn_normalize_relu"):  # one pass where the backend has the kernel
            self.k.bn_normalize_relu(*args)
        else:
            self.k.bn_normalize(*args)
            if self.fused_relu:
                self.k.relu_forward(flat(y), flat(y))
        self._y = y
        return y

    def fold(self, kernel, bias):
        """(kernel, bias) of the conv before this block with the evaluation-mode normalisation folded in: scale
        gamma/sqrt(running_var + eps) per filter, shift beta + (bias - running_mean)·scale (host arrays: the CPU)."""
        self.k.bn_invstd(self.state["running_var"], self.params["eps"], self._invstd)
        scale = self.weights["gamma"].value * self._invstd
        shift = self.weights["beta"].value - self.state["running_mean"] * scale
        if bias is not None:
            shift += bias * scale
        return kernel * scale.reshape(-1, 1, 1, 1), shift

    def backward(self, dy, need):
        gamma, beta = self.weights["gamma"], self.weights["beta"]
        if self.sync is not None and self._batch_stats:
            return [self._synced_backward(dy)]
        if self.fused_relu and hasattr(self.k, "bn_backward_relu"):
            dx = self.like(dy, "dx")
            self.k.bn_backward_relu(channels(self._x), channels(dy), channels(self._y), self._used_mean,
                                    self._invstd, gamma.value, self._batch_stats, channels(dx), gamma.grad, beta.grad)
            return [dx]
        if self.fused_relu:
            gated = self.like(dy, "dx_gated")
            self.k.relu_backward(flat(self._y), flat(dy), flat(gated))
            dy = gated
        dx = self.like(dy, "dx")
        self.k.bn_backward(channels(self._x), channels(dy), self._used_mean, self._invstd, gamma.value,
                           self._batch_stats, channels(dx), gamma.grad, beta.grad)
        if self.fused_relu and self.gradients is not None:
            self.gradients.hold(dy)
            self.gradients.drop(dy)  # the gated gradient was read for the last time
        return [dx]

    def _synced_backward(self, dy):
        """dx of this part of a split batch: dx needs the sums of dy and dy·xhat over the whole batch, which are
        dbeta and dgamma; each part keeps its own share of those as its gradients (the copies' are summed later)."""
        x3, y3 = channels(self._x), channels(self._y if self.fused_relu else dy)
        gamma, beta = self.weights["gamma"], self.weights["beta"]
        self.k.bn_backward_sums(x3, channels(dy), y3, self.fused_relu, self._used_mean, self._invstd, gamma.grad,
                                beta.grad)
        shares = self.sync.gather((gamma.grad.copy(), beta.grad.copy()))
        dgamma, dbeta = (np.sum([share[i] for share in shares], axis=0, dtype=np.float32) for i in (0, 1))
        dx = self.like(dy, "dx")
        self.k.bn_backward_dx(x3, channels(dy), y3, self.fused_relu, self._used_mean, self._invstd, gamma.value,
                              dgamma, dbeta, self._count, channels(dx))
        return dx
