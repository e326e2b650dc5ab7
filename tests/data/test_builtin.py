import numpy as np

from convdesigner.data import load_dataset
from convdesigner.data.builtin import mnist_sample
from convdesigner.data.shapes import CLASSES, render, shapes_dataset


def test_mnist_sample_fixed_split_and_train_statistics():
    train, val = load_dataset("mnist-sample")
    assert train.images.shape == (8000, 1, 28, 28) and val.images.shape == (2000, 1, 28, 28)
    assert train.images.dtype == np.uint8 and train.num_classes == 10 and train.class_names[7] == "7"
    assert set(np.unique(train.labels)) == set(range(10)) and set(np.unique(val.labels)) == set(range(10))
    expected = train.images.astype(np.float64) / 255
    assert abs(train.mean[0] - expected.mean()) < 1e-6 and abs(train.std[0] - expected.std()) < 1e-6
    assert val.mean == train.mean and abs(train.mean[0] - 0.1307) < 0.002  # close to full MNIST's 0.1307 / 0.3081
    raw_train, raw_val = mnist_sample()
    np.testing.assert_array_equal(raw_val.images, val.images)  # the last 2,000, unshuffled


def test_mnist_sample_into_a_colour_32x32_network():
    train, val = load_dataset("mnist-sample", input_shape=(3, 32, 32))
    assert train.images.shape == (8000, 3, 32, 32) and val.images.shape == (2000, 3, 32, 32)
    np.testing.assert_array_equal(train.images[:, 0], train.images[:, 2])
    assert "grey channel replicated to 3 channels" in train.meta["notes"]
    assert any(n.startswith("resized 28×28 -> 32×32") for n in val.meta["notes"])


def test_shapes_same_seed_same_bytes_balanced():
    a_train, a_val = shapes_dataset(200, 50, seed=3)
    b_train, b_val = shapes_dataset(200, 50, seed=3)
    assert a_train.images.tobytes() == b_train.images.tobytes() and a_val.images.tobytes() == b_val.images.tobytes()
    np.testing.assert_array_equal(a_train.labels, b_train.labels)
    assert np.bincount(a_train.labels).tolist() == [20] * 10 and np.bincount(a_val.labels).tolist() == [5] * 10
    assert shapes_dataset(200, 50, seed=4)[0].images.tobytes() != a_train.images.tobytes()
    assert shapes_dataset(30, 50, seed=3)[1].images.tobytes() == a_val.images.tobytes()
    assert a_train.images.shape == (200, 3, 32, 32) and a_train.class_names == CLASSES


def test_shapes_are_drawn_where_told():
    """A circle's centre pixel has the shape colour, far corners the background: the class is visible."""
    labels = np.zeros(64, np.int64)
    images = render(labels, np.random.default_rng(0)).astype(np.float32)
    centre = images[:, :, 14:18, 14:18].reshape(64, 3, -1).mean(-1)
    corner = images[:, :, :2, :2].reshape(64, 3, -1).mean(-1)
    # circles have radius >= 6.4 px and lie inside the frame, so each covers a central pixel or other
    assert np.mean(np.abs(centre - corner).sum(1) > 40) > 0.5
    assert images.min() >= 0 and images.max() <= 255


def test_shapes_through_load_dataset_at_another_size():
    train, val = load_dataset("shapes", input_shape=(1, 24, 24))
    assert train.images.shape == (6000, 1, 24, 24) and val.images.shape == (1000, 1, 24, 24)
    assert len(train.mean) == 1 and 0.2 < train.mean[0] < 0.8
