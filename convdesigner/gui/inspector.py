"""The inspector: the selected block's parameters as a form built from the catalogue's specs, its name, a summary.

Every change goes through the undo stack as a command; the form re-reads the graph after each edit (and undo).
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from ..graph import Param
from ..graph.layers import fmt
from . import commands, style
from .canvas.scene import DesignScene

INT_LIMIT = 2**31 - 1


class FloatSpinBox(QDoubleSpinBox):
    """Shows 1e-05 and 0.5 alike without trailing zeros; keeps full precision for tiny ranges such as eps."""

    def __init__(self) -> None:
        super().__init__()
        self.setDecimals(12)

    def textFromValue(self, value: float) -> str:  # noqa: N802
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos


def param_editor(spec: Param) -> QWidget:
    """The widget for one parameter spec: spin box with the allowed range, combo box of choices, or check box."""
    if spec.type is bool:
        return QCheckBox()
    if spec.type is str:
        box = QComboBox()
        box.addItems(list(spec.choices or ()))
        return box
    if spec.type is int:
        box = QSpinBox()
        box.setRange(int(spec.min) if spec.min is not None else -INT_LIMIT,
                     int(spec.max) if spec.max is not None else INT_LIMIT)
        box.setKeyboardTracking(False)
        return box
    box = FloatSpinBox()
    box.setRange(spec.min if spec.min is not None else -1e12, spec.max if spec.max is not None else 1e12)
    span = box.maximum() - box.minimum()
    box.setSingleStep(0.01 if span <= 1 else 0.1)
    box.setKeyboardTracking(False)
    return box


def _set_value(widget: QWidget, value: Any) -> None:
    widget.blockSignals(True)
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        widget.setCurrentText(str(value))
    else:
        widget.setValue(value)
    widget.blockSignals(False)


class Inspector(QWidget):
    def __init__(self, scene: DesignScene, parent=None) -> None:
        super().__init__(parent)
        self.scene = scene
        self.node_id: int | None = None
        self.editors: dict[str, QWidget] = {}
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.name_edit = QLineEdit()
        self.name_edit.setToolTip("Block name: letters, digits, '_', '-' and '.'; unique in the network")
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {style.ERROR.name()}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.title)
        self.name_row = QWidget()
        name_form = QFormLayout(self.name_row)
        name_form.setContentsMargins(0, 0, 0, 0)
        name_form.addRow("Name", self.name_edit)
        layout.addWidget(self.name_row)
        layout.addWidget(self.form_host)
        layout.addWidget(self.error)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        self.name_edit.editingFinished.connect(self._rename)
        scene.selectionChanged.connect(self.rebuild)
        scene.changed.connect(self.refresh)
        self.rebuild()

    # ------------------------------------------------------------------------------------------- building
    def rebuild(self) -> None:
        """A new selection: build the form for it (only when the selected block changes)."""
        if not isValid(self.scene):  # the scene emits selectionChanged while it is being destroyed
            return
        ids = self.scene.selected_node_ids()
        node_id = ids[0] if len(ids) == 1 else None
        if node_id == self.node_id and node_id is not None and self.editors.keys() == set(
                self.scene.graph.node(node_id).params):
            return
        self.node_id = node_id
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self.error.clear()
        if node_id is not None:
            spec = self.scene.graph.node(node_id).spec
            for p in spec.params:
                editor = param_editor(p)
                editor.setToolTip(p.help + (f" ({p.min:g} – {p.max:g})" if p.min is not None and p.max is not None
                                            else ""))
                label = QLabel(p.name)
                label.setToolTip(p.help)
                self.form.addRow(label, editor)
                self.editors[p.name] = editor
                self._connect(editor, p.name)
        self.refresh()

    def _connect(self, editor: QWidget, name: str) -> None:
        if isinstance(editor, QCheckBox):
            editor.toggled.connect(lambda v: self.set_param(name, bool(v)))
        elif isinstance(editor, QComboBox):
            editor.currentTextChanged.connect(lambda v: self.set_param(name, v))
        else:
            editor.valueChanged.connect(lambda v: self.set_param(name, v))

    def refresh(self) -> None:
        """Re-read the graph: values, name and summary of the shown block (after an edit, undo or redo)."""
        graph = self.scene.graph
        if self.node_id is not None and self.node_id not in graph.nodes:
            self.node_id = None
            self.rebuild()
            return
        if self.node_id is None:
            count = len(self.scene.selected_node_ids())
            self.name_row.hide()
            self.title.setText(f"<b>{count} blocks selected</b>" if count else
                               "<b>No block selected</b><br>Click a block to edit its parameters; "
                               "drag kinds from the palette to add blocks.")
            info = self.scene.info
            self.summary.setText(f"Network: {len(graph.nodes)} blocks, {len(graph.edges)} wires<br>"
                                 f"Parameters: {style.count(info.total_params)}<br>"
                                 f"Mult-adds: {style.short_count(info.total_macs)}")
            return
        node = graph.node(self.node_id)
        self.name_row.show()
        self.title.setText(f"<b>{node.kind}</b> <span style='color:{style.MUTED_TEXT.name()}'>"
                           f"({node.spec.category})</span><br><small>{node.spec.help}</small>")
        if not self.name_edit.hasFocus():
            self.name_edit.setText(node.name)
        for name, editor in self.editors.items():
            _set_value(editor, node.params[name])
        self._enable_dependent(node.params)
        info = self.scene.info.nodes.get(self.node_id)
        ins = ", ".join(fmt(s) for s in info.input_shapes) if info and info.input_shapes else "—"
        out = fmt(info.output_shape) if info and info.output_shape else "—"
        rows = [("Input", ins), ("Output", out),
                ("Parameters", style.count(info.params) if info and info.output_shape else "—"),
                ("Mult-adds", style.short_count(info.macs) if info and info.output_shape else "—")]
        problems = [p for p in self.scene.info.problems if p.node_id == self.node_id]
        self.summary.setText("<table>" + "".join(f"<tr><td>{k}&nbsp;&nbsp;</td><td><b>{v}</b></td></tr>"
                                                 for k, v in rows) + "</table>"
                             + "".join(f"<p style='color:{style.problem_colour(p.severity).name()}'>{p.message}</p>"
                                       for p in problems))

    def _enable_dependent(self, params: dict) -> None:
        """Grey out the parameters that have no effect with the others' values (pad_h without explicit padding)."""
        for spec in self.scene.graph.node(self.node_id).spec.params:
            if spec.name in self.editors:
                self.editors[spec.name].setEnabled(spec.applies(params))

    # ------------------------------------------------------------------------------------------- edits
    def set_param(self, name: str, value: Any) -> None:
        if self.node_id is None or self.scene.graph.node(self.node_id).params[name] == value:
            return
        refusal = commands.push(self.scene.stack, commands.SetParam(self.scene.graph, self.scene.sync, self.node_id,
                                                                    name, value))
        self.error.setText(refusal or "")
        if refusal:
            self.refresh()

    def _rename(self) -> None:
        if self.node_id is None:
            return
        text = self.name_edit.text().strip()
        node = self.scene.graph.node(self.node_id)
        if text == node.name:
            return
        refusal = commands.push(self.scene.stack, commands.Rename(self.scene.graph, self.scene.sync, self.node_id,
                                                                  text))
        self.error.setText(refusal or "")
        if refusal:
            self.name_edit.setText(node.name)
