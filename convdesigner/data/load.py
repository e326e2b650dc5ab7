"""``load_dataset``: one entry point from a name or a path to normalised-ready (train, validation) datasets."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import arrays, cifar, idx
from .builtin import mnist_sample
from .dataset import Dataset, DatasetError
from .folder import EXTENSIONS, load_image_folder
from .shapes import shapes_dataset
from .transform import channel_stats, convert_channels, resize

BUILTIN = ("mnist-sample", "shapes")
DEFAULT_VAL_SPLIT = 0.1


def load_dataset(spec, input_shape=None, val_split: float | None = None, seed: int = 0,
                 limit: int | None = None) -> tuple[Dataset, Dataset | None]:
    """(train, val) from "mnist-sample", "shapes", a file or folder path, or a pair of IDX (images, labels) paths.

    ``input_shape`` (C, H, W) resizes and converts channels to match a network's Input. ``val_split`` None keeps
    the source's own validation part (MNIST sample 2,000, shapes 1,000, IDX t10k files, CIFAR test_batch, an image
    folder's val/ or test/) and otherwise holds out a seeded 10 %; a number pools everything and holds out that
    fraction at random (seeded); 0 gives no validation part. ``limit`` keeps the first N images of each part, taken
    before any resizing so a quick run never converts the whole source. Mean/std per channel are measured on the
    train part and recorded on both parts."""
    shape = _check_shape(input_shape)
    if val_split is not None and not 0 <= val_split < 1:
        raise DatasetError(f"validation split must be at least 0 and below 1, not {val_split}")
    if limit is not None and limit < 1:
        raise DatasetError(f"the image limit must be at least 1, not {limit}")
    train, val = _read(spec, shape)
    where = train.meta.get("source", train.name)
    if len(train) == 0:
        raise DatasetError(f"{where}: holds no images")
    top = max(int(part.labels.max(initial=0)) for part in (train, val) if part is not None)
    if top >= train.num_classes:
        raise DatasetError(f"{where}: label {top} but only {train.num_classes} class names")
    train.meta.setdefault("notes", [])
    if val is None and val_split is None:
        val_split = DEFAULT_VAL_SPLIT
    if val_split is not None:
        train, val = _split(train, val, val_split, seed)
    parts = [train] if val is None else [train, val]
    if limit is not None:
        parts = [part.subset(slice(None, limit)) for part in parts]
    if shape is not None:
        parts = [_conform(part, shape, parts[0].meta["notes"]) for part in parts]
    train, val = parts[0], (parts[1] if len(parts) > 1 else None)
    train.mean, train.std = channel_stats(train.images)
    train.meta["split"] = f"{len(train)} train / {len(val) if val is not None else 0} validation"
    if val is not None:
        val.mean, val.std, val.meta = train.mean, train.std, {**train.meta, "notes": list(train.meta["notes"])}
        val.class_names = train.class_names
    return train, val


def _check_shape(input_shape) -> tuple[int, int, int] | None:
    if input_shape is None:
        return None
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1:
        raise DatasetError(f"input shape must be C×H×W with C 1 or 3, not {'×'.join(map(str, shape))}")
    return shape  # type: ignore[return-value]


def _read(spec, shape) -> tuple[Dataset, Dataset | None]:
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise DatasetError("a pair of IDX files is (images file, labels file)")
        return idx.load_idx(Path(spec[0]), Path(spec[1])), None
    if spec == "mnist-sample":
        return mnist_sample()
    if spec == "shapes":
        return shapes_dataset(size=shape[1:] if shape else (32, 32))
    path = Path(spec).expanduser()
    if not path.exists():
        hint = f"; built-in datasets are {', '.join(BUILTIN)}" if "/" not in str(spec) and "." not in str(spec) else ""
        raise DatasetError(f"{path}: no such file or folder{hint}")
    return _read_folder(path, shape) if path.is_dir() else _read_file(path, shape)


def _read_folder(path: Path, shape) -> tuple[Dataset, Dataset | None]:
    names = [p.name for p in path.iterdir()]
    if any(cifar.is_batch_name(n) for n in names):
        return cifar.load_cifar(path)
    if idx.find_standard_files(path):
        return idx.load_idx_folder(path)
    return load_image_folder(path, shape[1:] if shape else None, shape[0] if shape else None)


def _read_file(path: Path, shape) -> tuple[Dataset, Dataset | None]:
    with open(path, "rb") as handle:
        head = handle.read(8)
    suffix = path.suffix.lower()
    if head.startswith(b"PK") or suffix == ".npz":
        return arrays.load_npz(path, shape)
    if head == arrays.HDF5_SIGNATURE or suffix in (".h5", ".hdf5"):
        return arrays.load_hdf5(path, shape)
    if cifar.is_batch_name(path.name):
        return cifar.load_cifar(path)
    if idx.looks_like_idx(head) or "idx" in path.name:
        return idx.load_idx(path, idx.labels_file_for(path)), None
    if suffix in EXTENSIONS:
        raise DatasetError(f"{path}: one picture is not a dataset; give the folder that holds one sub-folder of "
                           f"pictures per class")
    raise DatasetError(f"{path}: unknown dataset format; expected an IDX file, a CIFAR-10 batch, an .npz or "
                       f".h5 file, or a folder of class sub-folders")


def _conform(data: Dataset, shape: tuple[int, int, int], notes: list[str]) -> Dataset:
    """Resize and convert channels to the network's input, saying what was done."""
    c, h, w = data.input_shape
    images, done = data.images, []
    if (h, w) != shape[1:]:
        images = resize(images, shape[1:])
        done.append(f"resized {h}×{w} -> {shape[1]}×{shape[2]} (bilinear) to fit the network's input")
    if c != shape[0]:
        images = convert_channels(images, shape[0])
        done.append("grey channel replicated to 3 channels" if c == 1 else
                    "converted to one grey channel (BT.601 luminance)")
    notes.extend(note for note in done if note not in notes)
    return Dataset(images, data.labels, data.class_names, name=data.name, meta=data.meta)


def _split(train: Dataset, val: Dataset | None, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Pool both parts and draw a seeded random validation fraction (none when 0)."""
    if val is not None:
        pooled = Dataset(np.concatenate([train.images, val.images]), np.concatenate([train.labels, val.labels]),
                         train.class_names, name=train.name, meta=train.meta)
    else:
        pooled = train
    if fraction == 0:
        return pooled, None
    order = np.random.default_rng(seed).permutation(len(pooled))
    count = max(1, round(fraction * len(pooled)))
    if count >= len(pooled):
        raise DatasetError(f"{pooled.name}: {len(pooled)} images are too few to hold out {fraction:g} for validation")
    pooled.meta.setdefault("notes", []).append(f"random {fraction:g} validation split (seed {seed})")
    return (pooled.subset(np.sort(order[count:])), pooled.subset(np.sort(order[:count])))
