"""The padded-plane copies of engine/cpu/planes.py: vector and scalar parts agree, the ReLU gate as the scalar one."""
import numpy as np
import pytest

from convdesigner.engine.cpu.planes import crop_into, pad_into
from convdesigner.engine.cpu.simd import WIDTH


@pytest.mark.parametrize("width", [1, WIDTH - 1, WIDTH, WIDTH + 3, 2 * WIDTH + 5])
def test_pad_and_crop_round_trip_rows_of_any_length(width):
    """Rows shorter than a vector, of whole vectors, and of vectors and a rest land inside zero borders and back."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, width), dtype=np.float32)
    top, left, wp, hp = 2, 1, width + 3, 4 + 3
    planes = np.zeros((3, 2 * hp * wp + 5), np.float32)
    for n in range(2):
        pad_into(planes.ravel(), n * hp * wp, planes.shape[1], x, n, top, left, wp, None)
    want = np.zeros((2, 3, hp, wp), np.float32)
    want[:, :, top:top + 4, left:left + width] = x
    np.testing.assert_array_equal(planes[:, :2 * hp * wp].reshape(3, 2, hp, wp).transpose(1, 0, 2, 3), want)
    assert not planes[:, 2 * hp * wp:].any()
    back = np.full_like(x, np.nan)
    for n in range(2):
        crop_into(back, n, np.ascontiguousarray(want[n].reshape(3, hp * wp)), top, left, wp)
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("width", [WIDTH - 3, 2 * WIDTH + 5])
def test_gated_padding_multiplies_by_the_open_gates_as_the_scalar_relu_backward(width):
    """x · (gate > 0): a NaN gate shuts, a NaN or infinite x stays NaN where shut, a negative x shut gives -0."""
    x = np.array([1.0, -2.0, np.nan, np.inf, -np.inf, 3.0, -0.5, np.nan] * width, np.float32)[:width]
    gate = np.array([1.0, 0.0, 0.0, -1.0, 2.0, np.nan, -3.0, 5.0] * width, np.float32)[:width]
    planes = np.full((1, width + 2), 7.0, np.float32)
    pad_into(planes.ravel(), 0, planes.shape[1], x.reshape(1, 1, 1, width), 0, 0, 1, width + 2,
             gate.reshape(1, 1, 1, width))
    with np.errstate(invalid="ignore"):
        want = x * (gate > 0).astype(np.float32)
    np.testing.assert_array_equal(planes[0, 1:width + 1], want)
    np.testing.assert_array_equal(np.signbit(planes[0, 1:width + 1]), np.signbit(want))
    assert planes[0, 0] == 7.0 and planes[0, -1] == 7.0
