"""BatchNorm: per-channel (images) or per-feature (vectors) normalisation with batch statistics while training and
running statistics in evaluation, PyTorch's momentum convention."""
from __future__ import annotations

from .base import Layer, channels, flat


class BatchNorm(Layer):
    kind = "BatchNorm"
    fused_relu = False  # set by the network: this block also computes the ReLU after it (its output is not kept)

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
            self.k.bn_update_running(running_mean, running_var, self._mean, self._var, self.params["momentum"],
                                     x3.shape[0] * x3.shape[2], eps, self._invstd)
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
