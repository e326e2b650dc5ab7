"""Every way a model file can be unusable raises one ModelFileError that names the file and the problem."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from convdesigner.io import ModelFileError, load_model, save_model


def text(value: str) -> np.ndarray:
    data = value.encode()
    return np.array(data, dtype=h5py.string_dtype("utf-8", len(data)))


def edited(path, edit):
    """A copy of the model file at ``path`` changed by ``edit(h5py.File)``."""
    copy = path.with_name("edited.h5")
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as f:
        edit(f)
    return copy


def replace(f, key, data):
    del f[key]
    f[key] = data


def rewrite_graph(f, change):
    graph = json.loads(f["graph"][()].decode())
    change(graph)
    replace(f, "graph", text(json.dumps(graph)))


def check(path, *words):
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_missing_file_and_folder(tmp_path):
    check(tmp_path / "nothing.h5", "no such file")
    check(tmp_path, "folder")


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("these are my notes, not a network")
    check(path, "not an HDF5 file")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    check(empty, "not an HDF5 file")


def test_hdf5_but_not_a_model(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 2))
    check(path, "not a ConvDesigner model")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated(saved, fraction):
    path, _ = saved
    data = path.read_bytes()
    cut = path.with_name("cut.h5")
    cut.write_bytes(data[:int(len(data) * fraction)])
    check(cut, "truncated")


def test_newer_version(saved):
    path, _ = saved
    check(edited(path, lambda f: f.attrs.modify("format_version", 99)), "newer ConvDesigner", "version 99",
          "update ConvDesigner")


def test_missing_array(saved):
    path, _ = saved
    check(edited(path, lambda f: f.__delitem__("weights/conv_bn/running_var")), "/weights/conv_bn/running_var",
          "missing")


def test_missing_block_of_weights(saved):
    path, _ = saved
    check(edited(path, lambda f: f.__delitem__("weights/fc")), "/weights/fc", "missing")


def test_misshapen_array(saved):
    path, _ = saved
    check(edited(path, lambda f: replace(f, "weights/fc/kernel", np.zeros((3, 255), np.float32))),
          "/weights/fc/kernel", "3×255", "3×256")


def test_wrong_dtype(saved):
    path, _ = saved
    check(edited(path, lambda f: replace(f, "weights/conv/bias", np.zeros(4, np.float64))),
          "/weights/conv/bias", "float64", "float32")


def test_unexpected_array(saved):
    path, _ = saved
    check(edited(path, lambda f: f.create_dataset("weights/fc/extra", data=np.zeros(3, np.float32))), "extra")


def test_misshapen_optimizer_slot(saved):
    path, _ = saved
    check(edited(path, lambda f: replace(f, "optimizer/slots/fc/bias/m", np.zeros(4, np.float32))),
          "/optimizer/slots/fc/bias/m", "4", "needs 3")


def test_optimizer_slot_for_a_statistic(saved):
    path, _ = saved
    check(edited(path, lambda f: f.create_dataset("optimizer/slots/conv_bn/running_mean/m",
                                                  data=np.zeros(4, np.float32))), "running_mean")


def test_unknown_kind_in_graph(saved):
    path, _ = saved

    def rename_kind(graph):
        graph["nodes"][1]["kind"] = "Conv3D"
    check(edited(path, lambda f: rewrite_graph(f, rename_kind)), "Conv3D", "unknown kind")


def test_graph_that_does_not_fit_its_weights(saved):
    path, _ = saved

    def more_filters(graph):
        graph["nodes"][1]["params"]["filters"] = 5
    check(edited(path, lambda f: rewrite_graph(f, more_filters)), "/weights/conv/kernel", "5×1×3×3")


def test_graph_text_that_is_not_json(saved):
    path, _ = saved
    check(edited(path, lambda f: replace(f, "graph", text("{'nodes': [}"))), "graph", "JSON")


def test_history_of_the_wrong_type(saved):
    path, _ = saved
    check(edited(path, lambda f: replace(f, "history", text('{"epoch": 1}'))), "history")


def test_flipped_bit_in_a_weight_is_caught_by_its_checksum(saved):
    path, c = saved
    with h5py.File(path, "r") as f:
        offset = f["weights/fc/kernel"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 100] ^= 0x10
    path.write_bytes(bytes(data))
    check(path, "damaged")


def test_error_is_a_value_error_with_the_parts_separately(tmp_path):
    with pytest.raises(ValueError) as caught:
        load_model(tmp_path / "gone.h5")
    assert caught.value.path == str(tmp_path / "gone.h5") and caught.value.problem == "no such file"


def test_saving_into_a_missing_folder(tmp_path, contents):
    with pytest.raises(ModelFileError, match="could not be saved"):
        save_model(tmp_path / "no" / "such" / "m.h5", contents["graph"])
