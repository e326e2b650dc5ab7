"""IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, read without trusting their headers."""
from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset, DatasetError, class_count

_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_STANDARD = re.compile(r"^(train|t10k)-(images|labels)[-.]idx([13])-ubyte(\.gz)?$")


def looks_like_idx(head: bytes) -> bool:
    """True for the first bytes of an IDX file, compressed or not (gzip is checked by the reader)."""
    return head[:2] == b"\x1f\x8b" or (len(head) >= 4 and head[:2] == b"\0\0" and head[2] in _TYPES and head[3] > 0)


def _raw_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: damaged gzip data ({exc})") from None
    except MemoryError:
        raise DatasetError(f"{path}: too large to read into this computer's memory") from None
    return data


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one IDX file; a DatasetError names the file and what is wrong with it."""
    data = _raw_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _TYPES or data[3] == 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'}; expected "
                           f"00 00 <type 08/09/0b/0c/0d/0e> <number of dimensions>)")
    dtype, ndim = _TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(data)} bytes, {header} expected)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise DatasetError(f"{path}: truncated IDX file: the header promises {'×'.join(map(str, dims))} values "
                           f"({expected} bytes) but only {found} bytes follow")
    if found > expected:
        raise DatasetError(f"{path}: IDX file has {found - expected} bytes more than its header "
                           f"{'×'.join(map(str, dims))} describes")
    return np.frombuffer(data, dtype, int(np.prod(dims)), header).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx(images_path: Path, labels_path: Path, name: str | None = None) -> Dataset:
    """An image file (N×H×W or N×H×W×C) with its label file (N) as a Dataset with class names "0".."K-1"."""
    images, labels = read_idx(Path(images_path)), read_idx(Path(labels_path))
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DatasetError(f"{images_path}: IDX images must be N×H×W (or N×H×W×C with C 1 or 3), got "
                           f"{'×'.join(map(str, images.shape))}")
    if labels.ndim != 1:
        raise DatasetError(f"{labels_path}: IDX labels must be one number per image, got shape "
                           f"{'×'.join(map(str, labels.shape))}")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise DatasetError(f"{labels_path}: labels must be non-negative whole numbers")
    notes = []
    if images.dtype != np.uint8:
        images, scaled = images.astype(np.float32), float(images.max(initial=0)) > 1.0
        if scaled:
            images /= 255.0
        notes.append(f"{images_path.name}: non-byte IDX images read as float" + (" divided by 255" if scaled else ""))
    count = class_count(labels, labels_path)
    return Dataset(np.ascontiguousarray(images), labels, [str(k) for k in range(count)],
                   name=name or Path(images_path).name.split("-")[0].split(".")[0],
                   meta={"source": str(images_path), "notes": notes})


def labels_file_for(images_path: Path) -> Path:
    """The label file beside an image file: 'images' -> 'labels' and 'idx3' -> 'idx1' in its name."""
    name = images_path.name.replace("images", "labels").replace("idx3", "idx1")
    if name == images_path.name:
        raise DatasetError(f"{images_path}: cannot tell which file holds its labels (expected a name with 'images' "
                           f"in it, e.g. train-images-idx3-ubyte beside train-labels-idx1-ubyte)")
    candidates = [images_path.with_name(name), images_path.with_name(name.removesuffix(".gz")),
                  images_path.with_name(name + ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{images_path}: its label file {candidates[0].name} is missing")


def find_standard_files(folder: Path) -> dict[tuple[str, str], Path]:
    """The standard MNIST file names in a folder, keyed by (train|t10k, images|labels)."""
    found = {}
    for path in sorted(folder.iterdir()):
        match = _STANDARD.match(path.name)
        if match and path.is_file():
            found.setdefault((match[1], match[2]), path)
    return found


def load_idx_folder(folder: Path) -> tuple[Dataset, Dataset | None]:
    """train-images/labels (and t10k-images/labels when present, as the validation part) from one folder."""
    files = find_standard_files(folder)
    parts = []
    for prefix in ("train", "t10k"):
        have = [kind for kind in ("images", "labels") if (prefix, kind) in files]
        if len(have) == 1:
            missing = "labels-idx1-ubyte" if have == ["images"] else "images-idx3-ubyte"
            raise DatasetError(f"{folder}: {files[prefix, have[0]].name} is there but {prefix}-{missing} is missing")
        parts.append(load_idx(files[prefix, "images"], files[prefix, "labels"], prefix) if have else None)
    train, val = parts
    if train is None:
        raise DatasetError(f"{folder}: no train-images-idx3-ubyte / train-labels-idx1-ubyte files")
    if val is not None and val.input_shape != train.input_shape:
        raise DatasetError(f"{folder}: training images are {'×'.join(map(str, train.input_shape))} but t10k "
                           f"images are {'×'.join(map(str, val.input_shape))}")
    if val is not None and val.num_classes > train.num_classes:
        train.class_names = list(val.class_names)
    elif val is not None:
        val.class_names = list(train.class_names)
    train.name = folder.name
    return train, val
