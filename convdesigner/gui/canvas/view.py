"""The canvas view: zoom (wheel, keys, fit), pan (middle button or Space+drag), rubber-band selection, palette drops."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QApplication, QGraphicsView

from .scene import DesignScene

KIND_MIME = "application/x-convdesigner-kind"
MIN_ZOOM, MAX_ZOOM = 0.04, 3.0


class CanvasView(QGraphicsView):
    resized = Signal()  # the viewport changed size

    def __init__(self, scene: DesignScene, parent=None) -> None:
        super().__init__(scene, parent)
        self._auto_framed: float | None = None  # the min zoom of the last automatic framing, until the user moves
        self._framing = False
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setAcceptDrops(True)
        self._pan_from: QPoint | None = None
        self._space = False

    def design_scene(self) -> DesignScene:
        return self.scene()  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------- zoom
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        self._auto_framed = None  # first: the scroll bars coming back resize the viewport
        factor = min(max(factor, MIN_ZOOM), MAX_ZOOM)
        self.scale(factor / self.zoom(), factor / self.zoom())
        self._scroll_bars(True)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.resized.emit()
        if self._auto_framed is not None and not self._framing:
            self._framing = True  # showing or hiding the scroll bars resizes the viewport again
            try:
                self.show_top(self._auto_framed)
            finally:
                self._framing = False

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802
        super().scrollContentsBy(dx, dy)
        if self.isVisible() and QApplication.mouseButtons() != Qt.MouseButton.NoButton:
            self._auto_framed = None  # the user moved the view

    @property
    def auto_framed(self) -> bool:
        """The view shows what it framed itself: the user has not zoomed or scrolled since."""
        return self._auto_framed is not None

    def _scroll_bars(self, shown: bool) -> None:
        policy = Qt.ScrollBarPolicy.ScrollBarAsNeeded if shown else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        self.setHorizontalScrollBarPolicy(policy)
        self.setVerticalScrollBarPolicy(policy)

    def zoom_by(self, step: float) -> None:
        self.set_zoom(self.zoom() * step)

    def fit(self, max_zoom: float = 1.0) -> None:
        """Show every block (never enlarged beyond ``max_zoom``)."""
        rect = self.design_scene().itemsBoundingRect()
        if rect.isEmpty():
            self.set_zoom(1.0)
            return
        rect = rect.adjusted(-30, -30, 30, 30)
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > max_zoom:
            self.set_zoom(max_zoom)
        self.centerOn(rect.center())
        self._scroll_bars(False)  # everything is in view: nothing to scroll to (a zoom brings them back)

    def layout_page(self, min_zoom: float = 0.55) -> dict:
        """What the auto-layout should aim for in this view: its shape, and wrapping into columns whatever is too
        tall to see whole at ``min_zoom``."""
        width, height = self.viewport().width(), self.viewport().height()
        if width < 200 or height < 200:  # not shown yet
            return {}
        return {"aspect": height / width, "wrap_above": height / min_zoom}

    def show_top(self, min_zoom: float = 0.55) -> None:
        """Fit the whole network, but no smaller than ``min_zoom``: then show where it starts (its top left). Until
        the user zooms or scrolls, a resize of the view (the docks settling at start) frames it again."""
        rect = self.design_scene().itemsBoundingRect().adjusted(-30, -30, 30, 30)
        if rect.isEmpty():
            return
        self.fit()
        if self.zoom() < min_zoom:
            self.set_zoom(min_zoom)
            half_w = self.viewport().width() / (2 * self.zoom())
            half_h = self.viewport().height() / (2 * self.zoom())
            x = rect.center().x() if rect.width() <= 2 * half_w else rect.left() + half_w  # wrapped: first column
            self.centerOn(x, rect.top() + half_h)
        self._auto_framed = min_zoom

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta:
            self.zoom_by(1.0015 ** delta)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.unsetCursor()
            return
        super().keyReleaseEvent(event)

    # ------------------------------------------------------------------------------------------- pan
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton or (self._space and event.button()
                                                              == Qt.MouseButton.LeftButton):
            self._pan_from = event.position().toPoint()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            now = event.position().toPoint()
            delta = now - self._pan_from
            self._pan_from = now
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            self._pan_from = None
            self.unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    # ------------------------------------------------------------------------------------------- palette drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasFormat(KIND_MIME):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasFormat(KIND_MIME):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        """A kind dropped from the palette becomes a block where it was dropped."""
        if not event.mimeData().hasFormat(KIND_MIME):
            super().dropEvent(event)
            return
        kind_name = bytes(event.mimeData().data(KIND_MIME)).decode()
        self.design_scene().add_block(kind_name, self.mapToScene(event.position().toPoint()))
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.setFocus()  # so Delete and Ctrl+C act on the new block

