"""The training options form, generated from the one description of the training settings (engine/settings.py):
a spin box with the setting's range, a combo box of its choices, a check box; an optional setting gets a check box
that turns it on. Nothing here lists optimizers, schedules or augmentations itself."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...data.augment import OPERATIONS, Augment
from ...engine import settings as training_settings
from ..inspector import INT_LIMIT, FloatSpinBox

FORM_GROUPS = ("Run", "Optimizer", "Schedule", "Regularisation")  # "Data" settings sit in the data box


def device_reason(name: str) -> str | None:
    """Why a device cannot be used here (None: it can), from the engine."""
    from ... import engine
    status = getattr(engine, "device_status", None)
    if status is None:
        return None if name == "cpu" else "the CUDA backend is not part of this version of ConvDesigner"
    available, reason = status(name)
    return None if available else reason


class SettingEditor(QWidget):
    """One setting's editor; ``value()`` is None for an optional setting that is off."""

    changed = Signal()

    def __init__(self, setting: training_settings.Setting) -> None:
        super().__init__()
        self.setting = setting
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.enable: QCheckBox | None = None
        if setting.optional:
            self.enable = QCheckBox()
            self.enable.setToolTip(f"Set {setting.label.lower()} (off: the default, or none)")
            self.enable.toggled.connect(self._toggled)
            row.addWidget(self.enable)
        self.editor = self._make_editor(setting)
        self.editor.setToolTip(setting.help)
        row.addWidget(self.editor, 1)
        if self.enable is not None:
            self.editor.setEnabled(False)

    def _make_editor(self, s: training_settings.Setting) -> QWidget:
        if s.name == "augment":
            editor = AugmentEditor()
            editor.changed.connect(self.changed)
        elif s.type is bool:
            editor = QCheckBox()
            editor.toggled.connect(self.changed)
        elif s.choices is not None:
            editor = QComboBox()
            editor.addItems(list(s.choices()))
            editor.setEditable(s.editable)
            if s.name == "device":
                self._grey_out_devices(editor)
            editor.currentTextChanged.connect(self.changed)
        elif s.type is int:
            editor = QSpinBox()
            editor.setRange(int(s.minimum) if s.minimum is not None else -INT_LIMIT,
                            int(s.maximum) if s.maximum is not None else INT_LIMIT)
            editor.valueChanged.connect(self.changed)
        else:
            editor = FloatSpinBox()
            low = s.minimum if s.minimum is not None else -1e12
            editor.setRange(low + (1e-12 if s.above else 0), s.maximum - 1e-9 if s.maximum is not None and s.below
                            else (s.maximum if s.maximum is not None else 1e12))
            editor.valueChanged.connect(self.changed)
        return editor

    def _grey_out_devices(self, combo: QComboBox) -> None:
        model = combo.model()
        assert isinstance(model, QStandardItemModel)
        for row in range(combo.count()):
            reason = device_reason(combo.itemText(row))
            if reason:
                item = model.item(row)
                item.setEnabled(False)
                item.setToolTip(reason)
                combo.setItemText(row, f"{combo.itemText(row)} (unavailable)")
        self.device_note = "; ".join(filter(None, (device_reason(d) for d in training_settings.DEVICES)))

    def _toggled(self, on: bool) -> None:
        self.editor.setEnabled(on)
        self.changed.emit()

    def value(self) -> Any:
        if self.enable is not None and not self.enable.isChecked():
            return None
        e = self.editor
        if isinstance(e, AugmentEditor):
            return e.spec()
        if isinstance(e, QCheckBox):
            return e.isChecked()
        if isinstance(e, QComboBox):
            return e.currentText().split(" (unavailable)")[0].strip()
        if isinstance(e, QSpinBox):
            return e.value()
        return float(e.value())

    def set_value(self, value: Any) -> None:
        if self.enable is not None:
            self.enable.setChecked(value is not None)
        if value is None:
            return
        e = self.editor
        if isinstance(e, AugmentEditor):
            e.set_spec(str(value))
        elif isinstance(e, QCheckBox):
            e.setChecked(bool(value))
        elif isinstance(e, QComboBox):
            index = e.findText(str(value))
            if index >= 0:
                e.setCurrentIndex(index)
            elif e.isEditable():
                e.setEditText(str(value))
        else:
            e.setValue(value)


class AugmentEditor(QWidget):
    """One check box and strength per augmentation the data package offers."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.boxes: dict[str, tuple[QCheckBox, FloatSpinBox]] = {}
        for name, (default, meaning) in OPERATIONS.items():
            box = QCheckBox(name)
            box.setObjectName(f"augment-{name}")
            box.setToolTip(meaning)
            strength = FloatSpinBox()
            strength.setRange(0, 1 if name == "flip" else 360)
            strength.setValue(default if default is not None else 2)
            strength.setToolTip(meaning)
            strength.setMaximumWidth(64)
            box.toggled.connect(self.changed)
            strength.valueChanged.connect(self.changed)
            layout.addWidget(box)
            layout.addWidget(strength)
            self.boxes[name] = (box, strength)
        layout.addStretch(1)

    def spec(self) -> str:
        return ",".join(f"{name}={strength.value():g}" for name, (box, strength) in self.boxes.items()
                        if box.isChecked())

    def set_spec(self, spec: str) -> None:
        chosen = dict(Augment(spec).operations) if spec else {}
        for name, (box, strength) in self.boxes.items():
            box.setChecked(name in chosen)
            if chosen.get(name) is not None:
                strength.setValue(chosen[name])


class SettingsForm(QWidget):
    """Every setting of FORM_GROUPS, grouped; ``values()`` gives a dict the engine's settings module checks."""

    changed = Signal()

    def __init__(self, groups: tuple[str, ...] = FORM_GROUPS, skip: set[str] = frozenset(), boxed: bool = True) -> None:
        super().__init__()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.editors: dict[str, SettingEditor] = {}
        for group in groups:
            box = QGroupBox(group) if boxed else QWidget()
            form = QFormLayout(box)
            if not boxed:
                form.setContentsMargins(0, 0, 0, 0)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            for setting in training_settings.SETTINGS:
                if setting.group != group or setting.name in skip:
                    continue
                editor = SettingEditor(setting)
                editor.setObjectName(f"setting-{setting.name}")
                editor.changed.connect(self.changed)
                self.editors[setting.name] = editor
                form.addRow(setting.label, editor)
                form.labelForField(editor).setToolTip(setting.help)
            outer.addWidget(box)
        outer.addStretch(1)

    def values(self) -> dict:
        return {name: editor.value() for name, editor in self.editors.items()}

    def set_values(self, values: dict) -> None:
        self.blockSignals(True)
        try:
            for name, value in values.items():
                if name in self.editors:
                    self.editors[name].set_value(value)
        finally:
            self.blockSignals(False)
        self.changed.emit()
