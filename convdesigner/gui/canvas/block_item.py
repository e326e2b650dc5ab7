"""One block on the canvas: name, kind, key parameters, output shape and parameter count, with its ports."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from ...graph import Node, NodeInfo, Problem
from ...graph.graph import MAX_INPUT_SLOTS
from ...graph.layers import fmt
from .. import style
from .health_badge import HealthBadge
from .port_item import PortItem

WIDTH = 232.0
HEIGHT = 58.0
STRIPE = 6.0
PAD = 8.0


def key_params(node: Node) -> str:
    """The parameters worth a glance: those set away from their default, ``kernel_h``/``kernel_w`` read as 5×5."""
    values = {p.name: node.params[p.name] for p in node.spec.params}
    shown = [p for p in node.spec.params if node.params[p.name] != p.default] or list(node.spec.params[:1])
    parts, done = [], set()
    for p in shown:
        value = values[p.name]
        if p.name in done or value == "explicit":  # explicit padding: the pad numbers follow
            continue
        stem = p.name[:-2]
        if p.name.endswith(("_h", "_w")) and f"{stem}_h" in values and f"{stem}_w" in values:
            h, w = values[stem + "_h"], values[stem + "_w"]
            parts.append(f"{stem} {h}×{w}" if h != w or stem == "kernel" else f"{stem} {h}")
            done |= {f"{stem}_h", f"{stem}_w"}
        elif p.type is bool:
            parts.append(p.name if value else f"no {p.name}")
        else:
            parts.append(f"{p.name} {value:g}" if p.type is float else f"{p.name} {value}")
    return ", ".join(parts)


class BlockItem(QGraphicsItem):
    """Draws one Graph node; it reads the node and its NodeInfo but never changes the Graph itself."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node_id = node.id
        self.category = node.spec.category
        self.max_inputs = node.spec.max_inputs
        self.min_inputs = node.spec.min_inputs
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setZValue(1)
        self.output_port = PortItem(self, node.id, None)
        self.output_port.setPos(WIDTH / 2, HEIGHT)
        self.input_ports: list[PortItem] = []
        self._lines: tuple = ()
        self._params: dict | None = None
        self._summary = ""
        self._wired_slots: set[int] | None = None
        self.severity: str | None = None
        self.health_badge: HealthBadge | None = None
        self.setPos(*node.pos)

    # ------------------------------------------------------------------------------------------- state from the graph
    def update_from(self, node: Node, info: NodeInfo | None, problems: list[Problem], wired_slots: set[int]) -> None:
        """Refresh text, colours and input ports; repaints only when something visible changed."""
        self._sync_ports(wired_slots)
        out = info.output_shape if info else None
        if node.params != self._params:
            self._params, self._summary = dict(node.params), key_params(node)
        lines = (node.name, node.kind, self._summary, fmt(out) if out else None,
                 info.params if info and out else None)
        severity = ("error" if any(p.severity == "error" for p in problems)
                    else "warning" if problems else None)
        if lines == self._lines and severity == self.severity:
            return
        self._lines, self.severity = lines, severity
        tip = [f"<b>{node.name}</b> — {node.kind}", node.spec.help]
        if node.spec.params:
            tip.append("<br>".join(f"{k} = {v}" for k, v in node.params.items()))
        tip += [f"<span style='color:{style.problem_colour(p.severity).name()}'>"
                f"{p.message}</span>" for p in problems]
        self.setToolTip("<p>" + "</p><p>".join(tip) + "</p>")
        self.update()

    def _sync_ports(self, wired_slots: set[int]) -> None:
        if wired_slots == self._wired_slots:
            return
        self._wired_slots = set(wired_slots)
        if self.max_inputs is None:  # variadic: one free port more than the wires it has, within the graph's limit
            count = min(MAX_INPUT_SLOTS, max(self.min_inputs, max(wired_slots, default=-1) + 2, len(wired_slots) + 1))
        else:
            count = self.max_inputs
        while len(self.input_ports) < count:
            self.input_ports.append(PortItem(self, self.node_id, len(self.input_ports)))
        while len(self.input_ports) > count:
            port = self.input_ports.pop()
            port.setParentItem(None)
            if port.scene():
                port.scene().removeItem(port)
        for i, port in enumerate(self.input_ports):
            port.setPos(WIDTH * (i + 1) / (count + 1), 0)
            port.set_wired(i in wired_slots)

    def set_health(self, text: str | None, tooltip: str = "") -> None:
        """Show a health badge (``text``, with ``tooltip`` on hover) at the top-right corner; None removes it."""
        if text is None:
            if self.health_badge is not None:
                self.health_badge.setParentItem(None)
                if self.health_badge.scene():
                    self.health_badge.scene().removeItem(self.health_badge)
                self.health_badge = None
            return
        if self.health_badge is None:
            self.health_badge = HealthBadge(self, WIDTH)
        self.health_badge.show_text(text, tooltip)

    def input_anchor(self, slot: int) -> QPointF:
        """Where the wire into input ``slot`` ends, in scene coordinates (blocks are never rotated or scaled)."""
        if slot < len(self.input_ports):
            return self.pos() + self.input_ports[slot].pos()
        return self.pos() + QPointF(WIDTH / 2, 0)

    def output_anchor(self) -> QPointF:
        return self.pos() + QPointF(WIDTH / 2, HEIGHT)

    # ------------------------------------------------------------------------------------------- Qt
    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-2, -2, WIDTH + 4, HEIGHT + 4)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if not self._lines:
            return
        name, kind_name, params, shape, count = self._lines
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(0, 0, WIDTH, HEIGHT)
        border = (style.SELECTED if self.isSelected() else style.ERROR if self.severity == "error"
                  else style.WARNING if self.severity == "warning" else style.WIRE.lighter(150))
        painter.setPen(QPen(border, 2.4 if self.isSelected() or self.severity else 1.0))
        painter.setBrush(style.ERROR_FILL if self.severity == "error" else style.BLOCK_FILL)
        painter.drawRoundedRect(rect, 6, 6)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(style.category_colour(self.category))
        painter.drawRoundedRect(QRectF(1.2, 1.2, STRIPE, HEIGHT - 2.4), 3, 3)

        base = painter.font()
        bold, small = QFont(base), QFont(base)
        bold.setPointSizeF(10.0)
        bold.setBold(True)
        small.setPointSizeF(8.5)
        left, right = STRIPE + PAD, WIDTH - PAD
        line = (HEIGHT - 6) / 3

        painter.setFont(small)
        painter.setPen(style.MUTED_TEXT)
        small_m = QFontMetrics(small)
        # the name wins the first row; the kind (also told by the colour) gets the rest, at least a short stub
        kind_need = small_m.horizontalAdvance(kind_name) + 2
        name_need = QFontMetrics(bold).horizontalAdvance(name) + 10
        kind_w = min(kind_need, max(right - left - name_need, 56.0))
        painter.drawText(QRectF(right - kind_w, 3, kind_w, line), Qt.AlignmentFlag.AlignRight
                         | Qt.AlignmentFlag.AlignVCenter, small_m.elidedText(kind_name, Qt.TextElideMode.ElideRight,
                                                                             int(kind_w) + 1))
        painter.setFont(bold)
        painter.setPen(style.TEXT)
        name_w = right - left - kind_w - 6
        painter.drawText(QRectF(left, 3, name_w, line), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(bold).elidedText(name, Qt.TextElideMode.ElideRight, int(name_w)))

        painter.setFont(small)
        painter.setPen(style.MUTED_TEXT)
        painter.drawText(QRectF(left, 3 + line, right - left, line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         small_m.elidedText(params, Qt.TextElideMode.ElideRight, int(right - left)))
        row = QRectF(left, 3 + 2 * line, right - left, line)
        if shape is None:  # red where the problem is; grey downstream of it
            painter.setPen(style.ERROR if self.severity == "error" else style.MUTED_TEXT)
            painter.drawText(row, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "→ ?")
            return
        painter.setPen(style.TEXT)
        painter.drawText(row, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"→ {shape}")
        if count:
            painter.setPen(style.MUTED_TEXT)
            painter.drawText(row, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             f"{style.count(count)} params")

    def itemChange(self, change, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged and self.scene() is not None:
            self.scene().block_moved(self)
        return super().itemChange(change, value)
