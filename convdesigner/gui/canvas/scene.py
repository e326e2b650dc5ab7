"""The canvas scene: mirrors a Graph as block, port and wire items and turns mouse gestures into undoable commands.

The Graph is the truth. Every command calls :meth:`DesignScene.sync`, which adds or removes only the items that
changed, re-infers the graph and refreshes text and colours, so an edit on a 400-block network stays quick.
"""
from __future__ import annotations

import bisect
import json

from PySide6.QtCore import QMimeData, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPainter, QPen, QPixmap, QUndoStack
from PySide6.QtWidgets import QApplication, QGraphicsPathItem, QGraphicsScene, QGraphicsSceneMouseEvent

from ...graph import KINDS, Edge, Graph, GraphInfo, Problem
from ...graph.graph import loads_json
from ...graph.layers import fmt
from ...graph.layout import layered_layout
from .. import commands, style
from .block_item import HEIGHT, WIDTH, BlockItem
from .port_item import PortItem
from .wire_item import WireItem, wire_path

CLIP_MIME = "application/x-convdesigner-blocks"
H_GAP, V_GAP = 36.0, 46.0
PASTE_STEP = 36.0
GRID = 24
SCROLL_MARGIN = 400.0
ASPECT = 0.75  # height / width the auto-layout aims for when it wraps a long network into columns


def layout_positions(graph: Graph, aspect: float = ASPECT,
                     wrap_above: float = 3000.0) -> dict[int, tuple[float, float]]:
    """The canvas's auto-layout: layered top to bottom, networks taller than ``wrap_above`` wrapped into columns of
    a page whose height / width is ``aspect`` (the view's, where the caller knows it)."""
    return layered_layout(graph.nodes, [(e.src, e.dst) for e in graph.edges], lambda _: (WIDTH, HEIGHT), H_GAP,
                          V_GAP, aspect=aspect, wrap_above=wrap_above)


class DesignScene(QGraphicsScene):
    changed = Signal()  # after every sync: the graph, its GraphInfo and the items agree
    message = Signal(str)  # something for the status bar (a refused wire, a failed paste)

    def __init__(self, stack: QUndoStack, parent=None) -> None:
        super().__init__(parent)
        self.stack = stack
        self.graph = Graph()
        self.info = GraphInfo()
        self.blocks: dict[int, BlockItem] = {}
        self.wires: dict[Edge, WireItem] = {}
        self._drag: tuple[int, QGraphicsPathItem] | None = None
        self._target: PortItem | None = None
        self._pastes = 0
        self._syncing = False
        self._rows: tuple[list[float], list[QRectF]] | None = None  # block rectangles by top edge, for routing
        self._grid_tile: QPixmap | None = None
        self.setBackgroundBrush(style.CANVAS_BACKGROUND)
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)

    # ------------------------------------------------------------------------------------------- graph -> items
    def set_graph(self, graph: Graph) -> None:
        """Show another graph; the undo history belongs to the old one and is cleared by the caller."""
        self.clearSelection()
        self.clear()
        self.blocks.clear()
        self.wires.clear()
        self.graph = graph
        self.sync()

    def sync(self) -> None:
        """Bring the items in line with the graph, re-infer, refresh every block's text and colours."""
        g = self.graph
        self._syncing = True
        self._rows = None
        for nid in [i for i in self.blocks if i not in g.nodes]:
            self.removeItem(self.blocks.pop(nid))
        current = set(g.edges)
        for edge in [e for e in self.wires if e not in current]:
            self.removeItem(self.wires.pop(edge))
        moved = 0
        for nid, node in g.nodes.items():
            item = self.blocks.get(nid)
            if item is None:
                item = self.blocks[nid] = BlockItem(node)
                self.addItem(item)
            elif (item.x(), item.y()) != node.pos:
                item.setPos(*node.pos)
                moved += 1
        for edge in g.edges:
            if edge not in self.wires:
                self.wires[edge] = WireItem(edge)
                self.addItem(self.wires[edge])
        self._syncing = False

        self.info = info = g.infer()
        problems: dict[int, list[Problem]] = {}
        for p in info.problems:
            if p.node_id is not None:
                problems.setdefault(p.node_id, []).append(p)
        slots: dict[int, set[int]] = {}
        for e in g.edges:
            slots.setdefault(e.dst, set()).add(e.slot)
        for nid, item in self.blocks.items():
            item.update_from(g.nodes[nid], info.nodes.get(nid), problems.get(nid, []), slots.get(nid, set()))
        for edge, wire in self.wires.items():
            src = info.nodes.get(edge.src)
            wire.set_label(fmt(src.output_shape) if src and src.output_shape else "")
            self._route(wire, force=moved > 1)  # many blocks moved: any wire may now pass through one
        # room around the blocks to scroll into, for dropping new ones beside the network
        self.setSceneRect(self.itemsBoundingRect().adjusted(-SCROLL_MARGIN, -SCROLL_MARGIN, SCROLL_MARGIN,
                                                            SCROLL_MARGIN))
        self.changed.emit()

    def _route(self, wire: WireItem, force: bool = False) -> None:
        e = wire.edge
        wire.set_ends(self.blocks[e.src].output_anchor(), self.blocks[e.dst].input_anchor(e.slot),
                      self._obstacles, force)

    def _obstacles(self, rect: QRectF) -> list[QRectF]:
        """Block rectangles meeting ``rect``; blocks are kept sorted by top edge, so a wire looks only at its rows."""
        if self._rows is None:
            rects = sorted((QRectF(b.x(), b.y(), WIDTH, HEIGHT) for b in self.blocks.values()), key=QRectF.top)
            self._rows = ([r.top() for r in rects], rects)
        tops, rects = self._rows
        first = bisect.bisect_left(tops, rect.top() - HEIGHT)
        last = bisect.bisect_right(tops, rect.bottom())
        return [r for r in rects[first:last] if r.intersects(rect)]

    def block_moved(self, item: BlockItem) -> None:
        """Called by a block while it is dragged (or placed by sync): its wires follow."""
        if self._syncing:
            return
        self._rows = None
        for edge, wire in self.wires.items():
            if item.node_id in (edge.src, edge.dst):
                self._route(wire)

    # ------------------------------------------------------------------------------------------- edits
    def apply(self, command: commands.GraphCommand) -> bool:
        """Push an edit; a refused one leaves everything as it was and says why on the status bar."""
        refusal = commands.push(self.stack, command)
        if refusal:
            self.message.emit(refusal)
        return refusal is None

    def add_block(self, kind_name: str, centre: QPointF) -> int | None:
        """Create a block centred at ``centre`` (scene coordinates): what a palette drop or double-click does."""
        if kind_name not in KINDS:
            self.message.emit(f"'{kind_name}' is not a layer kind of this ConvDesigner")
            return None
        cmd = commands.AddBlock(self.graph, self.sync, kind_name, (centre.x() - WIDTH / 2, centre.y() - HEIGHT / 2))
        if not self.apply(cmd):
            return None
        self.select_nodes([cmd.node_id])
        return cmd.node_id

    def connect_blocks(self, src: int, dst: int, slot: int | None = None) -> bool:
        refusal = self.connection_refusal(src, dst, slot)
        if refusal:
            self.message.emit(refusal)
            return False
        return self.apply(commands.Connect(self.graph, self.sync, src, dst, slot))

    def connection_refusal(self, src: int, dst: int, slot: int | None) -> str | None:
        """Why the canvas will not draw a wire from ``src`` into ``dst``: the graph's wiring rules, and no loops or
        second wire between the same two blocks (which the graph would only report afterwards)."""
        g = self.graph
        problem = g.wiring_problem(src, dst, slot)
        if problem:
            return problem
        source, target = g.node(src), g.node(dst)
        if target.spec.max_inputs is not None and any(e.src == src and e.dst == dst for e in g.edges):
            return f"'{source.name}' already feeds '{target.name}'"
        if g.closes_cycle(src, dst):
            return f"wiring '{source.name}' into '{target.name}' would make a cycle"
        return None

    def delete_selection(self) -> None:
        doomed = [i.node_id for i in self.selectedItems() if isinstance(i, BlockItem)]
        wires = [w.edge for w in self.selectedItems() if isinstance(w, WireItem)
                 and w.edge.src not in doomed and w.edge.dst not in doomed]
        edits: list[commands.GraphCommand] = [commands.Disconnect(self.graph, self.sync, e) for e in wires]
        if doomed:
            edits.append(commands.RemoveBlocks(self.graph, self.sync, doomed))
        if len(edits) > 1:
            self.stack.beginMacro(f"Delete {len(edits)} items")
        for cmd in edits:
            self.apply(cmd)
        if len(edits) > 1:
            self.stack.endMacro()

    @staticmethod
    def release_clipboard() -> None:
        """Take our blocks off the clipboard before Qt shuts down: a QMimeData still held by the clipboard when the
        application is destroyed crashes the process at exit (seen with PySide6 6.11 offscreen)."""
        clipboard = QApplication.clipboard()
        mime = clipboard.mimeData()
        if mime is not None and mime.hasFormat(CLIP_MIME):
            clipboard.clear()

    def copy_selection(self) -> bool:
        ids = {i.node_id for i in self.selectedItems() if isinstance(i, BlockItem)}
        if not ids:
            return False
        data = self.graph.to_dict()
        clip = {"format": "convdesigner-blocks", "nodes": [n for n in data["nodes"] if n["id"] in ids],
                "edges": [e for e in data["edges"] if e["src"] in ids and e["dst"] in ids]}
        mime = QMimeData()
        mime.setData(CLIP_MIME, json.dumps(clip).encode())
        mime.setText(json.dumps(clip, indent=1))
        QApplication.clipboard().setMimeData(mime)
        self._pastes = 0
        return True

    def paste(self) -> bool:
        mime = QApplication.clipboard().mimeData()
        if mime is None or not mime.hasFormat(CLIP_MIME):
            self.message.emit("The clipboard holds no blocks; copy some first")
            return False
        step = PASTE_STEP * (self._pastes + 1)
        try:
            cmd = commands.Paste(self.graph, self.sync, loads_json(bytes(mime.data(CLIP_MIME))), (step, step))
        except ValueError as e:  # GraphError included: nothing was pasted
            self.message.emit(f"The clipboard's blocks cannot be pasted: {e}")
            return False
        self._pastes += 1
        if not self.apply(cmd):
            return False
        self.select_nodes(cmd.node_ids)
        return True

    def auto_layout(self) -> None:
        positions = layout_positions(self.graph, **(self.views()[0].layout_page() if self.views() else {}))
        if any(self.graph.nodes[i].pos != p for i, p in positions.items()):
            self.apply(commands.AutoLayout(self.graph, self.sync, positions))

    def select_nodes(self, ids: list[int]) -> None:
        self.clearSelection()
        for i in ids:
            if i in self.blocks:
                self.blocks[i].setSelected(True)

    def selected_node_ids(self) -> list[int]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, BlockItem) and i.node_id in self.graph.nodes]

    # ------------------------------------------------------------------------------------------- wiring by mouse
    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        port = self._port_at(event.scenePos())
        if event.button() == Qt.MouseButton.LeftButton and port is not None and port.is_output:
            self.start_wire(port.node_id)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            self.drag_wire_to(event.scenePos())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            self.drop_wire(event.scenePos())
            event.accept()
            return
        super().mouseReleaseEvent(event)
        self._commit_moves()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if self._drag is not None and event.key() == Qt.Key.Key_Escape:
            self.cancel_wire()
            event.accept()
            return
        super().keyPressEvent(event)

    def start_wire(self, src: int) -> None:
        """Begin a rubber-band wire from ``src``'s output port."""
        band = QGraphicsPathItem()
        band.setPen(QPen(style.SELECTED, 2, Qt.PenStyle.DashLine))
        band.setZValue(3)
        self.addItem(band)
        self._drag = (src, band)

    def drag_wire_to(self, pos: QPointF) -> None:
        src, band = self._drag
        target = self._input_at(pos)
        if self._target is not None and self._target is not target:
            self._target.set_highlight(None)
        self._target = target
        end = pos
        if target is not None:
            ok = self.connection_refusal(src, target.node_id, target.slot) is None
            target.set_highlight(ok)
            band.setPen(QPen(style.SELECTED if ok else style.ERROR, 2, Qt.PenStyle.DashLine))
            end = target.scene_anchor()
        path, _, _ = wire_path(self.blocks[src].output_anchor(), end)
        band.setPath(path)

    def cancel_wire(self) -> int:
        """Drop the rubber-band wire without wiring; returns the block it started from."""
        src, band = self._drag
        self._drag = None
        self.removeItem(band)
        if self._target is not None:
            self._target.set_highlight(None)
            self._target = None
        return src

    def drop_wire(self, pos: QPointF) -> bool:
        """Finish the rubber-band wire: connect when it ends on a legal input, else say why not."""
        src = self.cancel_wire()
        target = self._input_at(pos)
        if target is not None:
            return self.connect_blocks(src, target.node_id, target.slot)
        block = self.block_at(pos)
        if block is not None and block.node_id != src:
            return self.connect_blocks(src, block.node_id, None)
        return False

    def _port_at(self, pos: QPointF) -> PortItem | None:
        for it in self.items(pos):
            if isinstance(it, PortItem):
                return it
        return None

    def _input_at(self, pos: QPointF) -> PortItem | None:
        """The input port under ``pos``, with a few pixels of grace around it."""
        area = QRectF(pos.x() - 8, pos.y() - 8, 16, 16)
        ports = [it for it in self.items(area) if isinstance(it, PortItem) and not it.is_output]
        return min(ports, key=lambda p: (p.scene_anchor() - pos).manhattanLength(), default=None)

    def block_at(self, pos: QPointF) -> BlockItem | None:
        for it in self.items(pos):
            if isinstance(it, BlockItem):
                return it
        return None

    def _commit_moves(self) -> None:
        """After a drag of blocks: one undoable move of everything that moved."""
        moves = {}
        for nid, item in self.blocks.items():
            new = (item.x(), item.y())
            old = self.graph.nodes[nid].pos
            if new != old:
                moves[nid] = (old, new)
        if moves:
            self.apply(commands.MoveBlocks(self.graph, self.sync, moves))

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        """A light dot grid, so moving and empty space read as a canvas (left out when zoomed far out)."""
        super().drawBackground(painter, rect)
        if painter.worldTransform().m11() < 0.45:
            return
        if self._grid_tile is None:
            self._grid_tile = QPixmap(GRID, GRID)
            self._grid_tile.fill(style.CANVAS_BACKGROUND)
            tile_painter = QPainter(self._grid_tile)
            tile_painter.setPen(QPen(style.WIRE.lighter(210), 1.5))
            tile_painter.drawPoint(QPointF(GRID / 2, GRID / 2))
            tile_painter.end()
        painter.drawTiledPixmap(rect, self._grid_tile, QPointF(rect.left() % GRID, rect.top() % GRID))
