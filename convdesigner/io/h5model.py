"""Model files: one HDF5 file holds a user's graph, weights, optimizer and trainer state, history and data description.

Writes replace the target atomically, only once complete. Reading executes nothing from the file (JSON text and plain
arrays only) and checks every array against the layer catalogue, so a damaged file raises one ModelFileError.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
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

FORMAT = "convdesigner-model"
VERSION = 1
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
        texts = {key: _to_json(key, value) for key, value in
                 (("graph", graph.to_dict()), ("dataset", dataset), ("history", history), ("trainer", trainer))
                 if value is not None}
        optimizer_attrs = _optimizer_attrs(optimizer) if optimizer is not None else None
    except (GraphError, TypeError, ValueError) as e:
        raise ModelFileError(path, f"cannot be saved: {e}") from None
    write_atomically(path, lambda tmp: _write_file(tmp, texts, arrays, graph, weights is not None, optimizer_attrs))


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Have ``write`` create a new temporary file beside ``path``, make it durable (fsync) and put it in place of
    ``path`` (keeping its permissions, through a link to the file it points to); a failure or a kill part way
    leaves the previous file as it was and no temporary file behind. Failures raise ModelFileError."""
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f"{target.name}.tmp-{secrets.token_hex(4)}")
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


def _write_file(tmp: Path, texts: dict[str, str], arrays: dict[str, np.ndarray], graph: Graph, has_weights: bool,
                optimizer_attrs: dict | None) -> None:
    with h5py.File(tmp, "x") as f:  # "x": never overwrite, even a stray file of the same name
        _write(f, texts, arrays, graph, has_weights, optimizer_attrs)


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
    attrs = {"kind": _fixed(optimizer["kind"]), "step": int(optimizer["step"]),
             "hyper": _fixed(_to_json("optimizer hyper-parameters", optimizer.get("hyper", {})))}
    return {"attrs": attrs, "slot_keys": list(optimizer.get("slots", {}))}


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

def load_model(path: str | os.PathLike) -> ModelFile:
    """Read and check a model file; every problem, whatever HDF5 raises underneath, becomes a ModelFileError."""
    _check_signature(path)
    try:
        with h5py.File(path, "r") as f:
            return _read(f)
    except ModelFileError:
        raise
    except _Bad as e:
        raise ModelFileError(path, str(e)) from None
    except GraphError as e:
        raise ModelFileError(path, f"its graph cannot be used: {e}") from None
    except Exception as e:  # noqa: BLE001 — h5py raises OSError, KeyError, ValueError, RuntimeError... on damage
        text = str(e) or type(e).__name__
        hint = "it is truncated (an incomplete copy or download?)" if "truncated" in text else "it is damaged"
        raise ModelFileError(path, f"{hint} and cannot be read ({type(e).__name__}: {text})") from None


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


def _read(f: h5py.File) -> ModelFile:
    name = _text(f.attrs.get("format"))
    if name != FORMAT:
        raise _Bad(f"is an HDF5 file but not a ConvDesigner model (its format attribute is {name!r}, "
                   f"expected '{FORMAT}')")
    version = f.attrs.get("format_version")
    if not isinstance(version, (int, np.integer)) or version < 1:
        raise _Bad(f"format version {version!r} is not valid")
    if version > VERSION:
        raise _Bad(f"was written by a newer ConvDesigner (model format version {version}; this version reads up to "
                   f"{VERSION}); update ConvDesigner to open it")
    app_version = _text(f.attrs.get("app_version"))
    if app_version is None:
        raise _Bad("its app_version attribute is missing or not text")
    graph = Graph.from_dict(_json(f, "graph", dict))
    weights = optimizer = None
    if "weights" in f:
        expected = expected_arrays(graph)
        weights = _read_weights(f, expected)
        if "optimizer" in f:
            optimizer = _read_optimizer(f, expected)
    elif "optimizer" in f:
        raise _Bad("it holds optimizer state but no weights")
    trainer = _json(f, "trainer", dict) if "trainer" in f else None
    history = _json(f, "history", list) if "history" in f else []
    if not all(isinstance(row, dict) for row in history):
        raise _Bad("its history is not a list of epochs")
    dataset = _json(f, "dataset", dict) if "dataset" in f else None
    return ModelFile(graph, weights, optimizer, trainer, history, dataset, app_version)


def _json(f: h5py.Group, key: str, kind: type) -> Any:
    ds = f.get(key)
    fits = isinstance(ds, h5py.Dataset) and _is_fixed_text(ds) and ds.dtype.itemsize <= f.file.id.get_filesize()
    text = _text(ds[()]) if fits else None
    if text is None:
        raise _Bad(f"its '{key}' entry is missing or not text")
    return _parse(text, key, kind)


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
        value = json.loads(text)
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


def _array(parent: h5py.Group, key: str, shape: tuple[int, ...]) -> np.ndarray:
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
    return value


def _shape(shape: tuple[int, ...] | None) -> str:
    return "×".join(map(str, shape)) if shape else "scalar"


def _no_extras(group: h5py.Group, known: set[str] | dict) -> None:
    extra = sorted(set(group.keys()) - set(known))
    if extra:
        raise _Bad(f"'{group.name}' holds unexpected entries {extra}; they match no block or array of the graph")


def _read_weights(f: h5py.File, expected: dict[str, dict[str, ArraySpec]]) -> Weights:
    root = _group(f, "weights")
    _no_extras(root, expected)
    weights: Weights = {}
    for block, specs in expected.items():
        g = _group(root, block)
        _no_extras(g, specs)
        weights[block] = {name: _array(g, name, spec.shape) for name, spec in specs.items()}
    return weights


def _read_optimizer(f: h5py.File, expected: dict[str, dict[str, ArraySpec]]) -> dict:
    o = _group(f, "optimizer")
    kind, step = _text(o.attrs.get("kind")), o.attrs.get("step")
    if kind is None or not isinstance(step, np.integer):
        raise _Bad("its optimizer has no valid 'kind' and 'step' attributes")
    hyper = _text(o.attrs.get("hyper"))
    if hyper is None:
        raise _Bad("its optimizer has no 'hyper' attribute")
    slots_root = _group(o, "slots")
    learnable = {block: {n for n, s in specs.items() if s.learnable} for block, specs in expected.items()}
    _no_extras(slots_root, learnable)
    slots: dict[str, dict[str, np.ndarray]] = {}
    for block in slots_root:
        g = _group(slots_root, block)
        _no_extras(g, learnable[block])
        for name in g:
            arrays = _group(g, name)
            slots[f"{block}/{name}"] = {slot: _array(arrays, slot, expected[block][name].shape) for slot in arrays}
    return {"kind": kind, "hyper": _parse(hyper, "optimizer hyper-parameters", dict), "step": int(step),
            "slots": slots}


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
