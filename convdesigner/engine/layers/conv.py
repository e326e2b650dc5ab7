"""Conv2D: learned filters slid over the image, with stride, padding, dilation and channel groups."""
from __future__ import annotations

from ...graph.layers import conv_padding
from .base import Layer


class Conv2D(Layer):
    kind = "Conv2D"
    fused_relu = False  # set by the network: this conv also computes the ReLU after it (forward and backward)
    folded = None  # set by the network for an evaluation pass: the BatchNorm after this conv, folded into it

    def __init__(self, *args) -> None:
        super().__init__(*args)
        p = self.params
        self.geometry = (p["stride"], conv_padding(p, self.input_shapes[0][1:]), p["dilation"], p["groups"])

    def forward(self, xs, training):
        self._x = x = xs[0]
        bias = self.weights.get("bias")
        kernel, bias, relu = self.weights["kernel"].value, bias.value if bias else None, self.fused_relu
        if self.folded is not None:
            kernel, bias = self.folded.fold(kernel, bias)
            relu = self.folded.fused_relu
        self._y = self.k.conv2d_forward(x, kernel, bias, *self.geometry, out=self.out(x), relu=relu)
        return self._y

    def backward(self, dy, need):
        kernel, bias = self.weights["kernel"], self.weights.get("bias")
        dx, dw, db = self.k.conv2d_backward(self._x, kernel.value, dy, *self.geometry, need_dx=need[0],
                                                          dx_out=self.like(self._x, "dx") if need[0] else None,
                                                          relu_out=self._y if self.fused_relu else None)
        self.backend.write(kernel.grad, dw)
        if bias:
            self.backend.write(bias.grad, db)
        return [dx]
