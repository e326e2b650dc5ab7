"""The Activations dock driven through a stand-in for the main window (a real engine thread, a session with the
members the window provides, a real canvas scene): load a picture from a file, a drop and the dataset, select
blocks of each kind, switch levels, hover a map, Grad-CAM and saliency, filters, the top-9 search, health badges
after an epoch that kills ReLUs, export and CSV."""
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QObject, QPointF, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import QDropEvent, QUndoStack
from PySide6.QtWidgets import QApplication

from convdesigner.data import load_dataset
from convdesigner.engine import compile
from convdesigner.engine.optimizers import make_optimizer
from convdesigner.engine.trainer import Trainer
from convdesigner.graph import build
from convdesigner.gui.canvas.scene import DesignScene
from convdesigner.gui.engine_thread import EngineThread
from convdesigner.gui.inspect import install_activations, show_inspection

TIMEOUT = 60000


class FakeSession(QObject):
    """What the window's training session offers the views."""

    weights_changed = Signal()

    def __init__(self, graph, data) -> None:
        super().__init__()
        self.net = compile(graph, seed=0)
        self.trained = False
        self._data = data
        self.refresh_batches = None

    def inspection_network(self):
        return self.net

    def data(self):
        return self._data

    def set_refresh_batches(self, n: int) -> None:
        self.refresh_batches = n


class FakeWindow:
    def __init__(self, data) -> None:
        self.scene = DesignScene(QUndoStack())
        self.scene.set_graph(build("lenet5"))
        self.engine = EngineThread()
        self.session = FakeSession(self.scene.graph, data)


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-sample", limit=64)


@pytest.fixture
def win(qtbot, mnist):
    w = FakeWindow(mnist)
    view = install_activations(w)
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    w.view = view
    yield w
    w.engine.shutdown()


@pytest.fixture
def digit(tmp_path, mnist):
    path = tmp_path / "digit.png"
    Image.fromarray(255 - mnist[1].images[0, 0]).save(path)  # black on white, as a user draws it
    return path


def node_id(w, name):
    return w.scene.graph.by_name(name).id


def loaded(qtbot, w, path):
    with qtbot.waitSignal(w.view.drawn, timeout=TIMEOUT):
        assert w.view.load_picture(path)
    return w.view


def test_picture_file_gives_top5_and_the_selected_blocks_output(qtbot, win, digit):
    view = loaded(qtbot, win, digit)
    assert "untrained weights" in view.status.text()
    assert view.top5.text().count("<tr>") == 5 and "%" in view.top5.text()
    assert view.x.shape == (1, 1, 28, 28) and view.pixels.shape == (28, 28)
    assert view.pixels[0, 0] == 0 and view.pixels.max() > 200  # inverted to white ink on black
    for name, maps in (("input", 1), ("conv1", 6), ("relu1", 6), ("pool1", 6), ("conv2", 16)):
        win.scene.select_nodes([node_id(win, name)])
        assert view.block == name and len(view.maps.boxes) == maps and not view.maps.is_flat
        np.testing.assert_array_equal(view.maps.values, view.result.outputs[name])
    for name in ("fc1", "flatten", "loss"):
        win.scene.select_nodes([node_id(win, name)])
        assert view.maps.is_flat and view.maps.bars is not None and view.maps.boxes == []
    assert view.timings["forward_s"] > 0 and view.timings["drawn_s"] >= view.timings["forward_s"]


def test_levels_hover_receptive_field_and_enlarge(qtbot, win, digit):
    view = loaded(qtbot, win, digit)
    win.scene.select_nodes([node_id(win, "conv1")])
    per_map = {tuple(item.getLevels()) for _, _, item in view.maps.boxes}
    view.levels.setCurrentText("shared")
    qtbot.wait(50)  # the grid is laid out before the cursor moves over it
    shared = {tuple(item.getLevels()) for _, _, item in view.maps.boxes}
    assert len(shared) == 1 and len(per_map) > 1
    values = view.maps.values
    assert shared.pop() == pytest.approx((values.min(), values.max()))
    view.maps.mouse_moved(view.maps.scene_pos_of(2, 5, 7))
    assert f"channel 2, (5, 7): {values[2, 5, 7]:.4g}" in view.hover.text()
    assert view.picture.outline.isVisible()
    assert view.picture.outline.rect() == QRectF(5, 3, 5, 5)  # conv1: 5×5 with padding 2
    view.maps.enlarge(2)
    assert [c for c, _, _ in view.maps.boxes] == [2]
    assert len(view.view_csv().split("\n\n")[0].strip().splitlines()) == 28  # the enlarged map's 28 rows
    view.maps.enlarge(-1)
    assert len(view.maps.boxes) == 6


def test_dataset_pick_and_a_dropped_file(qtbot, win, digit, mnist):
    view = win.view
    assert view.index.maximum() == len(mnist[1]) - 1
    view.index.setValue(3)
    with qtbot.waitSignal(view.drawn, timeout=TIMEOUT):
        view.pick_button.click()
    label = mnist[1].class_names[mnist[1].labels[3]]
    assert f"#3 (label {label})" in view.status.text()
    np.testing.assert_allclose(view.x, mnist[1].normalise(mnist[1].images[3:4]))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(digit))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(view.drawn, timeout=TIMEOUT):
        view.dropEvent(drop)
    assert view.source == "digit.png (fitted like an MNIST digit to 28×28)"
    view.fit.setCurrentText("centre-crop")
    with qtbot.waitSignal(view.drawn, timeout=TIMEOUT):
        assert view.load_picture(digit)
    assert view.source == "digit.png (centre-cropped to 28×28)" and view.source in view.status.text()
    mime.setUrls([QUrl.fromLocalFile(str(digit.with_suffix(".txt")))])
    assert view.dropped_picture(mime) is None
    assert not view.load_picture(digit.parent / "missing.png") and "file not found" in view.status.text()


def test_grad_cam_saliency_and_integrated_gradients(qtbot, win, digit):
    view = loaded(qtbot, win, digit)
    win.scene.select_nodes([node_id(win, "conv2")])
    view.tabs.setCurrentWidget(view.why)
    qtbot.waitUntil(lambda: view.why.result is not None, timeout=TIMEOUT)
    cam = view.why.result
    assert cam.heat.shape == (28, 28) and cam.heat.max() == pytest.approx(1.0) and cam.raw.shape == (10, 10)
    assert "Grad-CAM at block conv2" in view.why.note.text()
    assert view.why.picture.heat.isVisible()
    view.why.opacity.setValue(80)
    assert view.why.picture.heat.opacity() == pytest.approx(0.8)
    view.why.method.setCurrentText("Saliency")
    qtbot.waitUntil(lambda: view.why.result is not cam, timeout=TIMEOUT)
    assert view.why.result.raw.shape == (1, 28, 28) and "Saliency for class" in view.why.note.text()
    before = view.why.result
    view.why.cls.setCurrentIndex(1 + 4)  # class "4"
    qtbot.waitUntil(lambda: view.why.result is not before, timeout=TIMEOUT)
    assert view.why.result.cls == 4
    view.why.method.setCurrentText("Integrated gradients")
    qtbot.waitUntil(lambda: "Integrated" in view.why.note.text(), timeout=TIMEOUT)
    assert len(view.view_csv().split("\n\n")[0].strip().splitlines()) == 28


def test_filters_show_kernels_and_histograms(qtbot, win, digit):
    view = loaded(qtbot, win, digit)
    win.scene.select_nodes([node_id(win, "conv1")])
    view.tabs.setCurrentWidget(view.filters)
    qtbot.waitUntil(lambda: view.filters.result is not None and view.filters.result.block == "conv1",
                    timeout=TIMEOUT)
    f = view.filters.result
    assert f.kernels.shape == (6, 1, 5, 5) and not f.rgb and f.arrays[0].grad_std > 0
    assert "kernel 6×1×5×5: mean" in view.filters.note.text() and "gradient mean" in view.filters.note.text()
    win.scene.select_nodes([node_id(win, "relu1")])
    qtbot.waitUntil(lambda: view.filters.result.block == "relu1", timeout=TIMEOUT)
    assert "has no weights" in view.filters.note.text()


def test_top_nine_images_with_progress(qtbot, win, digit, mnist):
    view = loaded(qtbot, win, digit)
    win.scene.select_nodes([node_id(win, "conv2")])
    view.tabs.setCurrentWidget(view.excites)
    assert view.excites.channel.maximum() == 15
    view.ask_top_images(3)
    qtbot.waitUntil(lambda: len(view.excites.hits) == 9, timeout=TIMEOUT)
    hits = view.excites.hits
    assert view.excites.progress.value() == view.excites.progress.maximum() == len(mnist[1])
    assert [h.value for h in hits] == sorted((h.value for h in hits), reverse=True)
    assert all(h.box[2] - h.box[0] <= 13 for h in hits)  # conv2 sees at most 14×14 pixels
    assert view.view_csv().startswith("index,label,value")


def test_health_badges_after_an_epoch_that_kills_the_relus(qtbot, win, mnist):
    view = win.view
    net = win.session.net

    def kill_and_train():
        state = net.state_dict()
        state["conv1"]["bias"][...] = -1e4
        net.load_state_dict(state)
        Trainer(net, make_optimizer("sgd", net.parameters(), 0.01), mnist[0], mnist[1], batch_size=32).fit(1)

    with qtbot.waitSignal(view.health_updated, timeout=TIMEOUT):
        win.engine.submit(kill_and_train, done=lambda _: win.session.weights_changed.emit())
    relu1 = win.scene.blocks[node_id(win, "relu1")]
    assert relu1.health_badge is not None and relu1.health_badge.text == "dead 100%"
    assert "dead units" in relu1.health_badge.toolTip()
    conv1 = win.scene.blocks[node_id(win, "conv1")]
    assert conv1.health_badge is not None and "vanishing" in conv1.health_badge.toolTip()
    assert win.scene.blocks[node_id(win, "fc3")].health_badge is None
    view.show_health({})
    assert relu1.health_badge is None


def test_refresh_export_copy_and_the_headless_helper(qtbot, win, digit, tmp_path):
    view = loaded(qtbot, win, digit)
    view.refresh.setValue(50)
    assert win.session.refresh_batches == 50
    win.session.trained = True
    with qtbot.waitSignal(view.drawn, timeout=TIMEOUT):
        win.session.weights_changed.emit()
    assert "trained weights" in view.status.text() and "untrained" not in view.status.text()
    assert view.export_png(tmp_path / "view.png")
    with Image.open(tmp_path / "view.png") as image:
        assert image.size[0] > 500
    view.copy_csv()
    assert QApplication.clipboard().text() == view.view_csv() != ""
    assert show_inspection(view, str(digit), "conv1", gradcam=True) is None
    assert view.block == "conv1" and view.why.result is not None
    assert "no block 'conv9'" in show_inspection(view, str(digit), "conv9")
    assert "file not found" in show_inspection(view, str(tmp_path / "nope.png"), "conv1")
