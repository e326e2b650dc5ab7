"""File › Import (ONNX or Keras files) and File › Export › ONNX…/PyTorch… in the designer window.

:func:`install_interop_menu` adds the entries to a MainWindow. Imports become a new, unsaved design with the file's
weights (saving asks for a model file name, so the .onnx or .keras file is never overwritten). Exports run on the
engine thread, because they compile the network and compare its outputs, with the weights the window holds now:
those being trained, those of the opened file, or (an untrained design) fresh initial ones.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from ..io.h5model import ModelFile, ModelFileError
from ..io.keras_import import read_keras
from ..io.onnx_export import export_onnx
from ..io.onnx_import import read_onnx
from ..io.pytorch_export import export_pytorch

IMPORT_FILTER = "ONNX or Keras model (*.onnx *.keras *.h5);;ONNX (*.onnx);;Keras (*.keras *.h5);;All files (*)"
READERS = {".onnx": read_onnx, ".keras": read_keras, ".h5": read_keras}
FOREIGN = (".onnx", ".keras")  # suffixes File › Open imports (a .h5 is a ConvDesigner model there)


def install_interop_menu(window) -> None:
    """Add File › Import ONNX or Keras… and File › Export › ONNX…/PyTorch… to ``window``, before Open Image (its
    ``open_file`` imports .onnx and .keras files through :func:`import_file`)."""
    file_menu = next(a.menu() for a in window.menuBar().actions()
                     if a.menu() is not None and window.open_image_action in a.menu().actions())
    window.import_action = QAction("&Import ONNX or Keras…", window)
    window.import_action.setStatusTip("Open a network made elsewhere (.onnx, .keras, Keras .h5) with its weights")
    window.import_action.triggered.connect(lambda: import_dialog(window))
    export_menu = QMenu("E&xport", file_menu)
    window.export_onnx_action = export_menu.addAction("&ONNX…", lambda: export_onnx_dialog(window))
    window.export_pytorch_action = export_menu.addAction("&PyTorch…", lambda: export_pytorch_dialog(window))
    before = window.open_image_action
    file_menu.insertAction(before, window.import_action)
    file_menu.insertMenu(before, export_menu)
    file_menu.insertSeparator(before)
    window.export_menu = export_menu


def is_foreign(path: str | Path) -> bool:
    """Whether File › Open should import ``path`` (an ONNX or Keras file) rather than read it as a design."""
    return Path(path).suffix.lower() in FOREIGN


def import_file(window, path: str | Path, ask: bool = True) -> bool:
    """Show the network of an ONNX or Keras file as a new design; a bad file gets a message box."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        window.show_error("Cannot import file", f"{path.name}: give an ONNX file (.onnx) or a Keras model "
                                                f"(.keras, .h5)")
        return False
    if ask and not window.maybe_save():
        return False
    try:
        model, notes = reader(path)
    except ModelFileError as e:
        window.show_error("Cannot import file", str(e))
        return False
    window.set_graph(model.graph, f"{path.stem} (imported)", None, model, opened=model)
    window.statusBar().showMessage(" ".join([f"Imported {path.name} with its weights.", *notes]), 10000)
    return True


def import_dialog(window) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Import ONNX or Keras model", _folder(window), IMPORT_FILTER)
    if path:
        import_file(window, path)


def _folder(window) -> str:
    return str(window.path.parent) if window.path else str(window.settings.value("last_folder", str(Path.home())))


def _current_model(window, graph) -> ModelFile:
    """On the engine thread: ``graph`` (the canvas's, copied on the GUI thread) with the weights the window holds
    now (None: never trained)."""
    net = window.session.inspection_network()
    trained = window.session.trained or window.trained is not None
    kept = window.trained
    return ModelFile(graph, net.state_dict() if net is not None and trained else None,
                     trainer=kept.trainer if kept else None, dataset=kept.dataset if kept else None)


def _run(window, what: str, job) -> None:
    window.statusBar().showMessage(f"Exporting {what}…")

    def done(message: str) -> None:
        window.statusBar().showMessage(message, 12000)

    def failed(error: BaseException) -> None:
        window.statusBar().clearMessage()
        window.show_error(f"Cannot export {what}", str(error))

    window.engine.submit(job, done=done, failed=failed, tag=f"export-{what}")


def export_onnx_dialog(window, path: str | None = None) -> None:
    if path is None:
        start = str(Path(_folder(window)) / f"{Path(window.title).stem.replace(' ', '_')}.onnx")
        path, _ = QFileDialog.getSaveFileName(window, "Export ONNX", start, "ONNX (*.onnx)")
        if not path:
            return
        path = path if Path(path).suffix else path + ".onnx"

    graph = window.scene.graph.copy()

    def job() -> str:
        model = _current_model(window, graph)
        check = export_onnx(path, model.graph, model.weights)
        return f"Exported {Path(path).name}: {check.note}"
    _run(window, "ONNX", job)


def export_pytorch_dialog(window, folder: str | None = None) -> None:
    if folder is None:
        folder = QFileDialog.getExistingDirectory(window, "Export PyTorch package into folder", _folder(window))
        if not folder:
            return

    graph = window.scene.graph.copy()

    def job() -> str:
        notes = export_pytorch(folder, _current_model(window, graph), Path(window.title).stem)
        return f"Exported {'; '.join(notes)} — train with torchrun --nproc-per-node N train.py"
    _run(window, "PyTorch", job)
