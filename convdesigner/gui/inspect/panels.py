"""The tabs beside the feature maps: a block's filters and histograms, why-this-class overlays, and the dataset
images that excite a channel most. Each only draws what the engine thread computed."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .maps import PictureView, _image_box

MAX_FILTERS, MAX_CHANNELS = 32, 8


class FiltersPanel(QWidget):
    """Kernels as small pictures (RGB for a first layer on colour input, one per input channel otherwise) and the
    histograms of each learnable array and of its loss gradient, with mean and standard deviation."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.note = QLabel("Select a block with weights.")
        self.note.setWordWrap(True)
        self.kernels = pg.GraphicsLayoutWidget()
        self.kernels.setBackground("w")
        self.histograms = pg.GraphicsLayoutWidget()
        self.histograms.setBackground("w")
        layout.addWidget(self.note)
        layout.addWidget(self.kernels, 3)
        layout.addWidget(self.histograms, 2)
        self.result = None

    def show_filters(self, result) -> None:
        self.result = result
        self.kernels.clear()
        self.histograms.clear()
        if result is None or not result.arrays:
            self.note.setText(f"'{result.block}' has no weights." if result else "Select a block with weights.")
            return
        parts = [f"{a.name} {'×'.join(map(str, a.shape))}: mean {a.mean:.3g}, std {a.std:.3g}" +
                 (f"; gradient mean {a.grad_mean:.3g}, std {a.grad_std:.3g}" if a.grad_mean is not None else "")
                 for a in result.arrays]
        self.note.setText(f"<b>{result.block}</b><br>" + "<br>".join(parts))
        k = result.kernels
        if k is not None:
            filters = k[:MAX_FILTERS]
            cols = 1 if result.rgb else min(k.shape[1], MAX_CHANNELS)
            per_row = max(1, 8 // cols) if cols < 8 else 1
            for f, kernel in enumerate(filters):
                if f and f % per_row == 0:
                    self.kernels.nextRow()
                images = [kernel.transpose(1, 2, 0)] if result.rgb else list(kernel[:cols])
                for image in images:
                    item = _image_box(self.kernels.addViewBox())
                    item.setImage(image, levels=(0, 1))
        for a in result.arrays:
            plot = self.histograms.addPlot(title=f"{a.name}")
            plot.setMenuEnabled(False)
            plot.plot(a.edges, a.counts, stepMode="center", fillLevel=0, brush="#4c78a880", pen="#4c78a8")
            if a.grad_counts is not None:
                grad = self.histograms.addPlot(title=f"d loss / d {a.name}")
                grad.setMenuEnabled(False)
                grad.plot(a.grad_edges, a.grad_counts, stepMode="center", fillLevel=0, brush="#f5851880",
                          pen="#f58518")
            self.histograms.nextRow()


class WhyPanel(QWidget):
    """Grad-CAM, saliency or integrated gradients over the picture, for a chosen class, with an opacity slider."""

    requested = Signal()  # the method or the class changed: compute again

    METHODS = ("Grad-CAM", "Saliency", "Integrated gradients")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.method = QComboBox()
        self.method.addItems(self.METHODS)
        self.method.setObjectName("why_method")
        self.cls = QComboBox()
        self.cls.setObjectName("why_class")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setObjectName("why_opacity")
        for w in (QLabel("Method"), self.method, QLabel("Class"), self.cls, QLabel("Opacity"), self.opacity):
            row.addWidget(w)
        layout.addLayout(row)
        self.note = QLabel("Load a picture to see why the network chose its class.")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.picture = PictureView()
        layout.addWidget(self.picture, 1)
        self.result = None
        self.method.currentIndexChanged.connect(self.requested)
        self.cls.currentIndexChanged.connect(self.requested)
        self.opacity.valueChanged.connect(self._opacity_changed)

    def set_classes(self, names: list[str]) -> None:
        if [self.cls.itemText(i) for i in range(1, self.cls.count())] == names:
            return
        self.cls.blockSignals(True)
        self.cls.clear()
        self.cls.addItems(["predicted class", *names])
        self.cls.blockSignals(False)

    def chosen_class(self) -> int | None:
        return self.cls.currentIndex() - 1 if self.cls.currentIndex() > 0 else None

    def show_result(self, result, pixels: np.ndarray | None, block: str | None, names: list[str]) -> None:
        self.result = result
        self.picture.set_picture(pixels)
        self.picture.set_heat(result.heat if result else None, self.opacity.value() / 100)
        if result is not None:
            where = f" at block {block}" if self.method.currentText() == "Grad-CAM" and block else ""
            name = names[result.cls] if result.cls < len(names) else f"output {result.cls}"
            self.note.setText(f"{self.method.currentText()}{where} for class <b>{name}</b> (score {result.score:.3g})")

    def _opacity_changed(self, value: int) -> None:
        self.picture.heat.setOpacity(value / 100)


class Progress(QObject):
    """Carries the engine thread's progress to the GUI thread (a queued signal) and its cancel request back."""

    advanced = Signal(int, int)

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = False

    def __call__(self, done: int, total: int) -> bool:  # on the engine thread
        self.advanced.emit(done, total)
        return not self.cancelled


class ExcitesPanel(QWidget):
    """The nine validation images (crops at the receptive field of the peak) that excite a channel most."""

    requested = Signal(int)  # channel

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.channel = QSpinBox()
        self.channel.setObjectName("excites_channel")
        self.search = QPushButton("Search")
        self.search.setObjectName("excites_search")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("excites_progress")
        for w in (QLabel("Channel"), self.channel, self.search, self.cancel, self.progress):
            row.addWidget(w)
        layout.addLayout(row)
        self.note = QLabel("Select a block, pick a channel and search the validation images.")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.grid = pg.GraphicsLayoutWidget()
        self.grid.setBackground("w")
        layout.addWidget(self.grid, 1)
        self.hits: list = []
        self.search.clicked.connect(lambda: self.requested.emit(self.channel.value()))

    def set_channels(self, count: int) -> None:
        self.channel.setRange(0, max(count - 1, 0))

    def started(self) -> None:
        self.search.setEnabled(False)
        self.cancel.setEnabled(True)
        self.progress.setValue(0)

    def advance(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def show_hits(self, hits: list, data, names: list[str], block: str, channel: int) -> None:
        self.search.setEnabled(True)
        self.cancel.setEnabled(False)
        self.hits = hits
        self.grid.clear()
        cols = 3
        for n, hit in enumerate(hits):
            if n and n % cols == 0:
                self.grid.nextRow()
            top, left, bottom, right = hit.box
            image = data.images[hit.index][:, top:bottom + 1, left:right + 1]
            image = image[0] if image.shape[0] == 1 else image[:3].transpose(1, 2, 0)
            label = names[hit.label] if hit.label < len(names) else str(hit.label)
            view = self.grid.addViewBox()
            item = _image_box(view)
            item.setImage(image, levels=(0, 255) if image.dtype == np.uint8 else None)
            text = pg.TextItem(f"#{hit.index} {label}: {hit.value:.3g}", color="#ffffff", anchor=(0, 1),
                               fill=pg.mkBrush(0, 0, 0, 160))
            text.setPos(0, image.shape[0])
            view.addItem(text)
        self.note.setText(f"Images that excite channel {channel} of {block} most (crops at the receptive field of "
                          f"the peak)" if hits else "No images searched.")

    def failed(self) -> None:
        self.search.setEnabled(True)
        self.cancel.setEnabled(False)
