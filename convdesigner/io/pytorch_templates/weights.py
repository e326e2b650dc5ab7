"""Weights between the exported module and ConvDesigner model files (HDF5), with h5py only.

``load_h5(net, path)`` copies a model file's weights into the module; ``save_h5(net, path)`` writes a model file
that ConvDesigner opens, inspects and trains on (its graph and data description come from start.h5, the file the
export began from, so it is the same network with the new weights).
"""
from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

import h5py
import numpy as np
import torch

# isort: split
from model import BLOCKS

HERE = Path(__file__).resolve().parent
START = HERE / "start.h5"
# ConvDesigner's array names and PyTorch's, per block kind
ARRAYS = {"Conv2D": {"kernel": "weight", "bias": "bias"}, "Dense": {"kernel": "weight", "bias": "bias"},
          "BatchNorm": {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
                        "running_var": "running_var"},
          "PReLU": {"slope": "weight"}}
TEXTS = ("graph", "dataset")  # the entries of start.h5 that a trained file keeps
CHUNK_BYTES = 1 << 22


def _tensors(net):
    """(block, ConvDesigner array name, tensor) for every array of the module."""
    net = getattr(net, "module", net)  # unwrap DistributedDataParallel
    for block, (attribute, kind) in BLOCKS.items():
        module = getattr(net, attribute)
        for ours, theirs in ARRAYS[kind].items():
            tensor = getattr(module, theirs)
            if tensor is not None:
                yield block, ours, tensor


def load_h5(net, path=START) -> None:
    """Copy the weights of the ConvDesigner model file ``path`` into ``net``."""
    with h5py.File(path, "r") as f:
        if "weights" not in f:
            raise ValueError(f"{path} is a design without weights")
        for block, name, tensor in _tensors(net):
            key = f"weights/{block}/{name}"
            if key not in f:
                raise ValueError(f"{path} has no array {key}; it belongs to a different network")
            data = np.asarray(f[key][()], dtype=np.float32)
            if data.shape != tuple(tensor.shape):
                raise ValueError(f"{path}: {key} is {data.shape}, the module needs {tuple(tensor.shape)}")
            with torch.no_grad():
                tensor.copy_(torch.from_numpy(data))


def _fixed(text: str) -> np.ndarray:
    data = text.encode("utf-8")
    return np.array(data, dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def _checksum(texts: dict, arrays: dict) -> str:
    """The SHA-256 over texts and arrays a ConvDesigner model file (format version 2) carries."""
    h = hashlib.sha256()
    for key in sorted(texts):
        data = texts[key].encode("utf-8")
        h.update(f"text {key} {len(data)}\n".encode())
        h.update(data)
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"array {key} {value.dtype.str} {value.shape}\n".encode())
        h.update(memoryview(value).cast("B"))
    return f"sha256:{h.hexdigest()}"


def save_h5(net, path, like=START) -> None:
    """Write ``net``'s weights as a ConvDesigner model file at ``path``, replacing it only once complete."""
    path = Path(path)
    with h5py.File(like, "r") as f:
        texts = {key: f[key][()].decode("utf-8") for key in TEXTS if key in f}
        header = {key: f.attrs[key] for key in ("format", "format_version", "app_version")}
    arrays = {f"weights/{block}/{name}": tensor.detach().cpu().numpy().astype(np.float32)
              for block, name, tensor in _tensors(net)}
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with h5py.File(tmp, "x") as out:
            out.attrs.update(header)
            out.attrs["saved_utc"] = _fixed(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))
            if int(header["format_version"]) >= 2:
                out.attrs["checksum"] = _fixed(_checksum(texts, arrays))
            for key, text in texts.items():
                out.create_dataset(key, data=_fixed(text))
            out.create_group("weights")
            for block, (_, kind) in BLOCKS.items():
                out.create_group(f"weights/{block}").attrs["kind"] = _fixed(kind)
            for key, value in arrays.items():
                count = -(-value.nbytes // CHUNK_BYTES)
                chunks = (-(-value.shape[0] // count),) + value.shape[1:]
                out.create_dataset(key, data=value, chunks=chunks, fletcher32=True)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
