"""The canvas driven like a user: drop blocks, wire them with the mouse, watch shapes and problems appear."""
from drive import drag_wire, drop_kind, node, to_view
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QGraphicsPathItem

from convdesigner.gui.canvas.block_item import BlockItem
from convdesigner.gui.canvas.wire_item import WireItem


def shown_shape(window, node_id):
    return window.scene.blocks[node_id]._lines[3]


def test_drop_wire_and_see_shapes(window):
    window.new_design()
    graph = window.scene.graph
    input_id = node(window, "input").id
    drop_kind(window, "Conv2D", QPoint(400, 300))
    conv = next(n for n in graph.nodes.values() if n.kind == "Conv2D")
    item = window.scene.blocks[conv.id]
    centre = to_view(window, item.mapToScene(item.boundingRect().center()))
    assert abs(centre.x() - 400) <= 2 and abs(centre.y() - 300) <= 2  # created where it was dropped
    assert shown_shape(window, conv.id) is None  # not wired yet: no shape, a problem instead
    assert item.severity == "error" and "has no input" in item.toolTip()

    drop_kind(window, "NoSuchKind", QPoint(200, 200))
    assert len(graph.nodes) == 2

    drag_wire(window, input_id, conv.id)
    assert [(e.src, e.dst, e.slot) for e in graph.edges] == [(input_id, conv.id, 0)]
    assert shown_shape(window, conv.id) == "16×28×28"
    wire = window.scene.wires[graph.edges[0]]
    assert isinstance(wire, WireItem) and wire.label == "1×28×28"
    assert window.scene.blocks[conv.id].input_ports[0].wired


def test_illegal_wires_are_refused_with_a_reason(lenet):
    scene, graph = lenet.scene, lenet.scene.graph
    messages = []
    scene.message.connect(messages.append)
    wires = len(graph.edges)
    drag_wire(lenet, node(lenet, "conv1").id, node(lenet, "input").id)  # into an Input
    drag_wire(lenet, node(lenet, "fc1").id, node(lenet, "conv1").id)  # occupied slot, and a cycle
    assert scene.connection_refusal(node(lenet, "relu4").id, node(lenet, "conv1").id, None) is not None
    drop_kind(lenet, "ReLU", to_view(lenet, QPointF(-600, 0)))
    extra = max(graph.nodes)
    lenet.scene.connect_blocks(extra, node(lenet, "input").id)
    assert len(graph.edges) == wires
    assert any("takes no inputs" in m for m in messages)
    assert any("already wired" in m for m in messages)


def test_variadic_block_offers_one_free_port(lenet):
    scene = lenet.scene
    drop_kind(lenet, "Add", to_view(lenet, QPointF(-500, 200)))
    add = max(scene.graph.nodes)
    assert len(scene.blocks[add].input_ports) == 2  # Add needs two inputs
    drag_wire(lenet, node(lenet, "relu1").id, add, 0)
    drag_wire(lenet, node(lenet, "conv1").id, add, 1)
    assert len(scene.blocks[add].input_ports) == 3
    drag_wire(lenet, node(lenet, "relu3").id, add, 2)
    assert len(scene.blocks[add].input_ports) == 4
    assert "input 3 is 120 but input 1 is 6×28×28" in scene.blocks[add].toolTip()


def test_broken_graph_shows_problem_and_problems_list_selects_block(lenet):
    conv2 = node(lenet, "conv2")
    lenet.scene.select_nodes([conv2.id])
    lenet.inspector.editors["kernel_h"].setValue(20)
    item = lenet.scene.blocks[conv2.id]
    assert item.severity == "error"
    assert "kernel 20×5 is larger than its 14×14 input" in item.toolTip()
    rows = [lenet.problems.item(i) for i in range(lenet.problems.count())]
    assert any("kernel 20×5" in r.text() for r in rows)
    lenet.scene.clearSelection()
    row = next(r for r in rows if "kernel 20×5" in r.text())
    lenet.problems.itemClicked.emit(row)
    assert lenet.scene.selected_node_ids() == [conv2.id]
    assert "1 error" in lenet.problems_dock.windowTitle()


def test_rubber_band_select_delete_and_fit(lenet):
    scene, view = lenet.scene, lenet.view
    blocks = [node(lenet, n).id for n in ("relu1", "pool1")]
    rect = scene.blocks[blocks[0]].sceneBoundingRect().united(scene.blocks[blocks[1]].sceneBoundingRect())
    view.set_zoom(1.0)
    view.centerOn(rect.center())
    a = view.mapFromScene(rect.topLeft() - QPointF(40, 10))
    b = view.mapFromScene(rect.bottomRight() + QPointF(40, 10))
    QTest.mousePress(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(view.viewport(), (a + b) / 2)
    QTest.mouseMove(view.viewport(), b)
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert sorted(scene.selected_node_ids()) == sorted(blocks)
    assert lenet.delete_action in view.actions()  # also on the canvas's right-click menu
    lenet.delete_action.trigger()
    assert not set(blocks) & set(scene.graph.nodes)
    assert all(isinstance(i, BlockItem) for i in scene.blocks.values()) and len(scene.blocks) == 12
    lenet.fit_action.trigger()
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert visible.contains(scene.itemsBoundingRect().adjusted(10, 10, -10, -10))


def test_zoom_with_keys_and_wheel_and_pan_with_middle_button(lenet):
    view = lenet.view
    view.set_zoom(1.0)
    lenet.zoom_in_action.trigger()
    assert view.zoom() > 1.2
    lenet.zoom_out_action.trigger()
    lenet.zoom_out_action.trigger()
    assert view.zoom() < 1.0
    lenet.actual_size_action.trigger()
    assert view.zoom() == 1.0
    centre = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(centre, view.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    view.wheelEvent(wheel)
    assert view.zoom() > 1.3
    before = view.verticalScrollBar().value()
    start = view.viewport().rect().center()
    QTest.mousePress(view.viewport(), Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(view.viewport(), start - QPoint(0, 60))
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier,
                       start - QPoint(0, 60))
    assert view.verticalScrollBar().value() == before + 60


def test_escape_cancels_a_wire_being_dragged(lenet):
    scene = lenet.scene
    scene.start_wire(node(lenet, "fc3").id)
    scene.drag_wire_to(QPointF(900, 900))
    QTest.keyClick(lenet.view.viewport(), Qt.Key.Key_Escape)
    assert scene._drag is None and not any(isinstance(i, QGraphicsPathItem) for i in scene.items())


def test_an_edit_updates_items_in_place(lenet):
    """A parameter edit refreshes text on the existing items; nothing is rebuilt (what keeps DenseNet edits quick)."""
    blocks, wires = dict(lenet.scene.blocks), dict(lenet.scene.wires)
    lenet.scene.select_nodes([node(lenet, "conv1").id])
    lenet.inspector.editors["filters"].setValue(10)
    assert all(lenet.scene.blocks[i] is item for i, item in blocks.items())
    assert all(lenet.scene.wires[e] is item for e, item in wires.items())
    assert lenet.scene.wires[next(e for e in wires if e.src == node(lenet, "conv1").id)].label == "10×28×28"


def test_copy_paste_makes_fresh_names_and_keeps_inner_wires(lenet):
    scene, graph = lenet.scene, lenet.scene.graph
    scene.select_nodes([node(lenet, "conv1").id, node(lenet, "relu1").id])
    lenet.copy_action.trigger()
    before = set(graph.nodes)
    lenet.paste_action.trigger()
    new = set(graph.nodes) - before
    names = sorted(graph.nodes[i].name for i in new)
    assert len(new) == 2 and "conv1" not in names and "relu1" not in names
    conv, relu = (next(i for i in new if graph.nodes[i].kind == k) for k in ("Conv2D", "ReLU"))
    assert [(e.src, e.dst) for e in graph.edges if e.src in new or e.dst in new] == [(conv, relu)]
    assert sorted(scene.selected_node_ids()) == sorted(new)
    assert graph.nodes[min(new)].params == node(lenet, "conv1").params
