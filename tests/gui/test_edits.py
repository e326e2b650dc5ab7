"""Every edit kind goes through the undo stack: undo restores the graph exactly, redo repeats the edit."""
import pytest
from drive import drag_wire, drop_kind, node
from PySide6.QtCore import QPoint, QPointF


def edit_add(w):
    drop_kind(w, "Dense", QPoint(300, 300))


def edit_delete(w):
    w.scene.select_nodes([node(w, "relu2").id])
    w.delete_action.trigger()


def edit_move(w):
    item = w.scene.blocks[node(w, "fc1").id]
    item.setPos(item.pos() + QPointF(120, 40))
    w.scene._commit_moves()


def setup_wire(w):
    w.scene.select_nodes([node(w, "relu2").id])
    w.delete_action.trigger()  # conv2 and pool2 are left unwired


def edit_wire(w):
    drag_wire(w, node(w, "conv2").id, node(w, "pool2").id)


def edit_unwire(w):
    edge = next(e for e in w.scene.graph.edges if e.src == node(w, "fc1").id)
    w.scene.wires[edge].setSelected(True)
    w.delete_action.trigger()


def edit_param(w):
    w.scene.select_nodes([node(w, "fc1").id])
    w.inspector.editors["units"].setValue(64)


def edit_rename(w):
    w.scene.select_nodes([node(w, "fc1").id])
    w.inspector.name_edit.setText("hidden")
    w.inspector.name_edit.editingFinished.emit()


def edit_paste(w):
    w.scene.select_nodes([node(w, "conv1").id])
    w.copy_action.trigger()
    w.paste_action.trigger()


def setup_layout(w):
    for item in list(w.scene.blocks.values())[::2]:
        item.setPos(item.pos() + QPointF(300, 0))
    w.scene._commit_moves()


def edit_layout(w):
    w.layout_action.trigger()


def canonical(graph):
    """The graph as data, independent of the order blocks and wires were (re)inserted in."""
    d = graph.to_dict()
    return sorted((n["id"], n["name"], n["kind"], sorted(n["params"].items()), tuple(n["pos"])) for n in d["nodes"]), \
        sorted((e["src"], e["dst"], e["slot"]) for e in d["edges"])


EDITS = [edit_add, edit_delete, edit_move, edit_wire, edit_unwire, edit_param, edit_rename, edit_paste, edit_layout]
SETUPS = {edit_wire: setup_wire, edit_layout: setup_layout}


def items_match_graph(w):
    g = w.scene.graph
    assert set(w.scene.blocks) == set(g.nodes)
    assert set(w.scene.wires) == set(g.edges)
    for i, item in w.scene.blocks.items():
        assert (item.x(), item.y()) == g.nodes[i].pos
        assert item._lines[0] == g.nodes[i].name


@pytest.mark.parametrize("edit", EDITS, ids=[e.__name__ for e in EDITS])
def test_undo_and_redo_every_edit_kind(lenet, edit):
    if edit in SETUPS:
        SETUPS[edit](lenet)
    before, steps = canonical(lenet.scene.graph), lenet.stack.index()
    edit(lenet)
    after = canonical(lenet.scene.graph)
    assert after != before
    assert lenet.stack.index() == steps + 1  # one edit, one undo step
    assert lenet.isWindowModified()
    lenet.undo_action.trigger()
    assert canonical(lenet.scene.graph) == before
    items_match_graph(lenet)
    lenet.redo_action.trigger()
    assert canonical(lenet.scene.graph) == after
    items_match_graph(lenet)


def test_parameter_merges_into_one_undo_step(lenet):
    lenet.scene.select_nodes([node(lenet, "fc1").id])
    for units in (100, 90, 80):
        lenet.inspector.editors["units"].setValue(units)
    assert lenet.stack.count() == 1
    lenet.stack.undo()
    assert node(lenet, "fc1").params["units"] == 120
