"""Model files: one HDF5 file holds a user's graph, weights, optimizer and trainer state, history and data description.

Writes replace the target atomically, only once complete. Reading executes nothing from the file (JSON text and plain
arrays only), reads nothing outside it, allocates nothing it does not store, checks every field and every array
against the layer catalogue and a checksum over all of them, so a damaged or hostile file raises one ModelFileError.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..graph import Graph, GraphError
from ..graph.graph import loads_json
from ..hdf5_safety import FLETCHER32, HDF5Refused, attribute, check_no_overlap, check_storage, hard_entries, in_child
from . import model_fields

FORMAT = "convdesigner-model"
VERSION = 2  # 2: a checksum over all entries; version 1 files (without one) are still read
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_FLOAT32 = np.dtype("float32")
# Fletcher-32 checksums make a flipped bit in a weight a read error instead of a silently wrong network; the chunk
# size is capped because HDF5 chunks must stay under 4 GiB and a chunk is the unit that is checked and read.
_CHUNK_BYTES = 1 << 22

Weights = dict[str, dict[str, np.ndarray]]


class ModelFileError(ValueError):
    """A model file that cannot be written or read; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"model file '{self.path}': {problem}")


@dataclass
class ModelFile:
    """What a model file holds; ``weights`` is None for a design that has not been trained."""

    graph: Graph
    weights: Weights | None = None
    optimizer: dict | None = None
    trainer: dict | None = None
    history: list[dict] = field(default_factory=list)
    dataset: dict | None = None
    app_version: str = __version__


@dataclass(frozen=True)
class ArraySpec:
    """One array a block owns: its shape, and whether the optimizer learns it (BatchNorm statistics are not)."""

    shape: tuple[int, ...]
    learnable: bool


def expected_arrays(graph: Graph) -> dict[str, dict[str, ArraySpec]]:
    """Every block's arrays by name, from the catalogue's weight and state shapes; blocks without arrays are left out.

    Raises GraphError when the graph has errors, because then the shapes are not known.
    """
    info = graph.infer()
    errors = [p.message for p in info.problems if p.severity == "error"]
    if errors:
        raise GraphError(f"the graph has {len(errors)} error(s), so its arrays have no known shapes: {errors[0]}")
    out: dict[str, dict[str, ArraySpec]] = {}
    for node_id in graph.topological_order():
        node = graph.nodes[node_id]
        shapes = info.nodes[node_id].input_shapes
        arrays = {name: ArraySpec(tuple(int(d) for d in shape), True)
                  for name, shape in node.spec.weight_shapes(node.params, shapes).items()}
        arrays.update({name: ArraySpec(tuple(int(d) for d in shape), False)
                       for name, shape in node.spec.state_shapes(node.params, shapes).items()})
        if arrays:
            out[node.name] = arrays
    return out


# ----------------------------------------------------------------------------------------------- writing

def save_model(path: str | os.PathLike, graph: Graph, weights: Weights | None = None, optimizer: dict | None = None,
               trainer: dict | None = None, history: list[dict] | None = None, dataset: dict | None = None) -> None:
    """Write everything into ``path`` atomically: a failure or a kill part way leaves the previous file as it was.

    ``weights`` is ``Network.state_dict()``, ``optimizer`` an optimizer's ``state_dict()``, ``trainer`` a trainer's
    ``state_dict()``, ``dataset`` ``Dataset.description()``. A graph alone (a design) is a valid file.
    """
    if history is None and trainer is not None:
        history = trainer.get("history")
    try:
        arrays = checked_arrays(graph, weights, optimizer)
        _check_finite(arrays)
        texts = {key: _to_json(key, value) for key, value in
                 (("graph", graph.to_dict()), ("dataset", dataset), ("history", history), ("trainer", trainer))
                 if value is not None}
        _check_fields({key: json.loads(text) for key, text in texts.items()})
        optimizer_attrs = _optimizer_attrs(optimizer) if optimizer is not None else None
    except (GraphError, TypeError, ValueError) as e:
        raise ModelFileError(path, f"cannot be saved: {e}") from None
    write_atomically(path, lambda tmp: _write_file(tmp, texts, arrays, graph, weights is not None, optimizer_attrs))
    _remember_checked(path)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Have ``write`` create a new temporary file beside ``path``, make it durable (fsync) and put it in place of
    ``path`` (keeping its permissions, through a link to the file it points to); a failure or a kill part way
    leaves the previous file as it was and no temporary file behind. Failures raise ModelFileError."""
    target = Path(os.path.realpath(path))
    _remove_stale_temporaries(target)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        write(tmp)
        _fsync(tmp)
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    except BaseException as e:  # Ctrl-C included: never leave a half-written temporary file behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        if not isinstance(e, Exception):
            raise
        reason = e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"
        raise ModelFileError(path, f"could not be saved ({reason}); the previous file, if any, is unchanged") from None


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporary files that saves of ``target`` killed part way left behind: those of processes that are
    gone (the process id is in the name), and unnamed ones from ConvDesigner before 0.2, which wrote no id."""
    pattern = re.compile(rf"{re.escape(target.name)}\.tmp-(?:(\d+)-)?[0-9a-f]{{8}}")
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = pattern.fullmatch(entry.name)
            if match and (match[1] is None or not _running(int(match[1]))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _running(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # Windows has no harmless probe: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


class _Sink(io.RawIOBase):
    """The file object HDF5 writes the model through. A failed write (a full disk) is kept in ``error`` and reported
    to HDF5 as done: h5py crashes the process inside ``File.close`` when a write fails during its final flush."""

    def __init__(self, fh: io.FileIO) -> None:
        super().__init__()
        self.fh, self.error = fh, None

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        start = self.fh.tell()
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += self.fh.write(view[done:])
                return done
            except OSError as e:
                self.error = e
        self.fh.seek(start + len(view))
        return len(view)

    def readinto(self, buffer) -> int:
        n = self.fh.readinto(buffer)
        if self.error is not None and n < len(buffer):  # bytes that were never written: HDF5 must not fail now
            memoryview(buffer).cast("B")[n:] = bytes(len(buffer) - n)
            return len(buffer)
        return n

    def truncate(self, size: int | None = None) -> int:
        try:
            return self.fh.truncate(size)
        except OSError as e:
            self.error = self.error or e
            return self.fh.tell() if size is None else size


def _write_file(tmp: Path, texts: dict[str, str], arrays: dict[str, np.ndarray], graph: Graph, has_weights: bool,
                optimizer_attrs: dict | None) -> None:
    with open(tmp, "xb", buffering=0) as fh:  # "x": never overwrite, even a stray file of the same name
        sink = _Sink(fh)
        with h5py.File(sink, "w") as f:
            _write(f, texts, arrays, graph, has_weights, optimizer_attrs)
    if sink.error is not None:
        raise sink.error


def checked_arrays(graph: Graph, weights: Weights | None, optimizer: dict | None = None) -> dict[str, np.ndarray]:
    """The arrays to write by their path in the file, after checking them against the catalogue; a ValueError
    (GraphError for a graph with errors) says what does not fit."""
    if weights is None:
        if optimizer is not None:
            raise ValueError("optimizer state without weights")
        return {}
    expected = expected_arrays(graph)
    out = {}
    for block, arrays in weights.items():
        if arrays and block not in expected:
            raise ValueError(f"weights given for '{block}', which is not a block with weights in the graph")
    for block, specs in expected.items():
        given = weights.get(block, {})
        for name in given:
            if name not in specs:
                raise ValueError(f"block '{block}' has no array '{name}' (it has {', '.join(specs)})")
        for name, spec in specs.items():
            if name not in given:
                raise ValueError(f"weights of '{block}' lack '{name}'")
            out[f"weights/{block}/{name}"] = _checked(f"weights {block}/{name}", given[name], spec.shape)
    if optimizer is not None:
        for key, slots in optimizer.get("slots", {}).items():
            block, _, name = key.partition("/")
            spec = expected.get(block, {}).get(name)
            if spec is None or not spec.learnable:
                raise ValueError(f"optimizer state for '{key}', which is not a learnable array of the graph")
            for slot, value in slots.items():
                out[f"optimizer/slots/{block}/{name}/{slot}"] = _checked(f"optimizer {key} {slot}", value, spec.shape)
    return out


def _check_finite(arrays: dict[str, np.ndarray]) -> None:
    for key, value in arrays.items():
        if not np.isfinite(value).all():
            raise ValueError(f"'{key}' holds NaN or infinite values (the training diverged); such a network predicts "
                             f"nothing, so it is not stored")


def _check_fields(values: dict[str, Any]) -> None:
    """/dataset, /history and /trainer as model_fields describes them; a ValueError names the field."""
    if "dataset" in values:
        model_fields.check_dataset(values["dataset"])
    if "history" in values:
        model_fields.check_history(values["history"])
    if "trainer" in values:
        model_fields.check_trainer(values["trainer"])


def _checked(what: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype != _FLOAT32:
        raise ValueError(f"{what} must be a float32 array, not {getattr(value, 'dtype', type(value).__name__)}")
    if value.shape != shape:
        raise ValueError(f"{what} has shape {value.shape} but the graph needs {shape}")
    return value


def _optimizer_attrs(optimizer: dict) -> dict[str, Any]:
    unknown = sorted(set(optimizer) - {"kind", "hyper", "step", "slots"})
    if unknown:
        raise ValueError(f"optimizer state has unknown entries {unknown}")
    if not isinstance(optimizer.get("kind"), str) or isinstance(optimizer.get("step"), bool):
        raise ValueError("optimizer state needs a 'kind' name and an integer 'step'")
    hyper = _to_json("optimizer hyper-parameters", optimizer.get("hyper", {}))
    model_fields.check_optimizer(optimizer["kind"], int(optimizer["step"]), json.loads(hyper))
    attrs = {"kind": _fixed(optimizer["kind"]), "step": int(optimizer["step"]), "hyper": _fixed(hyper)}
    slot_keys = list(optimizer.get("slots", {}))
    return {"attrs": attrs, "slot_keys": slot_keys, "summed": (optimizer["kind"], int(optimizer["step"]), hyper,
                                                                slot_keys)}


def _to_json(what: str, value: Any) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        raise TypeError(f"the {what} hold a {type(v).__name__}, which a model file cannot store")
    return json.dumps(value, default=plain)  # ASCII: other characters are escaped


def _write(f: h5py.File, texts: dict[str, str], arrays: dict[str, np.ndarray], graph: Graph, has_weights: bool,
           optimizer_attrs: dict | None) -> None:
    f.attrs["format"] = _fixed(FORMAT)
    f.attrs["format_version"] = VERSION
    f.attrs["app_version"] = _fixed(__version__)
    f.attrs["saved_utc"] = _fixed(datetime.now(UTC).isoformat(timespec="seconds"))
    f.attrs["checksum"] = _fixed(_checksum(texts, arrays, optimizer_attrs and optimizer_attrs["summed"]))
    for key, text in texts.items():
        f.create_dataset(key, data=_fixed(text))
    if has_weights:
        f.create_group("weights")
    weighted = {key.split("/")[1] for key in arrays if key.startswith("weights/")}
    for node in graph.nodes.values():
        if node.name in weighted:
            f.create_group(f"weights/{node.name}").attrs["kind"] = _fixed(node.kind)
    if optimizer_attrs is not None:
        o = f.create_group("optimizer")
        o.attrs.update(optimizer_attrs["attrs"])
        o.create_group("slots")
        for key in optimizer_attrs["slot_keys"]:
            o.create_group(f"slots/{key}")  # also a slot-less parameter (plain SGD), so it reads back the same
    for key, value in arrays.items():
        _write_array(f, key, value)


def _checksum(texts: dict[str, str], arrays: dict[str, np.ndarray], optimizer: tuple | None) -> str:
    """SHA-256 over every text entry, every array (path, shape and bytes) and the optimizer's attributes, so that any
    change after saving, even one HDF5's own checks miss (a lost chunk, an edited text), shows on load."""
    h = hashlib.sha256()
    for key in sorted(texts):
        data = texts[key].encode("utf-8")
        h.update(f"text {key} {len(data)}\n".encode())
        h.update(data)
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"array {key} {value.dtype.str} {value.shape}\n".encode())
        h.update(memoryview(value).cast("B"))
    if optimizer is not None:
        kind, step, hyper, slot_keys = optimizer
        h.update(json.dumps(["optimizer", kind, step, hyper, sorted(slot_keys)]).encode())
    return f"sha256:{h.hexdigest()}"


def _fixed(text: str) -> np.ndarray:
    """Text as a fixed-length UTF-8 string, stored inline: variable-length strings live in HDF5's global heap, whose
    reader can loop forever on a damaged file."""
    data = text.encode("utf-8")
    return np.array(data, dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def _write_array(f: h5py.File, key: str, value: np.ndarray) -> None:
    """Chunks split the first axis evenly (a partial last chunk would be stored at full size)."""
    count = math.ceil(value.nbytes / _CHUNK_BYTES)
    chunks = (math.ceil(value.shape[0] / count),) + value.shape[1:]
    f.create_dataset(key, data=value, chunks=chunks, fletcher32=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; folders cannot be opened for syncing on Windows, where NTFS journals it."""
    if os.name == "posix":
        _fsync(folder)


# ----------------------------------------------------------------------------------------------- reading

_ROOT_TEXTS = ("graph", "dataset", "history", "trainer")
_ROOT_ATTRIBUTES = {"format": "text", "format_version": "int", "app_version": "text", "saved_utc": "text",
                    "checksum": "text"}
_OPTIMIZER_ATTRIBUTES = {"kind": "text", "step": "int", "hyper": "text"}
# Files already checked in a child process, or written here, by (device, inode, size, modification time).
_checked_files: set[tuple[int, int, int, int]] = set()


def load_model(path: str | os.PathLike) -> ModelFile:
    """Read and check a model file; every problem, whatever HDF5 raises underneath, becomes a ModelFileError.

    A file not seen before is first walked in a child process (:func:`hdf5_safety.in_child`), so that a crash of
    the HDF5 library on damaged metadata takes down the child only."""
    _check_signature(path)
    key = _file_key(path)
    if key not in _checked_files:
        failure = in_child(_inspect_file, os.fspath(path))
        if failure is not None:
            raise ModelFileError(path, f"is damaged: {failure}; it was not opened")
    try:
        with h5py.File(path, "r") as f:
            model = _read(f)
    except ModelFileError:
        raise
    except (_Bad, HDF5Refused) as e:
        raise ModelFileError(path, str(e)) from None
    except GraphError as e:
        raise ModelFileError(path, f"its graph cannot be used: {e}") from None
    except MemoryError:
        raise ModelFileError(path, "is too large to read into this computer's memory") from None
    except Exception as e:  # noqa: BLE001 — h5py raises OSError, KeyError, ValueError, RuntimeError... on damage
        text = str(e) or type(e).__name__
        hint = "it is truncated (an incomplete copy or download?)" if "truncated" in text else "it is damaged"
        raise ModelFileError(path, f"{hint} and cannot be read ({type(e).__name__}: {text})") from None
    _checked_files.add(key)
    return model


def _file_key(path: str | os.PathLike) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _remember_checked(path: str | os.PathLike) -> None:
    with contextlib.suppress(OSError):
        _checked_files.add(_file_key(os.path.realpath(path)))


def _inspect_file(path: str) -> None:
    """What the child process does: every metadata structure the real read will touch, without the array data."""
    with contextlib.suppress(Exception), h5py.File(path, "r") as f:
        _inspect(f)
        for key in _ROOT_TEXTS:
            if key in f:
                _json_text(f, key)


class _Bad(Exception):
    """A problem found while reading; load_model adds the file's name."""


def open_error(path: str | os.PathLike, error: OSError, what: str) -> ModelFileError:
    """The ModelFileError for a file that could not be opened: missing, a folder, or unreadable."""
    if isinstance(error, FileNotFoundError):
        return ModelFileError(path, "no such file")
    if isinstance(error, IsADirectoryError):
        return ModelFileError(path, f"is a folder, not a {what}")
    return ModelFileError(path, f"cannot be opened ({error.strerror or error})")


def _check_signature(path: str | os.PathLike) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SIGNATURE))
    except OSError as e:
        raise open_error(path, e, "model file") from None
    if head != _SIGNATURE:
        raise ModelFileError(path, "is not an HDF5 file, so not a ConvDesigner model (.h5) file")


def _inspect(f: h5py.File) -> tuple[int, dict[str, h5py.Group | h5py.Dataset]]:
    """The format version and every entry, after checking, before any data are read, that the file holds only what
    the format allows: its own hard-linked groups and datasets, with all their declared bytes stored in it."""
    name = attribute(f, "format", "text")
    if name != FORMAT:
        raise _Bad(f"is an HDF5 file but not a ConvDesigner model (its format attribute is {name!r}, "
                   f"expected '{FORMAT}')")
    version = attribute(f, "format_version", "int")
    if version is None or version < 1:
        raise _Bad("its format version is missing or not valid")
    if version > VERSION:
        raise _Bad(f"was written by a newer ConvDesigner (model format version {version}; this version reads up to "
                   f"{VERSION}); update ConvDesigner to open it")
    entries = hard_entries(f)
    extra = sorted(set(f.keys()) - {*_ROOT_TEXTS, "weights", "optimizer"})
    if extra:
        raise _Bad(f"holds entries the model format does not have: {', '.join(f'/{e}' for e in extra[:5])}")
    _check_attributes(f, "/", _ROOT_ATTRIBUTES)
    ranges: list[tuple[int, int, str]] = []
    for path, obj in entries.items():
        top = path.split("/")[1]
        if path == "/optimizer":
            _check_attributes(obj, path, _OPTIMIZER_ATTRIBUTES)
        else:
            _check_attributes(obj, path, {"kind": "text"} if path.count("/") == 2 and top == "weights" else {})
        if isinstance(obj, h5py.Dataset):
            if top in _ROOT_TEXTS and path.count("/") == 1 and not _is_fixed_text(obj):
                raise _Bad(f"its '{top}' entry is not text")
            check_storage(obj, frozenset({FLETCHER32}), ranges)
    check_no_overlap(ranges)
    return version, entries


def _check_attributes(obj: h5py.HLObject, where: str, allowed: dict[str, str]) -> None:
    for key in obj.attrs:
        kind = allowed.get(key)
        if kind is None:
            raise _Bad(f"'{where}' has an attribute '{key}' the model format does not have")
        if attribute(obj, key, kind) is None:
            raise _Bad(f"the attribute '{key}' of '{where}' is not {'text' if kind == 'text' else 'a whole number'}")


def _read(f: h5py.File) -> ModelFile:
    version, _ = _inspect(f)
    app_version = attribute(f, "app_version", "text")
    if app_version is None:
        raise _Bad("its app_version attribute is missing or not text")
    texts = {key: _json_text(f, key) for key in _ROOT_TEXTS if key in f}
    if "graph" not in texts:
        raise _Bad("its 'graph' entry is missing")
    graph = Graph.from_dict(_parse(texts["graph"], "graph", dict))
    weights = optimizer = None
    arrays: dict[str, np.ndarray] = {}
    summed = None
    if "weights" in f:
        expected = expected_arrays(graph)
        weights = _read_weights(f, expected, graph, arrays)
        if "optimizer" in f:
            optimizer, summed = _read_optimizer(f, expected, arrays)
    elif "optimizer" in f:
        raise _Bad("it holds optimizer state but no weights")
    trainer = _parse(texts["trainer"], "trainer", dict) if "trainer" in texts else None
    history = _parse(texts["history"], "history", list) if "history" in texts else []
    dataset = _parse(texts["dataset"], "dataset", dict) if "dataset" in texts else None
    try:
        _check_fields({key: value for key, value in (("dataset", dataset), ("history", history),
                                                     ("trainer", trainer)) if value is not None})
    except ValueError as e:
        raise _Bad(f"its {e}") from None
    if version >= 2:
        if attribute(f, "checksum", "text") != _checksum(texts, arrays, summed):
            raise _Bad("is damaged: its contents do not match the checksum they were saved with (changed or "
                       "corrupted since; use a backup copy)")
    for key, value in arrays.items():
        if not np.isfinite(value).all():
            raise _Bad(f"array '/{key}' holds NaN or infinite values (the training diverged); such a network "
                       f"predicts nothing, so the file cannot be used")
    return ModelFile(graph, weights, optimizer, trainer, history, dataset, app_version)


def _json_text(f: h5py.Group, key: str) -> str:
    """A root text entry, its type and size checked (and its bytes found in the file by :func:`_inspect`)."""
    ds = f.get(key)
    text = _text(ds[()]) if isinstance(ds, h5py.Dataset) and _is_fixed_text(ds) else None
    if text is None:
        raise _Bad(f"its '{key}' entry is missing or not text")
    return text


def _is_fixed_text(ds: h5py.Dataset) -> bool:
    info = h5py.check_string_dtype(ds.dtype)
    return ds.shape == () and info is not None and info.length is not None


def _text(value: Any) -> str | None:
    """A fixed-length string read back (numpy bytes) as text; None for anything else, variable-length ones included."""
    if not isinstance(value, np.bytes_):
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _parse(text: str, what: str, kind: type) -> Any:
    try:
        value = loads_json(text)
    except ValueError as e:
        raise _Bad(f"its {what} text is not valid JSON ({e})") from None
    if not isinstance(value, kind):
        raise _Bad(f"its {what} is a {type(value).__name__}, expected a {kind.__name__}")
    return value


def _group(parent: h5py.Group, key: str) -> h5py.Group:
    g = parent.get(key)
    if not isinstance(g, h5py.Group):
        raise _Bad(f"'{parent.name.rstrip('/')}/{key}' is missing or not a group")
    return g


def _array(parent: h5py.Group, key: str, shape: tuple[int, ...], arrays: dict[str, np.ndarray]) -> np.ndarray:
    where = f"{parent.name}/{key}"
    ds = parent.get(key)
    if not isinstance(ds, h5py.Dataset):
        raise _Bad(f"array '{where}' is missing")
    if ds.dtype != _FLOAT32:
        raise _Bad(f"array '{where}' is {ds.dtype}, expected float32")
    if ds.shape != shape:
        raise _Bad(f"array '{where}' has shape {_shape(ds.shape)} but the graph needs {_shape(shape)}")
    value = ds[()]
    if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != _FLOAT32:
        raise _Bad(f"array '{where}' cannot be read as float32 {_shape(shape)}")
    arrays[where.lstrip("/")] = value
    return value


def _shape(shape: tuple[int, ...] | None) -> str:
    return "×".join(map(str, shape)) if shape else "scalar"


def _no_extras(group: h5py.Group, known: set[str] | dict) -> None:
    extra = sorted(set(group.keys()) - set(known))
    if extra:
        raise _Bad(f"'{group.name}' holds unexpected entries {extra}; they match no block or array of the graph")


def _read_weights(f: h5py.File, expected: dict[str, dict[str, ArraySpec]], graph: Graph,
                  arrays: dict[str, np.ndarray]) -> Weights:
    root = _group(f, "weights")
    _no_extras(root, expected)
    kinds = {node.name: node.kind for node in graph.nodes.values()}
    weights: Weights = {}
    for block, specs in expected.items():
        g = _group(root, block)
        _no_extras(g, specs)
        kind = attribute(g, "kind", "text")
        if kind is not None and kind != kinds[block]:
            raise _Bad(f"'{g.name}' holds the arrays of a {kind} but '{block}' is a {kinds[block]}")
        weights[block] = {name: _array(g, name, spec.shape, arrays) for name, spec in specs.items()}
    return weights


def _read_optimizer(f: h5py.File, expected: dict[str, dict[str, ArraySpec]],
                    arrays: dict[str, np.ndarray]) -> tuple[dict, tuple]:
    o = _group(f, "optimizer")
    kind, step, hyper = (attribute(o, key, kind) for key, kind in _OPTIMIZER_ATTRIBUTES.items())
    if kind is None or step is None:
        raise _Bad("its optimizer has no valid 'kind' and 'step' attributes")
    if hyper is None:
        raise _Bad("its optimizer has no 'hyper' attribute")
    settings = _parse(hyper, "optimizer hyper-parameters", dict)
    try:
        model_fields.check_optimizer(kind, step, settings)
    except ValueError as e:
        raise _Bad(f"its {e}") from None
    slots_root = _group(o, "slots")
    learnable = {block: {n for n, s in specs.items() if s.learnable} for block, specs in expected.items()}
    _no_extras(slots_root, learnable)
    slots: dict[str, dict[str, np.ndarray]] = {}
    for block in slots_root:
        g = _group(slots_root, block)
        _no_extras(g, learnable[block])
        for name in g:
            group = _group(g, name)
            slots[f"{block}/{name}"] = {slot: _array(group, slot, expected[block][name].shape, arrays)
                                        for slot in group}
    return {"kind": kind, "hyper": settings, "step": step, "slots": slots}, (kind, step, hyper, list(slots))


def file_layout(path: str | os.PathLike) -> list[str]:
    """One line per group, text entry and array in the file (path, dtype, shape) and per attribute, as h5dump shows."""
    _check_signature(path)
    lines: list[str] = []

    def attrs(obj: h5py.HLObject, indent: str) -> None:
        for key, value in obj.attrs.items():
            text = _text(value) or str(value.item() if isinstance(value, np.generic) else value)
            lines.append(f"{indent}@{key} = {text if len(text) <= 60 else text[:57] + '...'}")

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Group):
            lines.append(f"/{name}/")
        elif h5py.check_string_dtype(obj.dtype) is not None:
            lines.append(f"/{name}  JSON text ({obj.dtype.itemsize:,} bytes)")
        else:
            size = math.prod(obj.shape) * obj.dtype.itemsize
            lines.append(f"/{name}  {obj.dtype} {_shape(obj.shape)} ({size:,} bytes)")
        attrs(obj, "    ")

    try:
        with h5py.File(path, "r") as f:
            lines.append("/")
            attrs(f, "    ")
            f.visititems(visit)
    except Exception as e:  # noqa: BLE001 — as in load_model: any h5py failure on a damaged file
        raise ModelFileError(path, f"its layout cannot be read ({type(e).__name__}: {e})") from None
    return lines
