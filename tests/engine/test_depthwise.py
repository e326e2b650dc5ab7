"""The depthwise kernels (groups == channels, one or more filters per channel) against float64 references, the general
direct loops, finite differences, and run-to-run / thread-count reproducibility."""
import numba
import numpy as np
import pytest

from convdesigner.engine.cpu.conv import conv2d_backward, conv2d_forward, strategy

from .test_conv_pool_kernels import assert_central_differences, rand, reference_conv

# (N, C, H, W, filters per channel, k, stride, pads (top, bottom, left, right), dilation)
CASES = [
    (1, 3, 8, 8, 1, 3, 1, (1, 1, 1, 1), 1),
    (7, 4, 9, 7, 1, 3, 2, (1, 1, 1, 1), 1),       # odd sizes, stride 2
    (2, 3, 10, 10, 1, 5, 2, (2, 2, 2, 2), 1),
    (3, 2, 7, 8, 1, 5, 1, (2, 2, 2, 2), 1),
    (2, 3, 9, 10, 1, 3, 1, (2, 0, 1, 3), 2),      # asymmetric pads, dilation 2
    (7, 2, 11, 9, 2, 3, 2, (0, 1, 1, 0), 2),      # 2 filters per channel, stride 2, dilation 2
    (2, 2, 6, 6, 3, 5, 2, (1, 2, 2, 1), 1),       # 3 filters per channel
    (1, 2, 12, 11, 1, 3, 3, (1, 1, 0, 2), 1),     # stride 3
    (2, 3, 6, 5, 1, 3, 1, (0, 0, 0, 0), 1),       # valid
    (2, 16, 32, 32, 1, 3, 2, (1, 1, 1, 1), 1),    # EfficientNet's stage 2 plane: full vector loops
]


def make(case, seed):
    n, c, h, w_, m, k, s, pads, d = case
    rng = np.random.default_rng(seed)
    x, w, b = rand(rng, n, c, h, w_), rand(rng, c * m, 1, k, k), rand(rng, c * m)
    return rng, x, w, b


def reference_backward(x, w, dy, stride, pads, dilation):
    """float64 (dx, dw, db) of the depthwise conv for the output gradient dy, window by window."""
    n, c, h, w_ = x.shape
    f, _, kh, kw = w.shape
    m = f // c
    top, bottom, left, right = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    dxp = np.zeros_like(xp)
    dw = np.zeros((f, 1, kh, kw))
    oh, ow = dy.shape[2:]
    dy = dy.astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dilation, i * dilation + stride * (oh - 1) + 1, stride)
            cols = slice(j * dilation, j * dilation + stride * (ow - 1) + 1, stride)
            window = xp[:, np.arange(f) // m, rows, cols]
            dw[:, 0, i, j] = np.sum(window * dy, axis=(0, 2, 3))
            dxp[:, :, rows, cols] += (dy * w[None, :, 0, i, j, None, None]).reshape(n, c, m, oh, ow).sum(2)
    return dxp[:, :, top:top + h, left:left + w_], dw, dy.sum((0, 2, 3))


def test_the_strategy_rule():
    assert strategy(3, (8, 3, 3, 3), 1, (1,) * 4, 1, 1) == "blocked"
    assert strategy(3, (8, 3, 3, 3), 2, (1,) * 4, 1, 1) == "gemm"
    assert strategy(8, (8, 1, 3, 3), 1, (1,) * 4, 1, 8) == "depthwise"
    assert strategy(8, (8, 4, 3, 3), 1, (1,) * 4, 1, 2) == "direct"
    x, w = np.zeros((1, 4, 5, 5), np.float32), np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="method"):
        conv2d_forward(x, w, None, 1, (1, 1, 1, 1), 1, 2, method="depthwise")


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_reference_and_direct_loops(case):
    _, c, *_, s, pads, d = case
    _, x, w, b = make(case, 1)
    expected = reference_conv(x, w, b, s, pads, d, c)
    y = conv2d_forward(x, w, b, s, pads, d, c)
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, conv2d_forward(x, w, b, s, pads, d, c, method="direct"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv2d_forward(x, w, None, s, pads, d, c, relu=True),
                               np.maximum(expected - b[None, :, None, None], 0.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_backward_matches_reference(case, relu):
    _, c, *_, s, pads, d = case
    rng, x, w, b = make(case, 2)
    y = conv2d_forward(x, w, b, s, pads, d, c, relu=relu)
    dy = rand(rng, *y.shape)
    dx, dw, db = conv2d_backward(x, w, dy, s, pads, d, c, relu_out=y if relu else None)
    ref = reference_backward(x, w, np.where(y > 0, dy, 0.0) if relu else dy, s, pads, d)
    for got, want in zip((dx, dw, db), ref, strict=True):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(dy.size / dy.shape[1]))
    direct = conv2d_backward(x, w, dy, s, pads, d, c, method="direct", relu_out=y if relu else None)
    np.testing.assert_allclose(dx, direct[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[6]])
def test_backward_central_differences(case):
    """L = sum(conv(x, w) * dy) is linear in x and in w, so central differences are exact up to rounding."""
    _, c, *_, s, pads, d = case
    rng, x, w, _ = make(case, 3)
    assert_central_differences(rng, x, w, s, pads, d, c)


def test_need_dx_false_and_out_buffers():
    _, x, w, b = make(CASES[5], 4)
    c, pads = x.shape[1], CASES[5][7]
    y = conv2d_forward(x, w, b, 2, pads, 2, c)
    out = np.full_like(y, np.nan)
    assert conv2d_forward(x, w, b, 2, pads, 2, c, out=out) is out
    np.testing.assert_array_equal(out, y)
    dx, dw, db = conv2d_backward(x, w, y, 2, pads, 2, c)
    none, dw2, db2 = conv2d_backward(x, w, y, 2, pads, 2, c, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)
    dx_out = np.full_like(x, np.nan)
    assert conv2d_backward(x, w, y, 2, pads, 2, c, dx_out=dx_out)[0] is dx_out
    np.testing.assert_array_equal(dx_out, dx)


def test_gradients_are_bit_identical_across_repeats_and_thread_counts():
    """dW and db sum per fixed chunk of samples, the chunks in order: neither thread timing nor count changes a bit."""
    rng, x, w, _ = make((13, 8, 12, 12, 1, 3, 2, (1, 1, 1, 1), 1), 5)
    dy = rand(rng, 13, 8, 6, 6)
    first = conv2d_backward(x, w, dy, 2, (1, 1, 1, 1), 1, 8)
    threads = numba.get_num_threads()
    try:
        for count in (1, threads, 1, threads):
            numba.set_num_threads(count)
            again = conv2d_backward(x, w, dy, 2, (1, 1, 1, 1), 1, 8)
            for a, b in zip(first, again, strict=True):
                assert np.array_equal(a, b)
    finally:
        numba.set_num_threads(threads)


@pytest.mark.parametrize("case", [CASES[2], CASES[5]])
def test_gradients_match_pytorch(case):
    torch = pytest.importorskip("torch")
    _, c, *_, s, pads, d = case
    rng, x, w, b = make(case, 6)
    y = conv2d_forward(x, w, b, s, pads, d, c)
    dy = rand(rng, *y.shape)
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    top, bottom, left, right = pads
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (left, right, top, bottom)), wt, bt, stride=s,
                                    dilation=d, groups=c)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    for got, want in zip(conv2d_backward(x, w, dy, s, pads, d, c), (xt, wt, bt), strict=True):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-4, atol=1e-4)
