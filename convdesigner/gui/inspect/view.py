"""The Activations dock: the loaded picture, the selected block's output, the top-5 predictions, and tabs for
filters, why-this-class overlays and the images that excite a channel. Every number comes from a job on the
window's engine thread; this widget only asks and draws."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from ...data import load_image
from ...data.dataset import DatasetError
from ...data.folder import EXTENSIONS
from ...data.images import digit_like
from ...engine.inspect import picture as seen_picture
from ...engine.metrics import top_k
from ...graph.receptive import receptive_fields
from . import jobs
from .maps import COLOUR_MAPS, MapGrid, PictureView
from .panels import ExcitesPanel, FiltersPanel, Progress, WhyPanel

IMAGE_FILTER = "Pictures (" + " ".join(f"*{e}" for e in sorted(EXTENSIONS)) + ")"


class ActivationsView(QWidget):
    """``window`` provides ``engine`` (EngineThread), ``session`` (inspection_network, trained, data,
    weights_changed, set_refresh_batches) and ``scene`` (the DesignScene)."""

    drawn = Signal()  # the maps of the current picture and block are on screen
    health_updated = Signal()

    def __init__(self, window, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("activations_view")
        self.window_ = window
        self.engine, self.session, self.scene = window.engine, window.session, window.scene
        self.x: np.ndarray | None = None  # the picture as the network takes it, (1, C, H, W)
        self.pixels: np.ndarray | None = None  # the same picture for the eye, uint8
        self.source = ""
        self.block: str | None = None
        self.result: jobs.Look | None = None
        self.health: dict = {}
        self.timings: dict[str, float] = {}
        self.last_error: str | None = None
        self._asked = 0.0
        self._progress: Progress | None = None
        self.setAcceptDrops(True)
        self._build()
        self.scene.selectionChanged.connect(self.selection_changed)
        self.session.weights_changed.connect(self.weights_changed)

    # ------------------------------------------------------------------------------------------- layout
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.open_button = QPushButton("Open image…")
        self.open_button.clicked.connect(self.open_image_dialog)
        self.part = QComboBox()
        self.part.addItems(["validation", "training"])
        self.index = QSpinBox()
        self.index.setRange(0, 0)
        self.pick_button = QPushButton("Pick from dataset")
        self.pick_button.clicked.connect(lambda: self.pick_from_dataset(self.part.currentIndex() == 1,
                                                                        self.index.value()))
        self.fit = QComboBox()
        self.fit.addItems(["auto", "resize", "centre-crop"])
        self.fit.setToolTip("How a picture file becomes the Input block's size: auto fits digits as MNIST's were "
                            "(crop to the ink, 20×20 box, centred by mass) and resizes other pictures")
        self.levels = QComboBox()
        self.levels.addItems(["per map", "shared"])
        self.levels.setObjectName("levels")
        self.colours = QComboBox()
        self.colours.addItems(COLOUR_MAPS)
        self.refresh = QSpinBox()
        self.refresh.setRange(0, 100000)
        self.refresh.setSpecialValueText("each epoch")
        self.refresh.setSuffix(" batches")
        self.refresh.setToolTip("While training: refresh the views every N batches (0: after each epoch)")
        self.export_button = QPushButton("Export PNG…")
        self.export_button.clicked.connect(self.export_dialog)
        self.copy_button = QPushButton("Copy CSV")
        self.copy_button.clicked.connect(self.copy_csv)
        for w in (self.open_button, QLabel("Fit"), self.fit, QLabel("or"), self.part, self.index, self.pick_button):
            bar.addWidget(w)
        bar.addStretch(1)
        layout.addLayout(bar)
        second = QHBoxLayout()  # two rows, so that the dock fits beside the training panel in a small window
        for w in (QLabel("Levels"), self.levels, QLabel("Colours"), self.colours, QLabel("Refresh"), self.refresh,
                  self.export_button, self.copy_button):
            second.addWidget(w)
        second.addStretch(1)
        layout.addLayout(second)
        self.status = QLabel("Open a picture (or drop one here) and click a block on the canvas.")
        self.status.setObjectName("activations_status")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.picture = PictureView()
        self.picture.setMinimumSize(160, 160)
        self.top5 = QLabel("")
        self.top5.setObjectName("top5")
        self.top5.setTextFormat(Qt.TextFormat.RichText)
        self.hover = QLabel("")
        left_layout.addWidget(self.picture, 1)
        left_layout.addWidget(self.top5)
        left_layout.addWidget(self.hover)
        split.addWidget(left)

        self.tabs = QTabWidget()
        self.maps = MapGrid()
        self.filters = FiltersPanel()
        self.why = WhyPanel()
        self.excites = ExcitesPanel()
        self.tabs.addTab(self.maps, "Feature maps")
        self.tabs.addTab(self.filters, "Filters")
        self.tabs.addTab(self.why, "Why this class")
        self.tabs.addTab(self.excites, "What excites it")
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 3)
        layout.addWidget(split, 1)

        self.part.currentIndexChanged.connect(lambda _: self.update_index_range())
        self.update_index_range()
        self.levels.currentTextChanged.connect(self.maps.set_levels)
        self.colours.currentTextChanged.connect(self.maps.set_colour_map)
        self.refresh.valueChanged.connect(self.session.set_refresh_batches)
        self.maps.hovered.connect(self.map_hovered)
        self.tabs.currentChanged.connect(lambda _: self._refresh_tab())
        self.why.requested.connect(self.ask_why)
        self.excites.requested.connect(self.ask_top_images)
        self.excites.cancel.clicked.connect(self.cancel_search)

    # ------------------------------------------------------------------------------------------- inputs
    def input_shape(self) -> tuple[int, int, int] | None:
        node = next(iter(self.scene.graph.inputs()), None)
        return (node.params["channels"], node.params["height"], node.params["width"]) if node else None

    def _datasets(self):
        pair = self.session.data()
        return pair if pair else (None, None)

    def description(self) -> dict:
        """How the training data were prepared: a new picture is prepared the same way."""
        train, _ = self._datasets()
        described = train.description() if train is not None else {}
        described["input_shape"] = list(self.input_shape() or ())
        return described

    def class_names(self, count: int) -> list[str]:
        train, _ = self._datasets()
        names = list(train.class_names) if train is not None else []
        return names if len(names) == count else [f"output {i}" for i in range(count)]

    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", IMAGE_FILTER)
        if path:
            self.load_picture(path)

    def load_picture(self, path: str | Path) -> bool:
        """Prepare a picture file as the training data were (size, channels, normalisation, digit fit)."""
        shape = self.input_shape()
        if shape is None:
            self.status.setText("The design has no Input block to take a picture.")
            return False
        described, mode = self.description(), self.fit.currentText()
        digit = mode == "auto" and digit_like(shape, described.get("mean") or (0.0,) * shape[0])
        try:
            x = load_image(path, shape, described, fit=digit, crop=mode == "centre-crop")
        except DatasetError as e:
            self.status.setText(str(e))
            return False
        how = "fitted like an MNIST digit" if digit else "centre-cropped" if mode == "centre-crop" else "resized"
        self._set_input(x, f"{Path(path).name} ({how} to {shape[2]}×{shape[1]})")
        return True

    def _dataset_part(self, training: bool):
        train, val = self._datasets()
        return train if training or val is None else val

    def update_index_range(self) -> None:
        data = self._dataset_part(self.part.currentIndex() == 1)
        self.index.setRange(0, max(len(data) - 1, 0) if data is not None else 0)

    def pick_from_dataset(self, training: bool, index: int) -> bool:
        """Show one of the chosen dataset's images (validation part unless ``training``), with its label."""
        data = self._dataset_part(training)
        if data is None or not len(data):
            self.status.setText("No dataset chosen; choose one in the training panel, or open a picture file.")
            return False
        index = min(max(index, 0), len(data) - 1)
        if data.input_shape != self.input_shape():
            self.status.setText(f"The dataset's images are {data.input_shape} but the Input block takes "
                                f"{self.input_shape()}; open a picture file instead (it is resized).")
            return False
        label = data.class_names[data.labels[index]] if data.labels[index] < len(data.class_names) else "?"
        self._set_input(data.normalise(data.images[index:index + 1]), f"{data.name} #{index} (label {label})")
        return True

    def _set_input(self, x: np.ndarray, source: str) -> None:
        train, _ = self._datasets()
        channels = x.shape[1]
        mean = train.mean if train is not None and len(train.mean) == channels else (0.0,) * channels
        std = train.std if train is not None and len(train.std) == channels else (1.0,) * channels
        self.x, self.source = x, source
        self.pixels = seen_picture(x, mean, std)
        self.picture.set_picture(self.pixels)
        self.picture.outline_box(None)
        self.ask_look()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self.dropped_picture(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self.dropped_picture(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.load_picture(path)

    @staticmethod
    def dropped_picture(mime) -> str | None:
        """The first picture file among dropped URLs (the main window forwards its drops here too)."""
        for url in mime.urls() if mime.hasUrls() else []:
            if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in EXTENSIONS:
                return url.toLocalFile()
        return None

    # ------------------------------------------------------------------------------------------- selection
    def selection_changed(self) -> None:
        if not isValid(self.scene):  # the scene emits selectionChanged while it is being destroyed
            return
        ids = self.scene.selected_node_ids()
        if len(ids) != 1:
            return
        self.select_block(self.scene.graph.nodes[ids[0]].name)

    def select_block(self, name: str) -> None:
        self.block = name
        self.picture.outline_box(None)
        self.hover.setText("")
        if self.result is not None:
            self.draw_block()
        self._refresh_tab()

    def weights_changed(self) -> None:
        """New weights (an epoch ended, N batches passed, a model was opened): refresh what is shown."""
        self.update_index_range()
        if self.x is not None:
            self.ask_look()
        self.ask_health()

    # ------------------------------------------------------------------------------------------- engine jobs
    def _failed(self, error: BaseException) -> None:
        self.last_error = str(error)
        self.status.setText(self.last_error)

    def ask_look(self) -> None:
        if self.x is None:
            return
        self._asked = time.perf_counter()
        self.last_error = None
        self.engine.replace("inspect-look", jobs.look, self.session, self.x, done=self._looked, failed=self._failed)

    def _looked(self, result: jobs.Look) -> None:
        self.result = result
        probs = result.probabilities
        names = self.class_names(len(probs))
        rows = "".join(f"<tr><td>{rank}.</td><td>{names[i]}</td><td align='right'>&nbsp;&nbsp;{p:.1%}</td></tr>"
                       for rank, (i, p) in enumerate(top_k(probs, 5), start=1))
        self.top5.setText(f"<b>Top 5</b><table>{rows}</table>")
        self.why.set_classes(names)
        self.draw_block()
        self.timings = {"forward_s": result.forward_s, "drawn_s": time.perf_counter() - self._asked}
        self.drawn.emit()
        self._refresh_tab()

    def draw_block(self) -> None:
        r = self.result
        weights = "trained weights" if r.trained else "untrained weights (train the design to see learned features)"
        if self.block is None or self.block not in r.outputs:
            self.maps.show_output(None)
            self.status.setText(f"{self.source}: {weights}. Click a block on the canvas to see its output.")
            return
        values = r.outputs[self.block]
        self.maps.show_output(values, self.block)
        shape = "×".join(map(str, values.shape))
        self.status.setText(f"{self.source} → {self.block} ({shape}), {weights}")
        self.excites.set_channels(values.shape[0])

    def map_hovered(self, channel: int, row: int, col: int, value: float) -> None:
        self.hover.setText(f"{self.block} channel {channel}, ({row}, {col}): {value:.4g}")
        node = self.scene.graph.by_name(self.block) if self.block else None
        rf = receptive_fields(self.scene.graph).get(node.id) if node else None
        shape = self.input_shape()
        self.picture.outline_box(rf.box(row, col, shape[1:]) if rf is not None and shape else None)

    def _refresh_tab(self) -> None:
        if self.tabs.currentWidget() is self.filters and self.block:
            self.ask_filters()
        elif self.tabs.currentWidget() is self.why and self.x is not None:
            self.ask_why()

    def ask_filters(self) -> None:
        self.engine.replace("inspect-filters", jobs.filters, self.session, self.block,
                            done=self.filters.show_filters, failed=self._failed)

    def ask_why(self) -> None:
        if self.x is None:
            return
        block = self.block if self.result is not None and self.block in self.result.outputs and \
            self.result.outputs[self.block].ndim == 3 and self.block != self._input_name() else None
        self.engine.replace("inspect-why", jobs.attribution, self.session, self.x, self.why.method.currentText(),
                            block, self.why.chosen_class(), done=self._why_done, failed=self._failed)

    def _input_name(self) -> str | None:
        node = next(iter(self.scene.graph.inputs()), None)
        return node.name if node else None

    def _why_done(self, result) -> None:
        block = self.block if self.why.method.currentText() == "Grad-CAM" else None
        names = self.class_names(len(self.result.probabilities)) if self.result else []
        self.why.show_result(result, self.pixels, block, names)

    def ask_top_images(self, channel: int) -> None:
        if not self.block:
            self.status.setText("Click a block with feature maps first.")
            return
        self._progress = progress = Progress()
        progress.advanced.connect(self.excites.advance)
        self.excites.started()
        block = self.block
        self.engine.replace("inspect-top", jobs.top_images, self.session, block, channel, progress,
                            done=lambda r: self._top_done(r, block, channel), failed=self._top_failed)

    def cancel_search(self) -> None:
        if self._progress is not None:
            self._progress.cancelled = True

    def _top_done(self, result, block: str, channel: int) -> None:
        hits, data = result
        self.excites.show_hits(hits, data, list(data.class_names), block, channel)

    def _top_failed(self, error: BaseException) -> None:
        self.excites.failed()
        self._failed(error)

    def ask_health(self) -> None:
        self.engine.replace("inspect-health", jobs.health, self.session, done=self.show_health,
                            failed=lambda e: None)  # no fitting data yet: no marks, nothing to say

    def show_health(self, report: dict) -> None:
        """Badges on the canvas blocks whose health check found something off."""
        self.health = report
        for node_id, item in self.scene.blocks.items():
            h = report.get(self.scene.graph.nodes[node_id].name)
            if h is None or not h.problems:
                item.set_health(None)
                continue
            text = ("NaN" if h.nonfinite else f"dead {h.dead_share:.0%}" if h.dead_share is not None and
                    h.dead_share > 0.5 else "∇")
            item.set_health(text, "<br>".join(h.problems))
        self.health_updated.emit()

    # ------------------------------------------------------------------------------------------- export
    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export view as PNG", "activations.png", "PNG (*.png)")
        if path:
            self.export_png(path)

    def export_png(self, path: str | Path) -> bool:
        ok = self.grab().save(str(path), "PNG")
        self.status.setText(f"Saved {path}" if ok else f"Could not write {path}; choose another folder")
        return ok

    def view_csv(self) -> str:
        """The numbers behind the current view: the enlarged map's values, per-map statistics, the bars, or the
        top images; the top-5 predictions follow."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        tab = self.tabs.currentWidget()
        if tab is self.excites and self.excites.hits:
            w.writerow(["index", "label", "value", "row", "col", "top", "left", "bottom", "right"])
            for h in self.excites.hits:
                w.writerow([h.index, h.label, f"{h.value:.6g}", *h.position, *h.box])
        elif tab is self.filters and self.filters.result is not None:
            w.writerow(["array", "mean", "std", "gradient mean", "gradient std"])
            for a in self.filters.result.arrays:
                w.writerow([a.name, f"{a.mean:.6g}", f"{a.std:.6g}", a.grad_mean, a.grad_std])
        elif tab is self.why and self.why.result is not None:
            w.writerows([[f"{v:.6g}" for v in row] for row in self.why.result.heat])
        elif self.maps.values is not None:
            v = self.maps.values
            if self.maps.is_flat:
                w.writerow(["unit", "value"])
                w.writerows([i, f"{x:.6g}"] for i, x in enumerate(v.reshape(-1)))
            elif self.maps.enlarged >= 0:
                w.writerows([[f"{x:.6g}" for x in row] for row in v[self.maps.enlarged]])
            else:
                w.writerow(["channel", "min", "max", "mean"])
                w.writerows([c, f"{m.min():.6g}", f"{m.max():.6g}", f"{m.mean():.6g}"] for c, m in enumerate(v))
        if self.result is not None:
            names = self.class_names(len(self.result.probabilities))
            w.writerow([])
            w.writerow(["rank", "class", "probability"])
            w.writerows([r, names[i], f"{p:.6g}"] for r, (i, p) in enumerate(top_k(self.result.probabilities, 5), 1))
        return out.getvalue()

    def copy_csv(self) -> None:
        QApplication.clipboard().setText(self.view_csv())
        self.status.setText("Copied the numbers of this view (CSV) to the clipboard")
