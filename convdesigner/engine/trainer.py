"""The training loop shared by the GUI and the CLI: epochs of shuffled mini-batches, validation, callbacks.

Every epoch draws its shuffle from ``[seed, epoch]`` and every batch its augmentation and dropout from
``[seed, epoch, batch]``, so the same seed gives the same losses, and a run saved (even mid-epoch) and resumed equals
the run straight through, bit for bit.
"""
from __future__ import annotations

import math
import threading
import time

import numpy as np

from ..data.dataset import Dataset, batches
from .metrics import correct, evaluate, targets
from .optimizers import clip_grad_norm, global_norm

# A finite loss this many times the first epoch's (or, in the first epoch, the first batch's) counts as diverged.
EXPLODED = 1e6


class TrainingDiverged(ArithmeticError):
    """The loss or the gradients became NaN or infinite, or the loss exploded; raised before the bad batch's update
    reaches the weights, with the BatchNorm statistics of the last good batch put back."""


class Trainer:
    """Trains ``network`` with ``optimizer`` on ``train_data``, validating on ``val_data`` after every epoch.

    ``callbacks`` are objects with any of ``on_batch_end(info)``, ``on_epoch_end(row)``, ``on_stop(reason)``.
    ``early_stopping``: stop after this many epochs without a better validation loss (training loss without
    validation data) and (with ``restore_best``) restore the weights of the best epoch. ``clip_norm``: clip the
    global gradient norm. A ``stop`` mid-epoch keeps the position (:attr:`position`), and the next ``fit`` carries on
    from the batch after it.
    """

    def __init__(self, network, optimizer, train_data: Dataset, val_data: Dataset | None = None, schedule=None,
                 callbacks=(), batch_size: int = 64, seed: int = 0, augment=None, clip_norm: float | None = None,
                 early_stopping: int | None = None, restore_best: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"the batch size must be at least 1, not {batch_size}")
        if len(train_data) == 0:
            raise ValueError(f"the training data '{train_data.name}' has no images")
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"the gradient clipping norm must be above 0, not {clip_norm}")
        if early_stopping is not None and early_stopping < 1:
            raise ValueError(f"early stopping needs a patience of at least 1 epoch, not {early_stopping}")
        for data in (train_data, val_data):
            if data is not None:
                _check_fit(network, data)
        self.net, self.optimizer, self.schedule = network, optimizer, schedule
        self.train_data, self.val_data = train_data, val_data
        self.batch_size, self.seed, self.augment = int(batch_size), int(seed), augment
        self.clip_norm, self.early_stopping, self.restore_best = clip_norm, early_stopping, restore_best
        self.params = network.parameters()
        self.epoch = 0
        self.history: list[dict] = []
        self.best = {"epoch": 0, "loss": math.inf, "wait": 0}
        self._best_weights: dict | None = None
        self._first_loss: float | None = None
        self.evaluation = None  # of the validation data after the last epoch (or of the last evaluate call)
        self.position: dict | None = None  # where a stop cut the current epoch: batches done and running sums
        self._states = list(getattr(network, "states", list)())
        self._saved_states = [a.copy() for a in self._states]
        self._stop = threading.Event()
        self._hooks: dict[str, list] = {name: [] for name in ("on_batch_end", "on_epoch_end", "on_stop")}
        self.callbacks = []
        for callback in callbacks:
            self.add_callback(callback)

    def add_callback(self, callback) -> None:
        """Report to ``callback`` too from now on (an object with any of the hook methods)."""
        self.callbacks.append(callback)
        for name, hooks in self._hooks.items():
            if hasattr(callback, name):
                hooks.append(getattr(callback, name))

    # ------------------------------------------------------------------------------------------- control
    def stop(self) -> None:
        """Ask a running ``fit`` to stop after the current batch (safe to call from any thread)."""
        self._stop.set()

    def fit(self, epochs: int) -> list[dict]:
        """Train ``epochs`` more epochs (an epoch cut short before counts as one); returns the whole history. An
        epoch cut short by ``stop`` is not recorded, but its position is, and the next ``fit`` finishes it;
        ``TrainingDiverged`` is raised with the epoch, batch and last finite loss."""
        reason = "stopped by an error"
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported as TrainingDiverged
                reason = self._run(epochs)
        except TrainingDiverged as e:
            reason = str(e)
            raise
        finally:
            self._stop.clear()
            for hook in self._hooks["on_stop"]:
                hook(reason)
        return self.history

    def _run(self, epochs: int) -> str:
        """The epochs of one ``fit``; returns why they ended."""
        for _ in range(epochs):
            row = self._train_epoch()
            if row is None:
                done = self.position["batch"]
                return (f"stopped during epoch {self.epoch + 1} after batch {done}; the last complete epoch is "
                        f"{self.epoch}")
            self.epoch += 1
            self.history.append(row)
            early = self._early_stop(row)  # first, so a checkpoint saved by a hook holds this epoch's bookkeeping
            for hook in self._hooks["on_epoch_end"]:
                hook(row)
            if early:
                return early
            if self._stop.is_set():
                return f"stopped after epoch {self.epoch}"
        return f"completed {epochs} epoch{'s' if epochs != 1 else ''}"

    # ------------------------------------------------------------------------------------------- one epoch
    def _train_epoch(self) -> dict | None:
        net, opt, schedule, augment = self.net, self.optimizer, self.schedule, self.augment
        data, size, seed = self.train_data, self.batch_size, self.seed
        index, first = self.epoch, 0
        seen, right, loss_sum, last_loss, before = 0, 0, 0.0, math.nan, 0.0
        if self.position is not None and self.position["epoch"] == index + 1:
            p = self.position
            first, seen, right, loss_sum, before = p["batch"], p["seen"], p["right"], p["loss_sum"], p["seconds"]
        self.position = None
        classes = int(np.prod(net.output_shape))
        total = -(-len(data) // size)
        rng = np.random.default_rng([seed, index])
        on_batch = self._hooks["on_batch_end"]
        start = time.perf_counter() - before
        for b, (x, labels) in enumerate(batches(data, size, shuffle=True, rng=rng, first=first), start=first):
            if self._stop.is_set():
                self.position = {"epoch": index + 1, "batch": b, "seen": seen, "right": right,
                                 "loss_sum": loss_sum, "seconds": time.perf_counter() - start}
                return None
            if schedule is not None:
                opt.lr = schedule.lr(index, b, total)
            if augment is not None:
                x = augment(x, np.random.default_rng([seed, index, b, 1]))
            net.reseed(seed, index, b)
            for saved, state in zip(self._saved_states, self._states, strict=True):
                np.copyto(saved, state)
            y = net.forward(x, training=True)
            loss = float(net.loss(targets(net.loss_kind, labels, classes)))
            if not math.isfinite(loss):
                raise self._diverged(b, f"the loss became {loss}", last_loss)
            reference = self._reference_loss(loss)
            if loss > EXPLODED * max(reference, 1.0):
                raise self._diverged(b, f"the loss exploded to {loss:.3g}, over {EXPLODED:g} times the first "
                                        f"epoch's {reference:.3g}", last_loss)
            net.backward(input_grad=False)
            norm = clip_grad_norm(self.params, self.clip_norm) if self.clip_norm else global_norm(self.params)
            if not math.isfinite(norm):
                raise self._diverged(b, "the gradients became infinite or NaN", loss)
            opt.step()
            n = len(labels)
            seen += n
            loss_sum += loss * n
            right += correct(net.loss_kind, y, labels)
            last_loss = loss
            if on_batch:
                elapsed = time.perf_counter() - start
                info = {"epoch": index + 1, "batch": b + 1, "batches": total, "loss": loss_sum / seen,
                        "batch_loss": loss, "acc": right / seen, "lr": opt.lr, "seen": seen, "seconds": elapsed,
                        "img_s": seen / elapsed if elapsed > 0 else 0.0}
                for hook in on_batch:
                    hook(info)
        train_seconds = time.perf_counter() - start
        row = {"epoch": index + 1, "train_loss": loss_sum / seen, "train_acc": right / seen,
               "val_loss": math.nan, "val_acc": math.nan, "lr": opt.lr}
        if self.val_data is not None and len(self.val_data):
            row["val_loss"], row["val_acc"] = self.evaluate(self.val_data)
        if schedule is not None:
            schedule.observe(row[self._monitored_key])
        row["seconds"] = time.perf_counter() - start
        row["img_s"] = seen / train_seconds if train_seconds > 0 else 0.0
        return row

    def _reference_loss(self, loss: float) -> float:
        """The first epoch's mean training loss (its first batch's while it runs), against which a loss explodes."""
        if self.history:
            return float(self.history[0]["train_loss"])
        if self._first_loss is None:
            self._first_loss = loss
        return self._first_loss

    def evaluate(self, data: Dataset) -> tuple[float, float]:
        """Mean loss and accuracy of the network in inference mode over ``data``; the whole Evaluation (confusion
        matrix, per-image answers) stays in :attr:`evaluation`."""
        self.evaluation = evaluate(self.net, data)
        return self.evaluation.loss, self.evaluation.accuracy

    def _diverged(self, batch: int, what: str, last_loss: float) -> TrainingDiverged:
        for saved, state in zip(self._saved_states, self._states, strict=True):
            np.copyto(state, saved)  # the running statistics of the last good batch, not the diverging one's
        last = f"the last finite loss was {last_loss:.4g}" if math.isfinite(last_loss) else "no finite loss yet"
        return TrainingDiverged(f"training diverged in epoch {self.epoch + 1}, batch {batch + 1}: {what} ({last}); "
                                f"lower the learning rate (now {self.optimizer.lr:g}), or clip the gradient norm")

    @property
    def _monitored_key(self) -> str:
        return "val_loss" if self.val_data is not None and len(self.val_data) else "train_loss"

    @property
    def _monitored(self) -> str:
        return "validation loss" if self._monitored_key == "val_loss" else "training loss"

    def _early_stop(self, row: dict) -> str | None:
        """Track the best epoch; once ``early_stopping`` epochs bring nothing better, restore its weights and say so."""
        if self.early_stopping is None:
            return None
        loss = row[self._monitored_key]
        if loss < self.best["loss"]:
            self.best = {"epoch": row["epoch"], "loss": loss, "wait": 0}
            self._best_weights = self.net.state_dict()
            return None
        self.best["wait"] += 1
        if self.best["wait"] < self.early_stopping:
            return None
        reason = (f"early stopping after epoch {self.epoch}: the {self._monitored} has not improved for "
                  f"{self.early_stopping} epochs")
        if not self.restore_best:
            return f"{reason}; kept the weights of the last epoch (the best was epoch {self.best['epoch']})"
        if self._best_weights is None:
            return f"{reason}; the best epoch ({self.best['epoch']}) came before the resume, so its weights are gone"
        self.net.load_state_dict(self._best_weights)
        return f"{reason}; restored the weights of epoch {self.best['epoch']}"

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Plain values for a model file: epochs done, history, schedule state, early-stopping bookkeeping."""
        return {"epoch": self.epoch, "seed": self.seed, "batch_size": self.batch_size,
                "history": [dict(r) for r in self.history], "best": dict(self.best),
                "schedule": self.schedule.state_dict() if self.schedule is not None else None,
                "position": dict(self.position) if self.position is not None else None}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved state. The best epoch's weights are not in the state: if early stopping triggers
        on a best epoch from before the resume, the weights at hand are kept."""
        self.epoch = int(state["epoch"])
        self.seed = int(state.get("seed", self.seed))
        self.history = [dict(r) for r in state.get("history", [])]
        self.best = dict(state.get("best") or {"epoch": 0, "loss": math.inf, "wait": 0})
        self._best_weights = None
        position = state.get("position")
        self.position = dict(position) if position and position.get("epoch") == self.epoch + 1 else None
        total = -(-len(self.train_data) // self.batch_size)
        if self.position is not None and not (0 < self.position["batch"] < total and self.position["seen"] > 0):
            raise ValueError(f"the saved run stopped after batch {self.position['batch']} of epoch "
                             f"{self.position['epoch']}, which does not fit {total} batches of these data")
        if self.schedule is not None and state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])


def _check_fit(network, data: Dataset) -> None:
    """The network must take the data's images and have one output per class."""
    if tuple(network.input_shape) != tuple(data.input_shape):
        shape = "×".join(map(str, network.input_shape))
        raise ValueError(f"the network takes {shape} images but '{data.name}' has "
                         f"{'×'.join(map(str, data.input_shape))}; change the Input block")
    outputs = int(np.prod(network.output_shape))
    if outputs != data.num_classes:
        raise ValueError(f"the network has {outputs} outputs but '{data.name}' has {data.num_classes} classes; "
                         f"set the last Dense block's units to {data.num_classes}")
