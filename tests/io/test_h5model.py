"""Model files: what goes in comes back identical, the layout is the documented one, and designs are files too."""
from __future__ import annotations

import math
import os
import stat

import h5py
import numpy as np
import pytest

from convdesigner.graph import build
from convdesigner.io import ModelFileError, expected_arrays, file_layout, load_model, save_model
from convdesigner.io.h5model import FORMAT, VERSION


def same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            same_arrays(a[key], b[key])
        else:
            assert b[key].dtype == np.float32 and b[key].shape == a[key].shape
            assert np.array_equal(a[key], b[key])


def same_plain(a, b) -> None:
    """Equal JSON-like values, NaN equal to NaN (history rows without validation hold NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            same_plain(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same_plain(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert a == b and type(a) is type(b)


def test_round_trip_gives_back_everything(saved):
    path, c = saved
    m = load_model(path)
    assert m.graph == c["graph"]
    assert m.graph.by_name("conv_bn").pos == c["graph"].by_name("conv_bn").pos == (10.0, 140.0)
    same_arrays(c["weights"], m.weights)
    assert set(m.weights["conv_bn"]) == {"gamma", "beta", "running_mean", "running_var"}
    assert m.optimizer["kind"] == "adam" and m.optimizer["step"] == 17
    assert m.optimizer["hyper"] == c["optimizer"]["hyper"]
    same_arrays(c["optimizer"]["slots"], m.optimizer["slots"])
    same_plain(c["trainer"], m.trainer)
    same_plain(c["history"], m.history)
    assert m.dataset == c["dataset"]
    from convdesigner import __version__
    assert m.app_version == __version__


def test_history_defaults_to_the_trainers(tmp_path, contents):
    contents.pop("history")
    save_model(tmp_path / "m.h5", **contents)
    same_plain(contents["trainer"]["history"], load_model(tmp_path / "m.h5").history)


def test_layout_is_the_documented_one(saved):
    path, c = saved
    with h5py.File(path, "r") as f:
        assert f.attrs["format"].decode() == FORMAT and f.attrs["format_version"] == VERSION
        assert f["weights/conv/kernel"].shape == (4, 1, 3, 3) and f["weights/conv/kernel"].dtype == np.float32
        assert f["weights/conv_bn/running_var"].shape == (4,)
        assert f["weights/fc"].attrs["kind"].decode() == "Dense"
        assert f["optimizer"].attrs["kind"].decode() == "adam" and f["optimizer"].attrs["step"] == 17
        assert f["optimizer/slots/act/slope/v"].shape == (4,)
        assert "running_mean" not in f["optimizer/slots/conv_bn"]
        assert f["weights/fc/kernel"].fletcher32
        assert {"graph", "history", "trainer", "dataset"} <= set(f)
    lines = file_layout(path)
    assert "/weights/fc/kernel  float32 3×256 (3,072 bytes)" in lines
    assert "    @format = convdesigner-model" in lines


def test_a_design_without_weights_is_a_file(tmp_path):
    graph = build("lenet5")
    graph.move(3, (120.5, -40.0))
    save_model(tmp_path / "design.h5", graph)
    m = load_model(tmp_path / "design.h5")
    assert m.graph == graph and m.graph.nodes[3].pos == (120.5, -40.0)
    assert m.weights is None and m.optimizer is None and m.trainer is None and m.dataset is None and m.history == []
    with h5py.File(tmp_path / "design.h5", "r") as f:
        assert "weights" not in f  # absent, not zeros


def test_an_unfinished_design_with_errors_is_saved_but_not_its_weights(tmp_path, contents):
    graph = contents["graph"]
    graph.remove(graph.by_name("flatten").id)  # fc loses its input: an error the canvas shows
    save_model(tmp_path / "draft.h5", graph)
    assert load_model(tmp_path / "draft.h5").graph == graph
    with pytest.raises(ModelFileError, match="draft.h5.*error"):
        save_model(tmp_path / "draft.h5", graph, contents["weights"])
    assert load_model(tmp_path / "draft.h5").graph == graph


@pytest.mark.parametrize("change, words", [
    (lambda w: w["conv"].pop("bias"), "lack 'bias'"),
    (lambda w: w["fc"].update(kernel=np.zeros((3, 255), np.float32)), r"\(3, 255\) but the graph needs \(3, 256\)"),
    (lambda w: w["fc"].update(bias=np.zeros(3, np.float64)), "float32"),
    (lambda w: w.update(ghost={"kernel": np.zeros(1, np.float32)}), "'ghost'"),
    (lambda w: w["act"].update(alpha=np.zeros(4, np.float32)), "no array 'alpha'"),
])
def test_saving_refuses_weights_that_do_not_fit_and_writes_nothing(tmp_path, contents, change, words):
    change(contents["weights"])
    target = tmp_path / "m.h5"
    with pytest.raises(ModelFileError, match=words):
        save_model(target, contents["graph"], contents["weights"])
    assert os.listdir(tmp_path) == []


def test_saving_refuses_optimizer_slots_that_do_not_fit(tmp_path, contents):
    contents["optimizer"]["slots"]["fc/kernel"]["m"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ModelFileError, match="fc/kernel m"):
        save_model(tmp_path / "m.h5", **contents)
    contents["optimizer"]["slots"] = {"conv_bn/running_mean": {"m": np.zeros(4, np.float32)}}
    with pytest.raises(ModelFileError, match="not a learnable array"):
        save_model(tmp_path / "m.h5", **contents)


def test_slotless_optimizer_state_reads_back_the_same(tmp_path, contents):
    """Plain SGD keeps no arrays per parameter; its (empty) entries must still come back."""
    slots = {key: {} for key in contents["optimizer"]["slots"]}
    contents["optimizer"] = {"kind": "sgd", "hyper": {"lr": 0.1, "momentum": 0.0}, "step": 4, "slots": slots}
    save_model(tmp_path / "m.h5", **contents)
    assert load_model(tmp_path / "m.h5").optimizer == contents["optimizer"]


def test_numpy_scalars_in_metadata_are_stored_as_numbers(tmp_path, contents):
    contents["history"][0]["train_loss"] = np.float32(0.5)
    save_model(tmp_path / "m.h5", **contents)
    assert load_model(tmp_path / "m.h5").history[0]["train_loss"] == 0.5


def test_every_array_of_a_full_size_template_is_checked(tmp_path):
    """ResNet-18 needs one kernel per conv and BN statistics per BatchNorm, all from the catalogue."""
    specs = expected_arrays(build("resnet18"))
    assert specs["conv1"]["kernel"].shape == (64, 3, 7, 7) and specs["conv1"]["kernel"].learnable
    assert not specs["conv1_bn"]["running_var"].learnable
    assert specs["fc"]["kernel"].shape == (1000, 512)
    assert sum(math.prod(s.shape) for b in specs.values() for s in b.values() if s.learnable) == 11_689_512


def test_replacing_a_file_keeps_its_permissions(tmp_path, contents):
    path = tmp_path / "m.h5"
    save_model(path, contents["graph"])
    os.chmod(path, 0o640)
    save_model(path, **contents)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert load_model(path).weights is not None


def test_saving_through_a_link_replaces_the_file_it_points_to(tmp_path, contents):
    real = tmp_path / "real.h5"
    save_model(real, contents["graph"])
    link = tmp_path / "link.h5"
    link.symlink_to(real)
    save_model(link, **contents)
    assert link.is_symlink() and load_model(real).weights is not None
