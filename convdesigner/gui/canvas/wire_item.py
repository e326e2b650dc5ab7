"""A wire: a curve from a block's output port to an input port, labelled with the tensor shape it carries.

A wire whose straight path would run through other blocks swings out into a lane beside them.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QFont, QFontMetricsF, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from ...graph import Edge
from .. import style

LANE_MARGIN = 16.0
LABEL_FONT_PT = 9.0  # about 7 px on screen at the smallest zoom a network is first shown at

Obstacles = Callable[[QRectF], list[QRectF]]


def wire_path(p0: QPointF, p1: QPointF, obstacles: Obstacles | None = None) -> tuple[QPainterPath, QPointF, int]:
    """The curve from ``p0`` (an output, heading down) to ``p1`` (an input, entered from above), its label point and
    which side of that point the label goes (0 centred on it, 1 right of it, -1 left of it: beside a lane)."""
    path = QPainterPath(p0)
    dy = p1.y() - p0.y()
    if dy < 0 and obstacles is not None:
        return _back_wire(path, p0, p1, obstacles)
    corridor = QRectF(min(p0.x(), p1.x()) - 12, p0.y() + 2, abs(p1.x() - p0.x()) + 24, max(dy - 4, 0))
    blocked = obstacles(corridor) if obstacles is not None and dy > 0 else []
    if not blocked:
        bend = max(abs(dy) / 2, 40.0)
        path.cubicTo(QPointF(p0.x(), p0.y() + bend), QPointF(p1.x(), p1.y() - bend), p1)
        return path, path.pointAtPercent(0.5), 0
    right = max(r.right() for r in blocked) + LANE_MARGIN
    left = min(r.left() for r in blocked) - LANE_MARGIN
    mid = (p0.x() + p1.x()) / 2
    lane = right if right - mid <= mid - left else left
    turn = min(28.0, dy / 4)
    y0, y1 = p0.y() + turn, p1.y() - turn
    path.cubicTo(QPointF(p0.x(), y0), QPointF(lane, p0.y()), QPointF(lane, y0 + turn))
    path.lineTo(QPointF(lane, y1 - turn))
    path.cubicTo(QPointF(lane, p1.y()), QPointF(p1.x(), y1), p1)
    return path, QPointF(lane, (y0 + y1) / 2), 1 if lane == right else -1


def _back_wire(path: QPainterPath, p0: QPointF, p1: QPointF, obstacles: Obstacles) -> tuple[QPainterPath, QPointF, int]:
    """A wire to a block above its source (the next column of a wrapped layout): down, across to a free vertical lane
    between the two, up, and over into the input."""
    lo, hi = sorted((p0.x(), p1.x()))
    blocked = sorted((r.left() - LANE_MARGIN, r.right() + LANE_MARGIN)
                     for r in obstacles(QRectF(lo, p1.y(), hi - lo, p0.y() - p1.y())))
    free, x = [], lo
    for a, b in blocked:
        if a > x:
            free.append((x, a))
        x = max(x, b)
    if x < hi:
        free.append((x, hi))
    mid = (lo + hi) / 2
    if free:
        a, b = min(free, key=lambda g: 0 if g[0] <= mid <= g[1] else min(abs(g[0] - mid), abs(g[1] - mid)))
        lane = min(max(mid, a), b)
    else:
        lane = max((b for _, b in blocked), default=hi + LANE_MARGIN)
    below, above = p0.y() + 24, p1.y() - 24
    path.cubicTo(QPointF(p0.x(), below + 24), QPointF(lane, below + 24), QPointF(lane, below))
    path.lineTo(QPointF(lane, above))
    path.cubicTo(QPointF(lane, above - 24), QPointF(p1.x(), above - 24), p1)
    return path, QPointF(lane, (below + above) / 2), 1


class WireItem(QGraphicsItem):
    """Mirrors one Edge; selectable so it can be deleted (unwired)."""

    def __init__(self, edge: Edge) -> None:
        super().__init__()
        self.edge = edge
        self.label = ""
        self.path = QPainterPath()
        self._outline = QPainterPath()
        self._bounds = QRectF()
        self._label_at = QPointF()
        self._label_side = 0
        self._ends: tuple[float, float, float, float] | None = None
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        self._font = QFont()
        self._font.setPointSizeF(LABEL_FONT_PT)
        self.setToolTip("Wire — select and press Delete to remove it")

    def set_ends(self, p0: QPointF, p1: QPointF, obstacles: Obstacles | None, force: bool = False) -> None:
        """Re-route when an end moved (or ``force``)."""
        ends = (p0.x(), p0.y(), p1.x(), p1.y())
        if ends == self._ends and not force:
            return
        self._ends = ends
        self.prepareGeometryChange()
        self.path, self._label_at, self._label_side = wire_path(p0, p1, obstacles)
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        self._outline = stroker.createStroke(self.path)
        self._update_bounds()

    def set_label(self, text: str) -> None:
        if text != self.label:
            self.prepareGeometryChange()
            self.label = text
            self._update_bounds()
            self.update()

    def _update_bounds(self) -> None:
        rect = self.path.controlPointRect().adjusted(-3, -3, 3, 3)
        self._bounds = rect.united(self.label_rect()) if self.label else rect

    def label_rect(self) -> QRectF:
        metrics = QFontMetricsF(self._font)
        w, h = metrics.horizontalAdvance(self.label) + 8, metrics.height() + 2
        x = self._label_at.x() + self._label_side * (w / 2 + 3)
        return QRectF(x - w / 2, self._label_at.y() - h / 2, w, h)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._bounds

    def shape(self) -> QPainterPath:
        return self._outline

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = style.SELECTED if self.isSelected() else style.WIRE
        painter.setPen(QPen(colour, 2.6 if self.isSelected() else 1.6))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path)
        if self.label:
            rect = self.label_rect()
            painter.setPen(QPen(colour.lighter(160), 0.8))
            painter.setBrush(style.CANVAS_BACKGROUND)
            painter.drawRoundedRect(rect, 4, 4)
            painter.setFont(self._font)
            painter.setPen(style.MUTED_TEXT if not self.isSelected() else colour)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.label)
