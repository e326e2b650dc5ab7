"""The inspector's form is generated from the parameter specs and edits the graph through the undo stack."""
from drive import node
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox

from convdesigner.graph import KINDS


def test_form_follows_the_specs(lenet):
    lenet.scene.select_nodes([node(lenet, "conv1").id])
    editors = lenet.inspector.editors
    assert list(editors) == [p.name for p in KINDS["Conv2D"].params]
    assert isinstance(editors["filters"], QSpinBox)
    assert (editors["filters"].minimum(), editors["filters"].maximum()) == (1, 65536)
    assert isinstance(editors["padding"], QComboBox)
    assert [editors["padding"].itemText(i) for i in range(3)] == ["valid", "same", "explicit"]
    assert isinstance(editors["bias"], QCheckBox) and editors["bias"].isChecked()
    assert editors["pad_h"].value() == 2 and editors["pad_h"].isEnabled()
    lenet.scene.select_nodes([node(lenet, "loss").id])
    smoothing = lenet.inspector.editors["label_smoothing"]
    assert isinstance(smoothing, QDoubleSpinBox) and smoothing.maximum() == 0.99
    assert "Input" in lenet.inspector.summary.text() and "10" in lenet.inspector.summary.text()


def test_editing_a_parameter_changes_the_shapes(lenet):
    conv1 = node(lenet, "conv1")
    lenet.scene.select_nodes([conv1.id])
    assert "61,706" in lenet.params_label.text()
    lenet.inspector.editors["filters"].setValue(8)
    assert lenet.scene.blocks[conv1.id]._lines[3] == "8×28×28"
    assert "8×28×28" in lenet.inspector.summary.text()
    # conv1 gains 2×(5×5+1) weights and conv2 gains 16×2×5×5
    assert lenet.scene.info.total_params == 61_706 + 2 * 26 + 16 * 2 * 25
    assert f"{61_706 + 52 + 800:,}" in lenet.params_label.text()
    lenet.inspector.editors["padding"].setCurrentText("valid")
    assert lenet.scene.blocks[conv1.id]._lines[3] == "8×24×24"
    assert not lenet.inspector.editors["pad_h"].isEnabled()
    lenet.stack.undo()
    lenet.stack.undo()
    assert lenet.scene.blocks[conv1.id]._lines[3] == "6×28×28"
    assert lenet.inspector.editors["filters"].value() == 6


def test_rename_refuses_a_taken_name(lenet):
    fc1 = node(lenet, "fc1")
    lenet.scene.select_nodes([fc1.id])
    lenet.inspector.name_edit.setText("conv1")
    lenet.inspector.name_edit.editingFinished.emit()
    assert fc1.name == "fc1" and "already called 'conv1'" in lenet.inspector.error.text()
    assert lenet.stack.count() == 0
    lenet.inspector.name_edit.setText("hidden")
    lenet.inspector.name_edit.editingFinished.emit()
    assert fc1.name == "hidden" and lenet.scene.blocks[fc1.id]._lines[0] == "hidden"


def test_status_bar_counts_and_memory_for_the_batch(lenet, qtbot):
    info = lenet.scene.info
    lenet.batch_spin.setValue(256)
    mib = info.activation_bytes(256) / (1 << 20)
    assert mib > 1
    assert f"{mib:.1f} MB" in lenet.memory_label.text()
    assert "429 k" in lenet.macs_label.text()
    qtbot.waitUntil(lambda: "mnist-sample (8,000 train / 2,000 val)" in lenet.data_label.text(), timeout=20000)
