import h5py
import numpy as np
import pytest

from convdesigner.data import DatasetError, load_dataset
from convdesigner.data.arrays import load_hdf5, load_npz, to_nchw

RNG = np.random.default_rng(0)
HWC = RNG.integers(0, 256, (10, 8, 6, 3), dtype=np.uint8)
LABELS = np.arange(10) % 4


@pytest.mark.parametrize("layout, shape, expected", [
    ("N×H×W", (5, 7, 9), (5, 1, 7, 9)),
    ("N×C×H×W", (5, 3, 7, 9), (5, 3, 7, 9)),
    ("N×H×W×C", (5, 7, 9, 3), (5, 3, 7, 9)),
    ("N×C×H×W", (5, 1, 4, 4), (5, 1, 4, 4)),
    ("N×H×W×C", (5, 4, 4, 1), (5, 1, 4, 4)),
    ("flat", (5, 784), (5, 1, 28, 28)),
    ("flat", (5, 3072), (5, 3, 32, 32)),
])
def test_layout_detection_says_what_it_assumed(layout, shape, expected):
    images, note = to_nchw(np.zeros(shape, np.uint8), None, "f")
    assert images.shape == expected
    assert ("no channel axis" if layout == "N×H×W" else layout.replace("flat", "flat rows")) in note


def test_hwc_values_land_in_the_right_place():
    images, _ = to_nchw(HWC, None, "f")
    np.testing.assert_array_equal(images[2, 1, 5, 4], HWC[2, 5, 4, 1])


def test_npz_with_x_y_keys(tmp_path):
    np.savez(tmp_path / "d.npz", x=HWC, y=LABELS)
    train, val = load_npz(tmp_path / "d.npz")
    assert val is None and train.images.shape == (10, 3, 8, 6) and train.class_names == ["0", "1", "2", "3"]
    assert "read as N×H×W×C" in train.meta["notes"][0]


def test_npz_train_test_keys_and_class_names_and_float_images(tmp_path):
    floats = HWC.astype(np.float32)  # 0..255 floats: divided by 255 with a note
    np.savez(tmp_path / "k.npz", x_train=floats, y_train=LABELS, x_test=floats[:3], y_test=LABELS[:3],
             class_names=np.array(["a", "b", "c", "d"]))
    train, val = load_dataset(tmp_path / "k.npz")
    assert (len(train), len(val)) == (10, 3) and train.class_names == ["a", "b", "c", "d"]
    assert train.images.dtype == np.float32 and abs(float(train.images.max()) - HWC.max() / 255) < 1e-6
    assert any("divided by 255" in n for n in train.meta["notes"])


def test_one_hot_labels(tmp_path):
    np.savez(tmp_path / "o.npz", images=HWC[:, :, :, 0], labels=np.eye(4, dtype=np.float32)[LABELS])
    train, _ = load_npz(tmp_path / "o.npz")
    assert train.labels.tolist() == LABELS.tolist() and train.images.shape == (10, 1, 8, 6)


def test_hdf5_chw(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["images"] = HWC.transpose(0, 3, 1, 2)
        f["labels"] = LABELS
    train, _ = load_hdf5(tmp_path / "d.h5")
    np.testing.assert_array_equal(train.images, HWC.transpose(0, 3, 1, 2))


def test_bad_array_files(tmp_path):
    np.savez(tmp_path / "m.npz", images=HWC, labels=LABELS[:7])
    with pytest.raises(DatasetError, match="'images' holds 10 images but 'labels' holds 7 labels"):
        load_npz(tmp_path / "m.npz")
    np.savez(tmp_path / "n.npz", images=HWC)
    with pytest.raises(DatasetError, match="has 'images' but no matching labels array"):
        load_npz(tmp_path / "n.npz")
    np.savez(tmp_path / "w.npz", weights=LABELS)
    with pytest.raises(DatasetError, match="no image and label arrays .* it holds weights"):
        load_npz(tmp_path / "w.npz")
    np.savez(tmp_path / "p.npz", images=np.array([object()] * 2), labels=LABELS[:2])
    with pytest.raises(DatasetError, match="cannot read its arrays"):
        load_npz(tmp_path / "p.npz")
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(50))
    with pytest.raises(DatasetError, match="bad.h5: not a readable HDF5 file"):
        load_dataset(tmp_path / "bad.h5")
    np.savez(tmp_path / "neg.npz", images=HWC, labels=LABELS - 1)
    with pytest.raises(DatasetError, match="labels must be non-negative whole numbers"):
        load_npz(tmp_path / "neg.npz")
