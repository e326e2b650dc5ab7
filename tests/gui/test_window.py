"""The window around the canvas: templates, palette, files, unsaved changes, settings and the screenshot option."""
import itertools
import json

import numpy as np
import pytest
from drive import node
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from convdesigner.graph import TEMPLATES, build
from convdesigner.gui.app import SCREENSHOT_SIZE, run_app
from convdesigner.gui.canvas.block_item import HEIGHT, WIDTH
from convdesigner.gui.main_window import MainWindow
from convdesigner.gui.palette import KIND_ROLE
from convdesigner.io.h5model import expected_arrays, load_model, save_model


def test_every_template_opens_laid_out_without_overlaps(window):
    for key in TEMPLATES:
        assert window.open_template(key)
        g = window.scene.graph
        assert set(window.scene.blocks) == set(g.nodes) and set(window.scene.wires) == set(g.edges)
        assert window.windowTitle().startswith(TEMPLATES[key].title)
        rows = sorted((p for p in (n.pos for n in g.nodes.values())), key=lambda p: p[1])
        for a, b in itertools.combinations(rows, 2):
            if b[1] - a[1] >= HEIGHT:
                continue
            assert abs(a[0] - b[0]) >= WIDTH, f"{key}: blocks overlap at {a} and {b}"
        assert window.scene.info.ok and not window.stack.count()


def test_templates_menu_lists_every_template(window):
    keys = [a.data() for a in window.templates_menu.actions() if a.data()]
    assert sorted(keys) == sorted(TEMPLATES)


def test_palette_groups_searches_and_carries_kinds(window):
    palette = window.palette
    palette.search.setText("pool")
    assert palette.visible_kinds() == ["MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"]
    palette.search.setText("")
    conv = palette.categories["Convolution"].child(0)
    assert conv.data(0, KIND_ROLE) == "Conv2D" and "slides learned filters" in conv.toolTip(0)
    assert bytes(palette.tree.mimeData([conv]).data("application/x-convdesigner-kind")) == b"Conv2D"
    window.new_design()
    palette.kind_activated.emit("Dense")  # double-click: added in the middle of the view
    assert [n.kind for n in window.scene.graph.nodes.values()] == ["Input", "Dense"]


def test_save_json_and_h5_then_reopen(lenet, tmp_path):
    lenet.scene.select_nodes([node(lenet, "fc1").id])
    lenet.inspector.editors["units"].setValue(64)
    for name in ("net.json", "net.h5"):
        assert lenet.save_to(tmp_path / name)
        assert not lenet.isWindowModified() and lenet.windowTitle().startswith(name)
        saved = lenet.scene.graph.to_dict()
        lenet.open_template("seed-cnn")
        assert lenet.open_file(tmp_path / name)
        assert lenet.scene.graph.to_dict() == saved
        assert node(lenet, "fc1").params["units"] == 64
    assert json.loads((tmp_path / "net.json").read_text())["format"] == "convdesigner-graph"
    assert QSettings().value("recent_files")[:2] == [str(tmp_path / "net.h5"), str(tmp_path / "net.json")]


def test_trained_weights_kept_while_they_fit(window, tmp_path, dialogs):
    graph = build("lenet5")
    weights = {b: {a: np.full(s.shape, 0.5, np.float32) for a, s in arrays.items()}
               for b, arrays in expected_arrays(graph).items()}
    save_model(tmp_path / "trained.h5", graph, weights, history=[{"epoch": 1, "train_loss": 0.3}])
    assert window.open_file(tmp_path / "trained.h5")
    window.scene.select_nodes([node(window, "loss").id])
    window.inspector.editors["label_smoothing"].setValue(0.1)  # no array changes shape
    assert window.save()
    kept = load_model(tmp_path / "trained.h5")
    assert kept.graph.by_name("loss").params["label_smoothing"] == 0.1
    assert kept.history == [{"epoch": 1, "train_loss": 0.3}]
    assert np.array_equal(kept.weights["conv1"]["kernel"], weights["conv1"]["kernel"])

    window.scene.select_nodes([node(window, "conv1").id])
    dialogs.answers = [QMessageBox.StandardButton.Yes]  # keep the weights of the blocks the edit leaves alone
    window.inspector.editors["filters"].setValue(8)
    assert dialogs.shown[-1][1] == "Keep the trained weights?" and window.training.keep_weights
    dialogs.answers = [QMessageBox.StandardButton.Cancel]
    assert not window.save()  # the user is told and keeps the choice
    assert "conv1" in dialogs.shown[-1][2] and load_model(tmp_path / "trained.h5").weights is not None
    dialogs.answers = [QMessageBox.StandardButton.Save]
    assert window.save()
    assert load_model(tmp_path / "trained.h5").weights is None


def test_bad_file_shows_a_message_and_keeps_the_design(lenet, tmp_path, dialogs):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not a model at all")
    before = lenet.scene.graph.to_dict()
    assert not lenet.open_file(bad)
    kind, title, text = dialogs.shown[-1]
    assert kind == "critical" and "broken.h5" in text and "not an HDF5 file" in text
    assert lenet.scene.graph.to_dict() == before and lenet.windowTitle().startswith("LeNet-5")


def test_unsaved_changes_prompt(lenet, dialogs):
    lenet.scene.select_nodes([node(lenet, "fc1").id])
    lenet.inspector.editors["units"].setValue(50)
    dialogs.answers = [QMessageBox.StandardButton.Cancel]
    assert not lenet.open_template("vgg-small")
    assert node(lenet, "fc1").params["units"] == 50
    dialogs.answers = [QMessageBox.StandardButton.Discard]
    assert lenet.open_template("vgg-small")
    assert lenet.windowTitle().startswith("VGG (small)")


def test_geometry_and_recent_files_persist(qtbot, tmp_path):
    first = MainWindow()
    qtbot.addWidget(first)
    first.resize(760, 580)  # within the offscreen screen, which restoreGeometry clamps to
    first.show()
    first.save_to(tmp_path / "a.json")
    assert first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (760, 580)
    assert second.recent_files() == [str(tmp_path / "a.json")]
    second._fill_recent()
    assert [a.text() for a in second.recent_menu.actions()] == ["a.json"]


@pytest.mark.parametrize("template", ["lenet5"])
def test_screenshot_option_writes_a_png(qapp, tmp_path, template):
    out = tmp_path / "shot.png"
    assert run_app(template=template, screenshot=str(out)) == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == SCREENSHOT_SIZE
    assert run_app(template="no-such-net", screenshot=str(out)) == 2


def test_screenshot_of_a_model_file_and_of_a_bad_one(qapp, tmp_path, capsys):
    design = tmp_path / "resnet.json"
    design.write_text(json.dumps(build("resnet-small").to_dict()))
    out = tmp_path / "shot.png"
    assert run_app(model=str(design), screenshot=str(out)) == 0 and out.stat().st_size > 10_000
    bad = tmp_path / "bad.h5"
    bad.write_text("nonsense")
    assert run_app(model=str(bad), screenshot=str(tmp_path / "never.png")) == 2
    assert "bad.h5" in capsys.readouterr().err and not (tmp_path / "never.png").exists()
