import numpy as np
import pytest

from convdesigner.data import DatasetError, load_dataset
from convdesigner.data.idx import load_idx, read_idx


@pytest.mark.parametrize("compress", [False, True])
def test_pair_of_files_gives_exact_images_and_labels(tmp_path, digits, compress, write_idx):
    images, labels = digits
    suffix = ".gz" if compress else ""
    ip = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, compress)
    lp = write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, compress)
    data = load_idx(ip, lp)
    assert data.images.shape == (12, 1, 5, 4) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[:, 0], images)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.class_names == ["0", "1", "2"]


def test_images_file_finds_its_labels_beside_it(tmp_path, digits, write_idx):
    write_idx(tmp_path / "emnist-images-idx3-ubyte", digits[0])
    write_idx(tmp_path / "emnist-labels-idx1-ubyte", digits[1])
    train, val = load_dataset(tmp_path / "emnist-images-idx3-ubyte", val_split=0.25)
    assert (len(train), len(val)) == (9, 3)


def test_standard_folder_uses_t10k_as_validation(tmp_path, digits, write_idx):
    images, labels = digits
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:4], True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:4], True)
    train, val = load_dataset(tmp_path)
    assert (len(train), len(val)) == (12, 4)
    np.testing.assert_array_equal(val.images[:, 0], images[:4])
    assert train.input_shape == (1, 5, 4) and train.num_classes == 3


def test_wrong_magic_number_is_named(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x03" + bytes(20))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: not an IDX file \(bad magic number 12340803"):
        read_idx(bad)


def test_truncated_file_says_how_much_is_missing(tmp_path, digits, idx_bytes):
    data = idx_bytes(digits[0])
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(data[:-7])
    with pytest.raises(DatasetError, match=r"truncated IDX file: the header promises 12×5×4 values \(240 bytes\) "
                                           r"but only 233 bytes follow"):
        read_idx(path)


def test_truncated_header_and_damaged_gzip(tmp_path, digits, idx_bytes):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(digits[0])[:9])
    with pytest.raises(DatasetError, match="truncated IDX header"):
        read_idx(path)
    path.write_bytes(b"\x1f\x8b" + bytes(30))
    with pytest.raises(DatasetError, match="damaged gzip data"):
        read_idx(path)


def test_mismatched_counts_name_both_files(tmp_path, digits, write_idx):
    ip = write_idx(tmp_path / "a-images-idx3-ubyte", digits[0])
    lp = write_idx(tmp_path / "a-labels-idx1-ubyte", digits[1][:10])
    with pytest.raises(DatasetError, match=r"a-images-idx3-ubyte holds 12 images but .*a-labels-idx1-ubyte holds 10"):
        load_idx(ip, lp)


def test_missing_label_file_and_half_pair_in_folder(tmp_path, digits, write_idx):
    write_idx(tmp_path / "train-images-idx3-ubyte", digits[0])
    with pytest.raises(DatasetError, match="its label file train-labels-idx1-ubyte is missing"):
        load_dataset(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte is missing"):
        load_dataset(tmp_path)
