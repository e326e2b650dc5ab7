"""Learning-rate schedules: the trainer asks for the rate of every batch and reports each epoch's monitored loss.

Epoch-based rules (constant, step, cosine, reduce-on-plateau) follow ``torch.optim.lr_scheduler``; a linear warmup
counts batches and scales whichever schedule it wraps, so warmup composes with all of them.
"""
from __future__ import annotations

import inspect
import math


class Schedule:
    """The rate for a batch from the epoch index (0-based); ``observe`` gets the epoch's monitored loss."""

    kind = ""

    def __init__(self, base_lr: float) -> None:
        if not (base_lr > 0 and math.isfinite(base_lr)):
            raise ValueError(f"the learning rate must be a positive number, not {base_lr:g}")
        self.base_lr = float(base_lr)

    def lr(self, epoch: int, batch: int = 0, batches: int = 1) -> float:
        return self.base_lr

    def observe(self, loss: float) -> None:
        """End of an epoch: the monitored (validation) loss; only reduce-on-plateau uses it."""

    def settings(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {"kind": self.kind, "base_lr": self.base_lr, **self.settings()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"schedule state is for {state.get('kind')!r}, not {self.kind!r}")
        self.base_lr = float(state["base_lr"])

    def describe(self) -> str:
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.settings().items())
        return f"{self.kind}({args})" if args else self.kind


class Constant(Schedule):
    """The same rate throughout."""

    kind = "constant"


class Step(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    kind = "step"

    def __init__(self, base_lr: float, step_size: int = 10, gamma: float = 0.1) -> None:
        super().__init__(base_lr)
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"step_size must be a whole number of epochs ≥ 1, not {step_size}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], not {gamma:g}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr(self, epoch: int, batch: int = 0, batches: int = 1) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def settings(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma}


class Cosine(Schedule):
    """Half a cosine from the base rate at epoch 0 towards ``min_lr`` at epoch ``epochs`` (CosineAnnealingLR)."""

    kind = "cosine"

    def __init__(self, base_lr: float, epochs: int = 10, min_lr: float = 0.0) -> None:
        super().__init__(base_lr)
        if int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a whole number ≥ 1, not {epochs}")
        if not 0 <= min_lr <= base_lr:
            raise ValueError(f"min_lr must be between 0 and the learning rate {base_lr:g}, not {min_lr:g}")
        self.epochs, self.min_lr = int(epochs), float(min_lr)

    def lr(self, epoch: int, batch: int = 0, batches: int = 1) -> float:
        t = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t)) / 2

    def settings(self) -> dict:
        return {"epochs": self.epochs, "min_lr": self.min_lr}


class Plateau(Schedule):
    """Multiply the rate by ``factor`` when the monitored loss has not improved (by a relative ``threshold``) for
    more than ``patience`` epochs (ReduceLROnPlateau, mode 'min')."""

    kind = "plateau"

    def __init__(self, base_lr: float, patience: int = 3, factor: float = 0.1, min_lr: float = 0.0,
                 threshold: float = 1e-4) -> None:
        super().__init__(base_lr)
        if int(patience) != patience or patience < 0:
            raise ValueError(f"patience must be a whole number of epochs ≥ 0, not {patience}")
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), not {factor:g}")
        self.patience, self.factor, self.min_lr, self.threshold = int(patience), float(factor), float(min_lr), \
            float(threshold)
        self.scale, self.best, self.bad_epochs = 1.0, math.inf, 0

    def lr(self, epoch: int, batch: int = 0, batches: int = 1) -> float:
        return max(self.base_lr * self.scale, self.min_lr)

    def observe(self, loss: float) -> None:
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0

    def settings(self) -> dict:
        return {"patience": self.patience, "factor": self.factor, "min_lr": self.min_lr, "threshold": self.threshold}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.scale, self.best, self.bad_epochs = float(state["scale"]), float(state["best"]), int(state["bad_epochs"])


class Warmup(Schedule):
    """Ramp linearly over the first ``steps`` batches: batch k (0-based) gets (k + 1)/steps of ``after``'s rate."""

    kind = "warmup"

    def __init__(self, after: Schedule, steps: int) -> None:
        super().__init__(after.base_lr)
        if int(steps) != steps or steps < 1:
            raise ValueError(f"warmup must be a whole number of batches, 0 (none) or more, not {steps}")
        self.after, self.steps = after, int(steps)

    def lr(self, epoch: int, batch: int = 0, batches: int = 1) -> float:
        step = epoch * batches + batch
        return self.after.lr(epoch, batch, batches) * min(1.0, (step + 1) / self.steps)

    def observe(self, loss: float) -> None:
        self.after.observe(loss)

    def settings(self) -> dict:
        return {"steps": self.steps}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "after": self.after.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.after.load_state_dict(state["after"])

    def describe(self) -> str:
        return f"warmup({self.steps} steps) then {self.after.describe()}"


SCHEDULES: dict[str, type[Schedule]] = {c.kind: c for c in (Constant, Step, Cosine, Plateau)}


def make_schedule(kind: str, base_lr: float, warmup: int = 0, **settings) -> Schedule:
    """The schedule called ``kind`` (constant, step, cosine, plateau), preceded by ``warmup`` batches of linear
    warmup when above 0; a ValueError names an unknown kind or setting."""
    try:
        cls = SCHEDULES[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown schedule '{kind}'; choose one of {', '.join(SCHEDULES)}") from None
    allowed = [n for n in inspect.signature(cls).parameters if n != "base_lr"]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"the {cls.kind} schedule has no setting {', '.join(unknown)}; it takes "
                         f"{', '.join(allowed) or 'no settings'}")
    schedule = cls(base_lr, **settings)
    return Warmup(schedule, warmup) if warmup else schedule


_WHOLE = {"step_size", "epochs", "patience"}  # settings that count epochs


def parse_schedule(spec: str, base_lr: float, epochs: int, warmup: int = 0) -> Schedule:
    """A schedule from the command-line form ``KIND[:name=value,...]`` (``cosine:min_lr=1e-5``,
    ``step:step_size=5,gamma=0.5``); cosine runs over ``epochs`` unless told otherwise."""
    kind, _, rest = spec.partition(":")
    settings: dict = {"epochs": epochs} if kind.lower() == "cosine" else {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        name, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"schedule setting '{item}' should be name=value, e.g. {kind}:gamma=0.5")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"schedule setting {name} must be a number, not {value!r}") from None
        settings[name.strip()] = int(number) if number.is_integer() and name.strip() in _WHOLE else number
    return make_schedule(kind, base_lr, warmup, **settings)

