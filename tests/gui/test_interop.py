"""File › Import and File › Export in the window: an imported network appears with its weights; exports run on the
engine thread and write files that read back as the design on the canvas."""
import numpy as np
import pytest

from convdesigner.engine import compile
from convdesigner.graph import TEMPLATES
from convdesigner.gui.interop import export_onnx_dialog, export_pytorch_dialog, import_file, install_interop_menu

pytest.importorskip("onnx")
from convdesigner.io.onnx_export import export_onnx  # noqa: E402
from convdesigner.io.onnx_import import read_onnx  # noqa: E402


@pytest.fixture
def interop(window):
    install_interop_menu(window)
    return window


def test_the_menu_entries_sit_in_the_file_menu(interop):
    file_menu = next(a.menu() for a in interop.menuBar().actions() if a.text() == "&File")
    texts = [a.text() for a in file_menu.actions()]
    assert texts.index("&Import ONNX or Keras…") < texts.index("E&xport") < texts.index("Open &Image…")
    assert [a.text() for a in interop.export_menu.actions()] == ["&ONNX…", "&PyTorch…"]


def test_an_onnx_file_opens_as_an_unsaved_design_with_its_weights(interop, tmp_path):
    graph = TEMPLATES["seed-cnn"].build()
    weights = compile(graph, seed=5).state_dict()
    export_onnx(tmp_path / "net.onnx", graph, weights)
    assert interop.open_file(tmp_path / "net.onnx", ask=False)  # File › Open imports an ONNX file
    assert interop.path is None and interop.title == "net (imported)"
    assert {n.name for n in interop.scene.graph.nodes.values()} == {n.name for n in graph.nodes.values()}
    assert len({n.pos for n in interop.scene.graph.nodes.values()}) == len(graph.nodes)  # laid out
    np.testing.assert_array_equal(interop.trained.weights["conv1"]["kernel"], weights["conv1"]["kernel"])


def test_a_bad_file_is_a_message(interop, tmp_path, dialogs):
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    assert not import_file(interop, tmp_path / "bad.onnx", ask=False)
    assert dialogs.shown[-1][:2] == ("critical", "Cannot import file") and "bad.onnx" in dialogs.shown[-1][2]


def test_exports_run_on_the_engine_thread_and_read_back(interop, qtbot, tmp_path):
    interop.open_template("lenet5")
    export_onnx_dialog(interop, str(tmp_path / "lenet.onnx"))
    qtbot.waitUntil(lambda: "Exported lenet.onnx" in interop.statusBar().currentMessage(), timeout=60000)
    assert "initial weights" in interop.statusBar().currentMessage()
    model, _ = read_onnx(tmp_path / "lenet.onnx")
    assert [n.kind for n in model.graph.nodes.values()] == [n.kind for n in interop.scene.graph.nodes.values()]
    pytest.importorskip("torch")
    export_pytorch_dialog(interop, str(tmp_path / "pkg"))
    qtbot.waitUntil(lambda: "torchrun" in interop.statusBar().currentMessage(), timeout=60000)
    assert (tmp_path / "pkg" / "model.py").exists() and (tmp_path / "pkg" / "start.h5").exists()
