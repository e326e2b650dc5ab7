"""Undoable edits of a Graph: one QUndoCommand per edit kind, each doing and undoing exactly one change.

Commands mutate only the Graph and then call ``on_change`` so the views that observe it redraw; they hold no Qt items.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QUndoCommand, QUndoStack

from ..graph import Edge, Graph, GraphError
from ..graph.graph import FORMAT as GRAPH_FORMAT
from ..graph.graph import VERSION as GRAPH_VERSION

Notify = Callable[[], None]


class GraphCommand(QUndoCommand):
    """Base: subclasses implement ``_do``/``_undo``; redo/undo run them and tell the observers."""

    def __init__(self, graph: Graph, on_change: Notify, text: str) -> None:
        super().__init__(text)
        self.graph = graph
        self.on_change = on_change

    def redo(self) -> None:
        self._do()
        self.on_change()

    def undo(self) -> None:
        self._undo()
        self.on_change()


def push(stack: QUndoStack, command: GraphCommand) -> str | None:
    """Try the edit first; on a GraphError leave graph and stack untouched and return the message for the user."""
    try:
        command._do()
    except GraphError as e:
        return str(e)
    command._undo()
    stack.push(command)
    return None


def _restore(graph: Graph, nodes: list[dict], edges: list[Edge]) -> None:
    for nd in nodes:
        graph.add(nd["kind"], nd["name"], nd["params"], nd["pos"], nd["id"])
    for e in edges:
        graph.connect(e.src, e.dst, e.slot)


def _snapshot(graph: Graph, node_id: int) -> dict:
    n = graph.node(node_id)
    return {"id": n.id, "name": n.name, "kind": n.kind, "params": dict(n.params), "pos": n.pos}


class AddBlock(GraphCommand):
    def __init__(self, graph: Graph, on_change: Notify, kind_name: str, pos: tuple[float, float]) -> None:
        super().__init__(graph, on_change, f"Add {kind_name}")
        self.kind_name, self.pos = kind_name, pos
        self.node_id: int | None = None
        self.name: str | None = None

    def _do(self) -> None:
        node = self.graph.add(self.kind_name, self.name, None, self.pos, self.node_id)
        self.node_id, self.name = node.id, node.name
        self.setText(f"Add {node.name}")

    def _undo(self) -> None:
        self.graph.remove(self.node_id)


class RemoveBlocks(GraphCommand):
    """Delete blocks with every wire touching them; undo brings back the same ids, names, params and slots."""

    def __init__(self, graph: Graph, on_change: Notify, node_ids: list[int]) -> None:
        names = [graph.node(i).name for i in node_ids]
        super().__init__(graph, on_change, f"Delete {names[0]}" if len(names) == 1 else f"Delete {len(names)} blocks")
        self.node_ids = list(node_ids)
        self.nodes: list[dict] = []
        self.edges: list[Edge] = []

    def _do(self) -> None:
        self.nodes = [_snapshot(self.graph, i) for i in self.node_ids]
        self.edges = [e for e in self.graph.edges if e.src in self.node_ids or e.dst in self.node_ids]
        for i in self.node_ids:
            self.graph.remove(i)

    def _undo(self) -> None:
        _restore(self.graph, self.nodes, self.edges)


class MoveBlocks(GraphCommand):
    def __init__(self, graph: Graph, on_change: Notify, moves: dict[int, tuple[tuple[float, float],
                                                                             tuple[float, float]]]) -> None:
        super().__init__(graph, on_change, "Move" if len(moves) > 1 else f"Move {graph.node(next(iter(moves))).name}")
        self.moves = moves  # id -> (old, new)

    def _do(self) -> None:
        for i, (_, new) in self.moves.items():
            self.graph.move(i, new)

    def _undo(self) -> None:
        for i, (old, _) in self.moves.items():
            self.graph.move(i, old)


class Connect(GraphCommand):
    def __init__(self, graph: Graph, on_change: Notify, src: int, dst: int, slot: int | None = None) -> None:
        super().__init__(graph, on_change, f"Wire {graph.node(src).name} → {graph.node(dst).name}")
        self.src, self.dst, self.slot = src, dst, slot
        self.edge: Edge | None = None

    def _do(self) -> None:
        self.edge = self.graph.connect(self.src, self.dst, self.slot)
        self.slot = self.edge.slot

    def _undo(self) -> None:
        self.graph.disconnect(self.edge)


class Disconnect(GraphCommand):
    def __init__(self, graph: Graph, on_change: Notify, edge: Edge) -> None:
        super().__init__(graph, on_change, f"Unwire {graph.node(edge.src).name} → {graph.node(edge.dst).name}")
        self.edge = edge

    def _do(self) -> None:
        self.graph.disconnect(self.edge)

    def _undo(self) -> None:
        self.graph.connect(self.edge.src, self.edge.dst, self.edge.slot)


class SetParam(GraphCommand):
    """One parameter of one block; successive changes of the same parameter merge into one undo step."""

    MERGE_ID = 1001

    def __init__(self, graph: Graph, on_change: Notify, node_id: int, name: str, value: Any) -> None:
        node = graph.node(node_id)
        super().__init__(graph, on_change, f"Set {node.name}.{name} = {value}")
        self.node_id, self.name, self.value = node_id, name, value
        self.old = node.params[name]

    def _do(self) -> None:
        self.graph.set_params(self.node_id, **{self.name: self.value})

    def _undo(self) -> None:
        self.graph.set_params(self.node_id, **{self.name: self.old})

    def id(self) -> int:
        return self.MERGE_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802
        if not isinstance(other, SetParam) or (other.node_id, other.name) != (self.node_id, self.name):
            return False
        self.value = other.value
        self.setText(other.text())
        return True


class Rename(GraphCommand):
    def __init__(self, graph: Graph, on_change: Notify, node_id: int, name: str) -> None:
        old = graph.node(node_id).name
        super().__init__(graph, on_change, f"Rename {old} → {name}")
        self.node_id, self.name, self.old = node_id, name, old

    def _do(self) -> None:
        self.graph.rename(self.node_id, self.name)

    def _undo(self) -> None:
        self.graph.rename(self.node_id, self.old)


def clipboard_graph(clip: Any) -> Graph:
    """The copied blocks (and the wires among them) as a graph of their own, checked entirely as a design file is,
    so that a paste adds everything or nothing; a GraphError says what is wrong with the clipboard's data."""
    if not isinstance(clip, dict) or clip.get("format") != "convdesigner-blocks":
        raise GraphError("the clipboard does not hold ConvDesigner blocks")
    nodes, edges = clip.get("nodes"), clip.get("edges", [])
    if not isinstance(nodes, list) or not isinstance(edges, list) or not nodes:
        raise GraphError("the clipboard's blocks are malformed (no list of blocks and wires)")
    data = {"format": GRAPH_FORMAT, "version": GRAPH_VERSION, "nodes": nodes, "edges": []}
    ids = set(Graph.from_dict(data).nodes)
    data["edges"] = [e for e in edges if isinstance(e, dict) and all(type(e.get(k)) is int and e[k] in ids
                                                                      for k in ("src", "dst"))]
    return Graph.from_dict(data)


class Paste(GraphCommand):
    """Add copied blocks (fresh ids and names, shifted by ``offset``) and the wires among them; the clipboard's data
    are checked whole first (:func:`clipboard_graph` raises GraphError), so a paste adds everything or nothing."""

    def __init__(self, graph: Graph, on_change: Notify, clip: Any, offset: tuple[float, float]) -> None:
        self.clip = clipboard_graph(clip)
        count = len(self.clip.nodes)
        super().__init__(graph, on_change, f"Paste {count} block{'s' if count != 1 else ''}")
        self.offset = offset
        self.added: list[dict] = []
        self.edges: list[Edge] = []

    def _do(self) -> None:
        if self.added:  # redo after undo: the same ids and names as the first time
            _restore(self.graph, self.added, self.edges)
            return
        new_ids: dict[int, int] = {}
        try:
            for nd in self.clip.nodes.values():
                x, y = nd.pos
                node = self.graph.add(nd.kind, self.graph.unique_name(nd.name), nd.params,
                                      (x + self.offset[0], y + self.offset[1]))
                new_ids[nd.id] = node.id
            self.edges = [self.graph.connect(new_ids[e.src], new_ids[e.dst], e.slot) for e in self.clip.edges]
        except GraphError:
            for i in new_ids.values():
                self.graph.remove(i)
            raise
        self.added = [_snapshot(self.graph, i) for i in new_ids.values()]

    def _undo(self) -> None:
        for nd in self.added:
            self.graph.remove(nd["id"])

    @property
    def node_ids(self) -> list[int]:
        return [nd["id"] for nd in self.added]


class AutoLayout(GraphCommand):
    def __init__(self, graph: Graph, on_change: Notify, positions: dict[int, tuple[float, float]]) -> None:
        super().__init__(graph, on_change, "Auto-layout")
        self.new = positions
        self.old = {i: n.pos for i, n in graph.nodes.items()}

    def _do(self) -> None:
        for i, p in self.new.items():
            self.graph.move(i, p)

    def _undo(self) -> None:
        for i, p in self.old.items():
            self.graph.move(i, p)


class SetParams(GraphCommand):
    """Several parameters of several blocks as one undo step, e.g. fitting Input and the last Dense to the data."""

    def __init__(self, graph: Graph, on_change: Notify, changes: dict[int, dict], text: str) -> None:
        super().__init__(graph, on_change, text)
        self.changes = {node_id: dict(params) for node_id, params in changes.items()}
        self.old = {node_id: {k: graph.node(node_id).params[k] for k in params}
                    for node_id, params in self.changes.items()}

    def _do(self) -> None:
        for node_id, params in self.changes.items():
            self.graph.set_params(node_id, **params)

    def _undo(self) -> None:
        for node_id, params in self.old.items():
            self.graph.set_params(node_id, **params)
