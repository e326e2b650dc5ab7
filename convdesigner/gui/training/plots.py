"""Live training curves (pyqtgraph): loss per batch (faint raw points and a smoothed line), loss and accuracy per
epoch for training and validation, and the learning rate per batch; earlier runs of the model drawn muted beneath.

Points arrive in numpy buffers from queued signals; a timer redraws at most 20 times a second with ``setData``, so
the plots keep up with any batch rate and never hold one item per point.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ...engine.metrics import smoothed

REDRAW_MS = 500  # 2 Hz: the curves still look live, and each paint takes CPU and GIL time from the training thread
TRAIN, VAL, LR = "#1f77b4", "#e6550d", "#6a51a3"
MUTED = ["#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#d9d9d9", "#fdd0a2"]


class Series:
    """A growing (x, y) curve in doubling numpy buffers."""

    def __init__(self) -> None:
        self.x = np.empty(256)
        self.y = np.empty(256)
        self.n = 0

    def add(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.resize(self.x, 2 * self.n)
            self.y = np.resize(self.y, 2 * self.n)
        self.x[self.n], self.y[self.n] = x, y
        self.n += 1

    def extend(self, xs, ys) -> None:
        for x, y in zip(xs, ys, strict=True):
            self.add(x, y)

    def clear(self) -> None:
        self.n = 0

    @property
    def xs(self) -> np.ndarray:
        return self.x[:self.n]

    @property
    def ys(self) -> np.ndarray:
        return self.y[:self.n]


class TrainingPlots(QWidget):
    """Loss, accuracy and learning-rate plots of the current run over muted earlier runs."""

    def __init__(self) -> None:
        super().__init__()
        pg.setConfigOptions(antialias=False, background="w", foreground="#333")  # antialiasing costs 3× the paint
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        controls = QHBoxLayout()
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setObjectName("smoothing")
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setMaximumWidth(160)
        self.smoothing.setToolTip("Weight of the exponential moving average over batch losses (0: raw)")
        self.smoothing_label = QLabel()
        self.log_y = QCheckBox("Log scale")
        self.log_y.setObjectName("log-scale")
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self.smoothing)
        controls.addWidget(self.smoothing_label)
        controls.addSpacing(16)
        controls.addWidget(self.log_y)
        controls.addSpacing(16)
        self.legend = QLabel(_legend())  # one static line instead of pyqtgraph legends, which repaint with the curves
        self.legend.setObjectName("plots-legend")
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # cut, not widening
        controls.addWidget(self.legend)
        controls.addStretch(1)
        layout.addLayout(controls)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid, 1)
        # three views, so a new batch repaints the loss and rate plots but not the accuracy plot
        self.views = [pg.PlotWidget(title=title) for title in ("Loss", "Accuracy", "Learning rate")]
        for column, (view, stretch) in enumerate(zip(self.views, (2, 1, 1), strict=True)):  # one row: the panel is
            grid.addWidget(view, 0, column)                                                  # wide, not tall
            grid.setColumnStretch(column, stretch)
        self.loss, self.accuracy, self.lr = (view.getPlotItem() for view in self.views)
        for plot in (self.loss, self.accuracy, self.lr):  # no grid: its alpha-blended lines took 37 of the 47 ms a
            plot.setLabel("bottom", "epoch")              # redraw of the three plots cost
            plot.hideButtons()
            plot.enableAutoRange(x=False)  # the x range is the run's epochs, set once: a growing range repainted
        self.accuracy.setYRange(0, 1)      # every axis and each plot twice per redraw
        self.extent = 0.0
        self.set_extent(1)

        self.batch_loss, self.epoch_train, self.epoch_val = Series(), Series(), Series()
        self.train_acc, self.val_acc, self.rates = Series(), Series(), Series()
        self._smooth = Series()
        self._smooth_state = (0.0, 0)
        self.raw_item = self.loss.plot(pen=pg.mkPen(31, 119, 180, 55))  # faint, as TensorBoard
        self.smooth_item = self.loss.plot(pen=pg.mkPen(TRAIN, width=1))  # wide lines paint slowly
        self.train_item = self.loss.plot(pen=pg.mkPen(TRAIN, width=1, style=Qt.PenStyle.DashLine), symbol="o",
                                         symbolSize=6, symbolBrush=TRAIN)
        self.val_item = self.loss.plot(pen=pg.mkPen(VAL, width=2), symbol="s", symbolSize=6, symbolBrush=VAL)
        self.train_acc_item = self.accuracy.plot(pen=pg.mkPen(TRAIN, width=2), symbol="o", symbolSize=6,
                                                 symbolBrush=TRAIN)
        self.val_acc_item = self.accuracy.plot(pen=pg.mkPen(VAL, width=2), symbol="s", symbolSize=6,
                                               symbolBrush=VAL)
        self.lr_item = self.lr.plot(pen=pg.mkPen(LR, width=1))
        for item in (self.raw_item, self.smooth_item, self.lr_item):
            item.setDownsampling(auto=True, method="peak")  # at most a few points per pixel column are drawn
            item.setClipToView(True)
        self.earlier: list[tuple[pg.PlotItem, pg.PlotDataItem]] = []
        self._dirty: set[tuple[str, str]] = set()  # (kind of curve changed, plot to redraw), see _mark
        self.redraws = 0
        self._turn = 0
        self.timer = QTimer(self)  # each plot's turn comes at REDRAW_MS; the turns alternate, so one event-loop
        self.timer.setInterval(REDRAW_MS // 2)  # pass never paints all the plots at once (48 ms while training)
        self.timer.timeout.connect(self._redraw_turn)
        self.timer.start()
        self.smoothing.valueChanged.connect(self._resmooth)
        self.log_y.toggled.connect(self._set_log)
        self._resmooth()

    # ------------------------------------------------------------------------------------------- data in
    def set_extent(self, epochs: float, reset: bool = False) -> None:
        """The x axes span 0..``epochs`` (the run's planned epochs; wider when a curve reaches past it); only
        ``reset`` narrows them."""
        if epochs > self.extent or (reset and epochs != self.extent):
            self.extent = float(epochs)
            for plot in (self.loss, self.accuracy, self.lr):
                plot.setXRange(0, self.extent, padding=0.02)

    def clear_current(self) -> None:
        for s in (self.batch_loss, self.epoch_train, self.epoch_val, self.train_acc, self.val_acc, self.rates,
                  self._smooth):
            s.clear()
        self._smooth_state = (0.0, 0)
        self._mark("batch", "epoch")

    def _mark(self, *kinds: str) -> None:
        """The curves of ``kinds`` ('batch', 'epoch') changed: each plot showing them redraws on its turn."""
        self._dirty |= {(kind, plot) for kind in kinds for plot in _PLOTS_OF[kind]}

    def add_batch(self, info: dict) -> None:
        x = info["epoch"] - 1 + info["batch"] / info["batches"]
        self.batch_loss.add(x, info["batch_loss"])
        self.rates.add(x, info["lr"])
        self._mark("batch")

    def add_epoch(self, row: dict) -> None:
        x = float(row.get("epoch", self.epoch_train.n + 1))
        for series, key in ((self.epoch_train, "train_loss"), (self.train_acc, "train_acc"),
                            (self.epoch_val, "val_loss"), (self.val_acc, "val_acc")):
            if _finite(row.get(key)):
                series.add(x, row[key])
        self._mark("epoch")

    def show_run(self, run) -> None:
        """Draw a whole recorded run as the current one (a reopened model, or the run being continued)."""
        self.clear_current()
        self.set_extent(max([1.0] + [float(r["epoch"]) for r in run.history] + list(run.steps[-1:])), reset=True)
        self.batch_loss.extend(run.steps, run.losses)
        self.rates.extend(run.steps, run.lrs)
        for row in run.history:
            self.add_epoch(row)
        self.redraw()

    def show_earlier(self, runs: list, visible: list[bool]) -> None:
        """Earlier runs in muted colours (smoothed batch loss, validation loss, validation accuracy)."""
        for plot, item in self.earlier:
            plot.removeItem(item)
        self.earlier = []
        weight = self.smoothing.value() / 100
        for i, (run, show) in enumerate(zip(runs, visible, strict=True)):
            if not show:
                continue
            colour = MUTED[i % len(MUTED)]
            self.set_extent(max([0.0] + [float(r["epoch"]) for r in run.history]))
            pen = pg.mkPen(colour, width=1.5)
            epochs = [float(r["epoch"]) for r in run.history]
            items = []
            if run.steps:
                ys, _ = smoothed(np.asarray(run.losses), weight)
                items.append((self.loss, self.loss.plot(run.steps, ys, pen=pen)))
            val = [(e, r.get("val_loss"), r.get("val_acc")) for e, r in zip(epochs, run.history, strict=True)
                   if _finite(r.get("val_loss"))]
            if val:
                dotted = pg.mkPen(colour, width=1, style=Qt.PenStyle.DotLine)
                items.append((self.loss, self.loss.plot([v[0] for v in val], [v[1] for v in val], pen=dotted)))
                items.append((self.accuracy, self.accuracy.plot([v[0] for v in val], [v[2] for v in val],
                                                                pen=pen)))
            for _, item in items:
                item.setZValue(-10)
            self.earlier.extend(items)

    # ------------------------------------------------------------------------------------------- drawing
    def _resmooth(self) -> None:
        self.smoothing_label.setText(f"{self.smoothing.value() / 100:.2f}")
        self._smooth.clear()
        self._smooth_state = (0.0, 0)
        self._mark("batch")

    def _set_log(self, on: bool) -> None:
        self.loss.setLogMode(y=on)
        self.lr.setLogMode(y=on)
        self._mark("batch", "epoch")

    def _redraw_turn(self) -> None:
        self._turn = 1 - self._turn
        self.redraw(("loss",) if self._turn else ("lr", "accuracy"))

    def redraw(self, plots=("loss", "lr", "accuracy")) -> None:
        """Hand the changed curves of ``plots`` to pyqtgraph; between epochs only the batch curves change, so the
        accuracy plot does not repaint."""
        wanted = {(kind, plot) for kind, plot in self._dirty if plot in plots}
        if not wanted:
            return
        self._dirty -= wanted
        self.redraws += 1
        log = self.log_y.isChecked()
        positive = (lambda s: (s.xs[s.ys > 0], s.ys[s.ys > 0])) if log else (lambda s: (s.xs, s.ys))
        if self.batch_loss.n:
            self.set_extent(math.ceil(self.batch_loss.xs[-1]))
        if ("batch", "loss") in wanted:
            done = self._smooth.n
            if self.batch_loss.n > done:
                ys, self._smooth_state = smoothed(self.batch_loss.ys[done:], self.smoothing.value() / 100,
                                                  self._smooth_state)
                self._smooth.extend(self.batch_loss.xs[done:], ys)
            self.raw_item.setData(*positive(self.batch_loss))
            self.smooth_item.setData(*positive(self._smooth))
        if ("batch", "lr") in wanted:
            self.lr_item.setData(*positive(self.rates))
            if self.rates.n and not log:
                self.lr.setYRange(0, float(self.rates.ys.max()) * 1.1 or 1.0, padding=0)
        if ("epoch", "loss") in wanted:
            self.train_item.setData(*positive(self.epoch_train))
            self.val_item.setData(*positive(self.epoch_val))
        if ("epoch", "accuracy") in wanted:
            self.train_acc_item.setData(self.train_acc.xs, self.train_acc.ys)
            self.val_acc_item.setData(self.val_acc.xs, self.val_acc.ys)


_PLOTS_OF = {"batch": ("loss", "lr"), "epoch": ("loss", "accuracy")}  # the plots each kind of change redraws


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _legend() -> str:
    def key(colour: str, text: str, dash: str = "━") -> str:
        return f"<span style='color:{colour}'>{dash}</span> {text}"
    return "&nbsp;&nbsp;".join([key("#9fc3e0", "batch loss"), key(TRAIN, "smoothed / train"), key(VAL, "validation"),
                                key(LR, "learning rate"), key(MUTED[0], "earlier runs (Runs tab)")])
