"""Reading and writing the design behind the window: model files (.h5) and plain graph JSON, without dialogs.

A file opened with trained weights keeps them (and its optimizer, trainer state and history) when it is saved again,
as long as the design still fits them; :func:`weights_mismatch` says why not otherwise.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..graph import Graph, GraphError
from ..graph.layers import fmt
from ..io.h5model import ModelFile, ModelFileError, expected_arrays, load_model, save_model

JSON_SUFFIX = ".json"


def read_design(path: str | os.PathLike) -> ModelFile:
    """A model file, or a graph JSON file as a ModelFile without weights; every failure is a ModelFileError."""
    if Path(path).suffix.lower() != JSON_SUFFIX:
        return load_model(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return ModelFile(Graph.from_dict(json.load(fh)))
    except OSError as e:
        raise ModelFileError(path, f"cannot be opened ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(path, f"is not valid JSON ({e})") from None
    except GraphError as e:
        raise ModelFileError(path, f"its graph cannot be used: {e}") from None


def write_design(path: str | os.PathLike, graph: Graph, kept: ModelFile | None = None) -> None:
    """Save ``graph``; with ``kept`` (a file's trained state that still fits) its weights and training go along."""
    if Path(path).suffix.lower() == JSON_SUFFIX:
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        try:
            tmp.write_text(json.dumps(graph.to_dict(), indent=1), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as e:
            raise ModelFileError(path, f"could not be saved ({e.strerror or e})") from None
        return
    if kept is None:
        save_model(path, graph)
    else:
        save_model(path, graph, kept.weights, kept.optimizer, kept.trainer, kept.history, kept.dataset)


def weights_mismatch(graph: Graph, weights: dict) -> str | None:
    """Why trained ``weights`` no longer fit ``graph`` (first difference found), or None when they all fit."""
    try:
        expected = expected_arrays(graph)
    except GraphError as e:
        return str(e)
    for block, specs in expected.items():
        given = weights.get(block)
        if not given:
            return f"block '{block}' has no trained weights"
        for name, spec in specs.items():
            if name not in given:
                return f"block '{block}' lacks its '{name}' array"
            if tuple(given[name].shape) != spec.shape:
                return (f"'{block}' {name} was trained as {fmt(given[name].shape)} but the design now needs "
                        f"{fmt(spec.shape)}")
    gone = [b for b, arrays in weights.items() if arrays and b not in expected]
    if gone:
        return f"block '{gone[0]}' has trained weights but is no longer in the design"
    return None
