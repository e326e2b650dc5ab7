"""The palette: every layer kind of the catalogue, grouped by category, searchable, dragged onto the canvas."""
from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..graph import CATEGORIES, KINDS, LayerKind
from . import style
from .canvas.view import KIND_MIME

KIND_ROLE = Qt.ItemDataRole.UserRole


def kind_mime(kind_name: str) -> QMimeData:
    """What a palette drag carries; the canvas creates the block from it."""
    mime = QMimeData()
    mime.setData(KIND_MIME, kind_name.encode())
    mime.setText(kind_name)
    return mime


def kind_tooltip(spec: LayerKind) -> str:
    lines = [f"<b>{spec.name}</b> — {spec.category}", spec.help]
    if spec.params:
        lines.append("<br>".join(f"<i>{p.name}</i> ({p.default!r}): {p.help}" for p in spec.params))
    return "<p>" + "</p><p>".join(lines) + "</p>"


class _KindTree(QTreeWidget):
    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:  # noqa: N802
        names = [i.data(0, KIND_ROLE) for i in items if i.data(0, KIND_ROLE)]
        return kind_mime(names[0]) if names else QMimeData()

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return [KIND_MIME]

    def supportedDropActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.CopyAction


class Palette(QWidget):
    kind_activated = Signal(str)  # double-click or Enter: add this kind at the centre of the view

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(placeholderText="Search layers…")
        self.search.setClearButtonEnabled(True)
        self.tree = _KindTree()
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)  # a move would take the kind out of the palette
        self.tree.setIndentation(12)
        self.tree.setRootIsDecorated(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.categories: dict[str, QTreeWidgetItem] = {}
        for category in CATEGORIES:
            top = QTreeWidgetItem([category])
            top.setIcon(0, style.category_icon(category))
            top.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            self.tree.addTopLevelItem(top)
            self.categories[category] = top
        for spec in KINDS.values():
            item = QTreeWidgetItem([spec.name])
            item.setData(0, KIND_ROLE, spec.name)
            item.setToolTip(0, kind_tooltip(spec))
            item.setIcon(0, style.category_icon(spec.category, 10))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
            self.categories[spec.category].addChild(item)
        self.tree.expandAll()
        self.search.textChanged.connect(self.filter)
        self.tree.itemActivated.connect(self._activated)

    def filter(self, text: str) -> None:
        """Show the kinds whose name, category or help contains ``text``; hide empty categories."""
        needle = text.strip().lower()
        for category, top in self.categories.items():
            visible = 0
            for i in range(top.childCount()):
                item = top.child(i)
                spec = KINDS[item.data(0, KIND_ROLE)]
                hit = not needle or any(needle in s.lower() for s in (spec.name, category, spec.help))
                item.setHidden(not hit)
                visible += hit
            top.setHidden(visible == 0)

    def visible_kinds(self) -> list[str]:
        return [top.child(i).data(0, KIND_ROLE) for top in self.categories.values() if not top.isHidden()
                for i in range(top.childCount()) if not top.child(i).isHidden()]

    def _activated(self, item: QTreeWidgetItem) -> None:
        name = item.data(0, KIND_ROLE)
        if name:
            self.kind_activated.emit(name)
