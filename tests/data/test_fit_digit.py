"""The MNIST-style fit of a user's digit: cropped to the ink, scaled into 20×20, centred by mass in 28×28."""
import numpy as np
from PIL import Image

from convdesigner.data import load_image
from convdesigner.data.images import fit_digit

MNIST_LIKE = {"input_shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081]}


def seven(height=100, width=80):
    """A 7 drawn in black edge to edge on white paper (what a new user draws in a paint program)."""
    a = np.full((height, width), 255, np.uint8)
    a[:12] = 0
    for r in range(height):
        c = int(width - 12 - r * (width - 24) / height)
        a[r, c:c + 12] = 0
    return a


def test_ink_fills_a_20_box_with_its_centre_of_mass_in_the_middle():
    out = fit_digit(255 - seven()[None])
    assert out.shape == (1, 28, 28) and out.dtype == np.uint8
    rows, cols = np.nonzero(out[0] > 40)
    assert rows.max() - rows.min() + 1 in (19, 20, 21)  # the longer side (height) scaled to 20
    assert cols.max() - cols.min() + 1 <= 20
    mass = out[0].astype(float)
    centre = [(mass.sum(axis=1 - a) * np.arange(28)).sum() / mass.sum() for a in (0, 1)]
    np.testing.assert_allclose(centre, [13.5, 13.5], atol=1.0)
    assert out[0, :3].max() == 0 and out[0, :, :3].max() == 0  # an MNIST-like border


def test_the_same_digit_with_or_without_a_border_gives_nearly_the_same_input(tmp_path):
    Image.fromarray(seven()).save(tmp_path / "edge.png")
    Image.fromarray(np.pad(seven(), 40, constant_values=255)).save(tmp_path / "border.png")
    a = load_image(tmp_path / "edge.png", description=MNIST_LIKE)
    b = load_image(tmp_path / "border.png", description=MNIST_LIKE)
    plain = load_image(tmp_path / "edge.png", description=MNIST_LIKE, fit=False)
    assert a.shape == b.shape == (1, 1, 28, 28)
    assert np.abs(a - b).max() < 1e-6 and np.abs(a - plain).mean() > 0.3


def test_blank_pictures_and_colour_models_are_only_resized(tmp_path):
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "blank.png")
    x = load_image(tmp_path / "blank.png", description=MNIST_LIKE)
    np.testing.assert_allclose(x, -0.1307 / 0.3081, atol=1e-6)  # inverted white paper: all background
    assert fit_digit(np.zeros((1, 10, 10), np.uint8)) is None
    Image.fromarray(np.stack([seven()] * 3, -1)).save(tmp_path / "rgb.png")
    assert load_image(tmp_path / "rgb.png", (3, 28, 28)).shape == (1, 3, 28, 28)


def test_centre_crop_keeps_the_middle_instead_of_squeezing(tmp_path):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = (255, 0, 0)  # the middle third is red
    Image.fromarray(wide).save(tmp_path / "wide.png")
    cropped = load_image(tmp_path / "wide.png", (3, 10, 10), crop=True)
    squeezed = load_image(tmp_path / "wide.png", (3, 10, 10))
    assert cropped.shape == squeezed.shape == (1, 3, 10, 10)
    assert cropped[0, 0].min() > 0.9 and cropped[0, 1].max() < 0.1  # all red
    assert squeezed[0, 0, :, 0].max() < 0.1  # the black left third is still there
