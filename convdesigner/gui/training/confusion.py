"""The confusion matrix after each epoch (a heat map with counts and class names on both axes), and the gallery of
one cell's validation images, most confidently wrong first, each with its true and predicted class and probability."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

GALLERY_MAX = 64  # images shown for one cell


class ConfusionView(pg.GraphicsLayoutWidget):
    """Rows: true class, columns: predicted class. ``cell_clicked(true, predicted)`` when a cell is clicked."""

    cell_clicked = Signal(int, int)

    def __init__(self) -> None:
        super().__init__()
        self.plot = self.addPlot(title="Confusion matrix (validation)")
        self.plot.setLabel("left", "true class")
        self.plot.setLabel("bottom", "predicted class")
        self.plot.invertY(True)
        # cells take the panel's shape (not square): the panel is wide and short, and counts need the width
        self.plot.hideButtons()
        self.plot.setMouseEnabled(False, False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.ColorMap([0.0, 1.0], [(247, 251, 255), (8, 48, 107)]))  # white to deep blue
        self.plot.addItem(self.image)
        self.counts = CellCounts()
        self.plot.addItem(self.counts)
        self.matrix: np.ndarray | None = None
        self.names: list[str] = []
        self.image.mouseClickEvent = self._clicked
        self.empty = pg.TextItem("The matrix appears after the first epoch", color="#666", anchor=(0.5, 0.5))
        self.plot.addItem(self.empty)

    def show_matrix(self, matrix: np.ndarray, names: list[str]) -> None:
        self.matrix, self.names = np.asarray(matrix), [str(n) for n in names]
        n = len(self.matrix)
        self.empty.setVisible(False)
        rows = self.matrix.sum(axis=1, keepdims=True)
        share = np.divide(self.matrix, rows, out=np.zeros(self.matrix.shape), where=rows > 0)
        self.image.setImage(share, levels=(0, 1))
        self.image.setRect(0, 0, n, n)
        self.counts.show_counts(self.matrix if n <= 30 else None, share)
        ticks = [[(i + 0.5, name[:12]) for i, name in enumerate(self.names)]] if n <= 30 else None
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTicks(ticks)
        self.plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)

    def _clicked(self, event) -> None:
        if self.matrix is None:
            return
        pos = event.pos()
        p, t = int(pos.x()), int(pos.y())
        if 0 <= t < len(self.matrix) and 0 <= p < len(self.matrix):
            event.accept()
            self.cell_clicked.emit(t, p)


class CellCounts(pg.GraphicsObject):
    """The count in every non-empty cell, painted in one item at screen size (a hundred TextItems take 50 ms to
    make, which the window would spend after every epoch)."""

    def __init__(self) -> None:
        super().__init__()
        self.matrix: np.ndarray | None = None
        self.share: np.ndarray | None = None

    def show_counts(self, matrix: np.ndarray | None, share: np.ndarray) -> None:
        self.prepareGeometryChange()
        self.matrix, self.share = matrix, share
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        n = 0 if self.matrix is None else len(self.matrix)
        return QRectF(0, 0, n, n)

    def paint(self, painter: QPainter, *args) -> None:
        if self.matrix is None:
            return
        to_screen = painter.transform()
        painter.resetTransform()
        light, dark = QColor("white"), QColor("#222")
        for t, p in zip(*np.nonzero(self.matrix), strict=True):
            centre = to_screen.map(QPointF(p + 0.5, t + 0.5))
            painter.setPen(light if self.share[t, p] > 0.5 else dark)
            painter.drawText(QRectF(centre.x() - 40, centre.y() - 10, 80, 20), Qt.AlignmentFlag.AlignCenter,
                             str(int(self.matrix[t, p])))


def picture_pixmap(picture: np.ndarray, size: int = 84) -> QPixmap:
    """A uint8 (H, W, C) picture scaled for display (nearest-neighbour, so small digits stay crisp)."""
    h, w, c = picture.shape
    data = np.ascontiguousarray(picture if c == 3 else picture[:, :, 0])
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_Grayscale8
    image = QImage(data.data, w, h, data.strides[0], fmt).copy()
    return QPixmap.fromImage(image).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)


class Gallery(QDialog):
    """The validation images of one confusion-matrix cell, in the order the engine ranks them."""

    def __init__(self, parent, data, evaluation, true_class: int, predicted_class: int) -> None:
        super().__init__(parent)
        names = data.class_names
        index = evaluation.cell(true_class, predicted_class)
        right = true_class == predicted_class
        self.setWindowTitle(f"{names[true_class]} predicted as {names[predicted_class]} — {len(index)} image"
                            f"{'s' * (len(index) != 1)}")
        self.setObjectName("gallery")
        layout = QVBoxLayout(self)
        order = "least confident first" if right else "most confidently wrong first"
        layout.addWidget(QLabel(f"<b>{len(index)}</b> validation image{'s' * (len(index) != 1)} of class "
                                f"<b>{names[true_class]}</b> predicted as <b>{names[predicted_class]}</b> "
                                f"({order}{'; the first ' + str(GALLERY_MAX) if len(index) > GALLERY_MAX else ''})"))
        grid_host = QWidget()
        grid = QGridLayout(grid_host)
        self.tiles: list[QLabel] = []
        grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        for k, i in enumerate(index[:GALLERY_MAX].tolist()):
            cell = QWidget()
            stack = QVBoxLayout(cell)
            stack.setContentsMargins(2, 2, 2, 6)
            tile = QLabel()
            tile.setPixmap(picture_pixmap(data.picture(i)))
            tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption = QLabel(f"true {names[int(evaluation.labels[i])]}<br>→ {names[int(evaluation.predicted[i])]} "
                             f"({evaluation.confidence[i]:.1%})")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cell.setToolTip(f"validation image #{i}")
            stack.addWidget(tile)
            stack.addWidget(caption)
            grid.addWidget(cell, k // 8, k % 8)
            self.tiles.append(caption)
        if not len(index):
            grid.addWidget(QLabel("No images in this cell."), 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(grid_host)
        layout.addWidget(scroll, 1)
        self.resize(820, 560)
