"""The float32 exp/expm1 (engine/cpu/vexp.py) and the activation kernels built on it, against float64 numpy: errors
in float32 ulps over dense grids, the saturated ends, ±inf, NaN and −0.0, on the serial and the parallel path."""
import platform
import re

import numpy as np
import pytest
from numba import njit

from convdesigner.engine.cpu import activation, parallel
from convdesigner.engine.cpu.vexp import exp_f32, expm1_f32

EXTREMES = np.array([np.inf, -np.inf, np.nan, 100.0, -100.0, -0.0, 0.0], np.float32)


@njit(fastmath=False)
def _exp_loop(x, y):
    for i in range(x.size):
        y[i] = exp_f32(x[i])


@njit(fastmath=False)
def _expm1_loop(x, y):
    for i in range(x.size):
        y[i] = expm1_f32(x[i])


def _apply(loop, x):
    y = np.empty_like(x)
    loop(x, y)
    return y


def ulps(got, ref):
    """|got − ref| in units of the float32 spacing at ref (subnormal results count in subnormal steps)."""
    spacing = np.spacing(np.abs(ref.astype(np.float32))).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / spacing


def _grid(low, high, points=1_000_000):
    """A dense grid plus magnitudes from 1e-30 to 1 of both signs, where relative accuracy near 0 is tested."""
    tiny = np.geomspace(1e-30, 1.0, 20_000)
    return np.concatenate([np.linspace(low, high, points), tiny, -tiny]).astype(np.float32)


@pytest.fixture(params=["serial", "parallel"])
def path(request, monkeypatch):
    """Runs a test once serial and once on the kernels' multi-threaded paths (by_size, elementwise)."""
    if request.param == "parallel":
        monkeypatch.setattr(parallel, "EVERY_SIZE", True)
    return request.param


def test_exp_is_within_1_5_ulp_from_the_smallest_subnormal_to_the_largest_float():
    x = _grid(-103.9, 88.72)  # exp(-103.9) is the smallest subnormal, exp(88.72) just below the largest float
    err = ulps(_apply(_exp_loop, x), np.exp(x.astype(np.float64)))
    assert err.max() < 1.5, f"max error {err.max():.2f} ulp at x = {x[np.argmax(err)]}"


def test_expm1_is_within_two_ulps_and_keeps_relative_accuracy_near_zero():
    x = _grid(-20.0, 88.72)  # past -17, expm1 is -1 in float32
    err = ulps(_apply(_expm1_loop, x), np.expm1(x.astype(np.float64)))
    assert err.max() < 2.0, f"max error {err.max():.2f} ulp at x = {x[np.argmax(err)]}"
    assert _apply(_expm1_loop, np.array([1e-30], np.float32))[0] == np.float32(1e-30)


def test_exp_and_expm1_saturate_and_keep_nan_and_the_sign_of_zero():
    x = np.concatenate([EXTREMES, np.array([88.73, -104.5, -1e-40], np.float32)])
    e = _apply(_exp_loop, x)
    np.testing.assert_array_equal(e, [np.inf, 0.0, np.nan, np.inf, np.float32(np.exp(-100.0)), 1.0, 1.0,
                                      np.inf, 0.0, 1.0])
    m = _apply(_expm1_loop, x)
    np.testing.assert_array_equal(m, [np.inf, -1.0, np.nan, np.inf, -1.0, 0.0, 0.0, np.inf, -1.0, np.float32(-1e-40)])
    assert np.signbit(m[5]) and not np.signbit(m[6])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="reads x86 assembly")
def test_a_loop_of_exp_compiles_to_packed_arithmetic_without_a_call_to_libm():
    for loop in (_exp_loop, _expm1_loop):
        _apply(loop, np.ones(64, np.float32))  # compiles it for float32 arrays
        asm = "\n".join(loop.inspect_asm().values())
        assert re.search(r"\bv?mulps\b", asm), f"{loop.__name__} did not vectorise"
        assert not re.search(r"\bexp(m1)?f?\b", asm), f"{loop.__name__} still calls libm's exp"  # its address


def _run(kernel, *args):
    out = np.empty_like(args[0])
    kernel(*args, out)
    return out


def _sigmoid64(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def test_sigmoid_silu_tanh_and_elu_forward_match_float64(path):
    x = _grid(-110.0, 110.0, 400_001)
    x64 = x.astype(np.float64)
    normal = x > -87.0  # below, sigmoid is subnormal and counts in absolute steps of 1.4e-45
    cases = [("sigmoid", _run(activation.sigmoid_forward, x), _sigmoid64(x), 2.5),
             ("silu", _run(activation.silu_forward, x), x64 * _sigmoid64(x), 3.0),
             ("tanh", _run(activation.tanh_forward, x), np.tanh(x64), 3.0),
             ("elu", _run(activation.elu_forward, x, 0.5), np.where(x64 > 0, x64, 0.5 * np.expm1(x64)), 1.5)]
    for name, got, ref, bound in cases:
        err = ulps(got[normal], ref[normal])
        assert err.max() < bound, f"{name}: {err.max():.2f} ulp at x = {x[normal][np.argmax(err)]}"
        np.testing.assert_allclose(got[~normal], ref[~normal], rtol=0, atol=1e-42, err_msg=name)


def _assert_within(got, ref, dy, what, relative, per_dy):
    """|got − ref| <= relative·|ref| + per_dy·|dy|: a backward result is as good as its incoming gradient's scale."""
    excess = np.abs(got - ref) - (relative * np.abs(ref) + per_dy * np.abs(dy))
    worst = np.argmax(excess)
    assert excess[worst] <= 0.0, f"{what}: {got[worst]} against {ref[worst]} (dy {dy[worst]})"


def test_backward_kernels_match_float64(path):
    x = _grid(-110.0, 110.0, 200_001)
    x64 = x.astype(np.float64)
    dy = np.random.default_rng(0).normal(size=x.shape).astype(np.float32)
    dy64 = dy.astype(np.float64)
    s = _sigmoid64(x)
    # silu' = s (1 + x (1 − s)) crosses zero at x ≈ −1.28, where only an error against |dy| can be bounded
    _assert_within(_run(activation.silu_backward, x, dy), dy64 * s * (1.0 + x64 * (1.0 - s)), dy, "silu",
                   relative=0.0, per_dy=4e-7)
    # the others take the forward's float32 output y
    for name, forward, backward, derivative in [
            ("sigmoid", activation.sigmoid_forward, activation.sigmoid_backward, lambda y: y * (1.0 - y)),
            ("tanh", activation.tanh_forward, activation.tanh_backward, lambda y: 1.0 - y * y)]:
        y = _run(forward, x)
        _assert_within(_run(backward, y, dy), dy64 * derivative(y.astype(np.float64)), dy, name,
                       relative=3e-7, per_dy=1e-7)
    y = _run(activation.elu_forward, x, 0.5)
    _assert_within(_run(activation.elu_backward, x, y, dy, 0.5),
                   dy64 * np.where(x64 > 0, 1.0, y.astype(np.float64) + 0.5), dy, "elu", relative=3e-7, per_dy=0.0)


def test_extremes_saturate_without_nan_and_keep_the_sign_of_zero(path):
    tiny = np.float32(np.exp(-100.0))
    cases = {
        "sigmoid": (_run(activation.sigmoid_forward, EXTREMES), [1.0, 0.0, np.nan, 1.0, tiny, 0.5, 0.5]),
        "silu": (_run(activation.silu_forward, EXTREMES), [np.inf, -0.0, np.nan, 100.0, -100.0 * tiny, -0.0, 0.0]),
        "silu'": (_run(activation.silu_backward, EXTREMES, np.ones_like(EXTREMES)),
                  [1.0, -0.0, np.nan, 1.0, -99.0 * tiny, 0.5, 0.5]),  # silu' < 0 left of −1.28
        "tanh": (_run(activation.tanh_forward, EXTREMES), [1.0, -1.0, np.nan, 1.0, -1.0, -0.0, 0.0]),
        "elu": (_run(activation.elu_forward, EXTREMES, 0.5), [np.inf, -0.5, np.nan, 100.0, -0.5, -0.0, 0.0]),
    }
    for name, (got, want) in cases.items():
        want = np.array(want, np.float32)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-44, err_msg=name)
        zeros = want == 0.0
        np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]), err_msg=f"{name}: sign of 0")


def _softmax64(x):
    """Softmax of float64 values of the kernel's own float32 differences x − max (their rounding is the input's)."""
    e = np.exp((x - x.max(axis=1, keepdims=True)).astype(np.float64))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("shape", [(64, 10, 37), (256, 10, 1)])
def test_softmax_matches_float64_over_channels_and_flat_vectors(shape, path):
    x = np.random.default_rng(1).normal(0.0, 5.0, shape).astype(np.float32)
    y = _run(activation.softmax_forward, x)
    err = ulps(y, _softmax64(x))
    assert err.max() < 2.0, f"max error {err.max():.2f} ulp"
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


def test_softmax_of_huge_and_minus_infinite_scores(path):
    x = np.array([[1e30, 0.0, -np.inf], [-1e30, -1e30, 3.0], [0.0, 0.0, 0.0]], np.float32)[:, :, None]
    np.testing.assert_array_equal(_run(activation.softmax_forward, x)[:, :, 0],
                                  np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]], np.float32))
