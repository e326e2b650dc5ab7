"""Continuing a saved training run: the settings a run records in its model file, read back and checked, and the
saved state put into a new network, optimizer and trainer, so the continuation is exactly the run it resumes."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.settings import BY_NAME, RECORDED
from .h5model import ModelFile, ModelFileError, load_model

# What `train` records about a run so that a resumed one rebuilds the same setup, and the type of each value.
RUN_SETTINGS = {"template": str, **{name: BY_NAME[name].type for name in RECORDED}}


def run_settings(options: dict, epochs: int) -> dict:
    """The run's options (one per RUN_SETTINGS key) as plain values: a data path made absolute, a cosine schedule's
    length (``epochs`` in all) made explicit so that a resumed run keeps it."""
    settings = {key: options.get(key) for key in RUN_SETTINGS}
    if settings["data"] and Path(settings["data"]).exists():
        settings["data"] = str(Path(settings["data"]).resolve())
    schedule = settings["schedule"] or ""
    kind, _, rest = schedule.partition(":")
    if kind.lower() == "cosine" and "epochs=" not in rest:
        settings["schedule"] = f"{schedule}{',' if rest else ':'}epochs={epochs}"
    return settings


@dataclass
class SavedRun:
    """A model file to continue: ``settings`` holds the run settings it records (none for a design), which a resumed
    run must keep, and ``epochs_done`` the epochs it was trained for."""

    model: ModelFile
    settings: dict = field(default_factory=dict)
    epochs_done: int = 0


def saved_run(path: str | os.PathLike) -> SavedRun:
    """Read a model file to continue and check its recorded settings; a ModelFileError says what is wrong."""
    model = load_model(path)
    trainer = model.trainer or {}
    settings = dict(trainer.get("settings") or {})
    for key, value in settings.items():
        kind = RUN_SETTINGS.get(key)
        if kind is None or not (value is None or isinstance(value, kind) or (kind is float and type(value) is int)):
            raise ModelFileError(path, f"its training setting {key}={value!r} is not valid")
    if model.optimizer is not None:
        settings["optimizer"] = model.optimizer["kind"]
    for key in ("seed", "batch_size"):
        if isinstance(trainer.get(key), int) and not isinstance(trainer[key], bool):
            settings[key] = trainer[key]
    epoch = trainer.get("epoch", 0)
    return SavedRun(model, settings, epoch if isinstance(epoch, int) and epoch >= 0 else 0)


def restore(model: ModelFile, net, optimizer, trainer) -> None:
    """Weights, optimizer and trainer state from the model file, whichever it holds (a design holds none)."""
    if model.weights is not None:
        net.load_state_dict(model.weights)
    if model.optimizer is not None:
        optimizer.load_state_dict(model.optimizer)
    if model.trainer is not None:
        trainer.load_state_dict(model.trainer)
