"""The autosave of a model while it trains: written after every epoch beside the window's settings, removed when the
model is saved or the window closes cleanly, so one found at start means the last session ended in a crash."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from PySide6.QtCore import QSettings

from ...io.h5model import ModelFile, save_model, write_atomically


def autosave_path(settings: QSettings) -> Path:
    return Path(settings.fileName()).resolve().parent / "recovery" / "autosave.h5"


def _note(path: Path) -> Path:
    return path.with_suffix(".json")


def write(path: Path, model: ModelFile, title: str, original: Path | None) -> None:
    """Save ``model`` to the autosave file (on the engine thread), with a note naming the design."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model.graph, model.weights, model.optimizer, model.trainer, model.history, model.dataset)
    text = json.dumps({"title": title, "path": str(original) if original else None})

    def note(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")
    write_atomically(_note(path), note)


def find(path: Path) -> dict | None:
    """The note of an autosave left by a session that did not end cleanly, or None."""
    try:
        note = json.loads(_note(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not path.is_file() or not isinstance(note, dict) or not isinstance(note.get("title"), str):
        return None
    return note


def discard(path: Path | None) -> None:
    if path is None:
        return
    for p in (path, _note(path)):
        with contextlib.suppress(OSError):
            p.unlink()


__all__ = ["autosave_path", "discard", "find", "write"]
