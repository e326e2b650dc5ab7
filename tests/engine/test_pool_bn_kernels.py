"""Pooling and BatchNorm kernels against plain numpy references (PyTorch's max-pool scan, float64 statistics), on
the awkward inputs: NaN, ties, -0.0, clipped and overlapping windows, batch or channel or length 1, large means."""
import re

import numpy as np
import pytest
from numba import njit

from convdesigner.engine.cpu import normalization as bn
from convdesigner.engine.cpu import pool
from convdesigner.engine.cpu.parallel import PARALLEL_FROM
from convdesigner.graph.layers import pool_output

EPS32 = 2.0 ** -24  # float32 unit roundoff


# ---- max pooling ---------------------------------------------------------------------------------------------

def reference_maxpool(x, k, stride, pad, oh, ow):
    """PyTorch's CPU scan: each window's cells in row-major order, a cell taking over when it is greater or NaN (the
    first maximum wins a tie, the last NaN wins); padded cells never win."""
    n, c, h, w = x.shape
    y, arg = np.empty((n, c, oh, ow), np.float32), np.empty((n, c, oh, ow), np.int32)
    for i in range(oh):
        h0, h1 = max(i * stride - pad, 0), min(i * stride - pad + k, h)
        for j in range(ow):
            w0, w1 = max(j * stride - pad, 0), min(j * stride - pad + k, w)
            best, at = np.full((n, c), -np.inf, np.float32), np.full((n, c), h0 * w + w0)
            for r in range(h0, h1):
                for s in range(w0, w1):
                    v = x[:, :, r, s]
                    take = (v > best) | np.isnan(v)
                    best, at = np.where(take, v, best), np.where(take, r * w + s, at)
            y[:, :, i, j], arg[:, :, i, j] = best, at
    return y, arg


def reference_routing(dy, arg, h, w):
    """Zeroed planes and each output's gradient added at its argmax in output order (so -0.0 becomes 0.0)."""
    n, c = dy.shape[:2]
    dx = np.zeros((n, c, h * w), np.float32)
    for a in range(n):
        for b in range(c):
            np.add.at(dx[a, b], arg[a, b].ravel(), dy[a, b].ravel())
    return dx.reshape(n, c, h, w)


def awkward(rng, shape):
    """Values with many exact ties (small integers, 0.0 next to -0.0), some NaNs (several in one window too) and
    -inf (a window of nothing else keeps its first cell)."""
    x = rng.integers(-3, 3, shape).astype(np.float32)
    x[rng.random(shape) < 0.15] = -0.0
    x[rng.random(shape) < 0.06] = np.nan
    x[rng.random(shape) < 0.04] = -np.inf
    x.reshape(-1, shape[2], shape[3])[0, :2, :2] = np.nan
    x.reshape(-1, shape[2], shape[3])[-1, :3, :3] = -np.inf
    return x


def bits(a):
    return np.ascontiguousarray(a).view(np.int32)


# (N, C, H, W, k, stride, pad, ceil_mode)
MAX_CASES = [
    (3, 4, 8, 12, 2, 2, 0, False),   # 2x2 windows tiling the input
    (2, 5, 6, 40, 2, 2, 0, False),   # rows of 40: vector loops and their remainders
    (2, 3, 9, 7, 2, 2, 0, False),    # odd sizes: the last row and column belong to no window
    (2, 3, 9, 7, 2, 2, 0, True),     # ceil mode: clipped windows at the edges
    (2, 3, 8, 8, 2, 2, 1, False),    # padding
    (2, 3, 9, 9, 3, 2, 1, False),    # overlapping windows
    (2, 3, 7, 8, 3, 2, 0, True),     # overlapping and clipped
    (1, 1, 2, 2, 2, 2, 0, False),    # a single window
]


@pytest.mark.parametrize("n,c,h,w,k,stride,pad,ceil_mode", MAX_CASES)
def test_maxpool_matches_pytorchs_scan_bit_for_bit(n, c, h, w, k, stride, pad, ceil_mode):
    rng = np.random.default_rng(h * w + k)
    x = awkward(rng, (n, c, h, w))
    oh, ow = pool_output(h, k, stride, pad, ceil_mode), pool_output(w, k, stride, pad, ceil_mode)
    y, arg = pool.maxpool2d_forward(x, k, stride, pad, oh, ow)
    expected_y, expected_arg = reference_maxpool(x, k, stride, pad, oh, ow)
    assert arg.dtype == np.int32
    np.testing.assert_array_equal(arg, expected_arg)
    np.testing.assert_array_equal(bits(y), bits(expected_y))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy[rng.random(y.shape) < 0.2] = -0.0
    dx = pool.maxpool2d_backward(dy, arg, k, stride, pad, h, w)
    np.testing.assert_array_equal(bits(dx), bits(reference_routing(dy, arg, h, w)))


def test_maxpool_2x2_in_parallel_matches_the_scan():
    """A batch big enough for the parallel kernels, chunks of planes ending mid-batch."""
    rng = np.random.default_rng(3)
    shape = (130, 16, 32, 32)
    assert np.prod(shape) >= PARALLEL_FROM
    x = awkward(rng, shape)
    y, arg = pool.maxpool2d_forward(x, 2, 2, 0, 16, 16)
    expected_y, expected_arg = reference_maxpool(x, 2, 2, 0, 16, 16)
    np.testing.assert_array_equal(arg, expected_arg)
    np.testing.assert_array_equal(bits(y), bits(expected_y))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool.maxpool2d_backward(dy, arg, 2, 2, 0, 32, 32)
    expected = np.zeros(x.shape, np.float32)
    np.put_along_axis(expected.reshape(shape[0], shape[1], -1), arg.reshape(shape[0], shape[1], -1),
                      dy.reshape(shape[0], shape[1], -1), 2)  # tiling windows: one gradient per cell at most
    np.testing.assert_array_equal(bits(dx), bits(0.0 + expected))


# ---- average pooling -----------------------------------------------------------------------------------------

def reference_avg_windows(shape, k, stride, pad, oh, ow):
    """Per output: the slices of its input cells and its divisor, the window clipped to the padded input
    (count_include_pad=True; a ceil-mode window past the padded edge counts its clipped size)."""
    h, w = shape[2:]
    for i in range(oh):
        r0, r1 = i * stride - pad, min(i * stride - pad + k, h + pad)
        for j in range(ow):
            c0, c1 = j * stride - pad, min(j * stride - pad + k, w + pad)
            cells = (slice(None), slice(None), slice(max(r0, 0), min(r1, h)), slice(max(c0, 0), min(c1, w)))
            yield i, j, cells, (r1 - r0) * (c1 - c0)


AVG_CASES = MAX_CASES + [(2, 3, 10, 10, 3, 1, 1, False), (64, 32, 32, 32, 3, 2, 1, False)]  # stride 1; parallel


@pytest.mark.parametrize("n,c,h,w,k,stride,pad,ceil_mode", AVG_CASES)
def test_avgpool_is_the_float64_mean_rounded(n, c, h, w, k, stride, pad, ceil_mode):
    rng = np.random.default_rng(h * w + k + 1)
    x = (rng.standard_normal((n, c, h, w)) * 10).astype(np.float32)
    oh, ow = pool_output(h, k, stride, pad, ceil_mode), pool_output(w, k, stride, pad, ceil_mode)
    y = pool.avgpool2d_forward(x, k, stride, pad, oh, ow)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool.avgpool2d_backward(dy, k, stride, pad, h, w)
    exact, extra = np.zeros(y.shape), np.zeros(y.shape)
    exact_dx, extra_dx = np.zeros(x.shape), np.zeros(x.shape)
    for i, j, cells, div in reference_avg_windows(x.shape, k, stride, pad, oh, ow):
        window = x[cells].astype(np.float64)
        exact[:, :, i, j] = window.sum((2, 3)) / div
        extra[:, :, i, j] = k * k * EPS32 * np.abs(window).sum((2, 3)) / div  # float32 sums of k² terms
        share = (dy[:, :, i, j] / np.float32(div)).astype(np.float64)  # each gradient's share, rounded as it is
        exact_dx[cells] += share[:, :, None, None]
        extra_dx[cells] += k * k * EPS32 * np.abs(share)[:, :, None, None]
    assert_rounded(y, exact, extra=extra)
    assert_rounded(dx, exact_dx, extra=extra_dx)
    if k == stride and pad == 0 and (h, w) == (k * oh, k * ow):  # tiling windows: one share per cell, exactly
        np.testing.assert_array_equal(bits(dx), bits(0.0 + np.repeat(np.repeat(dy / np.float32(k * k), k, 2), k, 3)))


# ---- batch normalisation -------------------------------------------------------------------------------------

BN_SHAPES = [
    (8, 3, 20),
    (1, 4, 7),       # a batch of one
    (5, 1, 9),       # one channel
    (6, 5, 1),       # vectors (N, F, 1)
    (16, 300, 1),    # many features: several channel groups
    (3, 2, 5000),    # channels longer than a group
    (64, 8, 70),     # a big batch: groups cut by bytes
]


def stats(x):
    mean, var = np.empty(x.shape[1], np.float32), np.empty(x.shape[1], np.float32)
    bn.bn_stats(x, mean, var)
    return mean, var


def assert_rounded(got, exact, extra=0.0):
    """``got`` (float32) is ``exact`` (float64) rounded, give or take ``extra`` (elementwise error bounds of the
    float32 steps before the final rounding)."""
    half_ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64) / 2
    assert np.all(np.abs(got.astype(np.float64) - exact) <= half_ulp * (1 + 1e-6) + extra)


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("offset", [0.0, 1e3])  # 1e3: large means, E[x²] - E[x]² would cancel catastrophically
def test_bn_stats_are_float64_statistics_rounded(shape, offset):
    rng = np.random.default_rng(sum(shape))
    x = (offset + rng.standard_normal(shape)).astype(np.float32)
    mean, var = stats(x)
    exact = x.astype(np.float64)
    assert_rounded(mean, exact.mean((0, 2)))
    assert_rounded(var, exact.var((0, 2)))


def test_bn_stats_of_constant_channels_are_exact():
    x = np.full((4, 3, 10), 1e3, np.float32)
    x[:, 1] = -2.5
    mean, var = stats(x)
    np.testing.assert_array_equal(mean, [1e3, -2.5, 1e3])
    np.testing.assert_array_equal(var, [0.0, 0.0, 0.0])


def test_bn_stats_in_parallel_equal_each_channel_alone():
    """A channel's sums do not depend on its group or on the threads: the parallel kernel gives the bits of the
    serial one run on that channel alone."""
    rng = np.random.default_rng(5)
    x = (3.0 + rng.standard_normal((64, 32, 1024))).astype(np.float32)
    assert x.size >= PARALLEL_FROM
    mean, var = stats(x)
    for j in (0, 13, 31):
        alone = stats(np.ascontiguousarray(x[:, j:j + 1]))
        assert (mean[j], var[j]) == (alone[0][0], alone[1][0])
    exact = x.astype(np.float64)
    assert_rounded(mean, exact.mean((0, 2)))
    assert_rounded(var, exact.var((0, 2)))


def affine(rng, c):
    return tuple(rng.standard_normal(c).astype(np.float32) for _ in range(2))


@pytest.mark.parametrize("shape", BN_SHAPES + [(4, 3, 64)])  # L = 64: the per-channel loop
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_bn_normalize_is_x_times_a_plus_b_in_float32(shape, offset):
    rng = np.random.default_rng(sum(shape) + 1)
    x = (offset + rng.standard_normal(shape)).astype(np.float32)
    mean, var = stats(x)
    invstd = (1 / np.sqrt(var + np.float32(1e-5))).astype(np.float32)
    gamma, beta = affine(rng, shape[1])
    y = np.empty_like(x)
    bn.bn_normalize(x, mean, invstd, gamma, beta, y)
    a = gamma * invstd
    b = beta - mean * a
    np.testing.assert_array_equal(bits(y), bits(x * a[:, None] + b[:, None]))  # PyTorch's formula, same roundings
    exact = x.astype(np.float64) * a[:, None] + b[:, None]
    assert_rounded(y, exact, extra=EPS32 * np.abs(x * a[:, None]))


def reference_bn_backward(x, dy, mean, invstd, gamma):
    x, dy, mean, invstd, gamma = (a.astype(np.float64) for a in (x, dy, mean, invstd, gamma))
    xhat = (x - mean[:, None]) * invstd[:, None]
    dbeta, dgamma = dy.sum((0, 2)), (dy * xhat).sum((0, 2))
    m = x.shape[0] * x.shape[2]
    dx = (gamma * invstd)[:, None] * (dy - dbeta[:, None] / m - xhat * dgamma[:, None] / m)
    return dx, dgamma, dbeta, np.abs(xhat)


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_bn_backward_matches_float64_reference(shape, offset):
    rng = np.random.default_rng(sum(shape) + 2)
    x = (offset + rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    mean, var = stats(x)
    invstd = (1 / np.sqrt(var + np.float32(1e-5))).astype(np.float32)
    gamma, _ = affine(rng, shape[1])
    dx, dgamma, dbeta = np.empty_like(x), np.empty_like(mean), np.empty_like(mean)
    bn.bn_backward(x, dy, mean, invstd, gamma, True, dx, dgamma, dbeta)
    exact_dx, exact_dgamma, exact_dbeta, xhat = reference_bn_backward(x, dy, mean, invstd, gamma)
    assert_rounded(dbeta, exact_dbeta)
    # dy·(x - mean)·invstd is rounded twice in float32 per element before the float64 sum
    assert_rounded(dgamma, exact_dgamma, extra=2 * EPS32 * (np.abs(dy) * xhat).sum((0, 2)))
    # and so is xhat in dx, which also carries dgamma's error and the rounding of gamma·invstd
    mdyx = (np.abs(exact_dgamma) + (np.abs(dy) * xhat).sum((0, 2)))[:, None] / (shape[0] * shape[2])
    extra = 2 * EPS32 * np.abs(gamma * invstd)[:, None] * xhat * mdyx + EPS32 * np.abs(exact_dx)
    assert_rounded(dx, exact_dx, extra=extra)
    frozen = np.empty_like(x)  # running statistics: the mean and variance are constants
    bn.bn_backward(x, dy, mean, invstd, gamma, False, frozen, dgamma, dbeta)
    np.testing.assert_array_equal(bits(frozen), bits((gamma * invstd)[:, None] * dy))
    assert_rounded(dbeta, exact_dbeta)


def test_bn_backward_in_parallel_matches_float64_reference():
    rng = np.random.default_rng(6)
    shape = (128, 16, 1024)
    assert np.prod(shape) >= PARALLEL_FROM
    x, dy = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    mean, var = stats(x)
    invstd = (1 / np.sqrt(var + np.float32(1e-5))).astype(np.float32)
    gamma, beta = affine(rng, 16)
    y, dx, dgamma, dbeta = np.empty_like(x), np.empty_like(x), np.empty_like(mean), np.empty_like(mean)
    bn.bn_normalize(x, mean, invstd, gamma, beta, y)
    a = gamma * invstd
    np.testing.assert_array_equal(bits(y), bits(x * a[:, None] + (beta - mean * a)[:, None]))
    bn.bn_backward(x, dy, mean, invstd, gamma, True, dx, dgamma, dbeta)
    exact_dx, exact_dgamma, exact_dbeta, xhat = reference_bn_backward(x, dy, mean, invstd, gamma)
    assert_rounded(dbeta, exact_dbeta)
    assert_rounded(dgamma, exact_dgamma, extra=2 * EPS32 * (np.abs(dy) * xhat).sum((0, 2)))
    np.testing.assert_allclose(dx, exact_dx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("relu", [False, True])
def test_bn_backward_in_two_passes_over_parts_equals_the_whole_batch(relu):
    """What a BatchNorm split between cores runs (engine.replicas): each part's sums, their total, each part's dx."""
    rng = np.random.default_rng(7)
    x, dy = rng.standard_normal((9, 5, 12)).astype(np.float32), rng.standard_normal((9, 5, 12)).astype(np.float32)
    mean, var = stats(x)
    invstd = (1 / np.sqrt(var + np.float32(1e-5))).astype(np.float32)
    gamma, beta = affine(rng, 5)
    y = np.maximum(x * (gamma * invstd)[:, None] + (beta - mean * gamma * invstd)[:, None], 0) if relu else dy
    dx, dgamma, dbeta = np.empty_like(x), np.empty_like(mean), np.empty_like(mean)
    if relu:
        bn.bn_backward_relu(x, dy, y, mean, invstd, gamma, True, dx, dgamma, dbeta)
    else:
        bn.bn_backward(x, dy, mean, invstd, gamma, True, dx, dgamma, dbeta)
    parts = [slice(0, 4), slice(4, 9)]
    shares = []
    for p in parts:
        share = (np.empty_like(mean), np.empty_like(mean))
        bn.bn_backward_sums(x[p], dy[p], y[p], relu, mean, invstd, *share)
        shares.append(share)
    total_dgamma, total_dbeta = (sum(share[i] for share in shares) for i in (0, 1))
    np.testing.assert_allclose(total_dgamma, dgamma, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total_dbeta, dbeta, rtol=1e-5, atol=1e-5)
    split_dx = np.empty_like(x)
    for p in parts:
        bn.bn_backward_dx(x[p], dy[p], y[p], relu, mean, invstd, gamma, total_dgamma, total_dbeta, x.shape[0] * 12,
                          split_dx[p])
    np.testing.assert_allclose(split_dx, dx, rtol=1e-5, atol=1e-6)


# ---- vectorisation -------------------------------------------------------------------------------------------

def vector_loops(kernel, *args):
    """The element types of the vector loads and stores in each vector loop LLVM made of ``kernel`` (serial)."""
    compiled = njit(fastmath=False)(getattr(kernel, "py_func", None) or kernel.__wrapped__)
    compiled(*args)
    ir = next(iter(compiled.inspect_llvm().values()))
    bodies = re.findall(r"^vector\.body\d*:.*?(?=^\S+:)", ir, re.S | re.M)
    return [set(re.findall(r"(?:load|store) <\d+ x (\w+)>", body)) for body in bodies]


def test_the_hot_loops_vectorise():
    """Guards the speed: without vector loops these kernels run ~10x slower (a rewrite that adds a loop-carried
    scalar sum, a branch or an int64 index would lose them silently)."""
    x = np.zeros((2, 3, 8, 8), np.float32)
    y, arg = np.zeros((2, 3, 4, 4), np.float32), np.zeros((2, 3, 4, 4), np.int32)
    forward = vector_loops(pool._max_forward_2x2, x, y, arg)
    assert {"float", "i32"} <= set().union(*forward) and len(forward) >= 2
    backward = vector_loops(pool._max_backward_2x2, y, arg, x)
    assert any({"float", "i32"} <= body for body in backward)
    general = vector_loops(pool._max_forward, x, 3, 2, 1, y, arg)  # window columns' reductions, stride 2
    assert sum({"float", "i32"} <= body for body in general) >= 3
    x3, v = np.zeros((4, 3, 40), np.float32), np.ones(3, np.float32)
    assert any({"double", "float"} <= body for body in vector_loops(bn._stats, x3, v, v.copy(), 0, 1))
    for relu in (False, True):  # the plain backward and the one gated by a fused ReLU's output
        assert sum({"double", "float"} <= body for body in vector_loops(
            bn._backward_groups, x3, x3, x3, relu, v, v, v, True, x3.copy(), v.copy(), v.copy(), bn.BOTH_PASSES, 0,
            0, 1)) >= 2
