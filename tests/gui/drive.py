"""Small drivers shared by the GUI tests: where things are on screen, and the mouse gestures a user makes."""
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest

from convdesigner.gui.palette import kind_mime


def to_view(window, scene_point: QPointF) -> QPoint:
    return window.view.mapFromScene(scene_point)


def drop_kind(window, kind_name: str, view_pos: QPoint) -> None:
    """Exactly what a palette drag ends with: a drop event carrying the palette's MIME data on the canvas."""
    mime = kind_mime(kind_name)
    event = QDropEvent(QPointF(view_pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.view.dropEvent(event)
    assert event.isAccepted() and event.dropAction() == Qt.DropAction.CopyAction  # a move would empty the palette


def drag_wire(window, src_id: int, dst_id: int, slot: int = 0) -> None:
    """Press on the source's output port, move over the target's input port, release."""
    scene = window.scene
    start = to_view(window, scene.blocks[src_id].output_anchor())
    end = to_view(window, scene.blocks[dst_id].input_anchor(slot))
    viewport = window.view.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewport, (start + end) / 2)
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def node(window, name: str):
    return window.scene.graph.by_name(name)
