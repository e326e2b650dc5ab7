"""A block's connection point: one output port at the bottom, input ports (one per slot) along the top."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem

from .. import style

RADIUS = 5.5


class PortItem(QGraphicsEllipseItem):
    """``slot`` is the input slot for input ports and None for the output port."""

    def __init__(self, block: QGraphicsItem, node_id: int, slot: int | None) -> None:
        super().__init__(QRectF(-RADIUS, -RADIUS, 2 * RADIUS, 2 * RADIUS), block)
        self.node_id = node_id
        self.slot = slot
        self.wired = False
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setZValue(2)
        self.set_highlight(None)

    @property
    def is_output(self) -> bool:
        return self.slot is None

    def scene_anchor(self) -> QPointF:
        """Where a wire attaches, in scene coordinates."""
        return self.mapToScene(QPointF(0, 0))

    def set_wired(self, wired: bool) -> None:
        if wired != self.wired:
            self.wired = wired
            self.set_highlight(None)

    def set_highlight(self, ok: bool | None) -> None:
        """None: normal look; True/False: a wire being dragged may / may not end here."""
        if ok is None:
            fill = style.WIRE if self.wired or self.is_output else QColor("#ffffff")
            self.setPen(QPen(style.WIRE, 1.4))
        else:
            fill = QColor("#2ca02c") if ok else style.ERROR
            self.setPen(QPen(fill.darker(130), 2))
        self.setBrush(QBrush(fill))
        tip = "Drag from here to an input port to wire" if self.is_output else f"Input {self.slot + 1}"
        self.setToolTip(tip)

    def hoverEnterEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.setScale(1.35)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self.setScale(1.0)
        super().hoverLeaveEvent(event)
