"""The MNIST sample shipped in resources/: 10,000 real digits, a fixed 8,000 / 2,000 train / validation split."""
from __future__ import annotations

import numpy as np

from ..paths import resource_path
from .dataset import Dataset, DatasetError

MNIST_FILE = "mnist_sample.npz"
MNIST_TRAIN = 8000


def mnist_sample() -> tuple[Dataset, Dataset]:
    """The first 8,000 digits for training, the last 2,000 for validation (the file is shuffled once already)."""
    try:
        path = resource_path(MNIST_FILE)
    except FileNotFoundError as exc:
        raise DatasetError(str(exc)) from None
    with np.load(path, allow_pickle=False) as store:
        images, labels = store["images"][:, None], store["labels"]
    names = [str(k) for k in range(10)]
    meta = {"source": "MNIST sample (resources/mnist_sample.npz)", "notes": []}
    return (Dataset(images[:MNIST_TRAIN], labels[:MNIST_TRAIN], names, name="mnist-sample", meta=dict(meta)),
            Dataset(images[MNIST_TRAIN:], labels[MNIST_TRAIN:], names, name="mnist-sample", meta=dict(meta)))
