"""The Problems list: every error and warning of the graph; activating one selects its block on the canvas."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QStyle

from ..graph import Problem

NODE_ROLE = Qt.ItemDataRole.UserRole


class ProblemsList(QListWidget):
    node_activated = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)
        self._shown: list[Problem] = []
        self.itemClicked.connect(self._clicked)
        self.itemActivated.connect(self._clicked)

    def show_problems(self, problems: list[Problem]) -> None:
        """Errors first, then warnings; rebuilt only when the list changed."""
        ordered = sorted(problems, key=lambda p: p.severity != "error")
        if ordered == self._shown:
            return
        self._shown = ordered
        self.clear()
        if not ordered:
            item = QListWidgetItem(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton),
                                   "No problems: the network is ready to train")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.addItem(item)
            return
        for p in ordered:
            icon = (QStyle.StandardPixmap.SP_MessageBoxCritical if p.severity == "error"
                    else QStyle.StandardPixmap.SP_MessageBoxWarning)
            item = QListWidgetItem(self.style().standardIcon(icon), p.message)
            item.setToolTip(p.message)
            item.setData(NODE_ROLE, p.node_id)
            self.addItem(item)

    def _clicked(self, item: QListWidgetItem) -> None:
        node_id = item.data(NODE_ROLE)
        if node_id is not None:
            self.node_activated.emit(int(node_id))
