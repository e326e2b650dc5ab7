import numpy as np
import pytest

from convdesigner.data import Augment, Dataset, DatasetError, batches
from convdesigner.data.augment import flip, rotate, shift


def _batch(n=6, c=3, h=9, w=7):
    return np.random.default_rng(1).standard_normal((n, c, h, w)).astype(np.float32)


def test_every_operation_keeps_shape_and_dtype():
    x = _batch()
    out = Augment("flip,shift,rotate,noise")(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and not np.array_equal(out, x)


def test_flip_twice_is_identity_and_flip_mirrors():
    x = _batch()
    once = flip(x, np.random.default_rng(5))
    np.testing.assert_array_equal(flip(once, np.random.default_rng(5)), x)
    mirrored = flip(x, np.random.default_rng(0), probability=1.0)
    np.testing.assert_array_equal(mirrored, x[..., ::-1])


def test_zero_shift_zero_turn_are_identity():
    x = _batch()
    np.testing.assert_array_equal(Augment("shift=0")(x, np.random.default_rng(0)), x)
    np.testing.assert_allclose(rotate(x, np.random.default_rng(0), 0.0), x, atol=1e-6)


def test_shift_moves_content_and_fills_with_zero():
    x = np.arange(2 * 1 * 5 * 5, dtype=np.float32).reshape(2, 1, 5, 5) + 1
    rng = np.random.default_rng(7)
    dy, dx = np.random.default_rng(7).integers(-2, 3, (2, 2))
    out = shift(x, rng, 2)
    for i in range(2):
        expected = np.zeros((5, 5), np.float32)
        ys, xs = slice(max(dy[i], 0), 5 + min(dy[i], 0)), slice(max(dx[i], 0), 5 + min(dx[i], 0))
        yd, xd = slice(max(-dy[i], 0), 5 + min(-dy[i], 0)), slice(max(-dx[i], 0), 5 + min(-dx[i], 0))
        expected[ys, xs] = x[i, 0, yd, xd]
        np.testing.assert_array_equal(out[i, 0], expected)


def test_quarter_turn_is_exact_on_a_square():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)

    class Fixed:  # an rng whose uniform draw is always the upper bound
        def uniform(self, low, high, size):
            return np.full(size, high)

    out = rotate(x, Fixed(), 90.0)
    np.testing.assert_allclose(out[0, 0], np.rot90(x[0, 0], k=-1), atol=1e-5)  # clockwise on screen (y down)


def test_same_rng_state_same_batch():
    x = _batch()
    aug = Augment("flip, shift=2, rotate=15, noise=0.2")
    np.testing.assert_array_equal(aug(x, np.random.default_rng(3)), aug(x, np.random.default_rng(3)))
    assert str(aug) == "flip=0.5,shift=2,rotate=15,noise=0.2" and bool(aug) and not Augment("")


def test_noise_has_the_asked_spread():
    x = np.zeros((50, 1, 20, 20), np.float32)
    out = Augment("noise=0.3")(x, np.random.default_rng(0))
    assert abs(out.std() - 0.3) < 0.01 and abs(out.mean()) < 0.01


def test_bad_specs():
    with pytest.raises(DatasetError, match="unknown augmentation 'blur'; choose from flip, shift, rotate, noise"):
        Augment("flip,blur")
    with pytest.raises(DatasetError, match="needs a number after '=', not 'lots'"):
        Augment("noise=lots")
    with pytest.raises(DatasetError, match="'flip=2' is out of range"):
        Augment("flip=2")


def test_batches_apply_it_on_normalised_float32():
    data = Dataset(np.full((5, 1, 4, 4), 255, np.uint8), np.arange(5) % 2, ["a", "b"], (0.5,), (0.25,))
    seen = [x for x, _ in batches(data, 2, shuffle=True, rng=np.random.default_rng(0), augment=Augment("flip"))]
    assert [len(x) for x in seen] == [2, 2, 1]
    assert all(x.dtype == np.float32 and np.allclose(x, 2.0) for x in seen)
