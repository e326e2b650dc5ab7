"""Every layer kind's backward against central finite differences, plus worked examples for the numbers that matter
(the Sobel edge map, pooling windows, BatchNorm statistics, dropout masks, loss values)."""
import math

import numpy as np
import pytest

from convdesigner.engine.layers import LAYER_CLASSES
from convdesigner.graph.layers import KINDS

from .conftest import away_from_zero, check_layer_gradients, distinct, make_layer

N = 2


def normal(rng, shape):
    return rng.normal(size=shape).astype(np.float32)


# kind, per-sample input shapes, params, input maker
CASES = {
    "conv-valid": ("Conv2D", [(2, 5, 5)], dict(filters=3, padding="valid"), normal),
    "conv-stride2": ("Conv2D", [(2, 7, 7)], dict(filters=3, stride=2, padding="valid"), normal),
    "conv-dilation2": ("Conv2D", [(2, 7, 7)], dict(filters=2, dilation=2, padding="same"), normal),
    "conv-groups2": ("Conv2D", [(4, 5, 5)], dict(filters=4, groups=2, padding="same"), normal),
    "conv-depthwise": ("Conv2D", [(3, 5, 5)], dict(filters=6, groups=3, padding="same", bias=False), normal),
    "conv-same-stride2": ("Conv2D", [(2, 6, 6)], dict(filters=2, stride=2, padding="same"), normal),
    "conv-explicit": ("Conv2D", [(2, 4, 5)], dict(filters=2, kernel_h=2, kernel_w=3, padding="explicit",
                                                  pad_h=1, pad_w=2), normal),
    "maxpool": ("MaxPool2D", [(2, 4, 4)], dict(pool_size=2), distinct),
    "maxpool-pad-ceil": ("MaxPool2D", [(2, 5, 5)], dict(pool_size=3, stride=2, padding=1, ceil_mode=True), distinct),
    "avgpool": ("AvgPool2D", [(2, 4, 4)], dict(pool_size=2), normal),
    "avgpool-pad-ceil": ("AvgPool2D", [(2, 5, 5)], dict(pool_size=3, stride=2, padding=1, ceil_mode=True), normal),
    "gap": ("GlobalAvgPool2D", [(3, 3, 4)], {}, normal),
    "flatten": ("Flatten", [(2, 3, 3)], {}, normal),
    "dense": ("Dense", [(6,)], dict(units=4), normal),
    "dense-nobias": ("Dense", [(5,)], dict(units=3, bias=False), normal),
    "relu": ("ReLU", [(2, 3, 3)], {}, away_from_zero),
    "leakyrelu": ("LeakyReLU", [(2, 3, 3)], dict(alpha=0.2), away_from_zero),
    "prelu": ("PReLU", [(3, 2, 3)], {}, away_from_zero),
    "prelu-flat": ("PReLU", [(5,)], {}, away_from_zero),
    "elu": ("ELU", [(2, 3, 3)], dict(alpha=0.5), away_from_zero),
    "silu": ("SiLU", [(2, 3, 3)], {}, normal),
    "sigmoid": ("Sigmoid", [(2, 3, 3)], {}, normal),
    "tanh": ("Tanh", [(2, 3, 3)], {}, normal),
    "softmax": ("Softmax", [(4, 2, 2)], {}, normal),
    "softmax-flat": ("Softmax", [(5,)], {}, normal),
    "dropout": ("Dropout", [(2, 3, 3)], dict(rate=0.4), normal),
    "batchnorm-2d": ("BatchNorm", [(3, 3, 3)], {}, normal),
    "batchnorm-1d": ("BatchNorm", [(4,)], {}, normal),
    "add": ("Add", [(2, 3, 3)] * 3, {}, normal),
    "concat": ("Concat", [(1, 3, 3), (2, 3, 3), (1, 3, 3)], {}, normal),
    "concat-flat": ("Concat", [(3,), (2,)], {}, normal),
    "multiply": ("Multiply", [(2, 3, 3), (2, 3, 3)], {}, normal),
    "multiply-gate": ("Multiply", [(3, 2, 3), (3, 1, 1)], {}, normal),
    "multiply-gate-first": ("Multiply", [(3,), (3, 2, 2)], {}, normal),
}
HEADS = {"SoftmaxCrossEntropy", "SigmoidBCE", "MSE"}


def test_every_catalogue_kind_has_a_layer_and_a_gradient_case():
    assert set(LAYER_CLASSES) == set(KINDS)
    covered = {kind for kind, *_ in CASES.values()} | HEADS | {"Input"}
    assert covered == set(KINDS)


@pytest.mark.parametrize("case", list(CASES))
def test_backward_matches_finite_differences(case, rng):
    kind, shapes, params, maker = CASES[case]
    layer = make_layer(kind, shapes, **params)
    for p in layer.weights.values():  # non-trivial weights: gamma ≠ 1, slopes ≠ 0.25, biases ≠ 0
        p.value[...] = rng.uniform(0.5, 1.5, p.value.shape) * rng.choice([-1, 1], p.value.shape)
    n = 4 if kind == "BatchNorm" else N  # batch statistics of 2 samples leave almost no gradient to compare
    xs = [maker(rng, (n,) + s) for s in shapes]
    check_layer_gradients(layer, xs)


def test_same_padding_with_stride_2_is_asymmetric_like_tensorflow():
    layer = make_layer("Conv2D", [(1, 6, 6)], filters=1, stride=2, padding="same")
    assert layer.geometry[1] == (0, 1, 0, 1)
    assert layer.output_shape == (1, 3, 3)


def test_conv_output_matches_a_direct_sum(rng):
    """A dilated, grouped, strided conv with asymmetric padding against the textbook definition."""
    layer = make_layer("Conv2D", [(4, 7, 6)], filters=4, kernel_h=3, kernel_w=2, stride=2, dilation=2, groups=2,
                       padding="same")
    x = normal(rng, (2, 4, 7, 6))
    w, b = layer.weights["kernel"].value, layer.weights["bias"].value
    b[...] = rng.normal(size=b.shape)
    top, bottom, left, right = layer.geometry[1]
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    y = layer.forward([x], True)
    _, f, oh, ow = y.shape
    expect = np.zeros(y.shape)
    for o in range(f):
        g = o // 2
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, 2 * g:2 * g + 2, 2 * i:2 * i + 5:2, 2 * j:2 * j + 3:2]
                expect[:, o, i, j] = (patch * w[o]).sum((1, 2, 3)) + b[o]
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)


def test_sobel_vertical_edge_worked_example():
    """DESIGN.md's example: a 6×6 image dark on the left, bright on the right, a 3×3 vertical-edge filter."""
    image = np.zeros((1, 1, 6, 6), np.float32)
    image[..., 3:] = 255.0
    layer = make_layer("Conv2D", [(1, 6, 6)], filters=1, padding="valid", bias=False)
    layer.weights["kernel"].value[0, 0] = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    y = layer.forward([image], False) / 255.0
    assert y.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(y[0, 0], np.tile([0.0, -4.0, -4.0, 0.0], (4, 1)))


def test_maxpool_padding_is_never_the_maximum_and_ceil_mode_adds_a_window():
    x = -np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)  # all negative: zero padding would win
    layer = make_layer("MaxPool2D", [(1, 5, 5)], pool_size=2, stride=2, padding=1, ceil_mode=True)
    y = layer.forward([x], False)
    assert y.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(y[0, 0], [[-1, -2, -4], [-6, -7, -9], [-16, -17, -19]])


def test_avgpool_counts_padding_as_zeros():
    x = np.ones((1, 1, 4, 4), np.float32)
    y = make_layer("AvgPool2D", [(1, 4, 4)], pool_size=3, stride=3, padding=1).forward([x], False)
    np.testing.assert_allclose(y[0, 0], [[4 / 9, 4 / 9], [4 / 9, 4 / 9]])


def test_global_average_pool_gives_c_by_1_by_1():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    y = make_layer("GlobalAvgPool2D", [(3, 2, 2)]).forward([x], False)
    assert y.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(y[..., 0, 0], x.mean((2, 3)))


def test_flatten_is_a_view_both_ways():
    layer = make_layer("Flatten", [(2, 3, 3)])
    x = np.zeros((2, 2, 3, 3), np.float32)
    y = layer.forward([x], True)
    assert y.shape == (2, 18) and np.shares_memory(x, y)
    dy = np.ones((2, 18), np.float32)
    assert np.shares_memory(layer.backward(dy, (True,))[0], dy)


def test_batchnorm_training_uses_batch_statistics_and_updates_running_ones(rng):
    layer = make_layer("BatchNorm", [(3, 2, 2)], momentum=0.1)
    x = (rng.normal(size=(4, 3, 2, 2)) * 3 + 5).astype(np.float32)
    y = layer.forward([x], True)
    np.testing.assert_allclose(y.mean((0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var((0, 2, 3)), 1, rtol=1e-3)
    np.testing.assert_allclose(layer.state["running_mean"], 0.1 * x.mean((0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(layer.state["running_var"], 0.9 + 0.1 * x.var((0, 2, 3), ddof=1), rtol=1e-5)


def test_batchnorm_evaluation_uses_running_statistics(rng):
    layer = make_layer("BatchNorm", [(2,)], eps=1e-5)
    layer.state["running_mean"][...] = [1.0, -2.0]
    layer.state["running_var"][...] = [4.0, 0.25]
    layer.weights["gamma"].value[...] = [2.0, 1.0]
    layer.weights["beta"].value[...] = [0.5, 0.0]
    x = np.array([[3.0, -1.0], [1.0, -2.0]], np.float32)
    y = layer.forward([x], False)
    expect = (x - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5) * [2.0, 1.0] + [0.5, 0.0]
    np.testing.assert_allclose(y, expect, rtol=1e-6)
    np.testing.assert_array_equal(layer.state["running_mean"], [1.0, -2.0])  # evaluation leaves them alone
    check_layer_gradients(layer, [x + np.float32(0.5)], training=False)


def test_dropout_is_inverted_deterministic_per_seed_and_identity_in_evaluation():
    layer = make_layer("Dropout", [(1000,)], rate=0.25)
    x = np.ones((4, 1000), np.float32)
    layer.rng = np.random.default_rng([3, 1])
    a = layer.forward([x], True).copy()
    layer.rng = np.random.default_rng([3, 1])
    b = layer.forward([x], True).copy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.02
    layer.rng = np.random.default_rng([3, 2])
    assert not np.array_equal(layer.forward([x], True), a)
    assert layer.forward([x], False) is x


def test_multiply_gate_gradient_sums_the_broadcast_positions():
    layer = make_layer("Multiply", [(2, 2, 2), (2, 1, 1)])
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    g = np.array([[[[2.0]], [[3.0]]]], np.float32)
    np.testing.assert_array_equal(layer.forward([x, g], True), x * g)
    dx, dg = layer.backward(np.ones((1, 2, 2, 2), np.float32), (True, True))
    np.testing.assert_array_equal(dg.ravel(), [0 + 1 + 2 + 3, 4 + 5 + 6 + 7])
    np.testing.assert_array_equal(dx, np.broadcast_to(g, x.shape))


# ------------------------------------------------------------------------------------------------- loss heads

def _head(kind, k, **params):
    return make_layer(kind, [(k,)], **params)


def test_softmax_cross_entropy_value_and_gradient_by_hand():
    head = _head("SoftmaxCrossEntropy", 3)
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    loss = head.loss(logits, np.array([2, 0]))
    p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert loss == pytest.approx((-math.log(p[2]) + math.log(3)) / 2, rel=1e-6)
    np.testing.assert_allclose(head.grad, [(p - [0, 0, 1]) / 2, (np.full(3, 1 / 3) - [1, 0, 0]) / 2], rtol=1e-5)


def test_label_smoothing_spreads_the_target():
    head = _head("SoftmaxCrossEntropy", 4, label_smoothing=0.2)
    logits = np.array([[0.5, -1.0, 2.0, 0.0]], np.float32)
    logp = logits[0] - np.log(np.exp(logits[0].astype(np.float64)).sum())
    target = np.full(4, 0.05) + 0.8 * np.eye(4)[2]
    assert head.loss(logits, np.array([2])) == pytest.approx(-(target * logp).sum(), rel=1e-6)
    np.testing.assert_allclose(head.grad[0], np.exp(logp) - target, rtol=1e-5, atol=1e-7)


def test_cross_entropy_does_not_overflow_at_huge_logits():
    head = _head("SoftmaxCrossEntropy", 3)
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 0.0]], np.float32)
    loss = head.loss(logits, np.array([0, 2]))
    assert loss == pytest.approx((0.0 + 1e4 + math.log(2)) / 2)
    assert np.isfinite(head.grad).all()
    np.testing.assert_allclose(head.proba(logits), [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-7)


def test_sigmoid_bce_value_gradient_and_stability():
    head = _head("SigmoidBCE", 2)
    z = np.array([[0.0, 2.0], [-3.0, 1e4]], np.float32)
    t = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    s = 1 / (1 + np.exp(-np.array([0.0, 2.0, -3.0])))
    by_hand = (-np.log(s[0]) - np.log(1 - s[1]) - np.log(1 - s[2]) + 0.0) / 4
    assert head.loss(z, t) == pytest.approx(by_hand, rel=1e-6)
    np.testing.assert_allclose(head.grad.ravel(), (np.append(s, 1.0) - t.ravel()) / 4, rtol=1e-5, atol=1e-8)
    assert head.loss(np.array([[-1e4, 1e4]], np.float32), np.array([[1.0, 0.0]], np.float32)) == pytest.approx(1e4)
    np.testing.assert_allclose(head.proba(z), [[0.5, s[1]], [s[2], 1.0]], rtol=1e-6)


def test_mse_value_and_gradient():
    head = _head("MSE", 2)
    y = np.array([[1.0, 2.0], [0.0, -1.0]], np.float32)
    t = np.array([[0.0, 2.0], [1.0, 1.0]], np.float32)
    assert head.loss(y, t) == pytest.approx((1 + 0 + 1 + 4) / 4)
    np.testing.assert_allclose(head.grad, 2 * (y - t) / 4)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_head_gradient_matches_finite_differences(kind, rng):
    head = _head(kind, 4)
    y = normal(rng, (3, 4))
    t = np.array([0, 3, 1]) if kind == "SoftmaxCrossEntropy" else rng.uniform(0, 1, (3, 4)).astype(np.float32)
    head.loss(y, t)
    grad = head.grad.copy()
    numeric = np.zeros(y.shape)
    for i in range(y.size):
        for sign in (1, -1):
            z = y.astype(np.float64).copy()
            z.flat[i] += sign * 1e-3
            numeric.flat[i] += sign * head.loss(z.astype(np.float32), t) / 2e-3
    np.testing.assert_allclose(grad, numeric, rtol=2e-2, atol=1e-4)


def test_heads_refuse_targets_they_cannot_use():
    with pytest.raises(ValueError, match="integer class label"):
        _head("SoftmaxCrossEntropy", 3).loss(np.zeros((2, 3), np.float32), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="0..2"):
        _head("SoftmaxCrossEntropy", 3).loss(np.zeros((2, 3), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match="shape 2×3"):
        _head("MSE", 3).loss(np.zeros((2, 3), np.float32), np.zeros((2, 4)))
