"""The runs of this model: one row per press of Train with a box to show it in the plots, and every run's settings
and results side by side (differing settings in bold)."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...engine import settings as training_settings


class RunsView(QWidget):
    """``visibility_changed`` when the user shows or hides earlier runs in the plots."""

    visibility_changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Orientation.Vertical)
        self.list = QListWidget()
        self.list.setObjectName("runs-list")
        self.table = QTableWidget()
        self.table.setObjectName("runs-table")
        split.addWidget(self.list)
        split.addWidget(self.table)
        split.setSizes([120, 240])
        layout.addWidget(split)
        self.list.itemChanged.connect(lambda _: self.visibility_changed.emit())
        self._runs: list = []

    def show_runs(self, runs: list) -> None:
        hidden = {i for i in range(self.list.count()) if self.list.item(i).checkState() == Qt.CheckState.Unchecked}
        self._runs = runs
        self.list.blockSignals(True)
        self.list.clear()
        for i, run in enumerate(runs):
            acc = run.best_val_acc
            text = (f"Run {i + 1} — {run.started.replace('T', ' ')[:16]} — {len(run.history)} epoch"
                    f"{'s' * (len(run.history) != 1)}" + (f", best val acc {acc:.2%}" if math.isfinite(acc) else ""))
            item = QListWidgetItem(text)
            item.setToolTip(run.reason or "running")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if i in hidden else Qt.CheckState.Checked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._fill_table(runs)

    def visible(self) -> list[bool]:
        return [self.list.item(i).checkState() == Qt.CheckState.Checked for i in range(self.list.count())]

    def _fill_table(self, runs: list) -> None:
        names = [s.name for s in training_settings.SETTINGS if s.recorded]
        results = ("epochs", "best val acc", "last val loss", "ended")
        self.table.clear()
        self.table.setColumnCount(len(runs))
        self.table.setRowCount(len(names) + len(results))
        self.table.setHorizontalHeaderLabels([f"Run {i + 1}" for i in range(len(runs))])
        self.table.setVerticalHeaderLabels([training_settings.BY_NAME[n].label for n in names] + list(results))
        bold = QFont()
        bold.setBold(True)
        for row, name in enumerate(names):
            values = [run.settings.get(name) for run in runs]
            differs = len({repr(v) for v in values}) > 1
            for col, value in enumerate(values):
                item = QTableWidgetItem("—" if value in (None, "") else f"{value:g}" if isinstance(value, float)
                                        else str(value))
                if differs:
                    item.setFont(bold)
                self.table.setItem(row, col, item)
        for col, run in enumerate(runs):
            last = run.history[-1] if run.history else {}
            cells = (str(len(run.history)), f"{run.best_val_acc:.2%}" if math.isfinite(run.best_val_acc) else "—",
                     f"{last.get('val_loss', math.nan):.4f}" if run.history else "—", run.reason or "running")
            for k, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(len(names) + k, col, item)
        self.table.resizeColumnsToContents()
