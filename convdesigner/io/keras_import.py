"""Keras import: a Keras model file (legacy ``.h5`` or a ``.keras`` zip) becomes a graph with its weights.

The file is read with h5py, json and zipfile only, never with TensorFlow or Keras, and nothing in it is run: a
Lambda layer (Python code) is refused, as is every layer our catalogue cannot express, all listed in one error.
Keras works channels-last, so kernels are transposed to our C×H×W layout, and a Dense after a Flatten of an image
has its weights reordered to our flattening order. An activation inside a layer (``Conv2D(activation="relu")``)
becomes a block of its own after it.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np

from ..graph.layers import fmt, pool_output
from ..hdf5_safety import DEFLATE, FLETCHER32, SHUFFLE, HDF5Refused, check_no_overlap, check_storage, hard_entries
from ..hdf5_safety import in_child as in_child_process
from .h5model import ModelFile, ModelFileError, open_error
from .onnx_import import Block, Unsupported, add_head, build_model, f32, sanitised

ZIP_SIGNATURE = b"PK\x03\x04"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_CONFIG_BYTES = 64 << 20
MAX_WEIGHTS_BYTES = 8 << 30
MAX_ATTRIBUTE_BYTES = 64 << 20
_ORDER_FREE = ("Dense", "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU")  # may read a Keras-ordered vector
_FILTERS = frozenset({DEFLATE, SHUFFLE, FLETCHER32})
_ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax", "elu": "ELU",
                "swish": "SiLU", "silu": "SiLU", "leaky_relu": "LeakyReLU"}
# Keras 3 (.keras) stores each layer's variables by position: their names, in order, per layer class
_VARIABLES = {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
              "DepthwiseConv2D": ("depthwise_kernel", "bias"),
              "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"), "PReLU": ("alpha",)}


class _Weights:
    """A layer's arrays by variable name, from the checked entries of a legacy model file or a .weights.h5."""

    def __init__(self, f: h5py.File, legacy: bool) -> None:
        self.entries = hard_entries(f)
        ranges: list[tuple[int, int, str]] = []
        for obj in self.entries.values():
            if isinstance(obj, h5py.Dataset):
                check_storage(obj, _FILTERS, ranges)
        check_no_overlap(ranges)
        self.legacy = legacy

    def _array(self, key: str) -> np.ndarray:
        ds = self.entries.get(key)
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f":
            raise Unsupported(f"its weight '{key}' is missing or not floating point")
        return np.asarray(ds[()], dtype=np.float32)

    def of(self, layer: str, cls: str, config: dict) -> dict[str, np.ndarray]:
        if self.legacy:
            group = self.entries.get(f"/model_weights/{layer}")
            if group is None:
                return {}
            names = _text_list(group, "weight_names")
            return {name.split("/")[-1].split(":")[0]: self._array(f"/model_weights/{layer}/{name}") for name in names}
        present = [n for n in _VARIABLES.get(cls, ())
                   if not (n == "bias" and not config.get("use_bias", True))
                   and not (n == "gamma" and not config.get("scale", True))
                   and not (n == "beta" and not config.get("center", True))]
        return {name: self._array(f"/layers/{layer}/vars/{i}") for i, name in enumerate(present)
                if f"/layers/{layer}/vars/{i}" in self.entries}


def _text_list(obj, name: str) -> list[str]:
    """An attribute holding one text or an array of fixed-length texts (how Keras writes names and configs)."""
    if name not in obj.attrs:
        return []
    aid = h5py.h5a.open(obj.id, name.encode())
    fixed = aid.dtype.kind == "S" and aid.dtype.itemsize * max(1, math.prod(aid.shape)) <= MAX_ATTRIBUTE_BYTES
    if not fixed and (h5py.check_string_dtype(aid.dtype) is None or math.prod(aid.shape) > 100_000):
        raise Unsupported(f"its attribute '{name}' is not text")
    value = np.atleast_1d(obj.attrs[name])  # variable-length text too: the child process read it first
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value]


def _walk(path: str) -> None:
    """What a child process does first: every structure the import touches, so an HDF5 crash takes only it down."""
    try:
        with h5py.File(path, "r") as f:
            weights = _Weights(f, "model_weights" in f)
            for key in ("model_config", "layer_names"):
                _text_list(f, key)
            for obj in weights.entries.values():
                if isinstance(obj, h5py.Group):
                    _text_list(obj, "weight_names")
    except Exception:  # noqa: BLE001, S110 - errors are met again, and reported, in the real read
        pass


# ----------------------------------------------------------------------------------------------- the layers

def _layers(config: dict) -> tuple[list[dict], list[str]]:
    """(layers in order, each {cls, name, config, inputs}, output layer names) of a Sequential or functional model."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise Unsupported("its model configuration is not a Keras model")
    kind, body = config.get("class_name"), config["config"]
    entries = body.get("layers")
    if not isinstance(entries, list):
        raise Unsupported(f"its {kind} configuration has no list of layers")
    out = []
    if kind == "Sequential":
        previous = None
        for entry in entries:
            layer = _layer(entry)
            layer["inputs"] = [previous] if previous else []
            if previous is None and layer["cls"] != "InputLayer":  # Keras 2: the shape on the first layer
                shape = layer["config"].get("batch_input_shape") or layer["config"].get("batch_shape")
                out.append({"cls": "InputLayer", "name": "input", "config": {"batch_shape": shape}, "inputs": []})
                layer["inputs"] = ["input"]
            out.append(layer)
            previous = layer["name"]
        return out, [previous]
    if kind not in ("Functional", "Model"):
        raise Unsupported(f"it is a {kind!r} model; ConvDesigner reads Sequential and functional Keras models")
    for entry in entries:
        layer = _layer(entry)
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise Unsupported(f"layer '{layer['name']}' is used {len(nodes)} times (shared weights have no block)")
        layer["inputs"] = _history(nodes[0]) if nodes else []
        out.append(layer)
    outputs = body.get("output_layers")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    return out, [o[0] for o in outputs or [] if isinstance(o, list) and o]


def _layer(entry) -> dict:
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise Unsupported("a layer entry is malformed")
    config = entry["config"]
    name = entry.get("name") or config.get("name")
    if not isinstance(name, str) or not name:
        raise Unsupported(f"a {entry.get('class_name')} layer has no name")
    return {"cls": str(entry.get("class_name")), "name": name, "config": config}


def _history(node) -> list[str]:
    """The source layers of one inbound node, in Keras 2 ([[name, 0, 0, {}], ...]) or Keras 3 form (args holding
    ``__keras_tensor__`` entries with a keras_history)."""
    found: list[str] = []

    def visit(value) -> None:
        if isinstance(value, dict):
            history = value.get("config", {}).get("keras_history") if value.get("class_name") == "__keras_tensor__" \
                else None
            if isinstance(history, list) and history:
                found.append(str(history[0]))
            else:
                for v in value.values():
                    visit(v)
        elif isinstance(value, list):
            if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
                found.append(value[0])
            else:
                for v in value:
                    visit(v)

    visit(node.get("args", []) if isinstance(node, dict) else node)
    return found


class _Reader:
    def __init__(self, weights: _Weights) -> None:
        self.weights = weights
        self.blocks: dict[str, Block] = {}
        self.alias: dict[str, str] = {}  # layer -> the block tensor holding its output
        self.padded: dict[str, tuple[str, int]] = {}  # ZeroPadding2D layers: (source, pad)
        self.gates: set[str] = set()  # Reshape((1, 1, C)) of a vector, only for Multiply
        self.flattened: dict[str, tuple[int, int, int]] = {}  # vectors in Keras's H·W·C order, with their C×H×W
        self.channels_last = True

    def source(self, name: str) -> str:
        if name in self.gates:
            raise Unsupported("a Reshape to 1×1×C can only feed a Multiply")
        if name in self.padded:
            raise Unsupported("a ZeroPadding2D can only feed a Conv2D or an AveragePooling2D")
        name = self.alias.get(name, name)
        if name not in self.blocks:
            raise Unsupported(f"its input '{name}' was not read")
        return name

    def add(self, key: str, name: str, kind: str, params: dict, sources: list[str], arrays=None) -> str:
        from ..graph import KINDS
        from ..graph.layers import ParamError, ShapeError
        try:
            checked = KINDS[kind].checked_params(params)
            shape = KINDS[kind].output_shape(checked, [self.blocks[s].shape for s in sources])
        except (ParamError, ShapeError) as e:
            raise Unsupported(str(e)) from None
        self.blocks[key] = Block(sanitised(name, kind.lower()), kind, checked, sources, tuple(shape), arrays or {})
        return key

    def activation(self, layer: str, block: str, name) -> None:
        """The layer's own activation as a block after ``block``; the layer's output is what comes out."""
        if name in (None, "linear"):
            self.alias[layer] = block
            return
        kind = _ACTIVATIONS.get(name) if isinstance(name, str) else None
        if kind is None:
            raise Unsupported(f"activation {name!r} is not in the catalogue")
        params = {"alpha": 0.2} if kind == "LeakyReLU" else {}
        self.add(layer, f"{self.blocks[block].name}_{name}", kind, params, [block])
        if block in self.flattened:
            self.flattened[layer] = self.flattened[block]

    def image_layout(self, config: dict) -> None:
        layout = config.get("data_format") or "channels_last"
        if (layout == "channels_last") != self.channels_last:
            raise Unsupported(f"data_format {layout} differs from the model's input")

    # ------------------------------------------------------------------------------------------- layer kinds
    def read(self, layer: dict) -> None:
        cls, name, cfg = layer["cls"], layer["name"], layer["config"]
        if cls in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
            raise Unsupported("a Lambda layer holds Python code, which ConvDesigner never runs; rebuild it from "
                              "standard layers")
        handler = getattr(self, f"_{cls}", None)
        if handler is None:
            raise Unsupported("this layer kind is not in the catalogue")
        sources = layer["inputs"]
        for s in sources:
            if self.alias.get(s, s) in self.flattened and cls not in _ORDER_FREE:
                raise Unsupported("it reads a flattened image, whose order ConvDesigner only changes for a Dense")
        handler(name, cfg, sources)

    def _InputLayer(self, name, cfg, sources):  # noqa: N802 - named after the Keras class
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        self.channels_last = (cfg.get("data_format") or "channels_last") == "channels_last"
        if not isinstance(shape, list) or len(shape) != 4 or not all(isinstance(d, int) and 1 <= d <= 4096
                                                                     for d in shape[1:]):
            raise Unsupported(f"input shape {shape} is not a batch of images N×H×W×C of a fixed size")
        h, w, c = shape[1:] if self.channels_last else (shape[2], shape[3], shape[1])
        self.add(name, name, "Input", {"channels": c, "height": h, "width": w}, [])

    def _conv(self, name, cfg, sources, depthwise: bool):
        self.image_layout(cfg)
        source = sources[0]
        extra = 0
        if source in self.padded:
            source, extra = self.padded[source]
        x = self.source(source)
        arrays = self.weights.of(name, "DepthwiseConv2D" if depthwise else "Conv2D", cfg)
        kernel = arrays.get("depthwise_kernel" if depthwise else "kernel")
        if kernel is None or kernel.ndim != 4:
            raise Unsupported("its kernel is missing from the weights")
        c = self.blocks[x].shape[0]
        if depthwise:  # (kh, kw, C, multiplier) → C·multiplier filters of one channel each
            kh, kw, cin, mult = kernel.shape
            ours = kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            groups = cin
        else:
            ours = kernel.transpose(3, 2, 0, 1)
            groups = int(cfg.get("groups", 1))
        strides, dilation = _pair(cfg.get("strides", 1), "strides"), _pair(cfg.get("dilation_rate", 1), "dilation")
        params = {"filters": ours.shape[0], "kernel_h": ours.shape[2], "kernel_w": ours.shape[3], "stride": strides,
                  "dilation": dilation, "groups": groups, "bias": "bias" in arrays}
        padding = cfg.get("padding", "valid")
        if padding == "same" and not extra:
            params["padding"] = "same"
        elif padding == "valid":
            params.update(padding="explicit", pad_h=extra, pad_w=extra) if extra else params.update(padding="valid")
        else:
            raise Unsupported(f"padding {padding!r}{' after a ZeroPadding2D' if extra else ''} is not supported")
        if c != ours.shape[1] * groups:
            raise Unsupported(f"its kernel of {fmt(kernel.shape)} does not fit {c} input channels")
        weights = {"kernel": ours} | ({"bias": arrays["bias"]} if "bias" in arrays else {})
        block = self.add(f"{name}/conv" if cfg.get("activation") not in (None, "linear") else name, name, "Conv2D",
                         params, [x], weights)
        self.activation(name, block, cfg.get("activation"))

    def _Conv2D(self, name, cfg, sources):  # noqa: N802
        self._conv(name, cfg, sources, depthwise=False)

    def _DepthwiseConv2D(self, name, cfg, sources):  # noqa: N802
        self._conv(name, cfg, sources, depthwise=True)

    def _Dense(self, name, cfg, sources):  # noqa: N802
        x = self.source(sources[0])
        arrays = self.weights.of(name, "Dense", cfg)
        kernel = arrays.get("kernel")
        if kernel is None or kernel.ndim != 2:
            raise Unsupported("its kernel is missing from the weights")
        if len(self.blocks[x].shape) != 1:
            raise Unsupported("it is applied to an image; ConvDesigner's Dense takes a flat vector")
        if x in self.flattened:  # Keras flattened H·W·C; ours C·H·W
            c, h, w = self.flattened[x]
            kernel = kernel[np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)]
        weights = {"kernel": np.ascontiguousarray(kernel.T)} | ({"bias": arrays["bias"]} if "bias" in arrays else {})
        activation = cfg.get("activation")
        block = self.add(f"{name}/dense" if activation not in (None, "linear") else name, name, "Dense",
                         {"units": kernel.shape[1], "bias": "bias" in arrays}, [x], weights)
        self.activation(name, block, activation)

    def _BatchNormalization(self, name, cfg, sources):  # noqa: N802
        x = self.source(sources[0])
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        rank = len(self.blocks[x].shape) + 1
        channel = (rank - 1 if self.channels_last else 1) if rank == 4 else 1
        if not isinstance(axis, int) or axis % rank != channel:
            raise Unsupported(f"normalising over axis {axis} is not per channel")
        arrays = self.weights.of(name, "BatchNormalization", cfg)
        c = self.blocks[x].shape[0]
        ours = {"gamma": arrays.get("gamma", np.ones(c, np.float32)),
                "beta": arrays.get("beta", np.zeros(c, np.float32)), "running_mean": arrays.get("moving_mean"),
                "running_var": arrays.get("moving_variance")}
        if any(v is None for v in ours.values()):
            raise Unsupported("its moving mean or variance is missing from the weights")
        params = {"eps": f32(cfg.get("epsilon", 1e-3)), "momentum": f32(1.0 - f32(cfg.get("momentum", 0.99)))}
        self.add(name, name, "BatchNorm", params, [x], ours)

    def _Activation(self, name, cfg, sources):  # noqa: N802
        self.activation(name, self.source(sources[0]), cfg.get("activation"))

    def _ReLU(self, name, cfg, sources):  # noqa: N802
        if cfg.get("max_value") is not None or cfg.get("threshold", 0) or cfg.get("negative_slope", 0):
            raise Unsupported("a ReLU with max_value, threshold or negative_slope is not in the catalogue")
        self._element(name, sources, "ReLU", {})

    def _LeakyReLU(self, name, cfg, sources):  # noqa: N802
        self._element(name, sources, "LeakyReLU", {"alpha": f32(cfg.get("negative_slope", cfg.get("alpha", 0.3)))})

    def _ELU(self, name, cfg, sources):  # noqa: N802
        self._element(name, sources, "ELU", {"alpha": f32(cfg.get("alpha", 1.0))})

    def _Softmax(self, name, cfg, sources):  # noqa: N802
        axis = cfg.get("axis", -1)
        x = self.source(sources[0])
        rank = len(self.blocks[x].shape) + 1
        if axis % rank != ((rank - 1 if self.channels_last else 1) if rank == 4 else 1):
            raise Unsupported(f"softmax over axis {axis} is not over the channels")
        self._element(name, sources, "Softmax", {})

    def _element(self, name, sources, kind, params):
        x = self.source(sources[0])
        self.add(name, name, kind, params, [x])
        if x in self.flattened:
            self.flattened[name] = self.flattened[x]

    def _PReLU(self, name, cfg, sources):  # noqa: N802
        x = self.source(sources[0])
        alpha = self.weights.of(name, "PReLU", cfg).get("alpha")
        c = self.blocks[x].shape[0]
        if alpha is None or alpha.size != c:
            raise Unsupported("its slope is not one value per channel (set shared_axes to the height and width)")
        self.add(name, name, "PReLU", {}, [x], {"slope": alpha.reshape(-1)})

    def _pool(self, name, cfg, sources, kind):
        self.image_layout(cfg)
        source, extra = sources[0], 0
        if source in self.padded and kind == "AvgPool2D":
            source, extra = self.padded[source]
        x = self.source(source)
        k = _pair(cfg.get("pool_size", 2), "pool_size")
        stride = _pair(cfg.get("strides") or k, "strides")
        sizes = self.blocks[x].shape[1:]
        padding = cfg.get("padding", "valid")
        if padding == "valid":
            params = {"pool_size": k, "stride": stride, "padding": extra, "ceil_mode": False}
        elif padding == "same" and not extra:
            wanted = [-(-s // stride) for s in sizes]
            totals = [max((o - 1) * stride + k - s, 0) for o, s in zip(wanted, sizes, strict=True)]
            if kind == "AvgPool2D" and any(totals):
                raise Unsupported("'same' average pooling leaves padding out of the average, which ours counts")
            pad = totals[0] // 2
            modes = [m for m in (False, True) if [pool_output(s, k, stride, pad, m) for s in sizes] == wanted]
            if totals[0] // 2 != totals[1] // 2 or not modes:
                raise Unsupported(f"'same' pooling of {fmt(sizes)} pads it unevenly")
            params = {"pool_size": k, "stride": stride, "padding": pad, "ceil_mode": modes[0]}
        else:
            raise Unsupported(f"padding {padding!r} is not supported here")
        self.add(name, name, kind, params, [x])

    def _MaxPooling2D(self, name, cfg, sources):  # noqa: N802
        self._pool(name, cfg, sources, "MaxPool2D")

    def _AveragePooling2D(self, name, cfg, sources):  # noqa: N802
        self._pool(name, cfg, sources, "AvgPool2D")

    _MaxPool2D, _AvgPool2D = _MaxPooling2D, _AveragePooling2D

    def _GlobalAveragePooling2D(self, name, cfg, sources):  # noqa: N802
        self.image_layout(cfg)
        x = self.source(sources[0])
        if cfg.get("keepdims"):
            self.add(name, name, "GlobalAvgPool2D", {}, [x])
            return
        pooled = self.add(f"{name}/pool", name, "GlobalAvgPool2D", {}, [x])
        self.add(name, f"{name}_flatten", "Flatten", {}, [pooled])

    _GlobalAvgPool2D = _GlobalAveragePooling2D

    def _Flatten(self, name, cfg, sources):  # noqa: N802
        x = self.source(sources[0])
        shape = self.blocks[x].shape
        self.add(name, name, "Flatten", {}, [x])
        if len(shape) == 3 and self.channels_last and shape[1:] != (1, 1):
            self.flattened[name] = shape

    def _Dropout(self, name, cfg, sources):  # noqa: N802
        self._element(name, sources, "Dropout", {"rate": f32(cfg.get("rate", 0.5))})

    def _merge(self, name, sources, kind):
        self.add(name, name, kind, {}, [self.alias.get(s, s) if s in self.gates else self.source(s)
                                        for s in sources])

    def _Add(self, name, cfg, sources):  # noqa: N802
        self._merge(name, sources, "Add")

    def _Multiply(self, name, cfg, sources):  # noqa: N802
        self._merge(name, sources, "Multiply")

    def _Concatenate(self, name, cfg, sources):  # noqa: N802
        x = self.source(sources[0])
        rank = len(self.blocks[x].shape) + 1
        axis = cfg.get("axis", -1)
        if axis % rank != ((rank - 1 if self.channels_last else 1) if rank == 4 else 1):
            raise Unsupported(f"concatenating along axis {axis}, not the channels")
        self._merge(name, sources, "Concat")

    def _ZeroPadding2D(self, name, cfg, sources):  # noqa: N802
        pad = cfg.get("padding", 1)
        flat = [pad] * 4 if isinstance(pad, int) else [v for pair in pad for v in (pair if isinstance(pair, list)
                                                                                    else [pair, pair])]
        if len(set(flat)) != 1 or not isinstance(flat[0], int) or flat[0] < 0:
            raise Unsupported(f"padding {pad} is not the same on every side")
        self.padded[name] = (self.source(sources[0]), flat[0])

    def _Reshape(self, name, cfg, sources):  # noqa: N802
        x = self.source(sources[0])
        target = list(cfg.get("target_shape") or [])
        shape = self.blocks[x].shape
        gate = [1, 1, shape[0]] if self.channels_last else [shape[0], 1, 1]
        if len(shape) == 1 and target == gate:
            self.alias[name] = x
            self.gates.add(name)
        elif len(target) == 1 and target[0] in (-1, math.prod(shape)):
            self._Flatten(name, cfg, sources)
        else:
            raise Unsupported(f"a reshape of {fmt(shape)} to {target} is neither a flattening nor a 1×1×C gate")


def _pair(value, what: str) -> int:
    values = value if isinstance(value, list) else [value, value]
    if len(values) != 2 or values[0] != values[1] or not isinstance(values[0], int):
        raise Unsupported(f"{what} {value} differ between height and width")
    return values[0]


# ----------------------------------------------------------------------------------------------- files

def _config_from_zip(path: str | os.PathLike, folder: Path) -> tuple[dict, Path | None]:
    """config.json and the extracted model.weights.h5 of a .keras file, every size checked before it is read."""
    with zipfile.ZipFile(path) as z:
        entries = {i.filename: i for i in z.infolist()}
        info = entries.get("config.json")
        if info is None:
            raise Unsupported("it is a zip file without config.json, so not a .keras model")
        if info.file_size > MAX_CONFIG_BYTES:
            raise Unsupported(f"its config.json is {info.file_size:,} bytes, more than a model configuration needs")
        config = json.loads(z.read(info).decode("utf-8"))
        weights = entries.get("model.weights.h5")
        if weights is None:
            return config, None
        if weights.file_size > MAX_WEIGHTS_BYTES:
            raise Unsupported(f"its weights declare {weights.file_size:,} bytes, more than ConvDesigner reads")
        target = folder / "model.weights.h5"
        with z.open(weights) as src, open(target, "xb") as out:
            left = weights.file_size
            while chunk := src.read(min(1 << 20, left + 1)):
                left -= len(chunk)
                if left < 0:
                    raise Unsupported("its weights are larger than their zip entry declares")
                out.write(chunk)
        return config, target


def read_keras(path: str | os.PathLike) -> tuple[ModelFile, list[str]]:
    """The graph and weights of a Keras model file (.h5 or .keras), and notes on what was changed; every problem,
    including the list of layers that have no block, is one ModelFileError naming the file."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
    except OSError as e:
        raise open_error(path, e, "Keras file") from None
    with tempfile.TemporaryDirectory(prefix="convdesigner-keras-") as tmp:
        try:
            if magic.startswith(ZIP_SIGNATURE):
                config, weights_file = _config_from_zip(path, Path(tmp))
                legacy = False
            elif magic == HDF5_SIGNATURE:
                weights_file, legacy = Path(path), True
                config = None
            else:
                raise Unsupported("it is neither a .keras (zip) nor a Keras .h5 (HDF5) file")
            if weights_file is None:
                raise Unsupported("it holds no weights (model.weights.h5)")
            crash = in_child_process(_walk, os.fspath(weights_file))
            if crash is not None:
                raise Unsupported(f"it is damaged: {crash}")
            with h5py.File(weights_file, "r") as f:
                if legacy:
                    texts = _text_list(f, "model_config")
                    if not texts:
                        raise Unsupported("it holds no model_config: it is a weights-only file or not from Keras "
                                          "(save the whole model with model.save; a ConvDesigner model file opens "
                                          "with File › Open)")
                    config = json.loads(texts[0])
                return _read(path, config, _Weights(f, legacy))
        except Unsupported as e:
            raise ModelFileError(path, f"cannot be imported: {e}") from None
        except ModelFileError:
            raise
        except (HDF5Refused, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelFileError(path, f"is damaged and cannot be imported ({e})") from None
        except Exception as e:  # noqa: BLE001 - h5py and zipfile fail in their own ways on a damaged file
            raise ModelFileError(path, f"is damaged and cannot be imported ({type(e).__name__}: {e})") from None


def _read(path, config: dict, weights: _Weights) -> tuple[ModelFile, list[str]]:
    layers, outputs = _layers(config)
    r = _Reader(weights)
    problems = []
    broken: set[str] = set()
    for layer in layers:
        if any(s in broken for s in layer["inputs"]):
            broken.add(layer["name"])
            continue
        try:
            r.read(layer)
        except Unsupported as e:
            problems.append(f"{layer['name']} ({layer['cls']}: {e})")
            broken.add(layer["name"])
    if problems:
        raise Unsupported(f"{len(problems)} layer(s) have no ConvDesigner block: {'; '.join(problems)}")
    if len(outputs) != 1:
        raise Unsupported(f"it has {len(outputs)} outputs; a ConvDesigner network has one")
    tensor = r.source(outputs[0])
    readers = sum(tensor in b.inputs for b in r.blocks.values())
    add_head(r.blocks, tensor, readers == 0, f"{outputs[0]}_output")
    return build_model(path, r.blocks)
