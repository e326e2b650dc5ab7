"""Input gradients share the network's pool of buffers: the same numbers as buffers kept per block, in less memory."""
import numpy as np
import pytest

from convdesigner.engine import compile
from convdesigner.engine.backend import cpu_backend
from convdesigner.engine.grad_pool import GradientPool
from convdesigner.graph.templates import build


def step(net, seed=0):
    x = np.random.default_rng(seed).standard_normal((2, *net.input_shape), dtype=np.float32)
    net.forward(x, training=True)
    net.loss(np.array([1, 3]))
    dx = net.backward()
    return [dx] + [p.grad.copy() for p in net.parameters()]


def without_pool(net):
    net._pool = None
    for layer in net.layers:
        layer.gradients = None
    return net


@pytest.mark.parametrize("template", ["resnet-small", "densenet-small"])
def test_pooled_gradients_equal_gradients_in_buffers_of_their_own(template):
    """Residual Adds (one gradient handed to two blocks), dense Concats (gradients summed from many consumers),
    Flatten's views and fused ReLUs all read gradients that the pool must not hand out again while they live."""
    pooled, kept = compile(build(template), seed=3), without_pool(compile(build(template), seed=3))
    for _ in range(2):  # the second step reuses the first one's buffers
        for a, b in zip(step(pooled), step(kept), strict=True):
            np.testing.assert_array_equal(a, b)
    per_block = sum(a.nbytes for layer in kept.layers for (tag, _), a in layer._buffers.items()
                    if tag.startswith("dx")) + sum(a.nbytes for a in kept._accumulators.values())
    assert pooled._pool.nbytes < 0.6 * per_block


def test_a_buffer_is_not_handed_out_while_a_view_of_it_lives():
    pool = GradientPool(cpu_backend())
    a = pool.take((2, 3, 4))
    view = a.reshape(2, 12)  # what Flatten's backward passes on
    pool.hold(a)
    pool.hold(view)
    pool.drop(a)
    assert not np.shares_memory(pool.take((24,)), a)
    pool.drop(view)
    again = pool.take((4, 6))
    assert np.shares_memory(again, a) and again.shape == (4, 6)
    pool.reset()  # a new backward pass: both buffers made so far are free, so nothing new is made
    made = pool.nbytes
    pool.take((24,))
    pool.take((2, 12))
    assert pool.nbytes == made == 2 * 24 * 4


def _seed_cnn_pass(pool):
    """The requests of a seed CNN's backward pass: tiny gradients first, then each block's dy read while its dx,
    of another size, is written (sizes in floats)."""
    pool.reset()
    pending = None
    for size in (8, 8, 8, 128, 512, 256, 1024):
        dx = pool.take((size,))
        pool.hold(dx)
        pool.drop(pending)
        pending = dx
    return pool.buffers()


def test_each_pass_reuses_the_buffers_of_the_last_and_grows_none_beside_a_free_one():
    pool = GradientPool(cpu_backend())
    first = _seed_cnn_pass(pool)
    assert pool.nbytes == (256 + 1024) * 4  # the largest dy and dx live together; the smaller ones grew into them
    for _ in range(3):
        assert _seed_cnn_pass(pool) == first
    pool.reset()  # a pass that goes another way (a larger batch) still gets buffers that fit, none shared
    got = [pool.take((size,)) for size in (2048, 8, 1024)]
    assert [a.size for a in got] == [2048, 8, 1024]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(got) for b in got[i + 1:])
