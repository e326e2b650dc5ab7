"""ONNX export: a graph and its weights as an opset-17 ONNX model, checked against our engine before it is written.

Every block becomes the ONNX node(s) with our exact semantics: explicit (possibly asymmetric) ``pads``, never
``auto_pad``; ceil-mode pooling as extra end padding, so the output size is ours whatever a runtime's ceil rule;
average pooling with an explicit zero ``Pad`` (our padding counts in the average, a ceil-mode overhang does not);
BatchNormalization with the running statistics; Softmax over axis 1; the loss head replaced by what
``Network.predict_proba`` returns (softmax probabilities, sigmoid, identity). Tensors and nodes carry the block names,
and each node's ``doc_string`` the block's parameters, so :mod:`onnx_import` gives back the same graph.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..graph import Graph, GraphError
from ..graph.layers import conv_padding
from .h5model import ModelFileError, Weights, checked_arrays, write_atomically

OPSET = 17
HINT = "convdesigner:"  # prefix of the doc_string holding a block's kind and parameters
INSTALL = 'pip install "convdesigner[onnx]"'


def require_onnx(path: str | os.PathLike, what: str):
    """The onnx module, or a ModelFileError saying how to install it (ONNX support is an optional extra)."""
    try:
        import onnx
    except ImportError:
        raise ModelFileError(path, f"{what} needs the onnx package, which is not installed; install it with "
                                   f"{INSTALL}") from None
    return onnx


@dataclass
class ExportCheck:
    """What the check before writing found: ``max_difference`` is None when ONNX Runtime was not there to run it."""

    max_difference: float | None
    samples: int
    seconds: float
    note: str


# ----------------------------------------------------------------------------------------------- graph -> ONNX

class _Emitter:
    """Collects nodes and initializers while the blocks are visited in topological order."""

    def __init__(self, onnx, weights: Weights) -> None:
        self.onnx, self.helper, self.weights = onnx, onnx.helper, weights
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def array(self, block: str, key: str, shape: tuple[int, ...] | None = None) -> str:
        value = np.asarray(self.weights[block][key], dtype=np.float32)
        return self.const(f"{block}/{key}", value if shape is None else value.reshape(shape))

    def node(self, op: str, inputs: list[str], output: str, name: str, hint: str = "", **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=name, doc_string=hint, **attrs))
        return output


def _hint(node) -> str:
    return HINT + json.dumps({"kind": node.kind, "params": node.params}, sort_keys=True)


def _pool_pads(params: dict, in_hw: tuple[int, int], out_hw: tuple[int, int], pad: int) -> list[int]:
    """[top, left, bottom, right] giving our output size with floor rounding: the ceil-mode overhang as end pads."""
    k, s = params["pool_size"], params["stride"] or params["pool_size"]
    ends = [max((o - 1) * s + k - size - pad, 0) for size, o in zip(in_hw, out_hw, strict=True)]
    return [pad, pad, *ends]


def _emit(e: _Emitter, node, xs: list[str], in_shapes: list, out_shape: tuple[int, ...]) -> str:
    """The ONNX node(s) for one block; returns the name of the tensor holding its output (the block's name)."""
    name, p, hint = node.name, node.params, _hint(node)
    kind = node.kind
    simple = {"ReLU": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "SigmoidBCE": "Sigmoid", "MSE": "Identity",
              "GlobalAvgPool2D": "GlobalAveragePool"}
    if kind in simple:
        return e.node(simple[kind], xs, name, name, hint)
    if kind in ("Softmax", "SoftmaxCrossEntropy"):
        return e.node("Softmax", xs, name, name, hint, axis=1)
    if kind == "Conv2D":
        top, bottom, left, right = conv_padding(p, in_shapes[0][1:])
        inputs = [xs[0], e.array(name, "kernel")] + ([e.array(name, "bias")] if p["bias"] else [])
        return e.node("Conv", inputs, name, name, hint, kernel_shape=[p["kernel_h"], p["kernel_w"]],
                      strides=[p["stride"]] * 2, pads=[top, left, bottom, right], dilations=[p["dilation"]] * 2,
                      group=p["groups"])
    if kind == "MaxPool2D":
        pads = _pool_pads(p, in_shapes[0][1:], out_shape[1:], p["padding"])
        return e.node("MaxPool", xs, name, name, hint, kernel_shape=[p["pool_size"]] * 2,
                      strides=[p["stride"] or p["pool_size"]] * 2, pads=pads)
    if kind == "AvgPool2D":
        x, pad = xs[0], p["padding"]
        if pad:
            spec = e.const(f"{name}/pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))
            x = e.node("Pad", [x, spec], f"{name}/padded", f"{name}/pad")
        in_hw = tuple(d + 2 * pad for d in in_shapes[0][1:])
        return e.node("AveragePool", [x], name, name, hint, kernel_shape=[p["pool_size"]] * 2,
                      strides=[p["stride"] or p["pool_size"]] * 2, pads=_pool_pads(p, in_hw, out_shape[1:], 0),
                      count_include_pad=0)
    if kind == "Flatten":
        return e.node("Flatten", xs, name, name, hint, axis=1)
    if kind == "Dense":
        inputs = [xs[0], e.array(name, "kernel")] + ([e.array(name, "bias")] if p["bias"] else [])
        return e.node("Gemm", inputs, name, name, hint, transB=1)
    if kind == "LeakyReLU":
        return e.node("LeakyRelu", xs, name, name, hint, alpha=p["alpha"])
    if kind == "ELU":
        return e.node("Elu", xs, name, name, hint, alpha=p["alpha"])
    if kind == "PReLU":
        shape = in_shapes[0]
        slope = e.array(name, "slope", (shape[0],) + (1,) * (len(shape) - 1))
        return e.node("PRelu", [xs[0], slope], name, name, hint)
    if kind == "SiLU":
        gate = e.node("Sigmoid", xs, f"{name}/sigmoid", f"{name}/sigmoid")
        return e.node("Mul", [xs[0], gate], name, name, hint)
    if kind == "Dropout":
        ratio = e.const(f"{name}/ratio", np.array(p["rate"], np.float32))
        return e.node("Dropout", [xs[0], ratio], name, name, hint)
    if kind == "BatchNorm":
        arrays = [e.array(name, key) for key in ("gamma", "beta", "running_mean", "running_var")]
        return e.node("BatchNormalization", [xs[0], *arrays], name, name, hint, epsilon=p["eps"],
                      momentum=1.0 - p["momentum"])
    if kind == "Add":
        return e.node("Add" if len(xs) == 2 else "Sum", xs, name, name, hint)
    if kind == "Concat":
        return e.node("Concat", xs, name, name, hint, axis=1)
    if kind == "Multiply":
        xs = list(xs)
        for i, shape in enumerate(in_shapes):
            if len(shape) == 1 and len(out_shape) == 3:  # a flat C gate over a C×H×W input
                axes = e.const(f"{name}/axes{i}", np.array([2, 3], np.int64))
                xs[i] = e.node("Unsqueeze", [xs[i], axes], f"{name}/gate{i}", f"{name}/gate{i}")
        return e.node("Mul", xs, name, name, hint)
    raise GraphError(f"{kind} '{name}' has no ONNX mapping")  # a new catalogue kind without one: a bug, caught in tests


def to_onnx(graph: Graph, weights: Weights):
    """The ONNX ModelProto of ``graph`` with ``weights`` (``Network.state_dict()`` form), batch size left free.

    Raises GraphError for a graph with errors; needs onnx (:func:`export_onnx` says how to install it)."""
    import onnx
    info = graph.infer()
    errors = [p.message for p in info.problems if p.severity == "error"]
    if errors:
        raise GraphError(f"the network has {len(errors)} error(s) and cannot be exported: {errors[0]}")
    weights = {block: dict(arrays) for block, arrays in weights.items()}
    checked_arrays(graph, weights)
    source, head = graph.inputs()[0], graph.outputs()[0]
    e = _Emitter(onnx, weights)
    tensor: dict[int, str] = {}
    for node_id in graph.topological_order():
        node, ni = graph.nodes[node_id], info.nodes[node_id]
        if node.kind == "Input":
            tensor[node_id] = node.name
            continue
        xs = [tensor[src] for src in graph.inputs_of(node_id)]
        tensor[node_id] = _emit(e, node, xs, ni.input_shapes, ni.output_shape)
    float32 = onnx.TensorProto.FLOAT
    x = onnx.helper.make_tensor_value_info(source.name, float32, ["N", *info.nodes[source.id].output_shape])
    y = onnx.helper.make_tensor_value_info(tensor[head.id], float32, ["N", *info.nodes[head.id].output_shape])
    x.doc_string = _hint(source)
    body = onnx.helper.make_graph(e.nodes, "convdesigner", [x], [y], e.initializers)
    from .. import __version__
    model = onnx.helper.make_model(body, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="ConvDesigner", producer_version=__version__)
    model.ir_version = 8  # the IR of opset 17, so that older runtimes open the file too
    return model


# ----------------------------------------------------------------------------------------------- checked export

def _reference(graph: Graph, weights: Weights | None):
    """Our network with ``weights`` (freshly initialised ones for an untrained design)."""
    from ..engine import compile
    net = compile(graph)
    if weights is not None:
        net.load_state_dict(weights)
    return net


def compare_with_runtime(model_bytes: bytes, net, samples: int = 3, seed: int = 0) -> tuple[float, float] | None:
    """(largest absolute difference between ONNX Runtime's outputs and ``net.predict_proba`` on random images,
    largest absolute output of ours), or None when ONNX Runtime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).standard_normal((samples, *net.input_shape), dtype=np.float32)
    ours = net.predict_proba(x)
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float(np.abs(ours - theirs).max()), float(np.abs(ours).max())


def agrees(difference: float, scale: float) -> bool:
    """Float32 agreement: absolute near zero, relative to the size of the outputs otherwise."""
    return math.isfinite(difference) and difference <= 1e-4 * (1.0 + scale)


def export_onnx(path: str | os.PathLike, graph: Graph, weights: Weights | None, samples: int = 3) -> ExportCheck:
    """Write ``graph`` with ``weights`` (None: an untrained design, exported with fresh initial weights) to ``path``
    as ONNX, after checking it with ``onnx.checker`` and, where ONNX Runtime is installed, against our own outputs.
    Every failure is a ModelFileError naming ``path``; nothing is written unless the checks pass."""
    onnx = require_onnx(path, "ONNX export")
    start = time.perf_counter()
    try:
        net = _reference(graph, weights)
        model = to_onnx(graph, net.state_dict())
    except (GraphError, ValueError) as e:  # CompileError and misshapen weights are ValueErrors
        raise ModelFileError(path, f"cannot be exported: {e}") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - ValidationError and the shape inference's InferenceError
        raise ModelFileError(path, f"the exported model fails onnx.checker (a bug in ConvDesigner; please report "
                                   f"it): {e}") from None
    data = model.SerializeToString()
    compared = compare_with_runtime(data, net, samples)
    difference = None if compared is None else compared[0]
    if compared is not None and not agrees(*compared):
        raise ModelFileError(path, f"ONNX Runtime's outputs differ from ConvDesigner's by {difference:.3g}, more "
                                   f"than float32 rounding allows (a bug in ConvDesigner; please report it)")
    if difference is None:
        note = "checked with onnx.checker; outputs not compared (ONNX Runtime is not installed)"
    else:
        note = f"checked with onnx.checker and ONNX Runtime: outputs agree within {difference:.2g} on {samples} images"
    if weights is None:
        note += "; the design has no trained weights, so its initial weights were exported"
    write_atomically(path, lambda tmp: _write_new(tmp, data))
    return ExportCheck(difference, samples, time.perf_counter() - start, note)


def _write_new(tmp: Path, data: bytes) -> None:
    with open(tmp, "xb") as fh:
        fh.write(data)
