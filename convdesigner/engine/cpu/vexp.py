"""exp and expm1 in float32 that LLVM vectorises inside numba loops.

numba has no vector maths library here and the engine compiles with fastmath=False, so math.exp in a loop is one
scalar libm call per element. These are straight-line float32 arithmetic instead (no calls, no branches: clamps and
choices compile to selects), so an element-wise loop that calls them runs 8 lanes per AVX2 instruction. Within 2 ulps
of the float64 result from the smallest subnormal to the largest float, saturating to 0, -1 and inf past the range;
NaN stays NaN. Float64 arguments are rounded to float32 first.
"""
import math

import numpy as np
from numba import njit

_f32 = np.float32
_i32 = np.int32

_LOWEST = _f32(-104.0)  # exp(-104) is below half the smallest subnormal: the result rounds to 0
_HIGHEST = _f32(89.0)  # exp(89) is above the largest float32: the result is inf
_LOG2E = _f32(1.4426950408889634)
_ROUNDER = _f32(12582912.0)  # 1.5 * 2**23: adding it rounds to an integer held in the low mantissa bits
_ROUNDER_BITS = _i32(0x4B400000)
_LN2_HI = _f32(0.693359375)  # ln 2 in two parts (Cody-Waite), so n * _LN2_HI is exact for every n here
_LN2_LO = _f32(-2.12194440e-4)
# expm1(r) = r + r**2 * P(r) on |r| <= ln(2)/2 (Cephes expf)
_P5 = _f32(1.9875691500e-4)
_P4 = _f32(1.3981999507e-3)
_P3 = _f32(8.3334519073e-3)
_P2 = _f32(4.1665795894e-2)
_P1 = _f32(1.6666665459e-1)
_P0 = _f32(5.0000001201e-1)
_BIAS = _i32(127)
_MANTISSA = _i32(23)


@njit(inline="always", cache=True, nogil=True, fastmath=False)
def _power_of_two(k):
    """2**k for an integer -126 <= k <= 127, made from its exponent bits."""
    return _i32((k + _BIAS) << _MANTISSA).view(_f32)


@njit(inline="always", cache=True, nogil=True, fastmath=False)
def _reduce(x):
    """x = n ln2 + r with |r| <= ln(2)/2: returns expm1(r) and 2**n as two factors 2**(n >> 1) and 2**(n - (n >> 1)),
    each a normal float, so that results in the subnormal range and up to 2**128 come out right."""
    x = _f32(x)
    x = _LOWEST if x < _LOWEST else x  # written so that a NaN passes both clamps
    x = _HIGHEST if x > _HIGHEST else x
    t = x * _LOG2E + _ROUNDER
    n_float = t - _ROUNDER
    n = _f32(t).view(_i32) - _ROUNDER_BITS
    r = (x - n_float * _LN2_HI) - n_float * _LN2_LO
    p = r + r * r * (((((_P5 * r + _P4) * r + _P3) * r + _P2) * r + _P1) * r + _P0)
    half = n >> 1
    return p, half, _power_of_two(half), _power_of_two(n - half)


@njit(inline="always", cache=True, nogil=True, fastmath=False)
def exp_f32(x):
    """e**x in float32."""
    p, _, low, high = _reduce(x)
    return ((_f32(1.0) + p) * low) * high


@njit(inline="always", cache=True, nogil=True, fastmath=False)
def expm1_f32(x):
    """e**x - 1 in float32, accurate (relative to the result) near x = 0, where exp(x) - 1 would cancel."""
    p, half, low, high = _reduce(x)
    inverse_low = _power_of_two(-half)
    # low * (high - 1 / low) = 2**n - 1, exact where it matters; copysign keeps expm1(-0.0) = -0.0
    return math.copysign(low * ((high - inverse_low) + high * p), _f32(x))
