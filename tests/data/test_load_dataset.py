import numpy as np
import pytest

from convdesigner.data import DatasetError, load_dataset


def _npz(tmp_path, n=40):
    images = np.random.default_rng(0).integers(0, 256, (n, 2, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=images, labels=np.arange(n) % 5)
    return tmp_path / "a.npz", images


def test_val_split_is_seeded_and_disjoint(tmp_path):
    path, images = _npz(tmp_path)
    train, val = load_dataset(path, val_split=0.25, seed=1)
    again, val2 = load_dataset(path, val_split=0.25, seed=1)
    other, _ = load_dataset(path, val_split=0.25, seed=2)
    assert (len(train), len(val)) == (30, 10)
    np.testing.assert_array_equal(train.images, again.images)
    assert not np.array_equal(train.images, other.images)
    rows = {r.tobytes() for r in images}
    assert {r.tobytes() for r in train.images[:, 0]} | {r.tobytes() for r in val.images[:, 0]} == rows
    assert "random 0.25 validation split (seed 1)" in train.meta["notes"]


def test_default_holds_out_a_tenth_and_zero_holds_out_nothing(tmp_path):
    path, _ = _npz(tmp_path)
    train, val = load_dataset(path)
    assert (len(train), len(val)) == (36, 4)
    train, val = load_dataset(path, val_split=0)
    assert len(train) == 40 and val is None


def test_val_split_pools_a_fixed_split():
    train, val = load_dataset("mnist-sample", val_split=0.5, seed=0)
    assert len(train) == len(val) == 5000


def test_statistics_from_the_train_part_only(tmp_path):
    images = np.zeros((20, 1, 2, 2), np.uint8)
    images[10:] = 255
    np.savez(tmp_path / "b.npz", x_train=images[:10], y_train=np.zeros(10), x_test=images[10:], y_test=np.zeros(10))
    train, val = load_dataset(tmp_path / "b.npz")
    assert train.mean == val.mean == (0.0,) and train.std == (1.0,)  # constant channel: std 1, never divide by 0


def test_statistics_per_channel(tmp_path):
    images = np.zeros((4, 3, 2, 2), np.uint8)
    images[:, 1] = 255
    images[:2, 2] = 255
    np.savez(tmp_path / "c.npz", images=images, labels=np.zeros(4))
    train, _ = load_dataset(tmp_path / "c.npz", val_split=0)
    assert train.mean == (0.0, 1.0, 0.5) and train.std == (1.0, 1.0, 0.5)
    x = train.normalise(train.images)
    assert np.allclose(x[:, 2].mean(), 0) and np.allclose(x[:, 2].std(), 1)


def test_bad_specs(tmp_path):
    with pytest.raises(DatasetError, match="no such file or folder; built-in datasets are mnist-sample, shapes"):
        load_dataset("cifar")
    with pytest.raises(DatasetError, match=r"missing\.npz: no such file or folder$"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="notes.txt: unknown dataset format"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(DatasetError, match="validation split must be at least 0 and below 1"):
        load_dataset("shapes", val_split=1.0)
    with pytest.raises(DatasetError, match="input shape must be C×H×W with C 1 or 3, not 2×8×8"):
        load_dataset("shapes", input_shape=(2, 8, 8))


def test_colour_into_grey_network(tmp_path):
    images = np.zeros((3, 3, 4, 4), np.uint8)
    images[:, 1] = 100  # pure green 100 -> luminance 0.587 * 100
    np.savez(tmp_path / "g.npz", images=images, labels=np.zeros(3))
    train, _ = load_dataset(tmp_path / "g.npz", input_shape=(1, 4, 4), val_split=0)
    assert train.images.shape == (3, 1, 4, 4) and (train.images == 59).all()
    assert "converted to one grey channel (BT.601 luminance)" in train.meta["notes"]
