"""1×1 convolutions as one sgemm per sample (or per chunk, for 1×1 planes): the fused ReLU, dx skipped,
bit-reproducibility and the rule that picks them. Values against the reference are in test_conv_pool_kernels."""
import numpy as np
import pytest

from convdesigner.engine.cpu.blas import SGEMM
from convdesigner.engine.cpu.conv import conv2d_backward, conv2d_forward, strategy

from .test_conv_pool_kernels import rand

pytestmark = pytest.mark.skipif(not SGEMM, reason="numpy's BLAS is not the bundled OpenBLAS")


@pytest.mark.parametrize("hw, stride", [(1, 1), (5, 1), (7, 2)])
def test_fused_relu_forward_and_backward_match_the_direct_loops(hw, stride):
    rng = np.random.default_rng(0)
    x, w, b = rand(rng, 19, 6, hw, hw), rand(rng, 9, 6, 1, 1), rand(rng, 9)
    y = conv2d_forward(x, w, b, stride, (0,) * 4, 1, 1, method="pointwise", relu=True)
    want = conv2d_forward(x, w, b, stride, (0,) * 4, 1, 1, method="direct", relu=True)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert (y == 0).any() and (y > 0).any()
    dy = rand(rng, *y.shape)
    got = conv2d_backward(x, w, dy, stride, (0,) * 4, 1, 1, method="pointwise", relu_out=y)
    ref = conv2d_backward(x, w, dy, stride, (0,) * 4, 1, 1, method="direct", relu_out=want)
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4)
    dx, dw, db = conv2d_backward(x, w, dy, stride, (0,) * 4, 1, 1, method="pointwise", need_dx=False, relu_out=y)
    assert dx is None
    np.testing.assert_array_equal(dw, got[1])
    np.testing.assert_array_equal(db, got[2])


def test_backward_is_bit_identical_across_repeats():
    rng = np.random.default_rng(1)
    x, w = rand(rng, 64, 24, 8, 8), rand(rng, 40, 24, 1, 1)
    dy = rand(rng, 64, 40, 8, 8)
    first = conv2d_backward(x, w, dy, 1, (0,) * 4, 1, 1, method="pointwise")
    for _ in range(10):
        for a, b in zip(first, conv2d_backward(x, w, dy, 1, (0,) * 4, 1, 1, method="pointwise"), strict=True):
            assert np.array_equal(a, b)


def test_the_rule_picks_pointwise_for_unpadded_1x1_only():
    assert strategy(24, (40, 24, 1, 1), 1, (0,) * 4, 1, 1) == "pointwise"
    assert strategy(24, (40, 24, 1, 1), 2, (0,) * 4, 1, 1) == "pointwise"  # ResNet's strided shortcut
    assert strategy(24, (40, 24, 1, 1), 1, (1,) * 4, 1, 1) == "blocked"  # padded: the blocked sums forward,
    assert strategy(24, (40, 24, 1, 1), 1, (1,) * 4, 1, 1, backward=True) == "gemm"  # im2col backward
    assert strategy(24, (40, 24, 1, 1), 2, (1,) * 4, 1, 1) == "gemm"
    assert strategy(24, (24, 1, 1, 1), 1, (0,) * 4, 1, 24) == "depthwise"
    with pytest.raises(ValueError, match="pointwise"):
        conv2d_forward(np.zeros((1, 4, 3, 3), np.float32), np.zeros((4, 4, 1, 1), np.float32), None, 1, (1,) * 4, 1,
                       1, method="pointwise")
