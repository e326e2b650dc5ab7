"""Images and labels stored as arrays in an NPZ or HDF5 file, in whichever common layout they come."""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np

from ..hdf5_safety import (
    DEFLATE,
    DEFLATE_RATIO,
    FLETCHER32,
    SHUFFLE,
    HDF5Refused,
    check_no_overlap,
    check_storage,
    in_child,
    stored_nbytes,
)
from .dataset import MAX_CLASSES, Dataset, DatasetError, class_count
from .transform import to_dataset_dtype

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_IMAGE_KEYS, _LABEL_KEYS = ("images", "x", "X", "data"), ("labels", "y", "Y", "targets")
_VAL_SUFFIXES = ("_val", "_valid", "_validation", "_test")
_NAME_KEYS = ("class_names", "classes", "label_names")
_CHANNELS = (1, 3, 4)
_FILTERS = frozenset({DEFLATE, SHUFFLE, FLETCHER32})


def to_nchw(images: np.ndarray, input_shape: tuple[int, int, int] | None, where: str) -> tuple[np.ndarray, str]:
    """``images`` as (N, C, H, W) and a note saying which layout was assumed."""
    shape = "×".join(map(str, images.shape))
    if images.ndim == 3:
        return images[:, None], f"{where}: {shape} has no channel axis: read as N×H×W grey"
    if images.ndim == 4:
        _, a, b, c = images.shape
        chw, hwc = a in _CHANNELS, c in _CHANNELS
        if chw and hwc:  # both ends could be channels: square pictures decide
            chw = b == c or a != b
        if chw:
            return images, f"{where}: {shape} read as N×C×H×W"
        if hwc:
            return images.transpose(0, 3, 1, 2), f"{where}: {shape} read as N×H×W×C"
        raise DatasetError(f"{where}: images of shape {shape} have no channel axis of size 1, 3 or 4 first or last")
    if images.ndim == 2:
        d = images.shape[1]
        if input_shape is not None and math.prod(input_shape) == d:
            c, h, w = input_shape
        else:
            side1, side3 = math.isqrt(d), math.isqrt(d // 3)
            if side1 * side1 == d:
                c, h, w = 1, side1, side1
            elif d % 3 == 0 and side3 * side3 * 3 == d:
                c, h, w = 3, side3, side3
            else:
                raise DatasetError(f"{where}: flat images of {d} values are not square grey or colour pictures; "
                                   f"give an input shape")
        return images.reshape(len(images), c, h, w), f"{where}: flat rows of {d} values read as {c}×{h}×{w} (C×H×W)"
    raise DatasetError(f"{where}: images must be N×H×W, N×C×H×W, N×H×W×C or N×D, got {shape}")


def _labels(labels: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    if labels.ndim == 2 and labels.shape[1] > 1:
        return labels.argmax(axis=1), f"{where}: one-hot labels ({labels.shape[1]} columns) read by their largest entry"
    labels = labels.reshape(len(labels)) if labels.ndim == 2 else labels
    if labels.ndim != 1:
        raise DatasetError(f"{where}: labels must be one number per image, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.number) or np.any(labels != np.round(labels)) or \
            (len(labels) and labels.min() < 0):
        raise DatasetError(f"{where}: labels must be non-negative whole numbers")
    return labels.astype(np.int64), None


def _pick(keys: list[str], names: tuple[str, ...], suffix: str = "") -> str | None:
    return next((k for n in names for k in keys if k == n + suffix), None)


def _dataset(store, keys: list[str], suffix: str, path: Path, input_shape) -> Dataset | None:
    ikey, lkey = _pick(keys, _IMAGE_KEYS, suffix), _pick(keys, _LABEL_KEYS, suffix)
    if ikey is None and lkey is None:
        return None
    if ikey is None or lkey is None:
        wanted = ", ".join(n + suffix for n in (_LABEL_KEYS if ikey else _IMAGE_KEYS))
        raise DatasetError(f"{path}: has '{ikey or lkey}' but no matching {'labels' if ikey else 'images'} array "
                           f"({wanted})")
    images, labels = np.asarray(store[ikey]), np.asarray(store[lkey])
    if images.dtype == object or labels.dtype == object:
        raise DatasetError(f"{path}: '{ikey}'/'{lkey}' hold Python objects, not numbers")
    images, layout = to_nchw(images, input_shape, f"{path.name}:{ikey}")
    labels, onehot = _labels(labels, f"{path.name}:{lkey}")
    if len(images) != len(labels):
        raise DatasetError(f"{path}: '{ikey}' holds {len(images)} images but '{lkey}' holds {len(labels)} labels")
    notes = [layout] + ([onehot] if onehot else [])
    if images.shape[1] == 4:
        images = images[:, :3]
        notes.append(f"{path.name}:{ikey}: 4th channel (alpha) dropped")
    try:
        images, scaled = to_dataset_dtype(images)
    except ValueError as exc:
        raise DatasetError(f"{path}: '{ikey}': {exc}") from None
    notes += [scaled] if scaled else []
    return Dataset(np.ascontiguousarray(images), labels, [], name=path.stem, meta={"source": str(path), "notes": notes})


def _class_names(store, keys: list[str], count: int) -> list[str]:
    key = _pick(keys, _NAME_KEYS)
    if key is not None and math.prod(store[key].shape) <= MAX_CLASSES:
        names = np.asarray(store[key]).ravel()
        if names.dtype.kind in "USO" and len(names) >= count:
            return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return [str(k) for k in range(count)]


def _from_store(store, keys: list[str], path: Path, input_shape) -> tuple[Dataset, Dataset | None]:
    train = _dataset(store, keys, "", path, input_shape)
    val = None
    if train is None:
        train = _dataset(store, keys, "_train", path, input_shape)
        val = next((d for d in (_dataset(store, keys, s, path, input_shape) for s in _VAL_SUFFIXES) if d), None)
    if train is None:
        raise DatasetError(f"{path}: no image and label arrays (looked for images/x and labels/y, or x_train and "
                           f"y_train); it holds {', '.join(keys) or 'nothing'}")
    if val is not None and val.input_shape != train.input_shape:
        raise DatasetError(f"{path}: training images are {'×'.join(map(str, train.input_shape))} but validation "
                           f"images are {'×'.join(map(str, val.input_shape))}")
    count = max(class_count(part.labels, path) for part in (train, val) if part is not None)
    names = _class_names(store, keys, count)
    for part in (train, val):
        if part is not None:
            part.class_names = names
    if val is not None:
        train.meta["notes"] += val.meta["notes"]
    return train, val


def load_npz(path: Path, input_shape=None) -> tuple[Dataset, Dataset | None]:
    """images/x + labels/y (or x_train/y_train with x_test|x_val/y_test|y_val) from an .npz; never unpickles."""
    try:
        _check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as store:
            return _from_store(store, list(store.files), path, input_shape)
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable NPZ file ({exc})") from None
    except ValueError as exc:  # object arrays need pickling, which is refused
        raise DatasetError(f"{path}: cannot read its arrays ({exc})") from None
    except MemoryError:
        raise DatasetError(f"{path}: too large to read into this computer's memory") from None


def _check_npz_sizes(path: Path) -> None:
    """Each array's declared size against the bytes its archive member holds and this computer's memory, read from
    the .npy headers before numpy allocates anything (a 1 KB file can declare 10^12 elements)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            ratio = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: DEFLATE_RATIO}.get(info.compress_type)
            if ratio is None:
                raise DatasetError(f"{path}: '{key}' is compressed in a way numpy does not write; save the file "
                                   f"with numpy.savez or numpy.savez_compressed")
            if info.file_size > info.compress_size * ratio + 4096:
                raise DatasetError(f"{path}: '{key}' declares {info.file_size:,} bytes, more than its "
                                   f"{info.compress_size:,} stored bytes can hold (a damaged or forged archive)")
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as fh:
                reader = readers.get(np.lib.format.read_magic(fh))
                if reader is None:
                    raise DatasetError(f"{path}: '{key}' is in a .npy format version this program does not read")
                shape, _, dtype = reader(fh)
                header = fh.tell()
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > info.file_size - header:
                raise DatasetError(f"{path}: '{key}' declares {'×'.join(map(str, shape))} {dtype} values "
                                   f"({nbytes:,} bytes) but holds only {info.file_size - header:,} bytes")
            _check_memory(path, key, nbytes)


def _check_memory(path: Path, key: str, nbytes: int) -> None:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: the size checks against the file remain
        return
    if nbytes > memory:
        raise DatasetError(f"{path}: '{key}' takes {nbytes / 2 ** 30:,.1f} GiB, more than this computer's "
                           f"{memory / 2 ** 30:,.1f} GiB of memory")


def load_hdf5(path: Path, input_shape=None) -> tuple[Dataset, Dataset | None]:
    """The same keys as load_npz, as datasets at the top level of an HDF5 file, which must be entries of the file's
    own (no links to other files, no external or virtual storage) with every declared byte stored in it. The file is
    walked in a child process first: HDF5 can crash on damaged metadata."""
    failure = in_child(_walk_hdf5, str(path))
    if failure is not None:
        raise DatasetError(f"{path}: {failure}; it was not opened")
    try:
        with h5py.File(path, "r") as store:
            return _from_store(store, _checked_datasets(store, path), path, input_shape)
    except DatasetError:
        raise
    except HDF5Refused as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except MemoryError:
        raise DatasetError(f"{path}: too large to read into this computer's memory") from None
    except Exception as exc:  # noqa: BLE001 — h5py raises OSError, KeyError, RuntimeError... on a damaged file
        raise DatasetError(f"{path}: not a readable HDF5 file ({type(exc).__name__}: {exc})") from None


def _checked_datasets(store: h5py.File, path: Path) -> list[str]:
    """The names of the top-level datasets, each checked as :func:`load_hdf5` describes before any is read."""
    keys, ranges = [], []
    for key in store:
        link = store.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            target = getattr(link, "filename", None) or getattr(link, "path", "")
            raise HDF5Refused(f"'/{key}' is a link to '{target}'; a data file may only hold entries of its own")
        ds = store[key]
        if isinstance(ds, h5py.Dataset):
            check_storage(ds, _FILTERS, ranges)
            _check_memory(path, key, stored_nbytes(ds))
            keys.append(key)
    check_no_overlap(ranges)
    return keys


def _walk_hdf5(path: str) -> None:
    """What the child process reads: the checks and the class names, which may live in HDF5's global heap."""
    try:
        with h5py.File(path, "r") as store:
            keys = _checked_datasets(store, Path(path))
            key = _pick(keys, _NAME_KEYS)
            if key is not None and math.prod(store[key].shape) <= MAX_CLASSES:
                store[key][()]
    except Exception:  # noqa: BLE001, S110 — the parent meets the same error and reports it
        pass
