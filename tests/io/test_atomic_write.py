"""A save that fails or is killed part way leaves the previous file as it was, and no temporary file behind."""
from __future__ import annotations

import os

import pytest

from convdesigner.io import h5model, load_model, save_model


def fail_on_array(monkeypatch, n: int, error: BaseException) -> None:
    """Make the ``n``-th array written raise ``error``: the file is then half written."""
    real = h5model._write_array
    calls = []

    def write(f, key, value):
        calls.append(key)
        if len(calls) == n:
            f.flush()
            assert f.id.get_filesize() > 0  # the temporary file really holds part of the model
            raise error
        real(f, key, value)
    monkeypatch.setattr(h5model, "_write_array", write)


@pytest.mark.parametrize("error, raised", [(RuntimeError("disk controller on fire"), h5model.ModelFileError),
                                           (KeyboardInterrupt(), KeyboardInterrupt)])
def test_failure_half_way_keeps_the_previous_file(tmp_path, contents, monkeypatch, error, raised):
    path = tmp_path / "model.h5"
    save_model(path, contents["graph"], contents["weights"])
    before = path.read_bytes()
    new_weights = {b: {n: a + 1 for n, a in arrays.items()} for b, arrays in contents["weights"].items()}
    fail_on_array(monkeypatch, 3, error)
    with pytest.raises(raised):
        save_model(path, contents["graph"], new_weights, contents["optimizer"])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.h5"]
    assert (load_model(path).weights["conv"]["kernel"] == contents["weights"]["conv"]["kernel"]).all()


def test_disk_errors_become_a_model_file_error(tmp_path, contents, monkeypatch):
    path = tmp_path / "model.h5"
    save_model(path, contents["graph"])
    fail_on_array(monkeypatch, 2, OSError(28, "No space left on device"))
    with pytest.raises(h5model.ModelFileError, match="No space left on device.*previous file.*unchanged"):
        save_model(path, **contents)
    assert os.listdir(tmp_path) == ["model.h5"] and load_model(path).weights is None


def test_a_temporary_file_left_by_a_killed_save_changes_nothing(tmp_path, contents):
    """A kill cannot clean up: its half-written temporary file stays, but the model and later saves are unharmed."""
    path = tmp_path / "model.h5"
    save_model(path, contents["graph"])
    full = tmp_path / "full.h5"
    save_model(full, **contents)
    (tmp_path / "model.h5.tmp-dead").write_bytes(full.read_bytes()[:5000])
    assert load_model(path).weights is None
    save_model(path, **contents)
    assert load_model(path).weights is not None


def test_the_target_is_replaced_only_at_the_end(tmp_path, contents, monkeypatch):
    """While the new file is being written, the old one is still the one at the path."""
    path = tmp_path / "model.h5"
    save_model(path, contents["graph"])
    real = h5model._write_array
    seen = []

    def write(f, key, value):
        seen.append(load_model(path).weights)
        real(f, key, value)
    monkeypatch.setattr(h5model, "_write_array", write)
    save_model(path, contents["graph"], contents["weights"])
    assert seen and all(w is None for w in seen)
    assert load_model(path).weights is not None
