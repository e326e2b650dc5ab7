import numpy as np
import pytest
from PIL import Image

from convdesigner.data import DatasetError, load_image

MNIST_LIKE = {"name": "mnist-sample", "input_shape": [1, 28, 28], "class_names": list("0123456789"),
              "mean": [0.1307], "std": [0.3081]}


def _digit(tmp_path, ink, paper):
    picture = np.full((56, 56, 3), paper, np.uint8)
    picture[10:46, 24:32] = ink  # a "1"
    Image.fromarray(picture).save(tmp_path / "one.png")
    return tmp_path / "one.png"


def test_black_on_white_is_inverted_for_a_white_on_black_model(tmp_path):
    x = load_image(_digit(tmp_path, 0, 255), description=MNIST_LIKE)
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    background = (0 - 0.1307) / 0.3081
    assert np.isclose(x[0, 0, 0, 0], background) and np.isclose(x[0, 0, 14, 14], (1 - 0.1307) / 0.3081)


def test_white_on_black_is_kept_and_invert_can_be_forced(tmp_path):
    path = _digit(tmp_path, 255, 0)
    x = load_image(path, description=MNIST_LIKE)
    assert np.isclose(x[0, 0, 0, 0], -0.1307 / 0.3081)
    forced = load_image(path, description=MNIST_LIKE, invert=True)
    assert np.isclose(forced[0, 0, 0, 0], (1 - 0.1307) / 0.3081)


def test_colour_model_gets_three_normalised_channels(tmp_path):
    Image.fromarray(np.full((10, 20, 3), (255, 0, 51), np.uint8)).save(tmp_path / "c.png")
    description = {"input_shape": [3, 8, 8], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.25, 0.1]}
    x = load_image(tmp_path / "c.png", description=description)
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, 4, 4], [1.0, -2.0, -3.0], atol=1e-5)  # never inverted: colour model


def test_input_shape_without_description_and_errors(tmp_path):
    path = _digit(tmp_path, 255, 0)
    assert load_image(path, (3, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(DatasetError, match="need an input shape"):
        load_image(path)
    with pytest.raises(DatasetError, match="file not found"):
        load_image(tmp_path / "nope.png", (1, 28, 28))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(DatasetError, match=r"bad\.jpg: cannot decode this picture"):
        load_image(tmp_path / "bad.jpg", (1, 28, 28))
