"""The training panel as a user drives it: data, options, Train / Pause / Stop / Continue, curves, confusion matrix,
gallery, runs, saving and reopening, a diverging run, and Train refused with its reason. Runs use a few hundred
MNIST digits so that each takes a second or two."""
import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from convdesigner.engine import settings as training_settings


def wait_for_data(qtbot, window):
    qtbot.waitUntil(lambda: window.session.data() is not None and window.training.readiness() is None, timeout=20000)


def train(qtbot, window, continue_run=False, timeout=60000):
    button = window.training.continue_button if continue_run else window.training.train_button
    assert button.isEnabled(), window.training.reason.text()
    with qtbot.waitSignal(window.session.run_ended, timeout=timeout) as ended:
        button.click()
    return ended.args  # reason, outcome


@pytest.fixture
def small(lenet, qtbot):
    """LeNet-5 on the first 192 digits of each part, batch 32, one epoch."""
    lenet.training.data_form.set_values({"limit": 192})
    lenet.training.form.set_values({"epochs": 1, "batch_size": 32})
    wait_for_data(qtbot, lenet)
    assert len(lenet.session.data()[0]) == 192
    return lenet


def test_the_defaults_come_from_the_templates_recipe_and_the_settings_description(lenet, qtbot):
    values = lenet.training.values()
    assert values["optimizer"] == "adam" and values["lr"] == pytest.approx(2e-3) and values["batch_size"] == 32
    assert values["schedule"] == "cosine" and values["augment"] == "shift=2,rotate=10" and values["epochs"] == 5
    form = lenet.training.form.editors
    combo = form["optimizer"].editor
    assert [combo.itemText(i) for i in range(combo.count())] == list(training_settings.BY_NAME["optimizer"].choices())
    device = form["device"].editor
    assert device.model().item(1).isEnabled() is False and device.model().item(1).toolTip()  # CUDA, with why
    wait_for_data(qtbot, lenet)
    assert "mnist-sample" in lenet.training.data_info.text() and lenet.training.preview_layout.count() >= 10


def test_train_fills_the_curves_confusion_matrix_and_runs(small, qtbot):
    reason, outcome = train(qtbot, small)
    assert outcome == "completed" and reason == "completed 1 epoch"
    plots = small.training.plots
    assert plots.batch_loss.n == 6 and plots.epoch_train.n == 1 and plots.val_acc.n == 1 and plots.rates.n == 6
    qtbot.waitUntil(lambda: plots.smooth_item.getData()[0] is not None and len(plots.smooth_item.getData()[0]) == 6)
    matrix = small.training.confusion.matrix
    assert matrix.shape == (10, 10) and matrix.sum() == 192
    assert small.training.runs_view.list.count() == 1
    assert "Validation accuracy" in small.training.status.text()
    assert small.trained is not None and small.isWindowModified()


def test_pause_stop_and_continue_equal_a_run_straight_through(small, qtbot):
    small.training.form.set_values({"epochs": 2, "batch_size": 16})  # 12 batches an epoch
    train(qtbot, small)  # run 1, straight through
    straight = [r["train_loss"] for r in small.session.runs[0].history]
    batches, while_paused = [], []
    panel = small.training

    def look():
        while_paused.append((len(batches), panel.pause_button.text()))

    def on_batch(info):
        batches.append(info["batch"])
        if len(batches) in (2, 5):
            panel.pause_button.click()  # the batch already running finishes, then nothing runs
            then = panel.pause_button.click if len(batches) == 2 else panel.stop_button.click
            QTimer.singleShot(300, look)
            # the click scheduled from the second look: timers overdue together (a stalled event loop) may fire in
            # any order, which once let the resume come before the look
            QTimer.singleShot(600, lambda: (look(), QTimer.singleShot(50, then)))

    # in step with the engine thread: it waits for each batch to be handled here (a tiny batch takes ~2 ms)
    small.session.batch_end.connect(on_batch, Qt.ConnectionType.BlockingQueuedConnection)
    reason, outcome = train(qtbot, small)  # run 2: paused, resumed, paused, stopped while paused
    small.session.batch_end.disconnect(on_batch)
    assert while_paused == [(2, "Resume"), (2, "Resume"), (5, "Resume"), (5, "Resume")]
    assert outcome == "stopped" and reason.startswith("stopped during epoch 1 after batch 5")
    assert small.session.runs[1].history == [] and small.training.continue_button.isEnabled()
    reason, outcome = train(qtbot, small, continue_run=True)  # finishes epoch 1, then epoch 2
    assert outcome == "completed"
    assert [r["train_loss"] for r in small.session.runs[1].history] == straight
    assert len(small.session.runs) == 2 and small.training.runs_view.table.columnCount() == 2
    assert small.training.plots.earlier  # run 1 drawn muted beneath run 2


def test_a_confusion_cell_opens_its_gallery_most_confident_mistakes_first(small, qtbot):
    train(qtbot, small)
    evaluation = small.training.evaluation
    wrong = np.argwhere((evaluation.confusion > 0) & ~np.eye(10, dtype=bool))
    t, p = (int(v) for v in wrong[0])
    gallery = small.training.open_gallery(t, p)
    assert len(gallery.tiles) == evaluation.confusion[t, p]
    shown = [float(tile.text().split("(")[1].rstrip("%)")) for tile in gallery.tiles]
    assert shown == sorted(shown, reverse=True)
    gallery.close()


def test_history_and_settings_come_back_with_the_file(small, qtbot, tmp_path, dialogs):
    small.training.form.set_values({"batch_size": 16, "seed": 3})
    train(qtbot, small)
    path = tmp_path / "lenet.h5"
    assert small.save_to(path)
    assert not small.isWindowModified()
    small.open_template("seed-cnn")
    assert small.training.values()["batch_size"] == 64
    assert small.open_file(path)
    assert small.training.values()["batch_size"] == 16 and small.training.values()["seed"] == 3
    assert small.training.plots.epoch_train.n == 1 and small.training.runs_view.list.count() == 1
    assert "Trained 1 epoch: validation accuracy" in small.training.status.text()
    wait_for_data(qtbot, small)
    assert small.training.continue_button.isEnabled()
    small.training.form.set_values({"epochs": 1})
    reason, outcome = train(qtbot, small, continue_run=True)  # exactly as `convdesigner train --resume`
    assert outcome == "completed", reason
    assert len(small.session.runs[0].history) == 2


def test_a_diverging_run_stops_with_advice(small, qtbot, dialogs):
    small.training.form.set_values({"optimizer": "sgd", "lr": 1e4})
    reason, outcome = train(qtbot, small)
    assert outcome == "diverged" and "lower the learning rate" in reason
    assert dialogs.shown[-1][:2] == ("critical", "Training stopped")
    assert small.training.train_button.isEnabled()


def test_train_is_refused_with_its_reason_and_the_fix_is_one_undoable_edit(lenet, qtbot):
    wait_for_data(qtbot, lenet)
    lenet.training.set_data_spec("shapes")
    qtbot.waitUntil(lambda: lenet.session.data() is not None and lenet.session.data()[0].name == "shapes",
                    timeout=20000)
    panel = lenet.training
    assert not panel.train_button.isEnabled()
    assert "takes 1×28×28 images but shapes has 3×32×32" in panel.reason.text()
    assert any("shapes has 3×32×32" in lenet.problems.item(i).text() for i in range(lenet.problems.count()))
    assert "does not fit" in lenet.data_label.text()
    assert panel.fit_button.isVisible()
    panel.fit_button.click()
    assert panel.train_button.isEnabled() and panel.readiness() is None
    assert lenet.scene.graph.inputs()[0].params["channels"] == 3
    lenet.stack.undo()
    assert lenet.scene.graph.inputs()[0].params["channels"] == 1 and not panel.train_button.isEnabled()


def test_a_graph_with_errors_cannot_train(lenet, qtbot):
    wait_for_data(qtbot, lenet)
    conv = next(n for n in lenet.scene.graph.nodes.values() if n.name == "conv2")
    lenet.scene.graph.set_params(conv.id, kernel_h=30, kernel_w=30, padding="valid")  # larger than its 14×14 input
    lenet.scene.sync()
    assert not lenet.training.train_button.isEnabled()
    assert "Fix the" in lenet.training.reason.text()


def test_closing_during_training_asks_then_stops_between_batches(small, qtbot, dialogs):
    small.training.form.set_values({"epochs": 50})
    with qtbot.waitSignal(small.session.batch_end, timeout=30000):
        small.training.train_button.click()
    dialogs.answers = [QMessageBox.StandardButton.No]
    small.close()
    assert small.isVisible() and small.session.running  # "No": keeps training
    dialogs.answers = [QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.Discard]
    small.close()
    assert not small.session.running and not small.engine.isRunning()
    assert [d[1] for d in dialogs.shown[-2:]] == ["Training is running", "Unsaved changes"]
