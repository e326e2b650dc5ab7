"""The small badge a block carries when the last health check found something off (dead ReLUs, NaN/inf values,
vanishing or exploding gradients); hovering it shows the figures."""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

from .. import style


class HealthBadge(QGraphicsItem):
    """A warning-coloured pill straddling its block's top-right corner; a child item, so it has its own tooltip."""

    def __init__(self, parent: QGraphicsItem, right: float) -> None:
        super().__init__(parent)
        self.text = ""
        self._right = right
        self._font = QFont()
        self._font.setPointSizeF(7.5)
        self._font.setBold(True)
        self._rect = QRectF()
        self.setZValue(2)
        self.setAcceptHoverEvents(True)

    def show_text(self, text: str, tooltip: str) -> None:
        self.prepareGeometryChange()
        self.text = text
        width = QFontMetrics(self._font).horizontalAdvance(text) + 10
        self._rect = QRectF(self._right - width + 6, -8, width, 16)
        self.setToolTip(tooltip)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect.adjusted(-1, -1, 1, 1)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(style.BLOCK_FILL, 1.2))
        painter.setBrush(style.WARNING)
        painter.drawRoundedRect(self._rect, 8, 8)
        painter.setFont(self._font)
        painter.setPen(style.BLOCK_FILL)
        painter.drawText(self._rect, Qt.AlignmentFlag.AlignCenter, self.text)
