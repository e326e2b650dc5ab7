"""One description of the training settings (data split, batch, optimizer, schedule, regularisation, augmentation,
seed, device), with types, ranges and help. The CLI's `train` options and the window's training form are both made
from it, and a run's values are checked by it, so neither keeps a second list of optimizers or schedules.

A value of None means "not set": the optimizer's own default learning rate, no clipping, no early stopping.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..data.augment import OPERATIONS, Augment
from .optimizers import OPTIMIZERS, make_optimizer
from .schedules import SCHEDULES, parse_schedule

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Setting:
    """One training setting. ``optional``: None is allowed (not set). ``above``: strictly above ``minimum``;
    ``below``: strictly below ``maximum``. ``choices`` may be a function, so the lists stay where they live."""

    name: str
    type: type
    default: Any
    help: str
    group: str
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    below: bool = False
    optional: bool = False
    choices: Callable[[], tuple[str, ...]] | None = None
    editable: bool = False  # a choice that takes extra text (a schedule's settings)
    recorded: bool = True  # kept with the run in the model file (resume rebuilds the same run from it)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    def rule(self) -> str:
        """The allowed range in words, as every message about this setting says it."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"must be at least {low:g} and {'below' if self.below else 'at most'} {high:g}"
        if low is not None:
            if self.above:
                return f"must be above {low:g}"
            return "must be 0 or more" if low == 0 else f"must be at least {low:g}"
        return ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed ("must be at least 1"), or None when it is."""
        if value is None:
            return None if self.optional or self.default is None else "must be given"
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (self.type is int and not float(value).is_integer()):
                return f"must be a {'whole number' if self.type is int else 'number'}"
            if not math.isfinite(value):
                return "must be a finite number"
            low, high = self.minimum, self.maximum
            if low is not None and (value <= low if self.above else value < low):
                return self.rule()
            if high is not None and (value >= high if self.below else value > high):
                return self.rule()
        elif self.type is bool and not isinstance(value, bool):
            return "must be true or false"
        elif self.type is str:
            if not isinstance(value, str):
                return "must be text"
            if self.choices is not None and not self.editable and value not in self.choices():
                return f"must be one of {', '.join(self.choices())}"
        return None


def _optimizers() -> tuple[str, ...]:
    return tuple(OPTIMIZERS)


def _schedules() -> tuple[str, ...]:
    return tuple(SCHEDULES)


def _devices() -> tuple[str, ...]:
    return DEVICES


SETTINGS: tuple[Setting, ...] = (
    Setting("data", str, "mnist-sample", "mnist-sample, shapes, or a dataset file or folder", "Data"),
    Setting("val_split", float, None, "fraction held out for validation (default: the dataset's own validation "
            "part)", "Data", 0, 1, below=True, optional=True),
    Setting("limit", int, None, "use the first N images of each part only (quick checks)", "Data", 1,
            optional=True),
    Setting("epochs", int, 5, "epochs to train", "Run", 1, recorded=False),
    Setting("batch_size", int, 64, "images per mini-batch", "Run", 1),
    Setting("seed", int, 0, "seed for weights, shuffling, augmentation and dropout", "Run", 0),
    Setting("optimizer", str, "adam", "the update rule", "Optimizer", choices=_optimizers),
    Setting("lr", float, None, "learning rate (default: the optimizer's own, 0.001; 0.01 for sgd and adagrad)",
            "Optimizer", 0, above=True, optional=True),
    Setting("momentum", float, None, "momentum for sgd (default 0.9) or rmsprop (default 0)", "Optimizer", 0,
            optional=True),
    Setting("weight_decay", float, None, "L2 weight decay on kernels (decoupled for adamw, default 0.01 there; 0 "
            "otherwise)", "Optimizer", 0, optional=True),
    Setting("schedule", str, "constant", "learning-rate schedule KIND[:name=value,...]: constant, "
            "step:step_size=10,gamma=0.1, cosine:min_lr=0, plateau:patience=3,factor=0.1", "Schedule",
            choices=_schedules, editable=True),
    Setting("warmup", int, 0, "batches of linear learning-rate warmup", "Schedule", 0),
    Setting("augment", str, "", "augmentation, e.g. " + ",".join(f"{k}={v}" if v is not None else k
                                                                for k, (v, _) in OPERATIONS.items()),
            "Regularisation"),
    Setting("clip_norm", float, None, "clip the global gradient norm to this value", "Regularisation", 0,
            above=True, optional=True),
    Setting("early_stopping", int, None, "stop after this many epochs without a better validation loss",
            "Regularisation", 1, optional=True),
    Setting("restore_best", bool, True, "with early stopping, end on the weights of the best epoch",
            "Regularisation"),
    Setting("device", str, "cpu", "where the network runs: cpu, or cuda (an NVIDIA GPU)", "Run",
            choices=_devices, recorded=False),
)
BY_NAME = {s.name: s for s in SETTINGS}
GROUPS = tuple(dict.fromkeys(s.group for s in SETTINGS))
RECORDED = tuple(s.name for s in SETTINGS if s.recorded)


def defaults(recipe: dict | None = None) -> dict[str, Any]:
    """Every setting's default, with a template's recommended ``recipe`` (graph/templates.py) on top."""
    values = {s.name: s.default for s in SETTINGS}
    values.update({k: v for k, v in (recipe or {}).items() if k in BY_NAME})
    return values


def problems(values: dict) -> list[str]:
    """One "option rule, not value" message per setting out of range, in the CLI's words."""
    out = []
    for name, value in values.items():
        setting = BY_NAME.get(name)
        problem = setting.problem(value) if setting is not None else "is not a training setting"
        if problem:
            out.append(f"{setting.option if setting else name} {problem}, not {value}")
    return out


def learning_rate(values: dict) -> float:
    """The rate the run starts from: the one given, or the optimizer's own default."""
    return float(values["lr"]) if values.get("lr") is not None else OPTIMIZERS[values["optimizer"]].default_lr


def make_optimizer_for(values: dict, params):
    """The optimizer of a run's settings (sgd gets momentum 0.9 unless told otherwise)."""
    momentum = values.get("momentum")
    if momentum is None and values["optimizer"] == "sgd":
        momentum = 0.9
    hyper = {k: v for k, v in (("momentum", momentum), ("weight_decay", values.get("weight_decay"))) if v is not None}
    return make_optimizer(values["optimizer"], params, learning_rate(values), **hyper)


def make_schedule_for(values: dict, epochs: int):
    """The learning-rate schedule of a run's settings; ``epochs`` in all (a cosine runs over them)."""
    return parse_schedule(values.get("schedule") or "constant", learning_rate(values), epochs,
                          int(values.get("warmup") or 0))


def make_augment_for(values: dict) -> Augment | None:
    spec = values.get("augment") or ""
    return Augment(spec) if spec else None
