"""PyTorch export: a model as a small Python package that trains on one or many GPUs with DistributedDataParallel.

``model.py`` is written from the graph (an ``nn.Module`` with one attribute per block, named like the block, equal to
our network); ``weights.py`` and ``train.py`` are copied from ``pytorch_templates/`` (they read and write our HDF5
model files with h5py, so a network trained there opens here again); ``start.h5`` is the model file training begins
from, ``settings.json`` its run settings and ``data.h5`` (when the model names its data) the images to train on.
The generated code needs torch and h5py only; ConvDesigner does not need torch to write it.
"""
from __future__ import annotations

import json
import keyword
import os
import re
import shutil
from importlib import resources
from pathlib import Path

import h5py
import numpy as np

from ..graph import Graph, GraphError
from ..graph.layers import conv_padding
from .h5model import ModelFile, ModelFileError, save_model

TEMPLATES = ("weights.py", "train.py")
# Names a module attribute or a local of forward() must not take (nn.Module's own members, the generated names).
_TAKEN = {"self", "image", "torch", "nn", "F", "training", "forward", "predict", "train", "eval", "to", "cpu", "cuda",
          "type", "float", "double", "half", "apply", "modules", "children", "parameters", "buffers", "state_dict",
          "load_state_dict", "zero_grad", "register_buffer", "register_module", "add_module", "requires_grad_",
          "named_modules", "named_parameters", "named_children", "named_buffers", "extra_repr", "dump_patches"}


def identifiers(graph: Graph) -> dict[int, str]:
    """A Python identifier per block: its name with '.' and '-' as '_', made unique and clear of reserved words."""
    out: dict[int, str] = {}
    used: set[str] = set()
    for node in graph.nodes.values():
        base = re.sub(r"\W", "_", node.name)
        if base[0].isdigit() or keyword.iskeyword(base) or base in _TAKEN:
            base = f"{base}_" if not base[0].isdigit() else f"b_{base}"
        name, i = base, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        out[node.id] = name
    return out


def _module(node, in_shape: tuple[int, ...]) -> str | None:
    """The ``nn`` constructor of a block, or None for blocks that are an expression in forward (merges, heads)."""
    p = node.params
    kind = node.kind
    if kind == "Conv2D":
        top, bottom, left, right = conv_padding(p, in_shape[1:])
        padding = f"({top}, {left})" if (top, left) == (bottom, right) else "0"
        return (f"nn.Conv2d({in_shape[0]}, {p['filters']}, ({p['kernel_h']}, {p['kernel_w']}), stride={p['stride']}, "
                f"padding={padding}, dilation={p['dilation']}, groups={p['groups']}, bias={p['bias']})")
    if kind in ("MaxPool2D", "AvgPool2D"):
        cls = "nn.MaxPool2d" if kind == "MaxPool2D" else "nn.AvgPool2d"
        return (f"{cls}({p['pool_size']}, stride={p['stride'] or p['pool_size']}, padding={p['padding']}, "
                f"ceil_mode={p['ceil_mode']})")
    if kind == "BatchNorm":
        cls = "nn.BatchNorm2d" if len(in_shape) == 3 else "nn.BatchNorm1d"
        return f"{cls}({in_shape[0]}, eps={p['eps']!r}, momentum={p['momentum']!r})"
    simple = {"GlobalAvgPool2D": "nn.AdaptiveAvgPool2d(1)", "Flatten": "nn.Flatten()", "ReLU": "nn.ReLU()",
              "SiLU": "nn.SiLU()", "Sigmoid": "nn.Sigmoid()", "Tanh": "nn.Tanh()", "Softmax": "nn.Softmax(dim=1)"}
    if kind in simple:
        return simple[kind]
    if kind == "Dense":
        return f"nn.Linear({in_shape[0]}, {p['units']}, bias={p['bias']})"
    if kind == "LeakyReLU":
        return f"nn.LeakyReLU({p['alpha']!r})"
    if kind == "ELU":
        return f"nn.ELU({p['alpha']!r})"
    if kind == "PReLU":
        return f"nn.PReLU({in_shape[0]})"
    if kind == "Dropout":
        return f"nn.Dropout({p['rate']!r})"
    return None


def _expression(node, attr: str, xs: list[str], in_shapes: list, out_shape: tuple[int, ...]) -> str:
    """The right-hand side computing a block in forward()."""
    kind = node.kind
    if kind == "Conv2D":
        top, bottom, left, right = conv_padding(node.params, in_shapes[0][1:])
        if (top, left) != (bottom, right):  # asymmetric 'same' padding: PyTorch's Conv2d pads both sides alike
            return f"self.{attr}(F.pad({xs[0]}, ({left}, {right}, {top}, {bottom})))"
    if kind == "Add":
        return " + ".join(xs)
    if kind == "Concat":
        return f"torch.cat([{', '.join(xs)}], dim=1)"
    if kind == "Multiply":
        xs = [f"{x}[:, :, None, None]" if len(s) == 1 and len(out_shape) == 3 else x
              for x, s in zip(xs, in_shapes, strict=True)]
        return " * ".join(xs)
    return f"self.{attr}({xs[0]})"


_PREDICT = {"SoftmaxCrossEntropy": "torch.softmax(scores, dim=1)", "SigmoidBCE": "torch.sigmoid(scores)",
            "MSE": "scores"}
_LOSS = {"SoftmaxCrossEntropy": "F.cross_entropy(scores, targets, label_smoothing={smoothing!r})",
         "SigmoidBCE": "F.binary_cross_entropy_with_logits(scores, targets)", "MSE": "F.mse_loss(scores, targets)"}


def model_source(graph: Graph, title: str) -> str:
    """The text of model.py for ``graph``."""
    info = graph.infer()
    errors = [p.message for p in info.problems if p.severity == "error"]
    if errors:
        raise GraphError(f"the network has {len(errors)} error(s) and cannot be exported: {errors[0]}")
    names = identifiers(graph)
    source, head = graph.inputs()[0], graph.outputs()[0]
    inits, lines, blocks = [], [], []
    var: dict[int, str] = {source.id: "image"}
    for node_id in graph.topological_order():
        node, ni = graph.nodes[node_id], info.nodes[node_id]
        if node.kind == "Input":
            continue
        xs = [var[s] for s in graph.inputs_of(node_id)]
        if node.spec.is_loss:
            var[node_id] = xs[0]
            continue
        attr = names[node_id]
        constructor = _module(node, ni.input_shapes[0])
        if constructor:
            inits.append(f"        self.{attr} = {constructor}")
            if node.spec.weight_shapes(node.params, ni.input_shapes):
                blocks.append(f"    {node.name!r}: ({attr!r}, {node.kind!r}),")
        comment = "" if constructor else f"  # {node.kind} '{node.name}'"
        lines.append(f"        {attr} = {_expression(node, attr, xs, ni.input_shapes, ni.output_shape)}{comment}")
        var[node_id] = attr
    c, h, w = info.nodes[source.id].output_shape
    smoothing = head.params.get("label_smoothing", 0.0)
    text = f'''"""{title} as a PyTorch module, written by ConvDesigner.

One attribute per block, named like the block. ``forward`` returns what the network feeds its output head
({head.kind} '{head.name}'); ``predict`` what ConvDesigner shows (evaluation mode); ``loss`` is the head's loss.
"""
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

INPUT_SHAPE = ({c}, {h}, {w})
HEAD = {head.kind!r}
# ConvDesigner block name: (attribute, kind), for every block with weights (see weights.py)
BLOCKS = {{
{chr(10).join(blocks)}
}}


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{chr(10).join(inits) if inits else "        pass"}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
{chr(10).join(lines)}
        return {var[head.id]}

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """Evaluation-mode outputs after the head, as ConvDesigner's predict shows them."""
        was_training = self.training
        self.eval()
        scores = self(image)
        self.train(was_training)
        return {_PREDICT[head.kind]}


def loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean loss of the {head.kind} head."""
    return {_LOSS[head.kind].format(smoothing=smoothing)}
'''
    return text


def _run_settings(model: ModelFile) -> dict:
    """The run settings train.py repeats: the model's recorded ones, else ConvDesigner's defaults, resolved to
    numbers (the learning rate, the optimizer's hyper-parameters, the schedule's own settings)."""
    from ..engine import settings as run
    from ..engine.optimizers import OPTIMIZERS
    from ..engine.schedules import parse_schedule
    recorded = ((model.trainer or {}).get("settings") or {})
    values = run.defaults()
    values.update({k: v for k, v in recorded.items() if k in run.BY_NAME and v is not None})
    lr = values.get("lr") or OPTIMIZERS[values["optimizer"]].default_lr
    hyper = dict(OPTIMIZERS[values["optimizer"]].defaults)
    if values["optimizer"] == "sgd" and values.get("momentum") is None:
        hyper["momentum"] = 0.9
    hyper.update({k: values[k] for k in ("momentum", "weight_decay") if values.get(k) is not None})
    if model.optimizer and model.optimizer.get("kind") == values["optimizer"]:
        hyper.update(model.optimizer.get("hyper", {}))  # the exact betas, eps... (its lr is the schedule's last)
    hyper.pop("lr", None)
    epochs = int(values.get("epochs") or 5)
    schedule = parse_schedule(values.get("schedule") or "constant", lr, epochs)
    return {"optimizer": values["optimizer"], "lr": lr, "hyper": hyper, "batch_size": int(values["batch_size"]),
            "epochs": epochs, "seed": int(values["seed"]), "warmup": int(values.get("warmup") or 0),
            "schedule": {"kind": schedule.kind, **schedule.settings()}, "clip_norm": values.get("clip_norm"),
            "data": recorded.get("data"), "val_split": values.get("val_split"), "limit": values.get("limit"),
            "augment": values.get("augment") or ""}


def _write_data(folder: Path, graph: Graph, settings: dict) -> str | None:
    """data.h5 (images, labels, images_val, labels_val as ConvDesigner's own HDF5 data loader reads them) from the
    data the model names; returns a note, or None when there are none to write."""
    from ..data import load_dataset
    spec = settings["data"]
    if not spec:
        return None
    node = graph.inputs()[0].params
    shape = (node["channels"], node["height"], node["width"])
    train, val = load_dataset(spec, input_shape=shape, seed=settings["seed"], val_split=settings["val_split"],
                              limit=settings["limit"])
    with h5py.File(folder / "data.h5", "w") as f:
        f.create_dataset("images", data=train.images, compression="gzip")
        f.create_dataset("labels", data=train.labels.astype(np.int64))
        if val is not None:
            f.create_dataset("images_val", data=val.images, compression="gzip")
            f.create_dataset("labels_val", data=val.labels.astype(np.int64))
        f.attrs["mean"], f.attrs["std"] = np.asarray(train.mean), np.asarray(train.std)
        f.attrs["class_names"] = json.dumps([str(n) for n in train.class_names])
    return f"data.h5: {len(train):,} training and {len(val) if val is not None else 0:,} validation images of {spec}"


def export_pytorch(folder: str | os.PathLike, model: ModelFile, title: str = "The network",
                   with_data: bool = True) -> list[str]:
    """Write the package into ``folder`` (created if needed; files of these names are replaced); returns notes on
    what was written. A model without weights starts from fresh initial weights. Failures are ModelFileErrors."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ModelFileError(folder, "is a file; give a folder to write the PyTorch package into")
    try:
        source = model_source(model.graph, title)
        weights = model.weights
        if weights is None:
            from ..engine import compile
            weights = compile(model.graph).state_dict()
        settings = _run_settings(model)
    except (GraphError, ValueError) as e:
        raise ModelFileError(folder, f"cannot be written: {e}") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.py").write_text(source, encoding="utf-8")
        for name in TEMPLATES:
            with resources.as_file(resources.files(__package__) / "pytorch_templates" / name) as template:
                shutil.copyfile(template, folder / name)
        (folder / "settings.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    except OSError as e:
        raise ModelFileError(folder, f"cannot be written ({e.strerror or e})") from None
    save_model(folder / "start.h5", model.graph, weights, dataset=model.dataset)
    notes = [f"model.py, weights.py, train.py, settings.json and start.h5 ({'trained' if model.weights else 'initial'}"
             f" weights) in {folder}"]
    if with_data:
        try:
            written = _write_data(folder, model.graph, settings)
        except (ValueError, OSError) as e:
            written = f"no data.h5 ({e}); give train.py --data FILE.h5"
        notes.append(written or "no data.h5 (the model does not say what it was trained on); give train.py --data")
    return notes
