import numpy as np

from convdesigner.data.transform import channel_stats, convert_channels, resize, to_dataset_dtype


def test_resize_keeps_constants_and_linear_ramps():
    flat = np.full((2, 3, 5, 7), 77, np.uint8)
    assert (resize(flat, (9, 4)) == 77).all() and resize(flat, (9, 4)).shape == (2, 3, 9, 4)
    ramp = np.tile(np.arange(8, dtype=np.float32), (1, 1, 8, 1))
    doubled = resize(ramp, (8, 16))[0, 0, 0]
    np.testing.assert_allclose(doubled[2:-2], (np.arange(16)[2:-2] + 0.5) / 2 - 0.5, atol=1e-5)  # centres aligned


def test_resize_shrinks_by_averaging():
    checker = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)[None, None]
    error = np.abs(resize(checker, (4, 4)).astype(int) - 128)[0, 0]
    assert error[1:-1, 1:-1].max() <= 1 and error.max() <= 3  # no aliasing to 0 or 255; edges see fewer taps


def test_channel_conversion():
    grey = np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(convert_channels(grey, 3), np.repeat(grey, 3, 1))
    rgb = np.zeros((1, 3, 1, 1), np.uint8)
    rgb[0, 0] = 200
    assert convert_channels(rgb, 1)[0, 0, 0, 0] == round(0.299 * 200)


def test_stats_match_numpy_for_both_dtypes():
    x = np.random.default_rng(0).integers(0, 256, (6, 2, 5, 5), dtype=np.uint8)
    mean, std = channel_stats(x)
    ref = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(channel_stats(ref.astype(np.float32))[1], std, atol=1e-5)


def test_dtype_guesses():
    assert to_dataset_dtype(np.array([0, 255], np.int64))[0].dtype == np.uint8
    images, note = to_dataset_dtype(np.array([0.0, 128.0]))
    assert images.dtype == np.float32 and images[1] == np.float32(128 / 255) and "divided by 255" in note
    assert to_dataset_dtype(np.array([0.0, 0.5]))[1] is None
