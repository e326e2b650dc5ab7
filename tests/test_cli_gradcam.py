"""`convdesigner predict model.h5 picture --gradcam out.png` writes the Grad-CAM overlay of the top class."""
import numpy as np
import pytest
from PIL import Image

from convdesigner import cli
from convdesigner.data import load_dataset
from convdesigner.engine import compile
from convdesigner.graph import build
from convdesigner.io import save_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gradcam")
    net = compile(build("lenet5"), seed=0)
    train, _ = load_dataset("mnist-sample", limit=32)
    save_model(folder / "lenet.h5", net.graph, net.state_dict(), dataset=train.description())
    picture = folder / "digit.png"
    Image.fromarray(train.images[0, 0]).save(picture)
    return folder / "lenet.h5", picture


def test_gradcam_overlay_is_written_enlarged(model, tmp_path, capsys):
    path, picture = model
    out = tmp_path / "cam.png"
    assert cli.main(["predict", str(path), str(picture), "--gradcam", str(out), "--block", "conv1"]) == 0
    text = capsys.readouterr().out
    assert "at block conv1 written to" in text and str(out) in text
    with Image.open(out) as image:
        assert image.size == (224, 224) and image.mode == "RGB"
        pixels = np.asarray(image)
    assert pixels.std() > 0
    assert cli.main(["predict", str(path), str(picture), "--gradcam", str(out)]) == 0
    assert "at block pool2" in capsys.readouterr().out  # the last block with maps by default


@pytest.mark.parametrize("extra,message", [
    (["--block", "fc1"], "gives a flat 120-vector"),
    (["--block", "nope"], "no block 'nope'"),
    (["--opacity", "2"], "--opacity must lie between 0 and 1"),
])
def test_gradcam_refusals_are_messages(model, tmp_path, capsys, extra, message):
    path, picture = model
    assert cli.main(["predict", str(path), str(picture), "--gradcam", str(tmp_path / "c.png"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_gradcam_wants_one_picture_and_a_writable_path(model, tmp_path, capsys):
    path, picture = model
    assert cli.main(["predict", str(path), str(picture), str(picture), "--gradcam", str(tmp_path / "c.png")]) == 2
    assert "give a single picture" in capsys.readouterr().err
    assert cli.main(["predict", str(path), str(picture), "--gradcam", str(tmp_path / "no" / "c.png")]) == 2
    assert "cannot write the Grad-CAM overlay" in capsys.readouterr().err
