"""Winograd F(2×2, 3×3): the identities it rests on, its edges (odd outputs, uneven padding, chunk ends), the fused
ReLU, bit-reproducibility and the rule that picks it."""
import numpy as np
import pytest

from convdesigner.engine.cpu import winograd
from convdesigner.engine.cpu.blas import SGEMM
from convdesigner.engine.cpu.conv import conv2d_backward, conv2d_forward, strategy

from .test_conv_pool_kernels import rand, reference_conv

pytestmark = pytest.mark.skipif(not SGEMM, reason="numpy's BLAS is not the bundled OpenBLAS")


def test_the_transforms_reproduce_a_3x3_correlation_exactly():
    """Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A is the 2×2 correlation of a 4×4 tile d with g: on small integers every step is exact."""
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
    rng = np.random.default_rng(0)
    d, g = rng.integers(-9, 10, (4, 4)).astype(np.float64), rng.integers(-9, 10, (3, 3)).astype(np.float64)
    y = at @ ((winograd._G @ g @ winograd._G.T) * (bt @ d @ bt.T)) @ at.T
    want = [[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(2)] for i in range(2)]
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("n, c, h, w_, f, pads", [
    (1, 1, 3, 3, 1, (0, 0, 0, 0)),      # one output: a single, partial tile
    (5, 3, 7, 5, 4, (1, 1, 1, 1)),      # odd output both ways
    (2, 6, 4, 9, 5, (2, 0, 1, 2)),      # uneven padding
    (37, 4, 6, 6, 3, (1, 1, 1, 1)),     # a batch that does not divide into the chunks
])
def test_forward_and_backward_match_the_reference(n, c, h, w_, f, pads):
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, n, c, h, w_), rand(rng, f, c, 3, 3), rand(rng, f)
    want = reference_conv(x, w, b, 1, pads, 1, 1)
    y = conv2d_forward(x, w, b, 1, pads, 1, 1, method="winograd")
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    dy = rand(rng, *y.shape)
    dx, dw, db = conv2d_backward(x, w, dy, 1, pads, 1, 1, method="winograd")
    rx, rw, rb = conv2d_backward(x, w, dy, 1, pads, 1, 1, method="direct")
    for got, ref in ((dx, rx), (dw, rw), (db, rb)):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_fused_relu_matches_conv_then_relu():
    rng = np.random.default_rng(2)
    x, w, b = rand(rng, 3, 32, 6, 5), rand(rng, 32, 32, 3, 3), rand(rng, 32)
    y = conv2d_forward(x, w, b, 1, (1, 1, 1, 1), 1, 1, method="winograd", relu=True)
    np.testing.assert_allclose(y, np.maximum(reference_conv(x, w, b, 1, (1, 1, 1, 1), 1, 1), 0), rtol=1e-5,
                               atol=1e-5)
    assert (y == 0).any() and (y > 0).any()
    dy = rand(rng, *y.shape)
    got = conv2d_backward(x, w, dy, 1, (1, 1, 1, 1), 1, 1, method="winograd", relu_out=y)
    want = conv2d_backward(x, w, dy, 1, (1, 1, 1, 1), 1, 1, method="direct", relu_out=y)
    for a, b_ in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-4)


def test_backward_is_bit_identical_across_repeats():
    """Each chunk's dW products have a slot of their own, summed in order: thread timing cannot reorder the sum."""
    rng = np.random.default_rng(3)
    x, w = rand(rng, 64, 32, 8, 8), rand(rng, 32, 32, 3, 3)
    dy = rand(rng, 64, 32, 8, 8)
    first = conv2d_backward(x, w, dy, 1, (1, 1, 1, 1), 1, 1, method="winograd")
    for _ in range(10):
        for a, b in zip(first, conv2d_backward(x, w, dy, 1, (1, 1, 1, 1), 1, 1, method="winograd"), strict=True):
            assert np.array_equal(a, b)


def test_the_rule_picks_winograd_for_many_channels_only():
    assert strategy(32, (32, 32, 3, 3), 1, (1,) * 4, 1, 1) == "winograd"
    assert strategy(16, (16, 16, 3, 3), 1, (1,) * 4, 1, 1) == "blocked"  # 16-deep products: the direct sums win
    assert strategy(48, (12, 48, 3, 3), 1, (1,) * 4, 1, 1) == "blocked"  # ... and 12 filters (DenseNet's)
    assert strategy(64, (64, 64, 3, 3), 2, (1,) * 4, 1, 1) == "gemm"
    assert strategy(64, (64, 64, 3, 3), 1, (3,) * 4, 1, 1) == "blocked"  # dx would need negative padding
    assert strategy(64, (64, 64, 5, 5), 1, (2,) * 4, 1, 1) == "blocked"
    assert strategy(64, (64, 64, 5, 5), 1, (2,) * 4, 1, 1, backward=True) == "gemm"
    x, w = np.zeros((1, 4, 8, 8), np.float32), np.zeros((4, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="winograd"):
        conv2d_forward(x, w, None, 1, (1, 1, 1, 1), 2, 1, method="winograd")
