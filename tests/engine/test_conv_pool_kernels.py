"""CPU conv and pool kernels against plain numpy references, exact linear-algebra identities and worked examples."""
import numpy as np
import pytest

from convdesigner.engine.cpu import blocked, pointwise, winograd
from convdesigner.engine.cpu.blas import SGEMM
from convdesigner.engine.cpu.conv import conv2d_backward, conv2d_forward, uses_gemm
from convdesigner.engine.cpu.pool import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from convdesigner.graph.layers import pool_output


def reference_conv(x, w, b, stride, pads, dilation, groups):
    """Straightforward float64 convolution: for every kernel tap, einsum the strided window of the padded input."""
    top, bottom, left, right = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, hp, wp = xp.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    oh = (hp - dilation * (kh - 1) - 1) // stride + 1
    ow = (wp - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, f, oh, ow))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                window = xp[:, g * cg:(g + 1) * cg, i * dilation:i * dilation + stride * (oh - 1) + 1:stride,
                            j * dilation:j * dilation + stride * (ow - 1) + 1:stride]
                y[:, g * fg:(g + 1) * fg] += np.einsum("nchw,fc->nfhw", window, w[g * fg:(g + 1) * fg, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    return y


def rand(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# (N, C, H, W, F, kh, kw, stride, pads, dilation, groups, bias)
CASES = [
    (2, 3, 7, 9, 4, 3, 3, 1, (1, 0, 2, 1), 1, 1, True),
    (2, 4, 9, 8, 6, 3, 2, 2, (0, 1, 1, 2), 2, 2, False),
    (1, 4, 6, 6, 4, 3, 3, 1, (1, 1, 1, 1), 1, 4, True),       # depthwise, F = C
    (2, 3, 8, 7, 6, 3, 3, 2, (1, 2, 0, 1), 1, 3, True),       # depthwise, F = 2C
    (3, 16, 8, 8, 32, 3, 3, 1, (1, 1, 1, 1), 1, 1, True),
    (2, 16, 9, 9, 32, 3, 3, 2, (2, 0, 1, 1), 2, 1, False),
    (2, 3, 4, 4, 2, 6, 6, 1, (1, 1, 1, 1), 1, 1, True),       # kernel as large as the padded input
    (1, 5, 5, 6, 16, 1, 1, 1, (0, 0, 0, 0), 1, 1, False),     # 1x1, batch 1
    (2, 6, 11, 10, 16, 5, 5, 3, (2, 2, 2, 2), 1, 2, True),
    (2, 2, 10, 10, 3, 3, 3, 1, (3, 0, 0, 3), 3, 1, True),
    (2, 12, 7, 8, 4, 3, 3, 1, (1, 0, 2, 1), 1, 1, True),      # few filters: dx as the flipped kernel's forward
    (2, 8, 9, 9, 3, 3, 2, 1, (2, 4, 1, 0), 2, 1, False),      # ... with dilation
    (1, 8, 6, 6, 2, 3, 3, 1, (3, 1, 1, 1), 1, 1, True),       # ... padding past the kernel's reach: col2im
    (3, 32, 5, 7, 8, 3, 3, 1, (1, 1, 1, 1), 1, 1, True),      # Winograd by default: odd output, dx by im2col
    (2, 40, 6, 9, 36, 3, 3, 1, (0, 0, 0, 0), 1, 1, False),    # ... no padding: dx padded by 2, by Winograd
    (1, 33, 3, 4, 33, 3, 3, 1, (2, 1, 0, 2), 1, 1, True),     # ... uneven padding, one tile row
    (7, 12, 1, 1, 20, 1, 1, 1, (0, 0, 0, 0), 1, 1, True),     # 1x1 planes (squeeze-excitation): the chunk at once
    (3, 8, 7, 6, 12, 1, 1, 2, (0, 0, 0, 0), 1, 1, True),      # a strided 1x1 (ResNet's shortcut), odd sizes
    (2, 5, 8, 10, 4, 3, 3, 3, (1, 0, 2, 1), 1, 1, False),     # stride 3: nine phase planes, uneven padding
    (2, 3, 5, 37, 5, 3, 3, 1, (1, 1, 1, 1), 1, 1, True),      # rows of whole SIMD vectors and a rest (planes.copy_run)
    (2, 3, 5, 37, 4, 3, 3, 2, (1, 0, 1, 2), 1, 1, True),      # ... split into stride-2 phases by vectors too
]


UNGROUPED = ("direct", "gemm", "blocked") + (("winograd",) if SGEMM else ())  # what a plain 3×3 stride-1 conv can force


def methods(case):
    """The methods that run ``case``: direct always, gemm ungrouped, winograd, pointwise and blocked where they
    support it."""
    _, c, _, _, f, kh, kw, s, pads, d, g, _ = case
    w_shape = (f, c // g, kh, kw)
    found = ["direct", "gemm"] if g == 1 else ["direct"]
    return found + (["winograd"] if winograd.supports(w_shape, s, pads, d, g) else []) + \
        (["pointwise"] if pointwise.supports(w_shape, pads, g) else []) + \
        (["blocked"] if blocked.supports(s, g) else [])


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_reference(case):
    n, c, h, w_, f, kh, kw, s, pads, d, g, has_bias = case
    rng = np.random.default_rng(1)
    x, w = rand(rng, n, c, h, w_), rand(rng, f, c // g, kh, kw)
    b = rand(rng, f) if has_bias else None
    expected = reference_conv(x, w, b, s, pads, d, g)
    for method in methods(case) + [None]:
        y = conv2d_forward(x, w, b, s, pads, d, g, method=method)
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4, err_msg=str(method))


@pytest.mark.parametrize("case", CASES)
def test_backward_adjoint_identities(case):
    """conv is linear in x and in w: <y - b, dy> == <x, dx> == <w, dw>, and db == dy summed over N, H, W."""
    n, c, h, w_, f, kh, kw, s, pads, d, g, _ = case
    rng = np.random.default_rng(2)
    x, w = rand(rng, n, c, h, w_), rand(rng, f, c // g, kh, kw)
    y = reference_conv(x, w, None, s, pads, d, g)
    dy = rand(rng, *y.shape)
    inner = float(np.sum(y * dy))
    for method in methods(case):
        dx, dw, db = conv2d_backward(x, w, dy, s, pads, d, g, method=method)
        assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (f,)
        assert dx.dtype == dw.dtype == db.dtype == np.float32
        scale = np.sqrt(y.size) * 10
        assert np.sum(x.astype(np.float64) * dx) == pytest.approx(inner, abs=1e-4 * scale)
        assert np.sum(w.astype(np.float64) * dw) == pytest.approx(inner, abs=1e-4 * scale)
        np.testing.assert_allclose(db, dy.sum((0, 2, 3)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5], CASES[6], CASES[9], CASES[14]])
def test_backward_central_differences(case):
    """Central differences of L = sum(conv(x, w) * dy) at a few entries of x and w (L is linear, so they are exact)."""
    n, c, h, w_, f, kh, kw, s, pads, d, g, _ = case
    rng = np.random.default_rng(3)
    x, w = rand(rng, n, c, h, w_), rand(rng, f, c // g, kh, kw)
    assert_central_differences(rng, x, w, s, pads, d, g)


def assert_central_differences(rng, x, w, stride, pads, dilation, groups):
    """dx and dw of conv2d_backward at six entries each against central differences of L = sum(conv(x, w) * dy)
    (L is linear in x and in w, so the differences are exact up to rounding)."""
    dy = rand(rng, *reference_conv(x, w, None, stride, pads, dilation, groups).shape)

    def loss(xv, wv):
        return float(np.sum(conv2d_forward(xv, wv, None, stride, pads, dilation, groups).astype(np.float64) * dy))

    dx, dw, _ = conv2d_backward(x, w, dy, stride, pads, dilation, groups)
    for arr, grad, at in ((x, dx, lambda a: loss(a, w)), (w, dw, lambda a: loss(x, a))):
        for flat in rng.choice(arr.size, 6, replace=False):
            idx = np.unravel_index(flat, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += 0.5
            minus[idx] -= 0.5
            assert at(plus) - at(minus) == pytest.approx(grad[idx], rel=1e-3, abs=1e-3)


def test_sobel_worked_example():
    image = np.zeros((1, 1, 6, 6), np.float32)
    image[..., 3:] = 255.0
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)[None, None]
    for method in UNGROUPED:
        edges = conv2d_forward(image, sobel, None, 1, (0, 0, 0, 0), 1, 1, method=method) / 255.0
        assert edges.shape == (1, 1, 4, 4)
        np.testing.assert_array_equal(edges[0, 0], np.tile([0.0, -4.0, -4.0, 0.0], (4, 1)))


def test_need_dx_false_and_out_buffers():
    rng = np.random.default_rng(4)
    x, w, b = rand(rng, 2, 3, 8, 8), rand(rng, 16, 3, 3, 3), rand(rng, 16)
    out = np.full((2, 16, 8, 8), np.nan, np.float32)
    y = conv2d_forward(x, w, b, 1, (1, 1, 1, 1), 1, 1, out=out)
    assert y is out
    np.testing.assert_allclose(out, reference_conv(x, w, b, 1, (1, 1, 1, 1), 1, 1), rtol=1e-4, atol=1e-4)
    dx_full, dw_full, db_full = conv2d_backward(x, w, y, 1, (1, 1, 1, 1), 1, 1)
    dx, dw, db = conv2d_backward(x, w, y, 1, (1, 1, 1, 1), 1, 1, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dw, dw_full)
    np.testing.assert_array_equal(db, db_full)
    dx_out = np.empty_like(x)
    assert conv2d_backward(x, w, y, 1, (1, 1, 1, 1), 1, 1, dx_out=dx_out)[0] is dx_out
    np.testing.assert_array_equal(dx_out, dx_full)


def test_results_do_not_alias_between_calls():
    """Workspaces are reused, returned arrays are not: a second call with the same shapes leaves the first intact."""
    rng = np.random.default_rng(5)
    x1, x2, w = rand(rng, 2, 16, 6, 6), rand(rng, 2, 16, 6, 6), rand(rng, 32, 16, 3, 3)
    for method in UNGROUPED:
        y1 = conv2d_forward(x1, w, None, 1, (1, 1, 1, 1), 1, 1, method=method)
        keep = y1.copy()
        dx1, dw1, _ = conv2d_backward(x1, w, y1, 1, (1, 1, 1, 1), 1, 1, method=method)
        dx1_keep, dw1_keep = dx1.copy(), dw1.copy()
        y2 = conv2d_forward(x2, w, None, 1, (1, 1, 1, 1), 1, 1, method=method)
        conv2d_backward(x2, w, y2, 1, (1, 1, 1, 1), 1, 1, method=method)
        np.testing.assert_array_equal(y1, keep)
        np.testing.assert_array_equal(dx1, dx1_keep)
        np.testing.assert_array_equal(dw1, dw1_keep)


def test_strategy_rule_and_errors():
    assert uses_gemm(1) and not uses_gemm(32)  # ungrouped: im2col + sgemm; grouped or depthwise: direct loops
    x, w = np.zeros((1, 2, 3, 3), np.float32), np.zeros((4, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_forward(x, w, None, 1, (0, 0, 0, 0), 1, 1)
    with pytest.raises(ValueError, match="groups"):
        conv2d_forward(x, w, None, 1, (2, 2, 2, 2), 1, 3)
    with pytest.raises(ValueError, match="method"):
        conv2d_forward(x, np.zeros((2, 1, 1, 1), np.float32), None, 1, (0, 0, 0, 0), 1, 2, method="gemm")
    with pytest.raises(ValueError, match="out must be"):
        conv2d_forward(x, w, None, 1, (2, 2, 2, 2), 1, 1, out=np.empty((1, 4, 2, 2), np.float32))
    with pytest.raises(TypeError, match="float32"):
        conv2d_forward(x.astype(np.float64), w, None, 1, (2, 2, 2, 2), 1, 1)


# ---- pooling -------------------------------------------------------------------------------------------------

def reference_pool(x, k, stride, pad, ceil_mode, reduce):
    """Windows over the input padded with -inf (max) or zeros (avg), extended past the edge for ceil-mode windows."""
    n, c, h, w = x.shape
    oh, ow = pool_output(h, k, stride, pad, ceil_mode), pool_output(w, k, stride, pad, ceil_mode)
    fill = -np.inf if reduce == "max" else 0.0
    extra_h, extra_w = max(0, (oh - 1) * stride + k - h - 2 * pad), max(0, (ow - 1) * stride + k - w - 2 * pad)
    xp = np.full((n, c, h + 2 * pad + extra_h, w + 2 * pad + extra_w), fill)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            if reduce == "max":
                y[:, :, i, j] = window.max((2, 3))
            else:  # divide by the window clipped to the padded input (PyTorch count_include_pad=True)
                rows = min(i * stride + k, h + 2 * pad) - i * stride
                cols = min(j * stride + k, w + 2 * pad) - j * stride
                y[:, :, i, j] = window.sum((2, 3)) / (rows * cols)
    return y


POOLS = [(2, 2, 0, False), (3, 2, 1, False), (3, 2, 1, True), (2, 2, 0, True), (3, 1, 1, False), (2, 3, 1, True)]


@pytest.mark.parametrize("k,stride,pad,ceil_mode", POOLS)
def test_maxpool_forward_and_argmax(k, stride, pad, ceil_mode):
    rng = np.random.default_rng(6)
    x = rand(rng, 2, 3, 7, 6) - 5.0  # all negative: a padded zero winning would show
    oh, ow = pool_output(7, k, stride, pad, ceil_mode), pool_output(6, k, stride, pad, ceil_mode)
    y, arg = maxpool2d_forward(x, k, stride, pad, oh, ow)
    np.testing.assert_array_equal(y, reference_pool(x, k, stride, pad, ceil_mode, "max"))
    assert arg.dtype == np.int32 and arg.shape == y.shape
    planes = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(planes, arg.reshape(2, 3, -1), 2), y.reshape(2, 3, -1))


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 4, 4)])
def test_maxpool_backward_of_tiling_2x2_windows_matches_scattered_adds_bit_for_bit(shape):
    """The unrolled kernel for 2×2 windows that tile the input writes what zeroing and scattering would."""
    rng = np.random.default_rng(11)
    x = rand(rng, *shape)
    x[0, 0, :2, :2] = 0.0  # a tie: the first cell wins
    y, arg = maxpool2d_forward(x, 2, 2, 0, shape[2] // 2, shape[3] // 2)
    dy = rand(rng, *y.shape)
    dy[0, 0, 0, 0] = -0.0
    expected = np.zeros(shape, np.float32).reshape(shape[0], shape[1], -1)
    for n in range(shape[0]):
        for c in range(shape[1]):
            np.add.at(expected[n, c], arg[n, c].ravel(), dy[n, c].ravel())
    dx = maxpool2d_backward(dy, arg, 2, 2, 0, shape[2], shape[3])
    np.testing.assert_array_equal(dx.reshape(expected.shape).view(np.int32), expected.view(np.int32))


@pytest.mark.parametrize("k,stride,pad,ceil_mode", POOLS)
def test_maxpool_backward_routes_to_argmax(k, stride, pad, ceil_mode):
    rng = np.random.default_rng(7)
    x = rand(rng, 2, 2, 6, 7)
    oh, ow = pool_output(6, k, stride, pad, ceil_mode), pool_output(7, k, stride, pad, ceil_mode)
    y, arg = maxpool2d_forward(x, k, stride, pad, oh, ow)
    dy = rand(rng, *y.shape)
    dx = maxpool2d_backward(dy, arg, k, stride, pad, 6, 7)
    expected = np.zeros((2, 2, 42))
    for n in range(2):
        for c in range(2):
            np.add.at(expected[n, c], arg[n, c].ravel(), dy[n, c].ravel())
    np.testing.assert_allclose(dx, expected.reshape(2, 2, 6, 7), rtol=1e-6, atol=1e-6)
    # central differences: values are distinct, so a small step keeps every argmax in place
    for flat in rng.choice(x.size, 8, replace=False):
        idx = np.unravel_index(flat, x.shape)
        plus, minus = x.copy(), x.copy()
        plus[idx] += 1e-3
        minus[idx] -= 1e-3
        diff = (np.sum(maxpool2d_forward(plus, k, stride, pad, oh, ow)[0].astype(np.float64) * dy)
                - np.sum(maxpool2d_forward(minus, k, stride, pad, oh, ow)[0].astype(np.float64) * dy)) / 2e-3
        assert diff == pytest.approx(dx[idx], abs=2e-2)


@pytest.mark.parametrize("k,stride,pad,ceil_mode", POOLS)
def test_avgpool_forward_and_backward(k, stride, pad, ceil_mode):
    rng = np.random.default_rng(8)
    x = rand(rng, 2, 3, 7, 6)
    oh, ow = pool_output(7, k, stride, pad, ceil_mode), pool_output(6, k, stride, pad, ceil_mode)
    y = avgpool2d_forward(x, k, stride, pad, oh, ow)
    np.testing.assert_allclose(y, reference_pool(x, k, stride, pad, ceil_mode, "avg"), rtol=1e-5, atol=1e-6)
    dy = rand(rng, *y.shape)
    dx = avgpool2d_backward(dy, k, stride, pad, 7, 6)
    assert np.sum(x.astype(np.float64) * dx) == pytest.approx(np.sum(y.astype(np.float64) * dy), rel=1e-5)
    for flat in rng.choice(x.size, 6, replace=False):  # L is linear in x: central differences are exact
        idx = np.unravel_index(flat, x.shape)
        plus, minus = x.copy(), x.copy()
        plus[idx] += 0.5
        minus[idx] -= 0.5
        diff = np.sum((avgpool2d_forward(plus, k, stride, pad, oh, ow).astype(np.float64)
                       - avgpool2d_forward(minus, k, stride, pad, oh, ow)) * dy)
        assert diff == pytest.approx(dx[idx], rel=1e-4, abs=1e-5)


def test_avgpool_worked_examples_match_pytorch():
    """Values computed with torch.nn.functional.avg_pool2d (count_include_pad=True, ceil_mode=True)."""
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    np.testing.assert_allclose(avgpool2d_forward(x, 2, 2, 0, 2, 2)[0, 0], [[2.0, 3.5], [6.5, 8.0]])
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    np.testing.assert_allclose(avgpool2d_forward(x, 3, 2, 1, 3, 3)[0, 0],
                               [[4 / 3, 3.0, 8 / 3], [7.0, 12.0, 9.0], [8.0, 13.0, 28 / 3]], rtol=1e-6)
    np.testing.assert_allclose(avgpool2d_forward(x, 2, 2, 1, 3, 3)[0, 0],
                               [[0.0, 0.75, 1.75], [3.75, 9.0, 11.0], [8.75, 19.0, 21.0]], rtol=1e-6)
    y, arg = maxpool2d_forward(-1 - x, 3, 2, 1, 3, 3)
    np.testing.assert_array_equal(y[0, 0], [[-1, -2, -4], [-6, -7, -9], [-16, -17, -19]])
    np.testing.assert_array_equal(arg[0, 0], [[0, 1, 3], [5, 6, 8], [15, 16, 18]])


@pytest.mark.parametrize("method,channels,filters", [("gemm", 10, 3), ("blocked", 10, 3)]
                         + ([("winograd", 32, 32)] if SGEMM else []))
@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 2, 1, 0)])
@pytest.mark.parametrize("width", [7, 37])
def test_fused_relu_backward_through_the_flipped_kernel_matches_the_direct_loops(pads, method, channels, filters,
                                                                                 width):
    """Where dx is the flipped kernel's forward pass (filters few next to channels, or Winograd; every method gating
    dy as it reads it, with no gated copy) the ReLU gate still applies, to dx, dW and db alike: on rows shorter than a
    SIMD vector and on rows of whole vectors and a rest."""
    rng = np.random.default_rng(4)
    x, w = rand(rng, 3, channels, 6, width), rand(rng, filters, channels, 3, 3)
    y = conv2d_forward(x, w, None, 1, pads, 1, 1, relu=True)
    assert (y == 0).any() and (y > 0).any()
    dy = rand(rng, *y.shape)
    for need_dx in (True, False):
        got = conv2d_backward(x, w, dy, 1, pads, 1, 1, need_dx, method=method, relu_out=y)
        want = conv2d_backward(x, w, dy, 1, pads, 1, 1, need_dx, method="direct", relu_out=y)
        assert (got[0] is None) == (not need_dx)
        first = 0 if need_dx else 1
        for a, b in zip(got[first:], want[first:], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_without_openblas_sgemm_the_np_dot_path_gives_the_same_results(monkeypatch):
    """Where numpy's BLAS is not the bundled OpenBLAS (blas.SGEMM false) im2col multiplies through np.dot and the
    sgemm-only strategies (winograd, pointwise) step aside for the blocked sums, which need no BLAS."""
    from convdesigner.engine.cpu import im2col
    from convdesigner.engine.cpu.conv import strategy
    rng = np.random.default_rng(6)
    x, w = rand(rng, 5, 32, 7, 6), rand(rng, 36, 32, 3, 3)
    y = conv2d_forward(x, w, None, 1, (1, 1, 1, 1), 1, 1, method="gemm", relu=True)
    dy = rand(rng, *y.shape)
    grads = conv2d_backward(x, w, dy, 1, (1, 1, 1, 1), 1, 1, method="gemm", relu_out=y)
    for module in (im2col, winograd, pointwise):
        monkeypatch.setattr(module, "SGEMM", False)
    assert strategy(32, w.shape, 1, (1,) * 4, 1, 1) == "blocked" == strategy(32, (8, 32, 1, 1), 1, (0,) * 4, 1, 1)
    assert strategy(32, w.shape, 2, (1,) * 4, 1, 1) == "gemm"
    np.testing.assert_allclose(conv2d_forward(x, w, None, 1, (1, 1, 1, 1), 1, 1, relu=True), y, rtol=1e-5, atol=1e-5)
    for a, b in zip(conv2d_backward(x, w, dy, 1, (1, 1, 1, 1), 1, 1, relu_out=y), grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
