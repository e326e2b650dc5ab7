"""Receptive fields: which input pixels each output pixel of a block can see, worked out from the graph's kernels,
strides, padding and dilation (so the activation viewer outlines the true region, not a guess).

Per axis a field is ``size`` (pixels seen by one output pixel), ``jump`` (input pixels between neighbouring output
pixels) and ``start`` (input coordinate of the first output pixel's top/left edge; negative where it reaches into
padding). Output pixel ``i`` then sees input pixels ``start + i·jump`` to ``start + i·jump + size − 1``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph
from .layers import conv_padding

# kinds whose output pixel (r, c) depends only on the inputs' pixel (r, c)
_POINTWISE = {"ReLU", "LeakyReLU", "PReLU", "ELU", "SiLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "BatchNorm",
              "Add", "Concat", "Multiply"}


@dataclass(frozen=True)
class ReceptiveField:
    """(height, width) pairs; ``whole``: every output value depends on the whole picture (after a global pool,
    a Flatten or a Dense block)."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[int, int] = (0, 0)
    whole: bool = False

    def box(self, row: int, col: int, in_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), inclusive, of what output pixel (row, col) sees, clipped to the picture."""
        if self.whole:
            return 0, 0, in_hw[0] - 1, in_hw[1] - 1
        top, left = self.start[0] + row * self.jump[0], self.start[1] + col * self.jump[1]
        bottom, right = top + self.size[0] - 1, left + self.size[1] - 1
        return max(top, 0), max(left, 0), min(bottom, in_hw[0] - 1), min(right, in_hw[1] - 1)


WHOLE = ReceptiveField(whole=True)


def _window(rf: ReceptiveField, kernel: tuple[int, int], stride: int, pad: tuple[int, int]) -> ReceptiveField:
    """A sliding window of ``kernel`` (already dilated) pixels, ``stride`` apart, with ``pad`` before each axis."""
    return ReceptiveField(
        tuple(s + (k - 1) * j for s, k, j in zip(rf.size, kernel, rf.jump, strict=True)),
        tuple(j * stride for j in rf.jump),
        tuple(s - p * j for s, p, j in zip(rf.start, pad, rf.jump, strict=True)))


def _union(fields: list[ReceptiveField]) -> ReceptiveField:
    """A merge of branches sees what any branch sees: the smallest field holding every branch's field."""
    if any(f.whole for f in fields):
        return WHOLE
    start = tuple(min(f.start[a] for f in fields) for a in (0, 1))
    end = tuple(max(f.start[a] + f.size[a] for f in fields) for a in (0, 1))
    jump = tuple(max(f.jump[a] for f in fields) for a in (0, 1))
    return ReceptiveField((end[0] - start[0], end[1] - start[1]), jump, start)


def receptive_fields(graph: Graph) -> dict[int, ReceptiveField | None]:
    """Every block's receptive field on the Input picture; None where the block's shapes cannot be inferred."""
    info = graph.infer()
    fields: dict[int, ReceptiveField | None] = {}
    for node_id in graph.topological_order():
        node, ni = graph.nodes[node_id], info.nodes.get(node_id)
        sources = [fields.get(src) for src in graph.inputs_of(node_id)]
        if node.kind == "Input":
            fields[node_id] = ReceptiveField()
            continue
        if ni is None or ni.output_shape is None or not sources or any(s is None for s in sources):
            fields[node_id] = None
            continue
        rf = _union(sources)  # type: ignore[arg-type]
        p = node.params
        if rf.whole or len(ni.output_shape) != 3 or node.kind in ("GlobalAvgPool2D", "Flatten", "Dense"):
            fields[node_id] = WHOLE
        elif node.kind == "Conv2D":
            top, _, left, _ = conv_padding(p, ni.input_shapes[0][1:])
            d = p["dilation"]
            fields[node_id] = _window(rf, (d * (p["kernel_h"] - 1) + 1, d * (p["kernel_w"] - 1) + 1), p["stride"],
                                      (top, left))
        elif node.kind in ("MaxPool2D", "AvgPool2D"):
            k = p["pool_size"]
            fields[node_id] = _window(rf, (k, k), p["stride"] or k, (p["padding"], p["padding"]))
        elif node.kind in _POINTWISE or node.spec.is_loss:
            fields[node_id] = rf
        else:
            raise KeyError(f"no receptive-field rule for layer kind '{node.kind}'; add it to graph/receptive.py")
    return fields
