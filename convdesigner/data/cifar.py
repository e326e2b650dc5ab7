"""CIFAR-10 batches: the binary version, and the python version read with an unpickler that can build only plain
containers and numpy arrays, so a hostile file cannot run code."""
from __future__ import annotations

import codecs
import io
import pickle
import re
from pathlib import Path

import numpy as np

from .dataset import Dataset, DatasetError

RECORD = 1 + 3 * 32 * 32  # binary version: one label byte, then 1024 red, 1024 green, 1024 blue pixel bytes
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_BATCH = re.compile(r"^(data_batch_\d+|test_batch)(\.bin)?$")


class Refused(pickle.UnpicklingError):
    """The pickle asked for something other than plain data."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 writes for bytes in protocol-2 pickles; only the latin-1 codec is honoured."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise Refused(f"codec {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _allowed() -> dict[tuple[str, str], object]:
    """Where pickles written by numpy 1.x (numpy.core) and 2.x (numpy._core) name the array constructors."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.26
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], object] = {("_codecs", "encode"): _latin1_encode, ("numpy", "ndarray"): np.ndarray,
                                              ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """Resolves only numpy's array/dtype/scalar reconstruction; any other global (os.system, eval...) is refused."""

    _ALLOWED = _allowed()

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise Refused(f"refused to load {module}.{name}") from None


def safe_unpickle(path: Path) -> object:
    """A pickle's plain data (dicts, lists, str, bytes, numbers, numpy arrays) or a DatasetError saying why not."""
    try:
        return SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Refused as exc:
        raise DatasetError(f"{path}: not a plain CIFAR batch ({exc}); nothing from it was run") from None
    except Exception as exc:  # find_class already stopped anything but data; what is left is a damaged file
        raise DatasetError(f"{path}: damaged or truncated pickle ({type(exc).__name__}: {exc})") from None


def _key(d: dict, name: str):
    for key in (name.encode(), name):
        if key in d:
            return d[key]
    return None


def read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One data_batch_N / test_batch pickle -> uint8 images (N, 3, 32, 32) and labels (N,)."""
    batch = safe_unpickle(path)
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: a CIFAR batch holds a dictionary, this file holds {type(batch).__name__}")
    data, labels = _key(batch, "data"), _key(batch, "labels")
    if data is None or labels is None:
        raise DatasetError(f"{path}: CIFAR batch has no 'data' and 'labels' entries")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: CIFAR 'data' must be uint8 N×3072, got {data.dtype} "
                           f"{'×'.join(map(str, data.shape))}")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{path}: {len(data)} images but {labels.size} labels")
    _check_labels(path, labels)
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One data_batch_N.bin / test_batch.bin: records of 1 label byte + 3072 pixel bytes."""
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DatasetError(f"{path}: {raw.size} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes each:"
                           f" 1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10 binary")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    _check_labels(path, labels)
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _check_labels(path: Path, labels: np.ndarray) -> None:
    bad = labels[(labels < 0) | (labels >= len(CLASSES))]
    if bad.size:
        raise DatasetError(f"{path}: label {int(bad[0])} is outside CIFAR-10's 0..9")


def _class_names(folder: Path) -> list[str]:
    """Label names from batches.meta (python) or batches.meta.txt (binary), else CIFAR-10's standard ones."""
    text = folder / "batches.meta.txt"
    if text.is_file():
        names = [line.strip() for line in text.read_text("utf-8", "replace").splitlines() if line.strip()]
        return names if len(names) == len(CLASSES) else list(CLASSES)
    pickled = folder / "batches.meta"
    if pickled.is_file():
        meta = safe_unpickle(pickled)
        names = _key(meta, "label_names") if isinstance(meta, dict) else None
        if isinstance(names, list) and len(names) == len(CLASSES):
            return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
    return list(CLASSES)


def is_batch_name(name: str) -> bool:
    return bool(_BATCH.match(name))


def _read(path: Path):
    return read_binary_batch(path) if path.suffix == ".bin" else read_python_batch(path)


def _dataset(paths: list[Path], names: list[str], name: str) -> Dataset:
    parts = [_read(p) for p in paths]
    return Dataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), names, name=name,
                   meta={"source": str(paths[0].parent), "notes": [f"read {', '.join(p.name for p in paths)}"]})


def load_cifar(path: Path) -> tuple[Dataset, Dataset | None]:
    """A CIFAR-10 folder (data_batch_1..5 [+ test_batch as validation], python or .bin) or a single batch file."""
    if path.is_file():
        return _dataset([path], _class_names(path.parent), path.stem), None
    batches = sorted((p for p in path.iterdir() if p.is_file() and is_batch_name(p.name)),
                     key=lambda p: (p.stem == "test_batch", int(p.stem.rsplit("_", 1)[-1]) if p.stem[-1].isdigit()
                                    else 0, p.suffix))
    binary = [p for p in batches if p.suffix == ".bin"]
    batches = binary or batches  # a folder holding both versions: the binary one needs no unpickling
    train = [p for p in batches if p.stem.startswith("data_batch")]
    test = [p for p in batches if p.stem == "test_batch"]
    if not train:
        raise DatasetError(f"{path}: no CIFAR-10 data_batch_N files")
    names = _class_names(path)
    return (_dataset(train, names, path.name),
            _dataset(test, names, path.name) if test else None)
