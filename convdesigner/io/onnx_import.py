"""ONNX import: an ONNX model made of operators our catalogue can express becomes a graph with its weights.

Nothing in the file is run: nodes are read one by one and mapped onto blocks (Conv, Gemm or MatMul + Add,
BatchNormalization, the activations, max/average and global pooling, Flatten or a Reshape to flat, Concat, Add, Sum,
Mul, Dropout; Sigmoid·x becomes SiLU). What folds is folded: Constant and Identity nodes, a zero Pad before a
convolution or an average pool, an Unsqueeze that makes a squeeze-excitation gate. Every node that has no block is
listed, by name and operator, in one error. The last node becomes the output head (Softmax → SoftmaxCrossEntropy,
Sigmoid → SigmoidBCE, anything else an MSE head that passes it through). Blocks are left at one spot; the designer
lays such a graph out when it opens it, as it does templates.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..graph import KINDS, Graph, GraphError
from ..graph.layers import ParamError, ShapeError, conv_padding, fmt, pool_output
from .h5model import ModelFile, ModelFileError, checked_arrays, open_error
from .onnx_export import HINT, require_onnx

MAX_FILE_BYTES = 2 << 30  # protobuf's own limit; weights kept outside the file are refused
MAX_ARRAY_ELEMENTS = 1 << 30
MAX_HINT_CHARS = 10_000


class Unsupported(Exception):
    """This node cannot become a block (the message says why, when the operator itself is known)."""


@dataclass
class Block:
    name: str
    kind: str
    params: dict
    inputs: list[str]  # producing tensors of the blocks feeding this one
    shape: tuple[int, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Padded:
    """A zero Pad's output, only usable by a Conv or an AveragePool, which absorb the padding."""

    source: str
    pad: int


def f32(value: float) -> float:
    """A float32 attribute as the number it was written from (0.1, not 0.10000000149)."""
    return float(str(np.float32(value)))


def sanitised(name: str, fallback: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)[:64].strip(".")
    return name or fallback


class _Reader:
    def __init__(self, onnx, model) -> None:
        self.onnx = onnx
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if self.opset is None:
            raise Unsupported("it declares no version of the standard ONNX operator set")
        graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: self._tensor(t) for t in graph.initializer}
        self.blocks: dict[str, Block] = {}  # by the tensor holding the block's output, in graph order
        self.alias: dict[str, str] = {}  # tensor -> the block tensor with the same values (Identity, Flatten of flat)
        self.padded: dict[str, _Padded] = {}
        self.gates: set[str] = set()  # Unsqueezed C gates, only for Mul
        self.hints: dict[str, dict] = {}
        self.unsupported: list[str] = []
        self.broken: set[str] = set()
        self.consumers: dict[str, int] = {}
        for node in graph.node:
            for t in node.input:
                self.consumers[t] = self.consumers.get(t, 0) + 1
        for out in graph.output:
            self.consumers[out.name] = self.consumers.get(out.name, 0) + 1
        self.input_name = self._input(graph)
        self.last_identity: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------- file contents
    def _tensor(self, t) -> np.ndarray:
        if t.data_location == self.onnx.TensorProto.EXTERNAL or t.external_data:
            raise Unsupported(f"tensor '{t.name}' keeps its data in another file, which ConvDesigner does not read; "
                              f"save the model with its weights inside (onnx.save(..., save_as_external_data="
                              f"False))")
        if any(d < 0 for d in t.dims) or math.prod(t.dims) > MAX_ARRAY_ELEMENTS:
            raise Unsupported(f"tensor '{t.name}' declares an impossible shape {list(t.dims)}")
        value = self.onnx.numpy_helper.to_array(t)
        if value.dtype.kind == "f":
            return value.astype(np.float32)
        if value.dtype.kind in "iub":
            return value.astype(np.int64)
        raise Unsupported(f"tensor '{t.name}' holds {value.dtype} values")

    def _input(self, graph) -> str:
        inputs = [v for v in graph.input if v.name not in self.consts]
        if len(inputs) != 1:
            raise Unsupported(f"it has {len(inputs)} inputs; ConvDesigner networks take one batch of images")
        v = inputs[0]
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if tt.elem_type != self.onnx.TensorProto.FLOAT or len(dims) != 4 or None in dims[1:] \
                or not all(1 <= d <= 4096 for d in dims[1:]):
            shown = "×".join("?" if d is None else str(d) for d in dims)
            raise Unsupported(f"its input '{v.name}' is {shown}; ConvDesigner takes float32 images N×C×H×W with a "
                              f"fixed C, H and W (each 1..4096)")
        name = v.name
        self.blocks[name] = Block(sanitised(name, "input"), "Input",
                                  {"channels": dims[1], "height": dims[2], "width": dims[3]}, [], tuple(dims[1:]))
        return name

    # ------------------------------------------------------------------------------------------- helpers
    def block_of(self, tensor: str) -> str:
        """The block tensor that ``tensor`` names (through aliases); Unsupported for a constant or a Pad."""
        if tensor in self.gates:
            raise Unsupported("an Unsqueezed gate can only feed a Mul")
        tensor = self.alias.get(tensor, tensor)
        if tensor in self.padded:
            raise Unsupported("a Pad can only feed a Conv or an AveragePool")
        if tensor not in self.blocks:
            raise Unsupported(f"input '{tensor}' is a constant, not computed from the image")
        return tensor

    def const(self, node, i: int, what: str) -> np.ndarray:
        if i >= len(node.input) or not node.input[i]:
            raise Unsupported(f"the {what} is missing")
        name = node.input[i]
        if name not in self.consts:
            raise Unsupported(f"the {what} '{name}' is computed, not a constant")
        return self.consts[name]

    def optional_const(self, node, i: int, what: str) -> np.ndarray | None:
        return self.const(node, i, what) if i < len(node.input) and node.input[i] else None

    def add(self, node, kind: str, params: dict, sources: list[str], arrays: dict | None = None) -> None:
        try:
            checked = KINDS[kind].checked_params(params)
            shapes = [self.blocks[s].shape for s in sources]
            shape = KINDS[kind].output_shape(checked, shapes)
        except (ParamError, ShapeError) as e:
            raise Unsupported(str(e)) from None
        hint = _hint(node.doc_string)
        if hint and hint.get("kind") == kind:
            checked = _prefer_hint(kind, checked, hint.get("params"), shapes)
        self.blocks[node.output[0]] = Block(sanitised(node.name or node.output[0], kind.lower()), kind,
                                            checked, sources, tuple(shape), arrays or {})
        self.hints[node.output[0]] = hint

    # ------------------------------------------------------------------------------------------- nodes
    def read(self, node) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or op not in _OPS:
            self.unsupported.append(f"{node.name or '(unnamed)'} ({op if not node.domain else node.domain + '.' + op})")
            self.broken.update(node.output)
            return
        if any(t in self.broken for t in node.input if t):
            self.broken.update(node.output)
            return
        if op != "Dropout" and len([o for o in node.output if o]) != 1:
            raise Unsupported("only its first output can be used")
        attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        _OPS[op](self, node, attrs)


def _hint(doc: str) -> dict:
    """The block description our exporter leaves in a doc_string (only ever compared, never trusted)."""
    if not doc.startswith(HINT) or len(doc) > MAX_HINT_CHARS:
        return {}
    try:
        value = json.loads(doc[len(HINT):])
    except ValueError:
        return {}
    return value if isinstance(value, dict) and isinstance(value.get("params", {}), dict) else {}


def _meaning(kind: str, params: dict, shapes: list) -> dict:
    """What of a block's parameters shows in its ONNX node: two settings with the same meaning compute the same."""
    out = {k: (round(v, 6 - int(math.floor(math.log10(abs(v))))) if isinstance(v, float) and v else v)
           for k, v in params.items()}
    if kind == "Conv2D":
        for key in ("padding", "pad_h", "pad_w"):
            out.pop(key)
        out["pads"] = conv_padding(params, shapes[0][1:])
    elif kind in ("MaxPool2D", "AvgPool2D"):
        out["stride"] = stride = params["stride"] or params["pool_size"]
        out["ceil_mode"] = [pool_output(size, params["pool_size"], stride, params["padding"], params["ceil_mode"])
                            for size in shapes[0][1:]]
    elif kind == "SoftmaxCrossEntropy":
        out.pop("label_smoothing")  # training only
    return out


def _prefer_hint(kind: str, params: dict, hinted, shapes: list) -> dict:
    """The block's own parameters from our doc_string when they mean what the node does ('same' padding, stride 0,
    a label smoothing), else those read from the node."""
    try:
        candidate = KINDS[kind].checked_params(hinted or {})
    except (ParamError, TypeError):
        return params
    return candidate if _meaning(kind, candidate, shapes) == _meaning(kind, params, shapes) else params


def _square(attrs: dict, key: str, default: int, what: str) -> int:
    values = list(attrs.get(key, [default, default]))
    if len(values) != 2 or values[0] != values[1]:
        raise Unsupported(f"{what} {values} differ between height and width (or the input is not 2-D)")
    return int(values[0])


def _pads(attrs: dict) -> list[int]:
    pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or min(pads) < 0:
        raise Unsupported(f"pads {pads} are not four non-negative numbers")
    return pads


def _auto_pad(attrs: dict) -> str:
    value = attrs.get("auto_pad", b"NOTSET")
    return value.decode() if isinstance(value, bytes) else str(value)


def _conv(r: _Reader, node, attrs: dict) -> None:
    x = r.alias.get(node.input[0], node.input[0])
    extra = 0
    if x in r.padded:
        x, extra = r.padded[x].source, r.padded[x].pad
    x = r.block_of(x)
    kernel = r.const(node, 1, "weight")
    bias = r.optional_const(node, 2, "bias")
    if kernel.ndim != 4:
        raise Unsupported(f"weight of shape {fmt(kernel.shape)} is not a 2-D convolution's")
    c, h, w = r.blocks[x].shape
    params = {"filters": kernel.shape[0], "kernel_h": kernel.shape[2], "kernel_w": kernel.shape[3],
              "stride": _square(attrs, "strides", 1, "strides"),
              "dilation": _square(attrs, "dilations", 1, "dilations"),
              "groups": int(attrs.get("group", 1)), "bias": bias is not None}
    auto = _auto_pad(attrs)
    if auto in ("SAME_UPPER", "SAME_LOWER") and not extra:
        top, bottom, left, right = conv_padding({**params, "padding": "same"}, (h, w))
        if auto == "SAME_LOWER":
            top, bottom, left, right = bottom, top, right, left
    elif auto in ("NOTSET", "VALID"):
        top, left, bottom, right = [p + extra for p in (_pads(attrs) if auto == "NOTSET" else [0, 0, 0, 0])]
    else:
        raise Unsupported(f"auto_pad {auto} after a Pad is not supported")
    if (top, left) == (bottom, right) and top == left == 0:
        params["padding"] = "valid"
    elif top == bottom and left == right:
        params.update(padding="explicit", pad_h=top, pad_w=left)
    elif conv_padding({**params, "padding": "same"}, (h, w)) == (top, bottom, left, right):
        params["padding"] = "same"
    else:
        raise Unsupported(f"pads top {top}, bottom {bottom}, left {left}, right {right} are neither symmetric nor "
                          f"'same' padding")
    arrays = {"kernel": kernel} | ({"bias": bias.reshape(-1)} if bias is not None else {})
    r.add(node, "Conv2D", params, [x], arrays)


def _pool(r: _Reader, node, attrs: dict) -> None:
    op = node.op_type
    x = r.alias.get(node.input[0], node.input[0])
    outside = 0
    if x in r.padded and op == "AveragePool":
        x, outside = r.padded[x].source, r.padded[x].pad
    x = r.block_of(x)
    k = _square(attrs, "kernel_shape", 0, "kernel_shape")
    stride = _square(attrs, "strides", 1, "strides")
    if _square(attrs, "dilations", 1, "dilations") != 1:
        raise Unsupported("dilated pooling is not in the catalogue")
    if _auto_pad(attrs) not in ("NOTSET", "VALID"):
        raise Unsupported(f"auto_pad {_auto_pad(attrs)} is not supported; export with explicit pads")
    top, left, bottom, right = _pads(attrs) if _auto_pad(attrs) == "NOTSET" else [0, 0, 0, 0]
    if (top, bottom) != (left, right):
        raise Unsupported("pads differ between height and width")
    counted = op == "MaxPool" or bool(attrs.get("count_include_pad", 0))
    if op == "AveragePool" and ((counted and top != bottom) or (not counted and top)):
        raise Unsupported("average pooling whose padding is not counted in the average at the start, or only at "
                          "one end, has no block")
    pad = outside + top
    ceil = bool(attrs.get("ceil_mode", 0))
    sizes = r.blocks[x].shape[1:]
    wanted = [_onnx_pool_size(s + 2 * outside, k, stride, top, bottom, ceil) for s in sizes]
    modes = [m for m in (ceil, not ceil) if [pool_output(s, k, stride, pad, m) for s in sizes] == wanted]
    if not modes:
        raise Unsupported(f"its output size {wanted} follows neither rounding rule of the catalogue")
    kind = "MaxPool2D" if op == "MaxPool" else "AvgPool2D"
    r.add(node, kind, {"pool_size": k, "stride": stride, "padding": pad, "ceil_mode": modes[0]}, [x])


def _onnx_pool_size(size: int, k: int, stride: int, head: int, tail: int, ceil: bool) -> int:
    """An ONNX pool's output length (with ceil_mode, a last window that would start in the end padding is dropped,
    as ONNX Runtime and PyTorch do)."""
    span = size + head + tail - k
    n = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (n - 1) * stride >= size + head:
        n -= 1
    return n


def _pad(r: _Reader, node, attrs: dict) -> None:
    if _auto_pad({"auto_pad": attrs.get("mode", b"constant")}) != "constant":
        raise Unsupported("only zero padding folds into a Conv or AveragePool")
    pads = attrs.get("pads") if r.opset < 11 else r.const(node, 1, "pads")
    value = r.optional_const(node, 2, "padding value") if r.opset >= 11 else np.float32(attrs.get("value", 0.0))
    if len(node.input) > 3 and node.input[3]:
        raise Unsupported("padding of selected axes is not supported")
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if value is not None and np.any(np.asarray(value) != 0):
        raise Unsupported("only zero padding folds into a Conv or AveragePool")
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or len(set(pads[2:4] + pads[6:8])) != 1 or pads[2] < 0:
        raise Unsupported(f"pads {pads} are not the same on every side of the height and width")
    r.padded[node.output[0]] = _Padded(r.block_of(node.input[0]), pads[2])


def _dense(r: _Reader, x: str, kernel: np.ndarray, bias: np.ndarray | None, node) -> None:
    if len(r.blocks[x].shape) != 1:
        raise Unsupported(f"its input is {fmt(r.blocks[x].shape)}, not a flat vector; flatten it first")
    units = kernel.shape[0]
    if bias is not None:
        if bias.size not in (1, units):
            raise Unsupported(f"bias of {bias.size} values for {units} outputs")
        bias = np.broadcast_to(bias.reshape(-1), (units,)).copy()
    arrays = {"kernel": np.ascontiguousarray(kernel)} | ({"bias": bias} if bias is not None else {})
    r.add(node, "Dense", {"units": units, "bias": bias is not None}, [x], arrays)


def _gemm(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    b = r.const(node, 1, "weight B")
    c = r.optional_const(node, 2, "bias C")
    if attrs.get("transA", 0) or b.ndim != 2:
        raise Unsupported("transposed input A or a weight B that is not a matrix")
    kernel = (b if attrs.get("transB", 0) else b.T) * np.float32(attrs.get("alpha", 1.0))
    _dense(r, x, kernel, None if c is None else c * np.float32(attrs.get("beta", 1.0)), node)


def _matmul(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    b = r.const(node, 1, "weight B")
    if b.ndim != 2:
        raise Unsupported("only a flat vector times a constant matrix is a Dense block")
    _dense(r, x, b.T, None, node)


def _add(r: _Reader, node, attrs: dict) -> None:
    constant = [t for t in node.input if t in r.consts]
    if node.op_type == "Add" and len(constant) == 1:  # MatMul + Add: the bias of a Dense
        other = r.block_of(next(t for t in node.input if t not in r.consts))
        block = r.blocks[other]
        bias = r.consts[constant[0]]
        if block.kind != "Dense" or block.params["bias"] or r.consumers.get(other) != 1 \
                or bias.size != block.params["units"]:
            raise Unsupported("adding a constant is only supported as the bias of a MatMul")
        block.params["bias"] = True
        block.arrays["bias"] = bias.reshape(-1).copy()
        r.alias[node.output[0]] = other
        return
    r.add(node, "Add", {}, [r.block_of(t) for t in node.input])


def _mul(r: _Reader, node, attrs: dict) -> None:
    if len(node.input) != 2:
        raise Unsupported("Mul takes two inputs")
    names = [r.alias.get(t, t) for t in node.input]
    for gate, x in (names, names[::-1]):  # Sigmoid(x)·x: SiLU
        block = r.blocks.get(gate)
        if block and block.kind == "Sigmoid" and block.inputs == [x] and r.consumers.get(gate) == 1:
            del r.blocks[gate]
            r.add(node, "SiLU", {}, [x])
            return
    r.add(node, "Multiply", {}, [r.alias[t] if t in r.gates else r.block_of(t) for t in node.input])


def _unsqueeze(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    axes = attrs.get("axes") if r.opset < 13 else r.const(node, 1, "axes")
    rank = len(r.blocks[x].shape) + 1
    axes = sorted(int(a) % (rank + 2) for a in np.asarray(axes).reshape(-1))
    if rank != 2 or axes != [2, 3]:
        raise Unsupported("only turning a flat C vector into a C×1×1 gate (axes 2, 3) is supported")
    r.alias[node.output[0]] = x
    r.gates.add(node.output[0])


def _activation(kind: str, **defaults):
    def read(r: _Reader, node, attrs: dict) -> None:
        params = {k: f32(attrs.get(k, v)) for k, v in defaults.items()}
        r.add(node, kind, params, [r.block_of(node.input[0])])
    return read


def _prelu(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    slope = r.const(node, 1, "slope")
    c = r.blocks[x].shape[0]
    if slope.size not in (1, c) or (slope.size == c and max(slope.shape, default=1) != c):
        raise Unsupported(f"slope of shape {fmt(slope.shape)} is not one value per channel")
    r.add(node, "PReLU", {}, [x], {"slope": np.broadcast_to(slope.reshape(-1), (c,)).copy()})


def _softmax(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    rank = len(r.blocks[x].shape) + 1
    axis = int(attrs.get("axis", -1 if r.opset >= 13 else 1)) % rank
    if axis != 1 or (rank > 2 and r.opset < 13):
        raise Unsupported(f"softmax over axis {axis} of a rank-{rank} tensor is not over the channels")
    r.add(node, "Softmax", {}, [x])


def _batchnorm(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    if attrs.get("training_mode", 0):
        raise Unsupported("training-mode batch normalisation")
    names = ("gamma", "beta", "running_mean", "running_var")
    arrays = {n: r.const(node, i, n).reshape(-1) for i, n in enumerate(names, start=1)}
    params = {"eps": f32(attrs.get("epsilon", 1e-5)), "momentum": f32(1.0 - f32(attrs.get("momentum", 0.9)))}
    r.add(node, "BatchNorm", params, [x], arrays)


def _flatten(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    if int(attrs.get("axis", 1)) != 1:
        raise Unsupported(f"flattening from axis {attrs['axis']} would merge the batch")
    r.add(node, "Flatten", {}, [x])


def _reshape(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    target = [int(v) for v in r.const(node, 1, "shape").reshape(-1)]
    size = math.prod(r.blocks[x].shape)
    if len(target) != 2 or target[1] not in (-1, size) or (target[1] == -1 and target[0] not in (0, -1) and
                                                           target[0] < 1) or (target[0] == -1 and target[1] == -1):
        raise Unsupported(f"a reshape to {target} is not a flattening to N×{size}")
    if len(r.blocks[x].shape) == 1:
        r.alias[node.output[0]] = x
    else:
        r.add(node, "Flatten", {}, [x])


def _dropout(r: _Reader, node, attrs: dict) -> None:
    x = r.block_of(node.input[0])
    if len(node.output) > 1 and node.output[1] and r.consumers.get(node.output[1]):
        raise Unsupported("its mask output is used")
    training = r.optional_const(node, 2, "training_mode") if r.opset >= 12 else None
    if training is not None and np.any(training):
        raise Unsupported("dropout in training mode")
    ratio = r.optional_const(node, 1, "ratio") if r.opset >= 12 else attrs.get("ratio")
    rate = 0.5 if ratio is None else f32(float(np.asarray(ratio).reshape(-1)[0]))
    r.add(node, "Dropout", {"rate": rate}, [x])


def _identity(r: _Reader, node, attrs: dict) -> None:
    r.alias[node.output[0]] = r.block_of(node.input[0])
    r.last_identity[node.output[0]] = node.name


def _constant(r: _Reader, node, attrs: dict) -> None:
    if "value" in attrs:
        value = r._tensor(node.attribute[0].t)
    else:
        key = next(iter(attrs), None)
        if key not in ("value_float", "value_floats", "value_int", "value_ints"):
            raise Unsupported(f"a constant given as {key}")
        value = np.asarray(attrs[key], np.float32 if "float" in key else np.int64)
    r.consts[node.output[0]] = value


def _concat(r: _Reader, node, attrs: dict) -> None:
    sources = [r.block_of(t) for t in node.input]
    rank = len(r.blocks[sources[0]].shape) + 1
    if int(attrs.get("axis", 1)) % rank != 1:
        raise Unsupported(f"concatenating along axis {attrs.get('axis')}, not the channels")
    r.add(node, "Concat", {}, sources)


_OPS = {
    "Conv": _conv, "MaxPool": _pool, "AveragePool": _pool, "Pad": _pad, "Gemm": _gemm, "MatMul": _matmul,
    "Add": _add, "Sum": _add, "Mul": _mul, "Unsqueeze": _unsqueeze, "Relu": _activation("ReLU"),
    "LeakyRelu": _activation("LeakyReLU", alpha=0.01), "Elu": _activation("ELU", alpha=1.0),
    "Sigmoid": _activation("Sigmoid"), "Tanh": _activation("Tanh"), "PRelu": _prelu, "Softmax": _softmax,
    "BatchNormalization": _batchnorm, "GlobalAveragePool": _activation("GlobalAvgPool2D"), "Flatten": _flatten,
    "Reshape": _reshape, "Dropout": _dropout, "Identity": _identity, "Constant": _constant, "Concat": _concat,
}


# ----------------------------------------------------------------------------------------------- the graph

def add_head(blocks: dict[str, Block], tensor: str, only_use: bool, name: str, hint: dict | None = None) -> None:
    """The loss head after the block whose output is ``tensor``: a Softmax or Sigmoid over a vector that nothing
    else reads becomes SoftmaxCrossEntropy or SigmoidBCE (parameters from our ``hint``), anything else is passed
    through an MSE head called ``name``."""
    block = blocks[tensor]
    if only_use and len(block.shape) == 1 and block.shape[0] >= 2 and block.kind in ("Softmax", "Sigmoid"):
        block.kind = "SoftmaxCrossEntropy" if block.kind == "Softmax" else "SigmoidBCE"
        block.params = KINDS[block.kind].defaults()
        if hint and hint.get("kind") == block.kind:
            block.params = _prefer_hint(block.kind, block.params, hint.get("params"), [block.shape])
        return
    blocks[f"{tensor}/head"] = Block(sanitised(name, "output"), "MSE", {}, [tensor], block.shape)


def _head(r: _Reader, output: str) -> None:
    tensor = r.alias.get(output, output)
    if tensor not in r.blocks:
        raise Unsupported(f"its output '{output}' is not computed from the image")
    add_head(r.blocks, tensor, output == tensor and r.consumers.get(tensor) == 1,
             r.last_identity.get(output, output), r.hints.get(tensor))


def _graph(blocks: dict[str, Block]) -> tuple[Graph, dict]:
    g = Graph()
    ids: dict[str, int] = {}
    weights: dict[str, dict[str, np.ndarray]] = {}
    taken: set[str] = set()
    for tensor, block in blocks.items():
        name, i = block.name, 2
        while name in taken:  # two ONNX nodes of one name: name_2, name_3...
            name, i = f"{block.name[:58]}_{i}", i + 1
        taken.add(name)
        node = g.add(block.kind, name, block.params)
        ids[tensor] = node.id
        for src in block.inputs:
            g.connect(ids[src], node.id)
        if block.arrays:
            weights[node.name] = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in block.arrays.items()}
    return g, weights


def read_onnx(path: str | os.PathLike) -> tuple[ModelFile, list[str]]:
    """The graph and weights of an ONNX file, and notes on what was changed to make it a ConvDesigner network.

    Every problem, including the list of nodes that have no block, is one ModelFileError naming the file."""
    onnx = require_onnx(path, "ONNX import")
    try:
        size = Path(path).stat().st_size
        if Path(path).is_dir():
            raise IsADirectoryError(path)
    except OSError as e:
        raise open_error(path, e, "ONNX file") from None
    if size > MAX_FILE_BYTES:
        raise ModelFileError(path, f"is {size / 2**30:.1f} GiB, more than an ONNX file can hold; weights kept in "
                                   f"other files are not read")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ModelFileError(path, f"is not a readable ONNX file ({type(e).__name__}: {e})") from None
    try:
        r = _Reader(onnx, model)
        errors: list[str] = []
        for node in model.graph.node:
            try:
                r.read(node)
            except Unsupported as e:
                errors.append(f"{node.name or '(unnamed)'} ({node.op_type}: {e})")
                r.broken.update(node.output)
        problems = r.unsupported + errors
        if problems:
            raise Unsupported(f"{len(problems)} node(s) have no ConvDesigner block: {'; '.join(problems)}")
        if len(model.graph.output) != 1:
            raise Unsupported(f"it has {len(model.graph.output)} outputs; a ConvDesigner network has one")
        _head(r, model.graph.output[0].name)
    except Unsupported as e:
        raise ModelFileError(path, f"cannot be imported: {e}") from None
    except Exception as e:  # noqa: BLE001 - a damaged file's attributes and tensors fail in onnx's own ways
        raise ModelFileError(path, f"is damaged and cannot be imported ({type(e).__name__}: {e})") from None
    return build_model(path, r.blocks)


def build_model(path: str | os.PathLike, blocks: dict[str, Block]) -> tuple[ModelFile, list[str]]:
    """The graph and weights of the blocks read from ``path`` (in graph order, the head last), checked, with notes
    for the user; a ModelFileError if they do not make a working network."""
    try:
        graph, weights = _graph(blocks)
        checked_arrays(graph, weights)
    except (GraphError, ValueError) as e:
        raise ModelFileError(path, f"cannot be imported: {e}") from None
    errors = [p.message for p in graph.infer().problems if p.severity == "error"]
    if errors:
        raise ModelFileError(path, f"was read, but the network has errors: {'; '.join(errors)}")
    notes = []
    head = graph.outputs()[0]
    if head.kind == "MSE":
        notes.append(f"the output '{head.name}' is passed through an MSE head (the file ends in no Softmax or "
                     f"Sigmoid); for a classifier, change it to SoftmaxCrossEntropy before training")
    return ModelFile(graph, weights), notes
