"""Kernels with a serial and a multi-threaded path (engine/cpu/parallel.py) give the same numbers on both: the
networks below run their element-wise, pooling, BatchNorm and merge kernels once serial and once multi-threaded."""
import numpy as np
import pytest

from convdesigner.engine import compile
from convdesigner.engine.cpu import parallel
from convdesigner.graph.templates import build


def _step(key):
    net = compile(build(key), seed=0)
    x = np.random.default_rng(1).normal(size=(3,) + net.input_shape).astype(np.float32)
    y = net.forward(x, training=True)
    net.loss(np.array([1, 4, 9]))
    dx = net.backward()
    return [y, dx] + [p.grad.copy() for p in net.parameters()]


@pytest.mark.parametrize("key", ["seed-cnn", "resnet-small", "efficientnet-small", "densenet-small"])
def test_parallel_and_serial_kernels_agree(key, monkeypatch):
    serial = _step(key)
    monkeypatch.setattr(parallel, "EVERY_SIZE", True)
    for a, b in zip(serial, _step(key), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
