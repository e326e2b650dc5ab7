"""Whatever another program puts on the clipboard under our format, Paste adds all of it or nothing, with a message."""
import json

import pytest
from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QApplication

from convdesigner.gui.canvas.scene import CLIP_MIME

RELU = {"id": 1, "name": "r", "kind": "ReLU", "params": {}, "pos": [0, 0]}


def clip(nodes, edges=()):
    return json.dumps({"format": "convdesigner-blocks", "nodes": nodes, "edges": list(edges)})


PAYLOADS = {
    "a JSON list": "[1, 2, 3]",
    "no nodes": json.dumps({"format": "convdesigner-blocks", "edges": []}),
    "nodes not a list": json.dumps({"format": "convdesigner-blocks", "nodes": {"a": 1}, "edges": []}),
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "a 5000-digit number": clip([RELU]).replace('"id": 1', '"id": ' + "9" * 5000),
    "units 1e400": clip([{"id": 1, "name": "d", "kind": "Dense", "params": {"units": 1}, "pos": [0, 0]}])
    .replace('"units": 1', '"units": 1e400'),
    "an id that is a list": clip([RELU, {**RELU, "id": [1], "name": "s"}]),
    "a position of 1e400": clip([RELU]).replace("[0, 0]", "[1e400, 0]"),
    "a bad second block": clip([RELU, {"id": 2, "name": "bad name!", "kind": "ReLU", "params": {}}]),
    "an unknown kind": clip([RELU, {"id": 2, "name": "x", "kind": "Teleport", "params": {}}]),
    "a wire into slot 10^9": clip([RELU, {**RELU, "id": 2, "name": "s"},
                                   {"id": 3, "name": "a", "kind": "Add", "params": {}}],
                                  [{"src": 1, "dst": 3, "slot": 10 ** 9}]),
    "not UTF-8": b"\xff\xfe\x00",
}


def put_on_clipboard(data) -> None:
    mime = QMimeData()
    mime.setData(CLIP_MIME, data if isinstance(data, bytes) else data.encode())
    QApplication.clipboard().setMimeData(mime)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_bad_clipboard_data_paste_nothing_and_say_why(lenet, payload):
    scene = lenet.scene
    before, undo = scene.graph.to_dict(), scene.stack.count()
    messages = []
    scene.message.connect(messages.append)
    put_on_clipboard(PAYLOADS[payload])
    assert scene.paste() is False
    assert scene.graph.to_dict() == before and scene.stack.count() == undo
    assert set(scene.blocks) == set(scene.graph.nodes)
    assert len(messages) == 1 and messages[0].startswith("The clipboard's blocks cannot be pasted: "), messages


def test_good_payload_with_a_wire_to_elsewhere_pastes_whole_and_undoes(lenet):
    scene = lenet.scene
    before = set(scene.graph.nodes)
    put_on_clipboard(clip([RELU, {**RELU, "id": 2, "name": "s"}], [{"src": 1, "dst": 2, "slot": 0},
                                                                   {"src": 1, "dst": 77, "slot": 0}]))
    assert scene.paste() is True
    new = set(scene.graph.nodes) - before
    assert len(new) == 2 and set(scene.blocks) == set(scene.graph.nodes)
    assert sum(1 for e in scene.graph.edges if e.src in new and e.dst in new) == 1
    scene.stack.undo()
    assert set(scene.graph.nodes) == before == set(scene.blocks)
