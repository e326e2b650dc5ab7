"""Graphs and weights shared by the interop tests (ONNX, PyTorch): every layer kind at the settings where
exporters go wrong, weights that look trained, and the comparisons."""
from __future__ import annotations

import numpy as np

from convdesigner.engine import compile
from convdesigner.graph import TEMPLATES, Graph

SMALL = [key for key, t in TEMPLATES.items() if t.small]
HEADS = ("SoftmaxCrossEntropy", "SigmoidBCE", "MSE")


def build(input_shape, blocks) -> Graph:
    """A graph from (name, kind, params[, input names]) rows; a row without inputs takes the previous block."""
    g = Graph()
    c, h, w = input_shape
    last = g.add("Input", "image", {"channels": c, "height": h, "width": w})
    for name, kind, params, *inputs in blocks:
        node = g.add(kind, name, params)
        for src in inputs[0] if inputs else [last.name]:
            g.connect(g.by_name(src).id, node.id)
        last = node
    return g


def every_kind(head: str) -> Graph:
    """Every catalogue kind, at the settings where exporters go wrong: asymmetric 'same' padding at stride 2,
    dilation, groups, ceil-mode pooling with padding, BatchNorm and PReLU on images and on vectors, a softmax over
    image channels, flat and C×1×1 gates, a three-way Add."""
    conv = {"kernel_h": 3, "kernel_w": 3}
    return build((3, 10, 9), [
        ("c1", "Conv2D", {**conv, "filters": 8, "stride": 2, "padding": "same"}),  # 10×9 → 5×5, pads 0/1 and 1/1
        ("bn1", "BatchNorm", {"eps": 1e-3, "momentum": 0.2}),
        ("pr1", "PReLU", {}),
        ("c2", "Conv2D", {"kernel_h": 3, "kernel_w": 2, "filters": 8, "dilation": 2, "padding": "explicit",
                          "pad_h": 2, "pad_w": 1, "groups": 4}, ["pr1"]),
        ("lr", "LeakyReLU", {"alpha": 0.2}, ["c2"]),
        ("elu", "ELU", {"alpha": 0.7}, ["pr1"]),
        ("silu", "SiLU", {}, ["pr1"]),
        ("sum3", "Add", {}, ["lr", "elu", "silu"]),
        ("tanh", "Tanh", {}),
        ("smx", "Softmax", {}),
        ("mp", "MaxPool2D", {"pool_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}),  # 5×5 → 3×3
        ("ap", "AvgPool2D", {"pool_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, ["sum3"]),  # → 3×3
        ("ap0", "AvgPool2D", {"pool_size": 2, "stride": 1}, ["mp"]),  # 3×3 → 2×2
        ("ap1", "MaxPool2D", {"pool_size": 2, "stride": 0, "padding": 1}, ["ap"]),  # 3×3 → 2×2
        ("cat", "Concat", {}, ["ap0", "ap1"]),
        ("gap", "GlobalAvgPool2D", {}),
        ("sig", "Sigmoid", {}),
        ("gate", "Multiply", {}, ["cat", "sig"]),  # 16×2×2 gated by 16×1×1
        ("flat", "Flatten", {}),
        ("gflat", "Flatten", {}, ["gap"]),
        ("fc1", "Dense", {"units": 16}, ["flat"]),
        ("bn2", "BatchNorm", {}),
        ("pr2", "PReLU", {}),
        ("relu", "ReLU", {}),
        ("drop", "Dropout", {"rate": 0.3}),
        ("mul", "Multiply", {}, ["drop", "gflat"]),
        ("fc2", "Dense", {"units": 5, "bias": False}),
        ("head", head, {"label_smoothing": 0.1} if head == "SoftmaxCrossEntropy" else {}),
    ])


def gated_image() -> Graph:
    """A flat C gate over a C×H×W image (the exporter's Unsqueeze)."""
    return build((4, 6, 6), [("conv", "Conv2D", {"filters": 4}), ("gap", "GlobalAvgPool2D", {}),
                             ("flat", "Flatten", {}), ("fc", "Dense", {"units": 4}), ("sig", "Sigmoid", {}),
                             ("gate", "Multiply", {}, ["conv", "sig"]), ("out", "MSE", {})])


def trained_like(graph: Graph, seed: int = 0) -> dict:
    """Random weights with BatchNorm statistics away from 0 and 1, so inference-mode normalisation is tested."""
    net = compile(graph, seed=seed)
    rng = np.random.default_rng(seed)
    weights = net.state_dict()
    for arrays in weights.values():
        for key, a in arrays.items():
            if key == "running_var":
                a[...] = rng.uniform(0.5, 2.0, a.shape)
            elif key in ("running_mean", "beta", "bias", "slope"):
                a[...] = rng.normal(0.0, 0.3, a.shape)
            elif key == "gamma":
                a[...] = rng.uniform(0.5, 1.5, a.shape)
    return weights


def ours(graph: Graph, weights: dict, x: np.ndarray) -> np.ndarray:
    net = compile(graph)
    net.load_state_dict(weights)
    return net.predict_proba(x)


def images(graph: Graph, n: int = 3, seed: int = 1) -> np.ndarray:
    shape = compile(graph).input_shape
    return np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)


def same_graph(a: Graph, b: Graph) -> bool:
    """Same blocks (names, kinds, parameters) and wires, whatever the ids and positions."""
    def view(g):
        names = {n.id: n.name for n in g.nodes.values()}
        return ({n.name: (n.kind, n.params) for n in g.nodes.values()},
                sorted((names[e.src], names[e.dst], e.slot) for e in g.edges))
    return view(a) == view(b)


def with_mse_head(graph: Graph) -> Graph:
    """The same network ending in an identity head, so raw scores are compared, not saturated probabilities."""
    g = graph.copy()
    head = g.outputs()[0]
    source = g.inputs_of(head.id)[0]
    g.remove(head.id)
    g.connect(source, g.add("MSE", "scores").id)
    return g
