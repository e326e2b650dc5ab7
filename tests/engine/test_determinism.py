"""Same inputs, same bits: training must be reproducible (and resumable bit-exactly), so no kernel may let thread
timing change the order of a floating-point sum."""
import numpy as np
import pytest

from convdesigner.engine.cpu.conv import conv2d_backward


@pytest.mark.parametrize("method", ["gemm", "direct"])
def test_conv_backward_is_bit_identical_across_repeats(method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((64, 16, 10, 10)).astype(np.float32)
    first = conv2d_backward(x, w, dy, 1, (0, 0, 0, 0), 1, 1, method=method)
    for _ in range(15):
        again = conv2d_backward(x, w, dy, 1, (0, 0, 0, 0), 1, 1, method=method)
        for a, b in zip(first, again, strict=True):
            assert np.array_equal(a, b)
