"""Text reports about model files for the command line: what a file holds (``info``) and a confusion matrix."""
from __future__ import annotations

import math
import os

import numpy as np

from ..graph.layers import fmt
from .design import is_graph_json
from .h5model import ModelFile, file_layout


def model_report(path: str | os.PathLike, model: ModelFile) -> str:
    """Graph summary, parameter count, data, optimizer, training history and the file's layout (a graph JSON file:
    the graph summary only)."""
    graph, info = model.graph, model.graph.infer()
    json_file = is_graph_json(path)
    title = f"Graph JSON file {path}" if json_file else \
        f"Model file {path} (written by ConvDesigner {model.app_version})"
    lines = [title, "", "Graph:",
             f"  {'block':<24} {'kind':<20} {'output':>14} {'parameters':>12}"]
    order = graph.topological_order()
    for node_id in order + sorted(set(graph.nodes) - set(order)):
        node, ni = graph.nodes[node_id], info.nodes.get(node_id)
        shape = fmt(ni.output_shape) if ni and ni.output_shape else "?"
        lines.append(f"  {node.name:<24} {node.kind:<20} {shape:>14} {ni.params if ni else 0:>12,}")
    lines.append(f"  {len(graph.nodes)} blocks, {info.total_params:,} parameters, "
                 f"{info.total_macs / 1e6:,.1f} M multiply-adds per image")
    lines += [f"  {p.severity}: {p.message}" for p in info.problems]
    if json_file:
        return "\n".join(lines)
    lines.append("")
    lines.append("Weights: " + ("none (a design, not trained yet)" if model.weights is None else
                                f"{sum(a.size for b in model.weights.values() for a in b.values()):,} values "
                                f"(parameters and BatchNorm statistics)"))
    if model.optimizer is not None:
        hyper = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in model.optimizer["hyper"].items())
        lines.append(f"Optimizer: {model.optimizer['kind']}({hyper}), {model.optimizer['step']:,} steps taken")
    if model.dataset is not None:
        d = model.dataset
        names = d.get("class_names") or []
        shown = ", ".join(map(str, names[:10])) + (f", ... ({len(names)} classes)" if len(names) > 10 else "")
        lines.append(f"Data: {d.get('name', '?')}, input {fmt(tuple(d.get('input_shape') or ())) or '?'}, "
                     f"classes {shown or '?'}; mean {d.get('mean')}, std {d.get('std')}")
    lines += ["", _history(model.history), "", "File layout:"]
    lines += [f"  {line}" for line in file_layout(path)]
    return "\n".join(lines)


def _history(history: list[dict]) -> str:
    if not history:
        return "History: no training yet"
    columns = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
    rows = ["History:", "  " + " ".join(f"{c:>10}" for c in columns)]
    for row in history:
        rows.append("  " + " ".join(f"{_cell(row.get(c)):>10}" for c in columns))
    return "\n".join(rows)


def _cell(value) -> str:
    if isinstance(value, bool) or value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def confusion_table(confusion: np.ndarray, class_names: list[str]) -> str:
    """Rows are the true classes, columns the predicted ones; long names are cut to keep the columns readable."""
    names = [str(n)[:12] for n in class_names]
    width = max([len(n) for n in names] + [len(f"{confusion.max(initial=0):,}"), 4])
    head = " " * (width + 2) + " ".join(f"{n:>{width}}" for n in names)
    rows = ["rows: true class, columns: predicted class", head]
    rows += [f"{names[i]:>{width}}  " + " ".join(f"{v:>{width},}" for v in confusion[i]) for i in range(len(names))]
    return "\n".join(rows)
