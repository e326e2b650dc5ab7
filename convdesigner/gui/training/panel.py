"""The training panel (the `training_dock`): data with a preview, options generated from the training settings,
Train / Pause / Stop / Continue with the reason when training cannot start, progress, and the live plots, confusion
matrix and runs. It draws what the TrainingSession reports; the window owns the graph and the undo stack."""
from __future__ import annotations

import math
import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...data.load import BUILTIN
from ...engine import settings as training_settings
from ...graph import TEMPLATES
from ...graph.graph import GraphError, adapt_graph, data_fit_problem
from ...graph.layers import fmt
from .. import commands, style
from .confusion import ConfusionView, Gallery, picture_pixmap
from .form import SettingsForm
from .plots import TrainingPlots
from .runs import RunsView

BUILTIN_LABELS = {"mnist-sample": "MNIST sample (built-in, 10,000 digits)",
                  "shapes": "Shapes (built-in, synthetic colour set)"}
OPEN_FILE, OPEN_FOLDER = "Open file…", "Open folder…"
DATA_FILTER = ("Datasets (*.npz *.h5 *.hdf5 *.gz *.idx *ubyte *.bin data_batch_* test_batch);;All files (*)")


class TrainingPanel(QWidget):
    """See the module docstring. ``window`` provides ``scene``, ``stack`` and ``session``."""

    gallery_opened = Signal(object)

    def __init__(self, window) -> None:
        super().__init__()
        self.window, self.session = window, window.session
        self.setObjectName("training-panel")
        self.evaluation = None
        self.keep_weights = False
        self.data_error = ""
        self._run_start = 0.0
        self._epochs_planned = 0
        self._epoch_offset = 0

        # left column: data, options, controls, progress
        left = QWidget()
        column = QVBoxLayout(left)
        column.addWidget(self._data_box())
        self.form = SettingsForm()
        column.addWidget(self.form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setMinimumWidth(300)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        controls = QWidget()
        bar = QVBoxLayout(controls)
        bar.setContentsMargins(4, 4, 4, 4)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("train")
        self.train_button.setToolTip("Start a new run from freshly initialised weights")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pause")
        self.pause_button.setCheckable(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stop")
        self.stop_button.setToolTip("Stop after the current batch; Continue carries on exactly from there")
        self.continue_button = QPushButton("Continue")
        self.continue_button.setObjectName("continue")
        self.continue_button.setToolTip("Train the current run on, from its weights and optimizer state, for the "
                                        "number of epochs set above")
        for b in (self.train_button, self.pause_button, self.stop_button, self.continue_button):
            buttons.addWidget(b)
        bar.addLayout(buttons)
        reason_row = QHBoxLayout()
        self.reason = QLabel()
        self.reason.setObjectName("train-reason")
        self.reason.setWordWrap(True)
        self.fit_button = QPushButton("Fit to data")
        self.fit_button.setObjectName("fit-to-data")
        self.fit_button.setToolTip("Set the Input block to the data's image shape and the last Dense block's units "
                                   "to its class count (one undoable edit)")
        reason_row.addWidget(self.reason, 1)
        reason_row.addWidget(self.fit_button)
        bar.addLayout(reason_row)
        self.progress = QProgressBar()
        self.progress.setObjectName("training-progress")
        self.progress.setTextVisible(True)
        self.status = QLabel("Not trained yet")
        self.status.setObjectName("training-status")
        self.status.setWordWrap(True)
        self.status.setFixedHeight(2 * self.status.fontMetrics().height() + 4)  # new text never re-lays the panel out
        bar.addWidget(self.progress)
        bar.addWidget(self.status)

        left_side = QSplitter(Qt.Orientation.Vertical)
        left_side.addWidget(scroll)
        left_side.addWidget(controls)
        left_side.setStretchFactor(0, 1)

        # right: curves, confusion matrix, runs
        self.plots = TrainingPlots()
        self.confusion = ConfusionView()
        self.runs_view = RunsView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.plots, "Curves")
        self.tabs.addTab(self.confusion, "Confusion matrix")
        self.tabs.addTab(self.runs_view, "Runs")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left_side)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 900])
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        self.train_button.clicked.connect(lambda: self.start(continue_run=False))
        self.continue_button.clicked.connect(lambda: self.start(continue_run=True))
        self.pause_button.toggled.connect(self._pause_toggled)
        self.stop_button.clicked.connect(self.session.stop)
        self.fit_button.clicked.connect(self.fit_to_data)
        self.form.changed.connect(self.update_state)
        self.data_form.changed.connect(self.reload_data)
        self.confusion.cell_clicked.connect(self.open_gallery)
        self.runs_view.visibility_changed.connect(self._show_earlier)
        s = self.session
        s.data_loaded.connect(self._data_loaded)
        s.data_failed.connect(self._data_failed)
        s.run_started.connect(self._run_started)
        s.batches.connect(self._batches)
        s.epoch_end.connect(self._epoch_end)
        s.evaluated.connect(self._evaluated)
        s.run_ended.connect(self._run_ended)
        s.compiling.connect(self._compiling)
        s.paused_changed.connect(lambda _: self.update_state())
        self._elapsed_timer = QTimer(self)
        self._elapsed_timer.setInterval(500)
        self._elapsed_timer.timeout.connect(self._tick)
        self._last_info: dict | None = None
        self.update_state()

    # ------------------------------------------------------------------------------------------- data
    def _data_box(self) -> QGroupBox:
        box = QGroupBox("Data")
        layout = QVBoxLayout(box)
        self.data_combo = QComboBox()
        self.data_combo.setObjectName("data-source")
        for spec in BUILTIN:
            self.data_combo.addItem(BUILTIN_LABELS.get(spec, spec), spec)
        self.data_combo.addItem(OPEN_FILE, OPEN_FILE)
        self.data_combo.addItem(OPEN_FOLDER, OPEN_FOLDER)
        self.data_combo.setToolTip("Built-in data, or IDX, CIFAR-10 batches, NPZ/HDF5 arrays, or a folder with one "
                                   "sub-folder of pictures per class")
        self.data_combo.activated.connect(self._data_chosen)
        layout.addWidget(self.data_combo)
        self.data_info = QLabel("Loading…")
        self.data_info.setObjectName("data-info")
        self.data_info.setWordWrap(True)
        self.data_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.data_info)
        self.preview = QWidget()
        self.preview.setObjectName("data-preview")
        self.preview_layout = QHBoxLayout(self.preview)
        self.preview_layout.setContentsMargins(0, 0, 0, 0)
        self.preview_layout.setSpacing(2)
        layout.addWidget(self.preview)
        self.data_form = SettingsForm(("Data",), skip={"data"}, boxed=False)
        layout.addWidget(self.data_form)
        return box

    def data_spec(self) -> str:
        return str(self.data_combo.currentData())

    def set_data_spec(self, spec: str) -> None:
        """Choose ``spec`` (a built-in name or a path) and load it."""
        index = self.data_combo.findData(spec)
        if index < 0:
            self.data_combo.insertItem(self.data_combo.count() - 2, spec, spec)
            index = self.data_combo.findData(spec)
        self.data_combo.setCurrentIndex(index)
        self.reload_data()

    def _data_chosen(self, index: int) -> None:
        choice = self.data_combo.itemData(index)
        if choice in (OPEN_FILE, OPEN_FOLDER):
            folder = str(self.window.settings.value("data_folder", ""))
            if choice == OPEN_FILE:
                path, _ = QFileDialog.getOpenFileName(self, "Open dataset", folder, DATA_FILTER)
            else:
                path = QFileDialog.getExistingDirectory(self, "Open image folder", folder)
            if not path:
                self.data_combo.setCurrentIndex(0 if self._loaded_spec is None
                                                else max(0, self.data_combo.findData(self._loaded_spec)))
                return
            self.window.settings.setValue("data_folder", path)
            self.set_data_spec(path)
            return
        self.reload_data()

    _loaded_spec: str | None = None
    _converted: tuple | None = None  # the network's input shape the pictures are converted to, if asked

    def reload_data(self) -> None:
        values = self.data_form.values()
        if self.session.load_data(self.data_spec(), values["val_split"], values["limit"],
                                  int(self.form.values()["seed"]), self._converted):
            self.data_error = ""
            self.data_info.setText(f"Loading {self.data_spec()}…")
        self.update_state()

    def _data_loaded(self, parts) -> None:
        train, val = parts
        self._loaded_spec = self.data_spec()
        notes = "".join(f"<br><i>{n}</i>" for n in train.meta.get("notes", []))
        self.data_info.setText(
            f"<b>{train.name}</b>: {fmt(train.input_shape)} images, {train.num_classes} classes<br>"
            f"{style.count(len(train))} training / {style.count(len(val)) if val is not None else 'no'} validation "
            f"images{notes}")
        while self.preview_layout.count():
            item = self.preview_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        for c, index in train.examples(1)[:12]:
            tile = QLabel()
            tile.setPixmap(picture_pixmap(train.picture(index[0]), 30))
            tile.setToolTip(train.class_names[c])
            self.preview_layout.addWidget(tile)
        self.preview_layout.addStretch(1)
        self.window.data_changed()
        self.update_state()

    def _data_failed(self, message: str) -> None:
        self.data_error = message
        self.data_info.setText(f"<span style='color:{style.ERROR.name()}'>Cannot load the data: {message}</span>")
        self.window.data_changed()
        self.update_state()

    # ------------------------------------------------------------------------------------------- settings
    def apply_defaults(self, template_key: str | None, saved: dict | None) -> None:
        """The form for a newly shown design: a reopened model's own settings, else its template's recipe."""
        recipe = TEMPLATES[template_key].recipe if template_key in TEMPLATES else {}
        values = training_settings.defaults(recipe)
        if saved:
            values.update({k: v for k, v in saved.items() if k in values})
        self.form.set_values(values)
        self.data_form.set_values(values)
        self._converted = None
        self.set_data_spec(values["data"] or "mnist-sample")

    def values(self) -> dict:
        return {**self.form.values(), **self.data_form.values(), "data": self.data_spec()}

    # ------------------------------------------------------------------------------------------- readiness
    def fit_problem(self) -> str | None:
        """Why the chosen data cannot train the canvas's network as it is, or None."""
        parts = self.session.data()
        if parts is None:
            return None
        train = parts[0]
        scene = self.window.scene
        return data_fit_problem(scene.graph, scene.info, train.input_shape, train.num_classes, train.name)

    def readiness(self) -> str | None:
        """Why Train cannot start now, or None."""
        info = self.window.scene.info
        errors = sum(p.severity == "error" for p in info.problems)
        if errors:
            return f"Fix the {errors} error{'s' * (errors != 1)} in the Problems list first"
        if self.data_error:
            return f"The data cannot be loaded: {self.data_error}"
        if self.session.data() is None:
            return "Loading the data…"
        problem = self.fit_problem()
        if problem:
            return problem[0].upper() + problem[1:]
        found = training_settings.problems(self.values())
        return found[0] if found else None

    def update_state(self) -> None:
        s = self.session
        running = s.running
        reason = None if running else self.readiness()
        self.train_button.setEnabled(not running and reason is None)
        self.continue_button.setEnabled(not running and reason is None and s.can_continue())
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(running and s.paused)
        self.pause_button.setText("Resume" if running and s.paused else "Pause")
        self.pause_button.blockSignals(False)
        self.form.setEnabled(not running)
        self.data_combo.setEnabled(not running)
        self.data_form.setEnabled(not running)
        self.reason.setText(f"<span style='color:{style.ERROR.name()}'>{reason}</span>" if reason else "")
        self.train_button.setToolTip(reason or "Start a new run from freshly initialised weights")
        self.fit_button.setVisible(not running and self.fit_problem() is not None)

    def fit_to_data(self) -> None:
        """Fit Input and the last Dense to the data as one undoable edit; when the network cannot take the data's
        size at all, convert the pictures to the network's input instead (as `convdesigner train` does)."""
        parts = self.session.data()
        if parts is None:
            return
        train = parts[0]
        scene = self.window.scene
        try:
            fitted, changes = adapt_graph(scene.graph, train.input_shape, train.num_classes)
        except GraphError as e:
            node = scene.graph.inputs()[0].params
            self._converted = (node["channels"], node["height"], node["width"])
            self.window.show_message(f"The network cannot take {fmt(train.input_shape)} pictures ({e}); the "
                                     f"pictures are converted to {fmt(self._converted)} instead")
            self.reload_data()
            return
        edits = {node_id: {k: v for k, v in fitted.nodes[node_id].params.items() if node.params.get(k) != v}
                 for node_id, node in scene.graph.nodes.items()}
        edits = {k: v for k, v in edits.items() if v}
        if edits:
            scene.apply(commands.SetParams(scene.graph, scene.sync, edits, "Fit the network to the data"))
            self.window.show_message("Fitted to the data: " + "; ".join(changes))

    # ------------------------------------------------------------------------------------------- running
    def start(self, continue_run: bool) -> None:
        reason = self.readiness()
        if reason or self.session.running:
            return
        values = self.values()
        self._epochs_planned = int(values["epochs"])
        self._epoch_offset = len(self.session.runs[-1].history) if continue_run and self.session.runs else 0
        self.session.train(self.window.scene.graph, values, keep_weights=self.keep_weights,
                           continue_run=continue_run)
        self.update_state()

    def _pause_toggled(self, paused: bool) -> None:
        self.session.pause(paused)

    def _run_started(self, index: int) -> None:
        run = self.session.runs[index]
        self.plots.show_run(run)
        self.plots.set_extent(self._epoch_offset + self._epochs_planned)
        self._show_earlier()
        self.runs_view.show_runs(self.session.runs)
        self._run_start = time.perf_counter()
        self._last_info = None
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self._elapsed_timer.start()
        self.window.set_training(True)
        self.update_state()

    def _compiling(self, on: bool) -> None:
        if on:
            self.progress.setRange(0, 0)  # a busy indicator
            self.status.setText("Compiling the kernels for this network (the first run takes a few seconds; later "
                                "ones start at once)…")
        elif self.progress.maximum() == 0:
            self.progress.setRange(0, 1000)

    def _batches(self, infos: list) -> None:
        for info in infos:
            self.plots.add_batch(info)
        self._last_info = infos[-1]

    def _tick(self) -> None:
        """Progress text and bar, twice a second (not once per batch)."""
        info = self._last_info
        if info is None or self.progress.maximum() == 0:
            return
        done = (info["epoch"] - 1 - self._epoch_offset) + info["batch"] / info["batches"]
        share = min(1.0, done / max(1, self._epochs_planned))
        self.progress.setValue(int(share * 1000))
        self.progress.setFormat(f"epoch {info['epoch']}, batch {info['batch']}/{info['batches']}")
        elapsed = time.perf_counter() - self._run_start
        eta = elapsed * (1 - share) / share if share > 0 else math.nan
        paused = " — paused" if self.session.paused else ""
        self.status.setText(f"Epoch {info['epoch']} of {self._epoch_offset + self._epochs_planned}, batch "
                            f"{info['batch']}/{info['batches']} · {style.count(int(info['img_s']))} img/s · loss "
                            f"{info['loss']:.4f} · accuracy {info['acc']:.2%} · elapsed {_clock(elapsed)} · ETA "
                            f"{_clock(eta)}{paused}")

    def _epoch_end(self, row: dict) -> None:
        self.plots.add_epoch(row)
        self.runs_view.show_runs(self.session.runs)

    def _evaluated(self, evaluation) -> None:
        self.evaluation = evaluation
        parts = self.session.data()
        names = parts[0].class_names if parts else [str(i) for i in range(len(evaluation.confusion))]
        self.confusion.show_matrix(evaluation.confusion, names)

    def _run_ended(self, reason: str, outcome: str) -> None:
        self._elapsed_timer.stop()
        self._tick()
        self.plots.redraw()
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1000)
        run = self.session.runs[-1] if self.session.runs else None
        summary = ""
        if run is not None and run.history and isinstance(run.history[-1].get("val_acc"), float) and \
                math.isfinite(run.history[-1]["val_acc"]):
            summary = f" Validation accuracy {run.history[-1]['val_acc']:.2%}."
        colour = style.ERROR.name() if outcome in ("diverged", "failed") else style.TEXT.name()
        self.status.setText(f"<span style='color:{colour}'>{reason[0].upper() + reason[1:] if reason else ''}."
                            f"</span>{summary}")
        self.runs_view.show_runs(self.session.runs)
        self.window.set_training(False)
        self.update_state()
        if outcome in ("diverged", "failed"):
            self.window.show_error("Training stopped" if outcome == "diverged" else "Training failed", reason)

    def _show_earlier(self) -> None:
        runs = self.session.runs
        visible = self.runs_view.visible()
        if len(visible) != len(runs):
            visible = [True] * len(runs)
        current = len(runs) - 1
        self.plots.show_earlier(runs[:current], visible[:current])

    def show_history(self) -> None:
        """A reopened model: its last run as the current curves, earlier ones muted, the runs list."""
        runs = self.session.runs
        self.runs_view.show_runs(runs)
        if runs:
            self.plots.show_run(runs[-1])
            self._show_earlier()
            last = runs[-1].history[-1] if runs[-1].history else {}
            acc = last.get("val_acc")
            text = f"Trained {len(runs[-1].history)} epoch{'s' * (len(runs[-1].history) != 1)}"
            if isinstance(acc, float) and math.isfinite(acc):
                text += f": validation accuracy {acc:.2%}, loss {last.get('val_loss', math.nan):.4f}"
            self.status.setText(text + f" ({len(runs)} run{'s' * (len(runs) != 1)})")
        else:
            self.plots.clear_current()
            self.plots.show_earlier([], [])
            self.status.setText("Not trained yet" if not self.session.trained else "Trained weights (no history)")
        self.update_state()

    def open_gallery(self, true_class: int, predicted_class: int) -> Gallery | None:
        parts = self.session.data()
        if self.evaluation is None or parts is None or parts[1] is None:
            return None
        if len(parts[1]) != len(self.evaluation.labels):
            return None
        gallery = Gallery(self, parts[1], self.evaluation, true_class, predicted_class)
        gallery.show()
        self.gallery_opened.emit(gallery)
        return gallery


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
