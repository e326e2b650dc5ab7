"""Design files as the window and `convdesigner info` open them: model files (.h5) and plain graph JSON files.

A file opened with trained weights keeps them (and its optimizer, trainer state and history) when it is saved again,
as long as the design still fits them; :func:`weights_mismatch` says why not otherwise.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..graph import Graph, GraphError
from ..graph.graph import loads_json
from .h5model import ModelFile, ModelFileError, checked_arrays, load_model, open_error, save_model, write_atomically

JSON_SUFFIX = ".json"


def is_graph_json(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a graph JSON file (by its suffix) rather than a model file."""
    return Path(path).suffix.lower() == JSON_SUFFIX


def read_design(path: str | os.PathLike) -> ModelFile:
    """A model file, or a graph JSON file as a ModelFile without weights; every failure is a ModelFileError."""
    if not is_graph_json(path):
        return load_model(path)
    try:
        with open(path, "rb") as fh:
            data = loads_json(fh.read())
        return ModelFile(Graph.from_dict(data))
    except OSError as e:
        raise open_error(path, e, "design file") from None
    except MemoryError:
        raise ModelFileError(path, "is too large to read into this computer's memory") from None
    except GraphError as e:
        raise ModelFileError(path, f"its graph cannot be used: {e}") from None
    except ValueError as e:  # not UTF-8, not JSON, nested too deeply, a number too long
        raise ModelFileError(path, f"is not valid JSON ({e})") from None


def write_design(path: str | os.PathLike, graph: Graph, kept: ModelFile | None = None) -> None:
    """Save ``graph`` atomically; with ``kept`` (a file's trained state that still fits) its weights and training go
    along into a model file (a graph JSON file holds the graph only)."""
    if is_graph_json(path):
        text = json.dumps(graph.to_dict(), indent=1)

        def write(tmp: Path) -> None:
            with open(tmp, "x", encoding="utf-8") as fh:
                fh.write(text)
        write_atomically(path, write)
    elif kept is None:
        save_model(path, graph)
    else:
        save_model(path, graph, kept.weights, kept.optimizer, kept.trainer, kept.history, kept.dataset)


def weights_mismatch(graph: Graph, weights: dict) -> str | None:
    """Why trained ``weights`` no longer fit ``graph`` (the model file's own check), or None when they all fit."""
    try:
        checked_arrays(graph, weights)
    except ValueError as e:  # GraphError included
        return str(e)
    return None
