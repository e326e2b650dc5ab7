import os
import pickle

import numpy as np
import pytest

from convdesigner.data import DatasetError, load_dataset
from convdesigner.data.cifar import RECORD, read_binary_batch, read_python_batch


def _batch(count: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, count)]


def _write_python(path, data, labels, protocol=2):
    """The layout of CIFAR-10's python batches: a dict with bytes keys, data uint8 N×3072, labels a list."""
    batch = {b"batch_label": b"testing batch", b"labels": labels, b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


def _write_binary(path, data, labels):
    path.write_bytes(np.concatenate([np.array(labels, np.uint8)[:, None], data], axis=1).tobytes())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python_batch_planes_become_channels(tmp_path, protocol):
    data, labels = _batch(6, 0)
    _write_python(tmp_path / "data_batch_1", data, labels, protocol)
    images, read_labels = read_python_batch(tmp_path / "data_batch_1")
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0].reshape(6, -1), data[:, :1024])  # red plane first
    np.testing.assert_array_equal(images[:, 2].reshape(6, -1), data[:, 2048:])
    assert read_labels.tolist() == labels


def test_python_folder_with_meta_and_test_batch(tmp_path):
    parts = [_batch(5, s) for s in range(3)]
    _write_python(tmp_path / "data_batch_1", *parts[0])
    _write_python(tmp_path / "data_batch_2", *parts[1])
    _write_python(tmp_path / "test_batch", *parts[2])
    names = [f"class{k}".encode() for k in range(10)]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    train, val = load_dataset(tmp_path)
    assert (len(train), len(val)) == (10, 5)
    assert train.labels.tolist() == parts[0][1] + parts[1][1]
    np.testing.assert_array_equal(val.images.reshape(5, -1), parts[2][0])
    assert train.class_names == [f"class{k}" for k in range(10)]


def test_binary_batches_need_no_pickle(tmp_path):
    data, labels = _batch(7, 1)
    _write_binary(tmp_path / "data_batch_1.bin", data, labels)
    _write_binary(tmp_path / "test_batch.bin", data[:3], labels[:3])
    (tmp_path / "batches.meta.txt").write_text("\n".join(f"name{k}" for k in range(10)) + "\n")
    train, val = load_dataset(tmp_path)
    assert train.images.shape == (7, 3, 32, 32) and len(val) == 3
    np.testing.assert_array_equal(train.images.reshape(7, -1), data)
    assert train.labels.tolist() == labels and train.class_names[3] == "name3"


def test_truncated_binary_batch(tmp_path):
    data, labels = _batch(2, 2)
    _write_binary(tmp_path / "data_batch_1.bin", data, labels)
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=rf"{2 * RECORD - 100} bytes is not a whole number of CIFAR-10 records"):
        read_binary_batch(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 5])
def test_malicious_pickle_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": [1]}, protocol))
    with pytest.raises(DatasetError, match=r"refused to load (posix|os)\.system\); nothing from it was run"):
        load_dataset(tmp_path)
    assert not marker.exists()


def test_codec_trick_and_truncated_pickle_are_refused(tmp_path):
    # _codecs.encode is allowed only as the latin-1 bytes constructor protocol 2 needs
    payload = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."
    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(DatasetError, match="codec 'zlib' is not allowed"):
        read_python_batch(tmp_path / "test_batch")
    data, labels = _batch(2, 3)
    _write_python(tmp_path / "data_batch_1", data, labels)
    raw = (tmp_path / "data_batch_1").read_bytes()
    (tmp_path / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="damaged or truncated pickle"):
        read_python_batch(tmp_path / "data_batch_1")


def test_batch_with_wrong_contents(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DatasetError, match="CIFAR 'data' must be uint8 N×3072, got uint8 2×100"):
        read_python_batch(tmp_path / "data_batch_1")
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(DatasetError, match="2 images but 1 labels"):
        read_python_batch(tmp_path / "data_batch_1")


def test_binary_label_outside_cifar10(tmp_path):
    data, labels = _batch(3, 4)
    _write_binary(tmp_path / "data_batch_1.bin", data, [1, 12, 3])
    with pytest.raises(DatasetError, match="label 12 is outside CIFAR-10's 0..9"):
        read_binary_batch(tmp_path / "data_batch_1.bin")
