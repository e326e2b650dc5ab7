"""Model files crafted to read other files, to allocate more than they hold, or to slip past the checks: each one is
refused with a ModelFileError before anything of it is used, and nothing outside the file is ever read."""
from __future__ import annotations

import json
import os
import shutil
import threading

import h5py
import numpy as np
import pytest

from convdesigner.io import ModelFileError, h5model, load_model, save_model
from convdesigner.io.design import read_design

SENTINEL = b"SENTINEL-7f3a9c-this-must-never-be-read"


def peak_kb() -> int:
    """The process's peak memory (kB), where the system reports it (0 elsewhere: the check is then skipped)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture
def sentinel(tmp_path):
    """A file of another program (think /etc/passwd), and an HDF5 file with a float32 array of its bytes."""
    path = tmp_path / "secret.bin"
    path.write_bytes(SENTINEL * 64)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.frombuffer(SENTINEL * 64, np.float32)
        f["text"] = np.array(SENTINEL, dtype=h5py.string_dtype("utf-8", len(SENTINEL)))
    return path, other


def edited(path, edit):
    copy = path.with_name("hostile.h5")
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as f:
        edit(f)
    return copy


def refused(path, *words) -> str:
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message and SENTINEL.decode() not in message
    for word in words:
        assert word in message, message
    return message


def swap_array(f, key, make):
    """Replace the array ``key`` with the dataset ``make(f, key, shape)`` creates."""
    shape = f[key].shape
    del f[key]
    make(f, key, shape)


def test_external_raw_storage_pointing_at_another_file_is_refused(saved, sentinel):
    secret, _ = sentinel
    path = edited(saved[0], lambda f: swap_array(f, "weights/fc/bias", lambda f, k, s: f.create_dataset(
        k, shape=s, dtype="f4", external=[(str(secret), 0, 4 * s[0])])))
    refused(path, "weights/fc/bias", "external file", "may only read itself")


def test_external_storage_for_a_text_entry_is_refused(saved, sentinel):
    secret, _ = sentinel

    def edit(f):
        del f["dataset"]
        f.create_dataset("dataset", shape=(), dtype=h5py.string_dtype("utf-8", len(SENTINEL)),
                         external=[(str(secret), 0, len(SENTINEL))])
    refused(edited(saved[0], edit), "/dataset")  # h5py drops external= for a scalar: then it holds no bytes


def test_external_link_is_refused_unfollowed(saved, sentinel):
    _, other = sentinel

    def edit(f):
        del f["dataset"]
        f["dataset"] = h5py.ExternalLink(str(other), "/text")
    refused(edited(saved[0], edit), "external link", "other.h5")


def test_soft_link_is_refused(saved):
    def edit(f):
        del f["weights/fc/bias"]
        f["weights/fc/bias"] = h5py.SoftLink("/weights/conv/bias")
    refused(edited(saved[0], edit), "soft link")


def test_virtual_dataset_is_refused(saved, sentinel):
    _, other = sentinel

    def make(f, key, shape):
        layout = h5py.VirtualLayout(shape, "f4")
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(len(SENTINEL) * 16,))[:shape[0]]
        f.create_virtual_dataset(key, layout)
    refused(edited(saved[0], lambda f: swap_array(f, "weights/fc/bias", make)), "virtual dataset")


def test_a_hard_link_twice_to_one_array_is_refused(saved):
    def edit(f):
        f["weights/fc/bias2"] = f["weights/fc/bias"]
    refused(edited(saved[0], edit), "already linked")


@pytest.mark.parametrize("entry", ["notes", "weights_backup"])
def test_extra_entries_at_the_root_are_refused(saved, entry):
    refused(edited(saved[0], lambda f: f.create_group(entry)), "entries the model format does not have", entry)


def test_extra_attributes_are_refused(saved):
    refused(edited(saved[0], lambda f: f["weights/fc"].attrs.create("note", 1)), "attribute 'note'")


def test_variable_length_text_is_refused_unread(saved):
    def edit(f):
        del f["dataset"]
        f["dataset"] = json.dumps({"name": "x"})  # h5py stores a Python str as a variable-length string
    refused(edited(saved[0], edit), "'dataset' entry is not text")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_links_to_a_fifo_never_hang(saved, tmp_path):
    """A FIFO blocks whoever opens it for reading until a writer comes: a load that tried to would hang."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    hostile = []
    hostile.append(edited(saved[0], lambda f: swap_array(f, "weights/fc/bias", lambda f, k, s: f.create_dataset(
        k, shape=s, dtype="f4", external=[(str(fifo), 0, 4 * s[0])]))))
    shutil.move(hostile[-1], tmp_path / "a.h5")
    hostile[-1] = tmp_path / "a.h5"

    def link(f):
        del f["trainer"]
        f["trainer"] = h5py.ExternalLink(str(fifo), "/x")
    hostile.append(edited(saved[0], link))
    results = []

    def load_all():
        for path in hostile:
            try:
                load_model(path)
                results.append("loaded")
            except ModelFileError as e:
                results.append(str(e))
    worker = threading.Thread(target=load_all, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
    assert not worker.is_alive() and len(results) == 2 and "loaded" not in results


def test_unwritten_huge_array_is_refused_without_allocating_it(saved):
    """An 8 KB file declaring a 2^20×784 Dense kernel (3.2 GB) that was never written."""
    path = saved[0]
    graph = json.loads(h5py.File(path, "r")["graph"][()].decode())
    graph["nodes"][0]["params"].update(channels=1, height=28, width=28)  # input 784 values wide after flatten
    fc = next(n for n in graph["nodes"] if n["name"] == "fc")
    fc["params"]["units"] = 2 ** 20

    def edit(f):
        del f["graph"], f["optimizer"], f["weights"]
        text = json.dumps(graph).encode()
        f["graph"] = np.array(text, dtype=h5py.string_dtype("utf-8", len(text)))
        f.create_group("weights/fc").attrs["kind"] = np.array(b"Dense", dtype=h5py.string_dtype("utf-8", 5))
        f.create_dataset("weights/fc/kernel", shape=(2 ** 20, 784), dtype="f4", chunks=(1024, 784),
                         fletcher32=True)
    hostile = edited(path, edit)
    assert os.path.getsize(hostile) < 64_000
    before = peak_kb()
    refused(hostile, "never written")
    assert peak_kb() - before < 200_000  # kB: far below 3.2 GB


def test_a_lost_chunk_is_not_read_back_as_zeros(tmp_path, contents):
    """HDF5 returns the fill value for a chunk its index has lost; the chunk count shows it."""
    path = tmp_path / "m.h5"
    big = {**contents["weights"]}
    save_model(path, contents["graph"], big)

    def edit(f):
        data = f["weights/fc/kernel"][()]
        del f["weights/fc/kernel"]
        ds = f.create_dataset("weights/fc/kernel", shape=data.shape, dtype="f4", chunks=(1, data.shape[1]),
                              fletcher32=True)
        ds[1:] = data[1:]  # chunk 0 never written
    refused(edited(path, edit), "chunks", "holds 2 of them")


@pytest.mark.parametrize("key, value, words", [
    ("dataset", {"class_names": 5}, ["class_names", "list"]),
    ("dataset", {"mean": 0.5}, ["mean", "list"]),
    ("dataset", {"std": [0.0]}, ["std", "positive"]),
    ("dataset", {"input_shape": [1, -8, 8]}, ["height"]),
    ("dataset", {"class_names": [1, 2]}, ["class name 0"]),
    ("dataset", {"surprise": 1}, ["unknown entries"]),
    ("trainer", {"seed": 3}, ["no 'epoch'"]),
    ("trainer", {"epoch": "2"}, ["trainer epoch"]),
    ("trainer", {"epoch": 2, "settings": [1, 2]}, ["trainer settings", "list"]),
    ("trainer", {"epoch": 2, "batch_size": 0}, ["batch_size"]),
    ("trainer", {"epoch": 2, "best": {"epoch": 1, "loss": "low"}}, ["best loss"]),
    ("trainer", {"epoch": 2, "schedule": {"kind": "step", "base_lr": None}}, ["base_lr"]),
    ("trainer", {"epoch": 2, "history": [{"epoch": 1, "train_loss": [1]}]}, ["train_loss"]),
    ("trainer", {"epoch": 2, "position": {"epoch": 3, "batch": -1, "seen": 8, "right": 1, "loss_sum": 2.0}},
     ["position batch"]),
    ("trainer", {"epoch": 2, "position": [3, 20]}, ["trainer position", "object"]),
    ("history", [{"epoch": -1}], ["history row 1 epoch"]),
    ("history", [{"epoch": 1, "lr": {"a": 1}}], ["lr"]),
])
def test_every_field_is_type_and_range_checked(saved, key, value, words):
    def edit(f):
        del f[key]
        text = json.dumps(value).encode()
        f[key] = np.array(text, dtype=h5py.string_dtype("utf-8", len(text)))
    refused(edited(saved[0], edit), *words)


@pytest.mark.parametrize("step, hyper, words", [(-5, {"lr": 0.001}, ["step"]), (3, {"lr": "fast"}, ["lr"]),
                                                (3, {"lr": float("inf")}, ["lr"])])
def test_optimizer_attributes_are_checked(saved, step, hyper, words):
    def edit(f):
        f["optimizer"].attrs.modify("step", step)
        text = json.dumps(hyper).encode()
        f["optimizer"].attrs["hyper"] = np.array(text, dtype=h5py.string_dtype("utf-8", len(text)))
    refused(edited(saved[0], edit), *words)


def test_a_changed_text_entry_fails_the_checksum(saved):
    """A block renamed in the graph text (and nothing else changed) still loads on HDF5's checks alone."""
    def edit(f):
        text = f["graph"][()].replace(b'"flatten"', b'"flatten2"')
        del f["graph"]
        f["graph"] = np.array(text, dtype=h5py.string_dtype("utf-8", len(text)))
    refused(edited(saved[0], edit), "checksum")
    refused(edited(saved[0], lambda f: f.__delitem__("dataset")), "checksum")


def test_swapped_arrays_of_one_shape_fail_the_checksum(saved):
    def edit(f):
        a, b = f["weights/conv_bn/gamma"][()], f["weights/conv_bn/beta"][()]
        f["weights/conv_bn/gamma"][()], f["weights/conv_bn/beta"][()] = b, a
    refused(edited(saved[0], edit), "checksum")


def test_version_1_files_without_a_checksum_still_load(saved):
    path = edited(saved[0], lambda f: (f.attrs.modify("format_version", 1), f.attrs.__delitem__("checksum")))
    assert load_model(path).weights["fc"]["kernel"].shape == (3, 256)
    assert "checksum" in refused(edited(saved[0], lambda f: f.attrs.__delitem__("checksum")))


def test_non_finite_weights_are_refused_on_load_and_on_save(saved, contents, tmp_path):
    path = edited(saved[0], lambda f: (f.attrs.modify("format_version", 1), f.attrs.__delitem__("checksum"),
                                       f["weights/fc/bias"].write_direct(np.array([0, np.nan, 0], np.float32))))
    refused(path, "NaN or infinite", "weights/fc/bias")
    contents["weights"]["fc"]["bias"][1] = np.inf
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        save_model(tmp_path / "new.h5", **contents)
    assert not (tmp_path / "new.h5").exists()


def test_a_crash_of_the_hdf5_library_kills_only_the_child(saved, monkeypatch):
    """The child process is where HDF5 first reads a new file: a crash there becomes a ModelFileError here."""
    monkeypatch.setattr(h5model, "_inspect_file", lambda path: os.kill(os.getpid(), 11))
    h5model._checked_files.clear()
    refused(saved[0], "crash", "SIGSEGV", "not opened")


def test_without_fork_the_child_is_a_new_python(saved, monkeypatch):
    """macOS and Windows: the same check, in a new interpreter."""
    import faulthandler
    import sys

    from convdesigner.hdf5_safety import in_child
    monkeypatch.setattr(sys, "platform", "win32")
    assert in_child(h5model._inspect_file, str(saved[0])) is None
    assert "crash" in in_child(faulthandler._sigsegv, str(saved[0]))


def test_a_hang_in_the_child_is_cut_short(saved, monkeypatch):
    import convdesigner.hdf5_safety as safety
    real = safety.in_child
    monkeypatch.setattr(h5model, "in_child", lambda check, path: real(lambda p: threading.Event().wait(), path, 0.5))
    h5model._checked_files.clear()
    refused(saved[0], "did not finish within 0.5 s")


def test_the_child_check_costs_little(saved):
    import time
    h5model._checked_files.clear()
    start = time.perf_counter()
    load_model(saved[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    load_model(saved[0])
    again = time.perf_counter() - start
    assert first - again < 1.0


@pytest.mark.parametrize("text, words", [("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
                                         ('{"format": "convdesigner-graph", "version": ' + "9" * 5000 + "}",
                                          ["digits"]),
                                         ('{"format": "convdesigner-graph", "version": 1, "nodes": [{"id": 1e400, '
                                          '"name": "a", "kind": "ReLU", "params": {}}], "edges": []}', ["block id"])])
def test_hostile_graph_json_files(tmp_path, text, words):
    path = tmp_path / "design.json"
    path.write_text(text)
    with pytest.raises(ModelFileError) as caught:
        read_design(path)
    assert all(w in str(caught.value) for w in words), str(caught.value)
