"""The window's training state: the chosen data, the network being trained with its optimizer and trainer, and every
run of this model. All engine work runs as jobs on the window's engine thread; the session's signals reach the GUI
thread queued, so the window only draws what they carry.

A run is what one press of Train starts: its settings and its epochs. Continue extends the current run, exactly as
`convdesigner train --resume` would. The runs are stored in the model file's trainer state and drawn again when it
is reopened.
"""
from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime

import numpy as np
from PySide6.QtCore import QObject, Signal

from ...data import load_dataset
from ...engine import CompileError, compile
from ...engine import settings as training_settings
from ...engine.trainer import Trainer, TrainingDiverged
from ...graph import Graph
from ...io.h5model import ModelFile, ModelFileError
from ...io.model_fields import MAX_BATCH_POINTS
from ...io.resume import restore
from ..engine_thread import EngineThread
from . import recovery

BATCH_SIGNAL_S = 0.05  # the panel hears of new batches at most this often


class Run:
    """One press of Train: its settings, epoch rows, batch curve (step in epochs, loss, learning rate), and how it
    ended."""

    def __init__(self, settings: dict, started: str | None = None, history: list | None = None,
                 batches: dict | None = None, reason: str = "") -> None:
        self.settings = dict(settings)
        self.started = started or datetime.now(UTC).isoformat(timespec="seconds")
        self.history = list(history or [])
        self.steps, self.losses, self.lrs = ([list(map(float, (batches or {}).get(k, []))) for k in
                                              ("step", "loss", "lr")])
        self.reason = reason

    def to_dict(self) -> dict:
        keep = max(1, math.ceil(len(self.steps) / MAX_BATCH_POINTS))
        return {"settings": self.settings, "started": self.started, "history": self.history, "reason": self.reason,
                "batches": {"step": self.steps[::keep], "loss": self.losses[::keep], "lr": self.lrs[::keep]}}

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        return cls(d.get("settings") or {}, d.get("started"), d.get("history"), d.get("batches"), d.get("reason", ""))

    @property
    def best_val_acc(self) -> float:
        values = [r.get("val_acc", math.nan) for r in self.history]
        values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        return max(values) if values else math.nan


class TrainingSession(QObject):
    """Data, settings, network and runs of the design in the window (see the module docstring)."""

    data_loaded = Signal(object)  # (train, val) datasets
    data_failed = Signal(str)
    run_started = Signal(int)  # index of the run in ``runs``
    batch_end = Signal(dict)  # the trainer's batch info, every batch (for callers that need each one)
    batches = Signal(list)  # the batch infos since the last, at most 20 times a second (what the panel draws)
    epoch_end = Signal(dict)  # the epoch row
    evaluated = Signal(object)  # Evaluation of the validation data after an epoch
    run_ended = Signal(str, str)  # reason, outcome: completed, stopped, diverged or failed
    compiling = Signal(bool)  # kernels are being compiled (the first batch of a session)
    paused_changed = Signal(bool)
    weights_changed = Signal()  # new weights to look at: after an epoch, every N batches if asked, on open
    snapshot = Signal(object)  # a ModelFile of the trained state, to keep for saving and autosave

    def __init__(self, engine: EngineThread, parent=None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.runs: list[Run] = []
        self.trained = False  # the network's weights come from training (or a trained file), not from a seed
        self.running = False
        self.refresh_batches = 0
        self._data: tuple | None = None
        self._data_spec: tuple | None = None
        self._net = self._optimizer = self._trainer = None
        self._net_graph: dict | None = None  # the graph the network was compiled from, as a dict
        self._graph: Graph | None = None  # the canvas graph, for inspection jobs
        self._saved: ModelFile | None = None  # a trained file to continue from
        self._dataset_description: dict | None = None
        self._pause = threading.Event()
        self._stopping = threading.Event()
        self._compiled_once = False
        self.recovery_path = None  # where each epoch is autosaved (None: nowhere)
        self.recovery_label: tuple = ("Untitled", None)  # the design's title and file, for the restore question

    # ------------------------------------------------------------------------------------------- data
    def data(self) -> tuple | None:
        return self._data

    def load_data(self, spec: str, val_split: float | None, limit: int | None, seed: int,
                  input_shape: tuple | None = None) -> bool:
        """Load a dataset on the engine thread; ``data_loaded`` or ``data_failed`` tells the outcome. False: these
        data are loaded (or loading) already."""
        key = (spec, val_split, limit, seed, input_shape)
        if key == self._data_spec:
            return False
        self._data = None

        def done(parts):
            if self._data_spec == key:
                self._data = parts
                self.data_loaded.emit(parts)

        def failed(error):
            if self._data_spec == key:
                self._data = None
                self.data_failed.emit(_message(error))
        self._data_spec = key
        self.engine.replace("load-data", load_dataset, spec, input_shape=input_shape, val_split=val_split,
                            seed=seed, limit=limit, done=done, failed=failed)
        return True

    # ------------------------------------------------------------------------------------------- the design
    def set_graph(self, graph: Graph) -> None:
        """The canvas's graph changed (a copy is kept for inspection jobs)."""
        self._graph = graph.copy()

    def open_model(self, model: ModelFile | None) -> None:
        """A file was opened (None: a template or a new design): its runs and trained state, if any, become ours."""
        self._net = self._optimizer = self._trainer = None
        self._net_graph = None
        self._saved = model if model is not None and model.weights is not None else None
        self.trained = self._saved is not None
        trainer = (model.trainer or {}) if model is not None else {}
        runs = trainer.get("runs")
        if isinstance(runs, list) and all(isinstance(r, dict) for r in runs):
            self.runs = [Run.from_dict(r) for r in runs]
        elif model is not None and model.history:  # trained by `convdesigner train`: one run
            self.runs = [Run(trainer.get("settings") or {}, history=model.history, reason="trained from the CLI")]
        else:
            self.runs = []
        self._dataset_description = model.dataset if model is not None else None
        if self.trained:
            self.weights_changed.emit()

    def saved_settings(self) -> dict | None:
        """The settings of the last run of the opened model (to restore the form), if it records them."""
        return dict(self.runs[-1].settings) if self.runs and self.runs[-1].settings else None

    def can_continue(self) -> bool:
        return self.trained and (self._trainer is not None or self._saved is not None)

    # ------------------------------------------------------------------------------------------- training
    def train(self, graph: Graph, values: dict, keep_weights: bool = False, continue_run: bool = False) -> None:
        """Start a run (``continue_run``: train the current run on) on the engine thread."""
        if self.running:
            raise RuntimeError("a run is in progress")
        if self._data is None:
            raise RuntimeError("no data loaded")
        self.running = True
        self._pause.clear()
        self._stopping.clear()
        if continue_run and self.runs:
            index = len(self.runs) - 1
            self.runs[index].reason = ""
        else:
            self.runs.append(Run({k: v for k, v in values.items() if k in training_settings.RECORDED}))
            index = len(self.runs) - 1
        self.run_started.emit(index)
        self.engine.submit(self._fit, graph.copy(), dict(values), keep_weights, continue_run, self.runs[index],
                           tag="train", done=lambda _: None, failed=self._crashed)

    def pause(self, paused: bool) -> None:
        if paused:
            self._pause.set()
        else:
            self._pause.clear()
        self.paused_changed.emit(paused)

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def stop(self) -> None:
        """Stop after the current batch (the position is kept: Continue carries on from the next one)."""
        self._stopping.set()
        self._pause.clear()
        if self._trainer is not None:
            self._trainer.stop()

    def set_refresh_batches(self, n: int) -> None:
        """Also announce new weights every ``n`` batches while training (0: only after each epoch)."""
        self.refresh_batches = max(0, int(n))

    def _crashed(self, error: BaseException) -> None:
        self.running = False
        self.run_ended.emit(f"the training job failed: {_message(error)}", "failed")

    # ------------------------------------------------------------------------------------------- engine thread
    def _fit(self, graph: Graph, values: dict, keep_weights: bool, continue_run: bool, run: Run) -> None:
        outcome, reason = "completed", ""
        try:
            train, val = self._data
            if not self._compiled_once:
                self.compiling.emit(True)
            trainer = self._prepare(graph, values, keep_weights, continue_run, train, val)
            if not any(isinstance(c, _Reporter) and c.run is run for c in trainer.callbacks):
                trainer.add_callback(_Reporter(self, run, trainer))
            if self._stopping.is_set():
                trainer.stop()
            trainer.fit(int(values["epochs"]))
            reason = run.reason
            if reason.startswith("stopped"):
                outcome = "stopped"
        except TrainingDiverged as e:
            outcome, reason = "diverged", str(e)
            run.reason = reason
        except (ValueError, CompileError, MemoryError) as e:
            outcome, reason = "failed", _message(e)
            run.reason = reason
        finally:
            self.compiling.emit(False)
            self.running = False
            if self._trainer is not None and self.trained:
                self.snapshot.emit(self._model_file())
        self.run_ended.emit(reason, outcome)

    def _prepare(self, graph: Graph, values: dict, keep_weights: bool, continue_run: bool, train, val) -> Trainer:
        """The network, optimizer and trainer of this run, reusing or restoring what can be continued."""
        graph_dict = graph.to_dict()
        same_graph = self._net_graph is not None and _same_design(self._net_graph, graph_dict)
        if continue_run and self._trainer is not None and same_graph:
            self._trainer.train_data, self._trainer.val_data = train, val
            return self._trainer
        old = self._net.state_dict() if self._net is not None and self.trained else \
            (self._saved.weights if self._saved is not None else None)
        run_values = {**values, **(self.runs[-1].settings if continue_run and self.runs else {})}
        net = compile(graph, device=values.get("device", "cpu"), seed=int(run_values["seed"]))
        optimizer = training_settings.make_optimizer_for(run_values, net.parameters())
        schedule = training_settings.make_schedule_for(run_values, int(values["epochs"]) + (
            self._trainer.epoch if continue_run and self._trainer is not None else 0))
        trainer = Trainer(net, optimizer, train, val, schedule, [], int(run_values["batch_size"]),
                          int(run_values["seed"]), training_settings.make_augment_for(run_values),
                          run_values.get("clip_norm"), run_values.get("early_stopping"),
                          bool(run_values.get("restore_best", True)))
        if continue_run and self._saved is not None and self._trainer is None and \
                _same_design(self._saved.graph.to_dict(), graph_dict):
            restore(self._saved, net, optimizer, trainer)  # as `convdesigner train --resume`
        elif (keep_weights or continue_run) and old is not None:
            _load_fitting(net, old)
        self._net, self._optimizer, self._trainer = net, optimizer, trainer
        self._net_graph = graph_dict
        self._dataset_description = train.description()
        return trainer

    def _model_file(self) -> ModelFile:
        """The trained state as a model file holds it (on the engine thread, between batches)."""
        t = self._trainer
        state = {**t.state_dict(), "settings": self.runs[-1].settings if self.runs else {},
                 "runs": [r.to_dict() for r in self.runs]}
        return ModelFile(Graph.from_dict(self._net_graph), t.net.state_dict(), t.optimizer.state_dict(), state,
                         t.history, self._dataset_description)

    def inspection_network(self):
        """For jobs on the engine thread: the network with the current weights, compiled from the canvas graph
        (the live one while training); None when the graph has errors."""
        if self._graph is None:
            return None
        graph_dict = self._graph.to_dict()
        if self._net is not None and _same_design(self._net_graph, graph_dict):
            return self._net
        try:
            net = compile(self._graph)
        except (CompileError, ValueError):
            return None
        source = self._net.state_dict() if self._net is not None and self.trained else \
            (self._saved.weights if self._saved is not None else None)
        if source is not None:
            _load_fitting(net, source)
        if self._net is None:
            self._net, self._net_graph = net, graph_dict
        return net


class _Reporter:
    """The trainer callback of a window run: forwards progress as signals, serves the engine thread's other jobs
    between batches, waits while paused, records the run's curves."""

    def __init__(self, session: TrainingSession, run: Run, trainer: Trainer) -> None:
        self.session, self.run, self.trainer = session, run, trainer
        self.first = True
        self.pending: list[dict] = []
        self.sent = 0.0

    def on_batch_end(self, info: dict) -> None:
        s = self.session
        if self.first:
            self.first = False
            s._compiled_once = True
            s.compiling.emit(False)
        s.trained = True  # the weights have moved from their initial values
        run = self.run
        run.steps.append(info["epoch"] - 1 + info["batch"] / info["batches"])
        run.losses.append(float(info["batch_loss"]))
        run.lrs.append(float(info["lr"]))
        s.batch_end.emit(dict(info))
        self.pending.append(dict(info))
        now = time.perf_counter()
        if now - self.sent >= BATCH_SIGNAL_S or info["batch"] == info["batches"]:
            s.batches.emit(self.pending)  # fewer wake-ups of the GUI thread, which shares the GIL with training
            self.pending, self.sent = [], now
        if s.refresh_batches and info["batch"] % s.refresh_batches == 0:
            s.trained = True
            s.weights_changed.emit()
        s.engine.service()
        while s._pause.is_set() and not s._stopping.is_set():
            s.engine.service()
            time.sleep(0.02)
        if s._stopping.is_set():
            self.trainer.stop()

    def on_epoch_end(self, row: dict) -> None:
        s = self.session
        s.trained = True
        self.run.history.append(dict(row))
        s.epoch_end.emit(dict(row))
        if self.trainer.evaluation is not None:
            s.evaluated.emit(self.trainer.evaluation)
        model = s._model_file()
        s.snapshot.emit(model)
        if s.recovery_path is not None:
            try:
                recovery.write(s.recovery_path, model, *s.recovery_label)
            except ModelFileError:
                pass  # an autosave that cannot be written must not stop the run; saving by hand still says why
        s.weights_changed.emit()

    def on_stop(self, reason: str) -> None:
        self.run.reason = reason
        if self.pending:
            self.session.batches.emit(self.pending)
            self.pending = []


def _load_fitting(net, weights: dict) -> None:
    """Put in the saved arrays of every block whose names and shapes still fit; the others keep their new ones."""
    current = net.state_dict()
    for block, arrays in weights.items():
        target = current.get(block)
        if target is not None and set(target) == set(arrays) and all(
                np.shape(arrays[n]) == target[n].shape for n in target):
            current[block] = arrays
    net.load_state_dict(current)


def _same_design(a: dict | None, b: dict | None) -> bool:
    """Two graph dicts describe the same network (block positions on the canvas do not count)."""
    if a is None or b is None:
        return False
    strip = lambda d: {**d, "nodes": [{k: v for k, v in n.items() if k != "pos"} for n in d.get("nodes", [])]}  # noqa: E731
    return strip(a) == strip(b)


def _message(error: BaseException) -> str:
    if isinstance(error, MemoryError):
        return "not enough memory; use a smaller batch size, fewer images (a limit) or a smaller network"
    return str(error) or type(error).__name__
