"""Activation layers: element-wise functions (PReLU with a learned slope per channel, Softmax over channels)."""
from __future__ import annotations

from .base import Layer, channels, flat


class ReLU(Layer):
    kind = "ReLU"

    def forward(self, xs, training):
        self._y = y = self.like(xs[0], "y")
        self.k.relu_forward(flat(xs[0]), flat(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        self.k.relu_backward(flat(self._y), flat(dy), flat(dx))
        return [dx]


class LeakyReLU(Layer):
    kind = "LeakyReLU"

    def forward(self, xs, training):
        self._x = x = xs[0]
        y = self.like(x, "y")
        self.k.leaky_relu_forward(flat(x), self.params["alpha"], flat(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        self.k.leaky_relu_backward(flat(self._x), flat(dy), self.params["alpha"], flat(dx))
        return [dx]


class PReLU(Layer):
    kind = "PReLU"

    def init(self, rng):
        self.backend.fill(self.weights["slope"].value, 0.25)

    def forward(self, xs, training):
        self._x = x = xs[0]
        y = self.like(x, "y")
        self.k.prelu_forward(channels(x), self.weights["slope"].value, channels(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        slope = self.weights["slope"]
        self.k.prelu_backward(channels(self._x), slope.value, channels(dy), channels(dx), slope.grad)
        return [dx]


class ELU(Layer):
    kind = "ELU"

    def forward(self, xs, training):
        self._x = x = xs[0]
        self._y = y = self.like(x, "y")
        self.k.elu_forward(flat(x), self.params["alpha"], flat(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        self.k.elu_backward(flat(self._x), flat(self._y), flat(dy), self.params["alpha"], flat(dx))
        return [dx]


class SiLU(Layer):
    kind = "SiLU"

    def forward(self, xs, training):
        self._x = x = xs[0]
        y = self.like(x, "y")
        self.k.silu_forward(flat(x), flat(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        self.k.silu_backward(flat(self._x), flat(dy), flat(dx))
        return [dx]


class Sigmoid(Layer):
    kind = "Sigmoid"

    def forward(self, xs, training):
        self._y = y = self.like(xs[0], "y")
        self.k.sigmoid_forward(flat(xs[0]), flat(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        self.k.sigmoid_backward(flat(self._y), flat(dy), flat(dx))
        return [dx]


class Tanh(Layer):
    kind = "Tanh"

    def forward(self, xs, training):
        self._y = y = self.like(xs[0], "y")
        self.k.tanh_forward(flat(xs[0]), flat(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        self.k.tanh_backward(flat(self._y), flat(dy), flat(dx))
        return [dx]


class Softmax(Layer):
    kind = "Softmax"

    def forward(self, xs, training):
        self._y = y = self.like(xs[0], "y")
        self.k.softmax_forward(channels(xs[0]), channels(y))
        return y

    def backward(self, dy, need):
        dx = self.like(dy, "dx")
        self.k.softmax_backward(channels(self._y), channels(dy), channels(dx))
        return [dx]
