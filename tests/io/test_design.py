"""Design files: graph JSON and model files read and written the same way for the window and `convdesigner info`."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from convdesigner.graph import Graph
from convdesigner.io import ModelFileError, h5model
from convdesigner.io.design import read_design, weights_mismatch, write_design


def test_json_round_trip_holds_the_graph_only(tmp_path, contents):
    path = tmp_path / "net.json"
    kept = h5model.ModelFile(contents["graph"], contents["weights"])
    write_design(path, contents["graph"], kept)
    assert json.loads(path.read_text())["format"] == "convdesigner-graph"
    model = read_design(path)
    assert model.graph == contents["graph"] and model.weights is None
    assert os.listdir(tmp_path) == ["net.json"]


def test_h5_keeps_trained_state(tmp_path, contents):
    kept = h5model.ModelFile(contents["graph"], contents["weights"], contents["optimizer"], contents["trainer"],
                             contents["history"], contents["dataset"])
    write_design(tmp_path / "net.h5", contents["graph"], kept)
    model = read_design(tmp_path / "net.h5")
    assert np.array_equal(model.weights["fc"]["kernel"], contents["weights"]["fc"]["kernel"])
    assert model.optimizer["step"] == 17 and model.dataset == contents["dataset"]


def test_json_write_is_atomic_and_synced(tmp_path, monkeypatch, contents):
    """The JSON write goes through the model files' atomic writer: fsynced, and a failure keeps the old file."""
    def tiny_graph():
        return Graph.from_dict(contents["graph"].to_dict())
    path = tmp_path / "net.json"
    write_design(path, tiny_graph())
    before = path.read_bytes()
    synced = []
    real_fsync = h5model._fsync
    monkeypatch.setattr(h5model, "_fsync", lambda p: (synced.append(p.name), real_fsync(p)))
    graph = tiny_graph()
    graph.by_name("fc").params["units"] = 5
    write_design(path, graph)
    assert synced and synced[0].startswith("net.json.tmp-") and read_design(path).graph == graph

    monkeypatch.setattr(h5model, "_fsync", lambda p: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(ModelFileError, match="No space left on device.*unchanged"):
        write_design(path, tiny_graph())
    assert read_design(path).graph == graph and path.read_bytes() != before
    assert os.listdir(tmp_path) == ["net.json"]


@pytest.mark.parametrize("text, words", [("{not json", "is not valid JSON"),
                                         ('{"format": "something else"}', "its graph cannot be used")])
def test_bad_json_is_a_model_file_error(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=words):
        read_design(path)
    with pytest.raises(ModelFileError, match="no such file"):
        read_design(tmp_path / "gone.json")


def test_weights_mismatch_uses_the_model_file_check(contents, tmp_path):
    graph, weights = contents["graph"], contents["weights"]
    assert weights_mismatch(graph, weights) is None
    graph.by_name("fc").params["units"] = 4
    assert weights_mismatch(graph, weights) == "weights fc/kernel has shape (3, 256) but the graph needs (4, 256)"
    with pytest.raises(ModelFileError, match=r"\(3, 256\) but the graph needs \(4, 256\)"):
        h5model.save_model(tmp_path / "m.h5", graph, weights)
    graph.remove(graph.by_name("act").id)
    assert "error" in weights_mismatch(graph, weights)
