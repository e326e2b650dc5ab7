"""The plain-value entries of a model file (/dataset, /trainer, /history, the optimizer's settings), each field's
type and range checked, so that what a file holds cannot surface later as a traceback deep in training or printing.

Every check raises ValueError with a message naming the field; the model file adds its own name.
"""
from __future__ import annotations

import math
from typing import Any

MAX_CLASSES = 100_000
MAX_TEXT = 4096
MAX_BATCH_POINTS = 4000  # a run's batch curve as the training panel stores it (thinned to this many points)
MAX_EPOCHS = 10_000_000
_MAX_INT = 2 ** 63 - 1


def _fail(field: str, problem: str) -> None:
    raise ValueError(f"{field} {problem}")


def _int(value: Any, field: str, low: int = 0, high: int = _MAX_INT) -> int:
    if type(value) is not int or not low <= value <= high:
        _fail(field, f"is {value!r}, expected a whole number from {low:,} to {high:,}")
    return value


def _number(value: Any, field: str, finite: bool = False, positive: bool = False) -> float:
    if type(value) not in (int, float) or (finite and not math.isfinite(value)) or (positive and not value > 0):
        kind = "a positive number" if positive else "a finite number" if finite else "a number"
        _fail(field, f"is {value!r}, expected {kind}")
    return float(value)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        _fail(field, f"is {value!r:.80}, expected a text of up to {MAX_TEXT:,} characters")
    return value


def _dict(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        _fail(field, f"is a {type(value).__name__}, expected an object")
    return value


def _list(value: Any, field: str, most: int) -> list:
    if not isinstance(value, list) or len(value) > most:
        _fail(field, f"is {type(value).__name__ if not isinstance(value, list) else f'{len(value):,} long'}, "
                     f"expected a list of up to {most:,}")
    return value


def _only(value: dict, field: str, known: set[str]) -> None:
    unknown = sorted(set(value) - known)
    if unknown:
        _fail(field, f"has unknown entries {unknown[:5]}")


def check_dataset(d: Any) -> None:
    """/dataset: name, input_shape C×H×W, class_names, and mean/std with one value per channel."""
    d = _dict(d, "dataset")
    _only(d, "dataset", {"name", "input_shape", "class_names", "mean", "std"})
    if "name" in d:
        _text(d["name"], "dataset name")
    channels = None
    if d.get("input_shape") is not None:
        shape = _list(d["input_shape"], "dataset input_shape", 3)
        if len(shape) != 3:
            _fail("dataset input_shape", f"is {shape!r}, expected [channels, height, width]")
        channels = _int(shape[0], "dataset input_shape channels", 1, 4)
        for name, value in zip(("height", "width"), shape[1:], strict=True):
            _int(value, f"dataset input_shape {name}", 1, 65536)
    if d.get("class_names") is not None:
        for i, name in enumerate(_list(d["class_names"], "dataset class_names", MAX_CLASSES)):
            _text(name, f"dataset class name {i}")
    for key in ("mean", "std"):
        if d.get(key) is None:
            continue
        values = _list(d[key], f"dataset {key}", 4)
        if channels is not None and len(values) not in (0, channels):
            _fail(f"dataset {key}", f"has {len(values)} values but the input has {channels} channel(s)")
        for v in values:
            _number(v, f"dataset {key} value", finite=True, positive=key == "std")


def check_history(rows: Any, field: str = "history") -> None:
    """One object per epoch: an ``epoch`` count, numbers (NaN where there was no validation), notes or None."""
    for i, row in enumerate(_list(rows, field, MAX_EPOCHS)):
        row = _dict(row, f"{field} row {i + 1}")
        for key, value in row.items():
            if key == "epoch":
                _int(value, f"{field} row {i + 1} epoch", 0, MAX_EPOCHS)
            elif value is not None and type(value) not in (int, float, bool, str):
                _fail(f"{field} row {i + 1} {key}", f"is {value!r:.80}, expected a number")
            elif isinstance(value, str):
                _text(value, f"{field} row {i + 1} {key}")


def _plain(value: Any, field: str, depth: int = 0) -> None:
    """Settings and schedule states: numbers, texts, booleans and None, in objects and lists a few levels deep."""
    if isinstance(value, (dict, list)) and depth < 4:
        for key, v in value.items() if isinstance(value, dict) else enumerate(value):
            _plain(v, f"{field} {key}", depth + 1)
    elif value is not None and type(value) not in (int, float, bool):
        _text(value, field)


def check_trainer(t: Any) -> None:
    """/trainer: ``epoch`` (required), seed, batch size, history, early-stopping and schedule state, run settings.
    Entries beyond these are left to the trainer that reads them, but must be plain values."""
    t = _dict(t, "trainer state")
    if "epoch" not in t:
        _fail("trainer state", "has no 'epoch' (the number of epochs done)")
    _int(t["epoch"], "trainer epoch", 0, MAX_EPOCHS)
    if "seed" in t:
        _int(t["seed"], "trainer seed")
    if "batch_size" in t:
        _int(t["batch_size"], "trainer batch_size", 1, 2 ** 31)
    if "history" in t:
        check_history(t["history"], "trainer history")
    if t.get("best") is not None:
        best = _dict(t["best"], "trainer best")
        _only(best, "trainer best", {"epoch", "loss", "wait"})
        _int(best.get("epoch", 0), "trainer best epoch", 0, MAX_EPOCHS)
        _number(best.get("loss", math.inf), "trainer best loss")
        _int(best.get("wait", 0), "trainer best wait", 0, MAX_EPOCHS)
    if t.get("schedule") is not None:
        schedule = _dict(t["schedule"], "trainer schedule")
        _text(schedule.get("kind"), "trainer schedule kind")
        _number(schedule.get("base_lr"), "trainer schedule base_lr", finite=True)
        _plain(schedule, "trainer schedule")
    if t.get("settings") is not None:
        _plain(_dict(t["settings"], "trainer settings"), "trainer settings", 2)
    if t.get("position") is not None:
        check_position(t["position"])
    if t.get("runs") is not None:
        for i, run in enumerate(_list(t["runs"], "trainer runs", MAX_EPOCHS)):
            check_run(run, f"trainer run {i + 1}")
    for key, value in t.items():
        if key not in ("history", "best", "schedule", "settings", "position", "runs"):
            _plain(value, f"trainer {key}", 1)


def check_optimizer(kind: str, step: int, hyper: Any) -> None:
    """The optimizer's name, its update count and its settings (finite numbers or switches)."""
    if not kind or len(kind) > 64 or not kind.replace("_", "").isalnum():
        _fail("optimizer kind", f"{kind!r:.80} is not an optimizer name")
    _int(step, "optimizer step")
    for key, value in _dict(hyper, "optimizer hyper-parameters").items():
        if type(value) is not bool:
            _number(value, f"optimizer {key}", finite=True)


def check_position(p: Any) -> None:
    """Where a stop cut an epoch: the epoch it was in, batches done and the running sums of that epoch."""
    p = _dict(p, "trainer position")
    _only(p, "trainer position", {"epoch", "batch", "seen", "right", "loss_sum", "seconds"})
    for key in ("epoch", "batch", "seen", "right"):
        _int(p.get(key), f"trainer position {key}", 0)
    for key in ("loss_sum", "seconds"):
        _number(p.get(key), f"trainer position {key}", finite=True)


def check_run(run: Any, field: str) -> None:
    """One run of the training panel: its settings, start time, epoch rows, end, and batch curve."""
    run = _dict(run, field)
    _only(run, field, {"settings", "started", "history", "reason", "batches"})
    _plain(_dict(run.get("settings") or {}, f"{field} settings"), f"{field} settings", 2)
    for key in ("started", "reason"):
        if run.get(key) is not None:
            _text(run[key], f"{field} {key}")
    check_history(run.get("history") or [], f"{field} history")
    curves = _dict(run.get("batches") or {}, f"{field} batches")
    _only(curves, f"{field} batches", {"step", "loss", "lr"})
    for key, values in curves.items():
        for value in _list(values, f"{field} batches {key}", MAX_BATCH_POINTS):
            _number(value, f"{field} batches {key}")
