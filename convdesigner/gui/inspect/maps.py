"""Drawing a block's output: a grid of feature maps (one pyqtgraph ImageItem each, a colour map, per-map or shared
levels, the value under the cursor, click to enlarge) or a bar chart for a flat output; and the input picture with
the receptive-field outline and a heat-map overlay."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

MAX_MAPS = 64  # maps drawn at once; the rest are named in the title
COLOUR_MAPS = ("viridis", "inferno", "CET-D1", "grey")


def colour_map(name: str) -> pg.ColorMap:
    if name == "grey":
        return pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)])
    return pg.colormap.get(name)


def _image_box(view: pg.ViewBox) -> pg.ImageItem:
    view.setAspectLocked(True)
    view.invertY(True)
    view.setMouseEnabled(False, False)
    view.setMenuEnabled(False)
    item = pg.ImageItem(axisOrder="row-major")
    view.addItem(item)
    return item


class MapGrid(pg.GraphicsLayoutWidget):
    """``hovered(channel, row, col, value)`` as the cursor moves over a map; clicking a map enlarges it, clicking
    the enlarged map goes back to the grid."""

    hovered = Signal(int, int, int, float)
    enlarged_changed = Signal(int)  # the channel shown large, -1 for the grid

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self.values: np.ndarray | None = None
        self.levels = "per map"
        self.cmap = "viridis"
        self.enlarged = -1
        self.boxes: list[tuple[int, pg.ViewBox, pg.ImageItem]] = []
        self.bars: pg.BarGraphItem | None = None
        self._grid: tuple[pg.LabelItem, list[tuple[pg.ViewBox, pg.ImageItem]]] | None = None
        self.scene().sigMouseMoved.connect(self.mouse_moved)
        self.scene().sigMouseClicked.connect(self._clicked)

    def show_output(self, values: np.ndarray | None, title: str = "") -> None:
        """A (C, H, W) output as maps, a (F,) or (C, 1, 1) output as bars; None clears."""
        self.values = values
        self.enlarged = -1
        self._title = title
        self.redraw()

    def set_levels(self, mode: str) -> None:
        self.levels = mode
        self.redraw()

    def set_colour_map(self, name: str) -> None:
        self.cmap = name
        self.redraw()

    def enlarge(self, channel: int) -> None:
        self.enlarged = channel
        self.redraw()
        self.enlarged_changed.emit(channel)

    @property
    def is_flat(self) -> bool:
        v = self.values
        return v is not None and (v.ndim == 1 or v.shape[1:] == (1, 1))

    def redraw(self) -> None:
        v = self.values
        if v is None or self.is_flat:
            self.clear()
            self.boxes, self.bars, self._grid = [], None, None
            if v is not None:
                flat = v.reshape(-1)
                plot = self.addPlot(title=self._title)
                plot.setMenuEnabled(False)
                plot.setLabel("bottom", "unit")
                self.bars = pg.BarGraphItem(x=np.arange(len(flat)), height=flat, width=0.8, brush="#4c78a8")
                plot.addItem(self.bars)
            return
        shown = [self.enlarged] if self.enlarged >= 0 else list(range(min(len(v), MAX_MAPS)))
        more = f" (first {MAX_MAPS} of {len(v)} maps)" if self.enlarged < 0 and len(v) > MAX_MAPS else ""
        title = f"{self._title}{more}" if self.enlarged < 0 else f"{self._title} — map {self.enlarged} (click to " \
                                                                 f"go back)"
        self._lay_out(len(shown))
        self._grid[0].setText(title, color="#1d2329")
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        cmap = colour_map(self.cmap)
        self.boxes = []
        for channel, (view, item) in zip(shown, self._grid[1], strict=True):
            item.setImage(v[channel], autoLevels=False)
            a, b = (lo, hi) if self.levels == "shared" else (float(np.nanmin(v[channel])), float(np.nanmax(v[channel])))
            item.setLevels((a, b if b > a else a + 1e-6))
            item.setColorMap(cmap)
            view.autoRange(padding=0.02)
            self.boxes.append((channel, view, item))

    def _lay_out(self, count: int) -> None:
        """A title and ``count`` image boxes, kept while the count stays (VGG's blocks all show 64 maps): building
        pyqtgraph boxes is what makes a redraw slow, not the images."""
        if self._grid is not None and len(self._grid[1]) == count:
            return
        self.clear()
        self.bars = None
        cols = math.ceil(math.sqrt(count))
        label = self.addLabel("", colspan=cols)
        self.nextRow()
        boxes = []
        for n in range(count):
            if n and n % cols == 0:
                self.nextRow()
            view = self.addViewBox()
            boxes.append((view, _image_box(view)))
        self._grid = (label, boxes)

    def map_at(self, pos: QPointF) -> tuple[int, int, int] | None:
        """(channel, row, col) of the map pixel at scene position ``pos``, or None."""
        for channel, view, _ in self.boxes:
            if view.sceneBoundingRect().contains(pos):
                p = view.mapSceneToView(pos)
                row, col = int(math.floor(p.y())), int(math.floor(p.x()))
                h, w = self.values.shape[1:]
                if 0 <= row < h and 0 <= col < w:
                    return channel, row, col
        return None

    def scene_pos_of(self, channel: int, row: int, col: int) -> QPointF:
        """Where pixel (row, col) of ``channel``'s map is drawn (for tests and the screenshot)."""
        view = next(v for c, v, _ in self.boxes if c == channel)
        return view.mapViewToScene(QPointF(col + 0.5, row + 0.5))

    def mouse_moved(self, pos: QPointF) -> None:
        hit = self.map_at(pos)
        if hit is not None:
            channel, row, col = hit
            self.hovered.emit(channel, row, col, float(self.values[channel, row, col]))

    def _clicked(self, event) -> None:
        if self.enlarged >= 0:
            self.enlarge(-1)
            return
        hit = self.map_at(event.scenePos())
        if hit is not None:
            self.enlarge(hit[0])


class PictureView(pg.GraphicsLayoutWidget):
    """The picture as the network sees it, a receptive-field outline and an optional heat-map overlay."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self.view = self.addViewBox()
        self.image = _image_box(self.view)
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.heat.setColorMap(colour_map("inferno"))
        self.heat.setOpacity(0.5)
        self.heat.setZValue(1)
        self.heat.hide()
        self.view.addItem(self.heat)
        self.outline = QGraphicsRectItem()
        self.outline.setPen(QPen(QColor("#00e5ff"), 0))
        self.outline.setZValue(2)
        self.outline.hide()
        self.view.addItem(self.outline)

    def set_picture(self, pixels: np.ndarray | None) -> None:
        if pixels is None:
            self.image.clear()
            return
        self.image.setImage(pixels, levels=(0, 255))

    def set_heat(self, heat: np.ndarray | None, opacity: float = 0.5) -> None:
        if heat is None:
            self.heat.hide()
            return
        self.heat.setImage(heat, levels=(0, 1))
        self.heat.setOpacity(opacity)
        self.heat.show()

    def outline_box(self, box: tuple[int, int, int, int] | None) -> None:
        """Outline input pixels (top, left, bottom, right), inclusive; None hides the outline."""
        if box is None:
            self.outline.hide()
            return
        top, left, bottom, right = box
        self.outline.setRect(QRectF(left, top, right - left + 1, bottom - top + 1))
        self.outline.show()
