"""Small graphs and full model-file contents (weights, optimizer, trainer, history, data) shared by the io tests."""
from __future__ import annotations

import numpy as np
import pytest

from convdesigner.graph import Graph
from convdesigner.io import expected_arrays


def tiny_graph() -> Graph:
    """1×8×8 → conv 4 3×3 → BatchNorm → PReLU → flatten → dense 3 → softmax: weights, BN statistics and a slope."""
    g = Graph()
    last = g.add("Input", "input", {"channels": 1, "height": 8, "width": 8}, pos=(10, 20)).id
    for kind, name, params in (("Conv2D", "conv", {"filters": 4}), ("BatchNorm", "conv_bn", {}),
                               ("PReLU", "act", {}), ("Flatten", "flatten", {}), ("Dense", "fc", {"units": 3}),
                               ("SoftmaxCrossEntropy", "loss", {})):
        node = g.add(kind, name, params, pos=(10, 20 + 60 * last))
        g.connect(last, node.id)
        last = node.id
    return g


def random_weights(graph: Graph, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {block: {name: rng.standard_normal(spec.shape, dtype=np.float32) for name, spec in specs.items()}
            for block, specs in expected_arrays(graph).items()}


def adam_state(weights: dict, graph: Graph) -> dict:
    """An optimizer state in the engine's form, with slots for the learnable arrays only."""
    expected = expected_arrays(graph)
    return {"kind": "adam", "hyper": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
            "step": 17, "slots": {f"{block}/{name}": {"m": a * 0.5, "v": a * a}
                                  for block, arrays in weights.items() for name, a in arrays.items()
                                  if expected[block][name].learnable}}


@pytest.fixture
def contents() -> dict:
    """Everything save_model takes, for the tiny graph."""
    graph = tiny_graph()
    weights = random_weights(graph)
    history = [{"epoch": 1, "train_loss": 1.25, "train_acc": 0.5, "val_loss": float("nan"), "val_acc": float("nan"),
                "lr": 0.001, "seconds": 0.75, "img_s": 1000.0},
               {"epoch": 2, "train_loss": 0.75, "train_acc": 0.625, "val_loss": 0.8, "val_acc": 0.6,
                "lr": 0.0005, "seconds": 0.5, "img_s": 1200.0}]
    return {"graph": graph, "weights": weights, "optimizer": adam_state(weights, graph),
            "trainer": {"epoch": 2, "seed": 3, "batch_size": 8, "history": history,
                        "best": {"epoch": 2, "loss": 0.8, "wait": 0},
                        "schedule": {"kind": "plateau", "base_lr": 0.001, "best": float("inf"), "scale": 0.5}},
            "history": history,
            "dataset": {"name": "shapes", "input_shape": [1, 8, 8], "class_names": ["circle", "square", "triangle"],
                        "mean": [0.5], "std": [0.25]}}


@pytest.fixture
def saved(tmp_path, contents):
    """A complete model file of the tiny graph, and what was put in it."""
    from convdesigner.io import save_model
    path = tmp_path / "tiny.h5"
    save_model(path, **contents)
    return path, contents
