"""A labelled image set with its normalisation, and the mini-batches cut from it."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

MAX_CLASSES = 100_000  # labels are class indices: one of 10^9 would otherwise make a billion class names


class DatasetError(ValueError):
    """A path or file that cannot be read as a dataset; the message says what is wrong and where."""


def class_count(labels: np.ndarray, where: object) -> int:
    """The number of classes non-negative integer ``labels`` index, refused above MAX_CLASSES."""
    count = int(labels.max()) + 1 if len(labels) else 0
    if count > MAX_CLASSES:
        raise DatasetError(f"{where}: a label is {count - 1:,}, but labels are class numbers from 0 and at most "
                           f"{MAX_CLASSES:,} classes are supported; renumber the classes 0, 1, 2...")
    return count


@dataclass
class Dataset:
    """Images ``(N, C, H, W)`` (uint8 0–255 or float32) with integer labels; ``mean``/``std`` per channel apply to
    the images as stored scaled to [0, 1] (uint8 images are divided by 255 first)."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise DatasetError(f"{self.name}: images must be N×C×H×W, got shape {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise DatasetError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        c = self.images.shape[1]
        if not self.mean:
            self.mean = (0.0,) * c
        if not self.std:
            self.std = (1.0,) * c

    def __len__(self) -> int:
        return len(self.images)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.images[index], self.labels[index], self.class_names, self.mean, self.std,
                       self.name, copy.deepcopy(self.meta))

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """float32 network input from stored images: scaled to [0, 1] if uint8, then (x − mean) / std per channel."""
        return normalise(images, self.mean, self.std)

    def picture(self, i: int) -> np.ndarray:
        """Image ``i`` for display: uint8 (H, W, C), float images stretched to their own range."""
        image = np.moveaxis(self.images[i], 0, -1)
        if image.dtype == np.uint8:
            return np.ascontiguousarray(image)
        low, high = float(image.min()), float(image.max())
        scaled = (image - low) * (255 / (high - low)) if high > low else np.zeros_like(image)
        return np.ascontiguousarray(scaled.astype(np.uint8))

    def examples(self, per_class: int = 1) -> list[tuple[int, list[int]]]:
        """The first ``per_class`` image indices of each class that has any, for a preview strip."""
        return [(c, np.flatnonzero(self.labels == c)[:per_class].tolist()) for c in range(self.num_classes)
                if np.any(self.labels == c)]

    def description(self) -> dict:
        """What a model file records about its data: enough to prepare a new picture the same way."""
        return {"name": self.name, "input_shape": list(self.input_shape), "class_names": list(self.class_names),
                "mean": list(self.mean), "std": list(self.std)}


def normalise(images: np.ndarray, mean, std) -> np.ndarray:
    """float32 ``(images [/ 255 if uint8] − mean) / std`` with one mean and std per channel (axis 1)."""
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x *= np.float32(1 / 255)
    x -= np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    x /= np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return x


def batches(data: Dataset, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None,
            augment=None, first: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Normalised float32 mini-batches ``(x, y)``; ``augment(x, rng) -> x`` works on whole batches. ``first``:
    start at that batch of the (same) order, as a run resumed mid-epoch does."""
    order = (rng or np.random.default_rng()).permutation(len(data)) if shuffle else np.arange(len(data))
    for start in range(first * batch_size, len(data), batch_size):
        index = order[start:start + batch_size]
        x = data.normalise(data.images[index])
        if augment is not None:
            x = augment(x, rng or np.random.default_rng())
        yield x, data.labels[index]
