"""Looking inside a network: every block's output for a batch, gradients of a class score to any block and to the
input (through the engine's own backward), Grad-CAM, saliency, integrated gradients, the validation images that
excite a channel most, and per-block health figures. The numbers behind every "looking inside" view and the CLI.

Everything runs in evaluation mode and leaves the network as it found it: the ReLU fusion is lifted while
inspecting (each block's own output is wanted) and the buffers allocated for the inspection's batch sizes are
dropped afterwards, so a live inspection between training batches keeps no extra memory.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import Dataset
from ..graph.receptive import ReceptiveField, receptive_fields
from .metrics import targets
from .network import Network


class InspectError(ValueError):
    """A request the network cannot answer (unknown block, a map asked of a flat block, a class out of range)."""


@contextlib.contextmanager
def _inspecting(net: Network, keep: bool = False) -> Iterator[None]:
    """Unfused, evaluation-only use of ``net``; buffers made for new batch sizes are released on the way out."""
    before = [set(layer._buffers) for layer in net.layers]
    accumulators = set(net._accumulators)
    pooled = net._pool.buffers() if net._pool is not None else set()
    fusions, folds, kept, split = net._fusions, net._folds, net.keep_activations, net.split_batches
    net._fusions, net._folds, net.keep_activations, net.split_batches = {}, {}, keep, False  # reads net._outputs
    for conv in fusions.values():
        net.layers[conv].fused_relu = False
    try:
        yield
    finally:
        net._fusions, net._folds, net.keep_activations, net.activations = fusions, folds, kept, {}
        net.split_batches = split
        for layer, keys in zip(net.layers, before, strict=True):
            for key in set(layer._buffers) - keys:
                del layer._buffers[key]
        for key in set(net._accumulators) - accumulators:
            del net._accumulators[key]
        if net._pool is not None:
            net._pool.forget(pooled)
        net._outputs = [None] * len(net.layers)
        net._loss_grad = None


def _step(net: Network, block: str) -> int:
    for i, layer in enumerate(net.layers):
        if layer.name == block:
            return i
    raise InspectError(f"the network has no block '{block}'; blocks: {', '.join(layer.name for layer in net.layers)}")


def _batch(net: Network, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x[None] if x.ndim == 3 else x


def activations(net: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every block's output for the batch ``x`` (N, C, H, W), by block name, in evaluation mode."""
    with _inspecting(net, keep=True):
        net.forward(_batch(net, x), training=False)
        return dict(net.activations)


def _one_hot(net: Network, scores: np.ndarray, cls: int | None) -> tuple[np.ndarray, int]:
    classes = scores.shape[1]
    if cls is None:
        cls = int(np.argmax(scores[0]))
    if not 0 <= cls < classes:
        raise InspectError(f"class {cls} does not exist; the network has outputs 0..{classes - 1}")
    grad = np.zeros_like(scores)
    grad[:, cls] = 1.0
    return grad, cls


def _backward_to(net: Network, grad: np.ndarray, blocks: set[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """dS/dx and dS/d(block output) for each of ``blocks``: the gradient each block's backward receives."""
    captured: dict[str, np.ndarray] = {}
    hooked = [layer for layer in net.layers if layer.name in blocks]
    for layer in hooked:
        def hook(dy, need, _layer=layer, _backward=layer.backward):
            captured[_layer.name] = dy.copy()
            return _backward(dy, need)
        layer.backward = hook
    try:
        dx = net.backward(grad, input_grad=True)
    finally:
        for layer in hooked:
            del layer.backward
    for layer in net.layers:
        if layer.name in blocks and layer.name not in captured:
            captured[layer.name] = dx.copy() if layer.kind == "Input" else np.zeros(
                (len(grad),) + layer.output_shape, np.float32)
    return dx, captured


@dataclass
class Gradients:
    """The class ``cls``'s score (the head's input: logits for a classifier) and its gradients."""

    cls: int
    scores: np.ndarray  # (N, classes)
    input: np.ndarray  # dS/dx, shape of x
    blocks: dict[str, np.ndarray] = field(default_factory=dict)  # dS/d(output) by block name
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # those blocks' outputs


def class_gradients(net: Network, x: np.ndarray, cls: int | None = None, blocks: tuple[str, ...] = ()) -> Gradients:
    """Gradients of class ``cls``'s score (default: the first image's top class) for every image of ``x``."""
    x = _batch(net, x)
    steps = {b: _step(net, b) for b in blocks}
    with _inspecting(net):
        scores = net.forward(x, training=False)
        outputs = {b: net._outputs[i].copy() for b, i in steps.items()}
        grad, cls = _one_hot(net, scores, cls)
        dx, grads = _backward_to(net, grad, set(blocks))
    return Gradients(cls, scores, dx, grads, outputs)


@dataclass
class Attribution:
    """A heat map over the input picture, (H, W) in [0, 1], explaining class ``cls`` (score ``score``)."""

    heat: np.ndarray
    cls: int
    score: float
    raw: np.ndarray  # what the heat was made from: the block-sized CAM, or (C, H, W) input attributions


def _unit(a: np.ndarray) -> np.ndarray:
    peak = float(a.max()) if a.size else 0.0
    return (a / peak if peak > 0 else np.zeros_like(a)).astype(np.float32)


def upsample(cam: np.ndarray, rf: ReceptiveField, in_hw: tuple[int, int]) -> np.ndarray:
    """A block-sized map (h, w) spread over the input picture: each value sits at its receptive field's centre,
    linear in between (edges held), so a map with padding or odd strides lands where it belongs."""
    out = cam.astype(np.float32)
    for axis in (0, 1):
        n = cam.shape[axis]
        centres = rf.start[axis] + rf.jump[axis] * np.arange(n) + (rf.size[axis] - 1) / 2
        u = np.arange(in_hw[axis])
        out = np.apply_along_axis(lambda line, c=centres, u=u: np.interp(u, c, line), axis, out)
    return out


def grad_cam(net: Network, x: np.ndarray, block: str, cls: int | None = None) -> Attribution:
    """Grad-CAM (Selvaraju et al.): the block's maps weighted by the mean gradient of the class score over each map,
    summed, rectified, and spread over the picture along the receptive fields."""
    layer = net.layers[_step(net, block)]
    if len(layer.output_shape) != 3:
        raise InspectError(f"Grad-CAM needs a block with feature maps; '{block}' gives a flat "
                           f"{layer.output_shape[0]}-vector (choose a Conv2D or pooling block before Flatten)")
    g = class_gradients(net, _batch(net, x)[:1], cls, (block,))
    maps, grads = g.outputs[block][0], g.blocks[block][0]
    cam = np.maximum(np.tensordot(grads.mean(axis=(1, 2)), maps, axes=1), 0)
    rf = receptive_fields(net.graph)[net.graph.by_name(block).id]
    whole = rf is None or rf.whole
    heat = np.full(net.input_shape[1:], float(cam.mean())) if whole else upsample(cam, rf, net.input_shape[1:])
    return Attribution(_unit(heat), g.cls, float(g.scores[0, g.cls]), cam.astype(np.float32))


def saliency(net: Network, x: np.ndarray, cls: int | None = None) -> Attribution:
    """Vanilla gradient saliency: |dS/dx|, the largest over the colour channels."""
    g = class_gradients(net, _batch(net, x)[:1], cls)
    return Attribution(_unit(np.abs(g.input[0]).max(axis=0)), g.cls, float(g.scores[0, g.cls]), g.input[0])


def integrated_gradients(net: Network, x: np.ndarray, cls: int | None = None, baseline: np.ndarray | None = None,
                         steps: int = 32, batch_size: int = 8) -> Attribution:
    """Integrated gradients (Sundararajan et al.) from ``baseline`` (default: all zeros, the data's mean picture
    once normalised) along the straight path, midpoint rule; ``raw`` sums to about S(x) − S(baseline)."""
    x = _batch(net, x)[:1]
    base = np.zeros_like(x) if baseline is None else np.asarray(baseline, np.float32).reshape(x.shape)
    cls = class_gradients(net, x, cls).cls
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    total = np.zeros(x.shape[1:], np.float64)
    for start in range(0, steps, batch_size):
        a = alphas[start:start + batch_size].reshape(-1, 1, 1, 1)
        total += class_gradients(net, base + a * (x - base), cls).input.sum(axis=0)
    attribution = ((x[0] - base[0]) * total / steps).astype(np.float32)
    score = float(class_gradients(net, x, cls).scores[0, cls])
    return Attribution(_unit(np.abs(attribution).sum(axis=0)), cls, score, attribution)


@dataclass
class ChannelHit:
    """One dataset image that excites a channel: its index, label, the channel's peak value and where it peaks,
    with the input box (top, left, bottom, right, inclusive) that position sees."""

    index: int
    label: int
    value: float
    position: tuple[int, int]
    box: tuple[int, int, int, int]


def top_activating(net: Network, data: Dataset, block: str, channel: int, k: int = 9, batch_size: int = 32,
                   progress: Callable[[int, int], bool | None] | None = None) -> list[ChannelHit]:
    """The ``k`` images of ``data`` on which ``channel`` of ``block`` peaks highest, best first. ``progress(done,
    total)`` is called after each batch; returning False stops the search (the best so far are returned)."""
    step = _step(net, block)
    shape = net.layers[step].output_shape
    if not 0 <= channel < shape[0]:
        raise InspectError(f"'{block}' has channels 0..{shape[0] - 1}, not {channel}")
    rf = receptive_fields(net.graph)[net.graph.by_name(block).id]
    values, positions = np.empty(0, np.float32), np.empty(0, np.int64)
    with _inspecting(net):
        for start in range(0, len(data), batch_size):
            x = data.normalise(data.images[start:start + batch_size])
            net.forward(x, training=False)
            out = net._outputs[step][:, channel].reshape(len(x), -1)
            values = np.concatenate([values, out.max(axis=1)])
            positions = np.concatenate([positions, out.argmax(axis=1)])
            if progress is not None and progress(min(start + batch_size, len(data)), len(data)) is False:
                break
    order = np.argsort(-values, kind="stable")[:k]
    in_hw = net.input_shape[1:]
    hits = []
    for i in order:
        pos = divmod(int(positions[i]), shape[2]) if len(shape) == 3 else (0, 0)
        box = rf.box(*pos, in_hw) if rf is not None else (0, 0, in_hw[0] - 1, in_hw[1] - 1)
        hits.append(ChannelHit(int(i), int(data.labels[i]), float(values[i]), pos, box))
    return hits


@dataclass
class BlockHealth:
    """What looked wrong with one block on a validation batch; ``problems`` empty when nothing did."""

    name: str
    kind: str
    dead_share: float | None = None  # ReLU family: share of outputs zero on every image of the batch
    nonfinite: int = 0  # NaN or ±inf values in its output
    grad_ratio: float | None = None  # ‖dL/dW‖ / ‖W‖ over its learnable arrays
    problems: list[str] = field(default_factory=list)


DEAD_SHARE = 0.5  # above this share of always-zero outputs a ReLU is marked as dying
VANISHING, EXPLODING = 1e-7, 10.0  # gradient-to-weight norm ratios outside these are marked


def block_health(net: Network, x: np.ndarray, labels: np.ndarray) -> dict[str, BlockHealth]:
    """Per-block health on a labelled batch (a validation batch after each epoch): dead ReLU units, NaN/inf outputs,
    and the loss gradient's norm relative to the weights' (vanishing or exploding)."""
    x = _batch(net, x)
    report = {}
    with _inspecting(net):
        net.forward(x, training=False)
        for layer, out in zip(net.layers, net._outputs, strict=True):
            h = report[layer.name] = BlockHealth(layer.name, layer.kind)
            h.nonfinite = int(out.size - np.count_nonzero(np.isfinite(out)))
            if h.nonfinite:
                h.problems.append(f"{h.nonfinite:,} NaN/inf values in its output")
            if layer.kind == "ReLU" and len(out):
                h.dead_share = float(np.mean(np.all(out <= 0, axis=0)))
                if h.dead_share > DEAD_SHARE:
                    h.problems.append(f"{h.dead_share:.0%} of its outputs are zero on every image of a validation "
                                      f"batch (dead units)")
        net.loss(targets(net.loss_kind, np.asarray(labels), net.output_shape[0]))
        net.backward(input_grad=False)
        for layer in net.layers:
            if not layer.weights:
                continue
            h = report[layer.name]
            w = np.sqrt(sum(float(np.sum(np.square(p.value, dtype=np.float64))) for p in layer.weights.values()))
            g = np.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64))) for p in layer.weights.values()))
            h.grad_ratio = g / w if w > 0 else None
            if h.grad_ratio is None or not np.isfinite(h.grad_ratio):
                continue
            if h.grad_ratio < VANISHING:
                h.problems.append(f"vanishing gradient: ‖dL/dW‖ / ‖W‖ = {h.grad_ratio:.1e}")
            elif h.grad_ratio > EXPLODING:
                h.problems.append(f"exploding gradient: ‖dL/dW‖ / ‖W‖ = {h.grad_ratio:.1e}")
    return report


@dataclass
class ArrayStats:
    """One learnable array and its loss gradient as histograms, with mean and standard deviation."""

    name: str
    shape: tuple[int, ...]
    mean: float
    std: float
    counts: np.ndarray
    edges: np.ndarray
    grad_mean: float | None = None
    grad_std: float | None = None
    grad_counts: np.ndarray | None = None
    grad_edges: np.ndarray | None = None


@dataclass
class Filters:
    """A block's kernels ready to draw and the statistics of its arrays (empty for blocks without weights)."""

    block: str
    kernels: np.ndarray | None  # (F, C, kh, kw) scaled to [0, 1] per filter; None for non-Conv2D blocks
    rgb: bool  # the kernels are colour pictures (a first layer on RGB input)
    arrays: list[ArrayStats]


def _histogram(a: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    finite = a[np.isfinite(a)]
    return np.histogram(finite, bins=bins) if finite.size else (np.zeros(bins, np.int64), np.linspace(0, 1, bins + 1))


def filters(net: Network, block: str, x: np.ndarray | None = None, labels: np.ndarray | None = None,
            bins: int = 40) -> Filters:
    """The kernels of ``block`` and histograms of its arrays; with a labelled batch also of their loss gradients."""
    layer = net.layers[_step(net, block)]
    grads = {}
    if x is not None and labels is not None and layer.weights:
        with _inspecting(net):
            net.forward(_batch(net, x), training=False)
            net.loss(targets(net.loss_kind, np.asarray(labels), net.output_shape[0]))
            net.backward(input_grad=False)
            grads = {n: p.grad.copy() for n, p in layer.weights.items()}
    arrays = []
    for name, p in layer.weights.items():
        counts, edges = _histogram(p.value, bins)
        s = ArrayStats(name, p.value.shape, float(p.value.mean()), float(p.value.std()), counts, edges)
        if name in grads:
            g = grads[name]
            s.grad_mean, s.grad_std = float(g.mean()), float(g.std())
            s.grad_counts, s.grad_edges = _histogram(g, bins)
        arrays.append(s)
    kernels = None
    if layer.kind == "Conv2D":
        k = layer.weights["kernel"].value.astype(np.float32)
        lo = k.min(axis=(1, 2, 3), keepdims=True)
        span = k.max(axis=(1, 2, 3), keepdims=True) - lo
        kernels = np.where(span > 0, (k - lo) / np.where(span > 0, span, 1), 0.5).astype(np.float32)
    rgb = kernels is not None and kernels.shape[1] == 3 and layer.input_shapes[0][0] == 3 and \
        net.graph.inputs_of(net.graph.by_name(block).id) == [net.graph.inputs()[0].id]
    return Filters(block, kernels, rgb, arrays)


def picture(x: np.ndarray, mean, std) -> np.ndarray:
    """What the network sees, back as a uint8 picture (H, W) or (H, W, 3): the normalisation undone."""
    a = np.asarray(x, np.float32)
    a = a[0] if a.ndim == 4 else a
    a = a * np.asarray(std, np.float32).reshape(-1, 1, 1) + np.asarray(mean, np.float32).reshape(-1, 1, 1)
    a = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    return a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)


# inferno-like ramp: black, purple, red, orange, pale yellow
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] as uint8 RGB (H, W, 3) along an inferno-like colour ramp."""
    t = np.clip(heat, 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(int), len(_RAMP) - 2)
    f = (t - i)[..., None]
    return np.round(_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.uint8)


def overlay(pixels: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The heat map blended over a picture (grey (H, W) or RGB (H, W, 3) uint8) as uint8 RGB."""
    base = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
    mixed = (1 - opacity) * base.astype(np.float32) + opacity * heat_colours(heat).astype(np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def last_map_block(net: Network) -> str:
    """The last block with feature maps larger than 1×1: Grad-CAM's usual choice (most semantic, still spatial)."""
    for layer in reversed(net.layers):
        shape = layer.output_shape
        if layer.kind != "Input" and len(shape) == 3 and shape[1] * shape[2] > 1:
            return layer.name
    raise InspectError("the network has no block with feature maps after its input; Grad-CAM needs one")
