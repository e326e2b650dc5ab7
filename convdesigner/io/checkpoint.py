"""Saving a training run as it goes: its model file every N epochs and at the end, and its best epoch beside it,
so an interrupted run loses at most N epochs and the best weights survive later, worse epochs."""
from __future__ import annotations

import math
from pathlib import Path

from .h5model import save_model


def best_path(path: str | Path) -> Path:
    """Where the best epoch of a run saved to ``path`` goes: ``model.h5`` → ``model.best.h5``; a best-epoch file
    continued in place (``model.best.h5``) is its own."""
    path = Path(path)
    stem = path.stem if path.suffix == ".h5" else path.name
    return path.with_name(f"{stem.removesuffix('.best')}.best.h5")


class Checkpoints:
    """A trainer callback: once attached, ``on_epoch_end`` saves the run to ``path`` every ``every`` epochs (0: only
    when asked) and to :func:`best_path` whenever the monitored loss (validation, else training) is the lowest yet
    (``best_path`` None: ``path`` is itself a best-epoch file, continued in place, and no other is kept).

    ``settings`` (plain values) are stored in the trainer state, so a resumed run can rebuild the same setup.
    """

    def __init__(self, path: str | Path, dataset: dict | None, every: int = 1, settings: dict | None = None) -> None:
        if every < 0:
            raise ValueError(f"checkpoints every {every} epochs: give 0 (only at the end) or more")
        self.path, self.every = Path(path), every
        self.best_path = best_path(path) if best_path(path) != self.path else None
        self.dataset, self.settings = dataset, settings or {}
        self.trainer = None
        self.best_loss = math.inf

    def attach(self, trainer) -> None:
        """The trainer to save (it lists this object among its callbacks); a resumed history sets the best so far."""
        self.trainer = trainer
        self.best_loss = min((_monitored(row) for row in trainer.history), default=math.inf)

    def save(self, path: str | Path | None = None) -> None:
        t = self.trainer
        state = {**t.state_dict(), "settings": self.settings}
        save_model(path or self.path, t.net.graph, t.net.state_dict(), t.optimizer.state_dict(), state,
                   dataset=self.dataset)

    def on_epoch_end(self, row: dict) -> None:
        loss = _monitored(row)
        if loss < self.best_loss:
            self.best_loss = loss
            if self.best_path is not None:
                self.save(self.best_path)
        if self.every and row["epoch"] % self.every == 0:
            self.save()


def _monitored(row: dict) -> float:
    loss = row.get("val_loss")
    if not isinstance(loss, (int, float)) or math.isnan(loss):
        loss = row.get("train_loss")
    return float(loss) if isinstance(loss, (int, float)) and not math.isnan(loss) else math.inf
