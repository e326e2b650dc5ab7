"""The designer window: palette, canvas, inspector and problems around one Graph, with File/Edit/View/Templates menus.

Opening a template or a file replaces the graph and clears the undo history; every edit in between is undoable.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QPointF, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSpinBox,
    QStyle,
    QWidget,
)

from .. import __version__
from ..graph import TEMPLATES, Graph, Problem, build
from ..io.design import read_design, weights_mismatch, write_design
from ..io.h5model import ModelFile, ModelFileError
from . import interop, style
from .canvas.block_item import HEIGHT
from .canvas.scene import DesignScene, layout_positions
from .canvas.view import CanvasView
from .engine_thread import EngineThread
from .inspect import install_activations
from .inspector import Inspector
from .palette import Palette
from .problems import ProblemsList
from .training import recovery
from .training.panel import TrainingPanel
from .training.session import TrainingSession

MAX_RECENT = 8
FILE_FILTER = ("ConvDesigner model (*.h5);;Graph JSON (*.json);;ONNX or Keras model, imported (*.onnx *.keras);;"
               "All files (*)")


def lay_out_if_unplaced(graph: Graph, page: dict) -> bool:
    """Templates (and graphs written by scripts) put every block at one spot: give them the layered layout, shaped
    for the view (``page``: CanvasView.layout_page). True when it laid the graph out."""
    if len(graph.nodes) > 1 and len({n.pos for n in graph.nodes.values()}) == 1:
        for node_id, pos in layout_positions(graph, **page).items():
            graph.move(node_id, pos)
        return True
    return False


class FillingScrollArea(QScrollArea):
    """Its widget fills the viewport and scrolls only below its minimum size (a plain resizable scroll area makes a
    widget with wrapped labels as tall as their height-for-width, over 1,000 px for the activation views)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        widget, view = self.widget(), self.viewport()
        if widget is not None:
            widget.resize(view.width(), max(view.height(), widget.minimumSizeHint().height()))


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.stack = QUndoStack(self)
        self.scene = DesignScene(self.stack)  # no Qt parent: it outlives the docks that observe it
        self.view = CanvasView(self.scene)
        self._relayout = QTimer(self)  # a resize lays an untouched template out again, once it has settled
        self._relayout.setSingleShot(True)
        self._relayout.setInterval(150)
        self._relayout.timeout.connect(self._view_resized)
        self.view.resized.connect(self._relayout.start)
        self.setCentralWidget(self.view)
        self.path: Path | None = None
        self.title = "Untitled"
        self.trained: ModelFile | None = None  # the trained weights and training state, kept on save
        self.training_unsaved = False  # training since the last save or open
        self.template_key: str | None = None
        self._laid_out = False  # the shown design was laid out automatically (and may be again, until edited)
        self.engine = EngineThread(self)
        self.engine.crashed.connect(lambda tag, text: self.show_error("Engine error", f"{tag}: {text}"))
        self.session = TrainingSession(self.engine, self)
        self.session.snapshot.connect(self._trained_snapshot)
        self.session.recovery_path = recovery.autosave_path(self.settings)
        self._keep_weights_asked = False

        self.palette = Palette()
        self.inspector = Inspector(self.scene)
        self.problems = ProblemsList()
        self.palette_dock = self._dock("Layers", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea)
        self.problems_dock = self._dock("Problems", self.problems, Qt.DockWidgetArea.RightDockWidgetArea)
        self.training = TrainingPanel(self)
        self.training_dock = self._dock("Training", self.training, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.training_dock.setObjectName("training_dock")
        self.activations = install_activations(self)
        scroll = FillingScrollArea()
        scroll.setWidget(self.activations)
        self.activations_dock = self._dock("Activations", scroll, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.activations_dock.setObjectName("activations_dock")
        self.tabifyDockWidget(self.training_dock, self.activations_dock)
        self.activations_dock.visibilityChanged.connect(self._activations_shown)
        self.training_dock.raise_()
        self.setAcceptDrops(True)
        self.resizeDocks([self.palette_dock, self.inspector_dock], [210, 300], Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock, self.problems_dock], [520, 240], Qt.Orientation.Vertical)
        self.resizeDocks([self.training_dock], [400], Qt.Orientation.Vertical)
        self._build_status_bar()
        self._build_menus()
        interop.install_interop_menu(self)

        self.scene.changed.connect(self.update_status)
        self.scene.message.connect(self.show_message)
        self.problems.node_activated.connect(self.show_block)
        self.palette.kind_activated.connect(self.add_at_centre)
        self.stack.cleanChanged.connect(self._clean_changed)
        self.stack.indexChanged.connect(self._edited)
        self.restoreGeometry(self.settings.value("window/geometry", b""))
        self.restoreState(self.settings.value("window/state", b""))
        if self.settings.value("window/geometry") is None:  # first start: 1440×920, or 90 % of a smaller screen
            screen = self.screen().availableGeometry()
            self.resize(min(1440, int(screen.width() * 0.9)), min(920, int(screen.height() * 0.9)))
        self._first_show = self.settings.value("window/state") is None  # then size the training panel on show
        self.set_graph(Graph(), "Untitled")

    def _view_resized(self) -> None:
        """While a laid-out template is untouched, a new canvas size (the window and docks settling at start, the
        user resizing) lays it out again for that size, so it is seen whole."""
        if not self._laid_out or self.stack.count() or not self.view.auto_framed:
            return
        page = self.view.layout_page()
        positions = layout_positions(self.scene.graph, **page) if page else {}
        if any(self.scene.graph.nodes[i].pos != p for i, p in positions.items()):
            for node_id, pos in positions.items():
                self.scene.graph.move(node_id, pos)
            self.scene.sync()
            self.view.show_top()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._first_show:  # first start: the training panel gets room for its plots
            self._first_show = False
            QTimer.singleShot(0, lambda: self.resizeDocks([self.training_dock], [int(self.height() * 0.3)],
                                                          Qt.Orientation.Vertical))  # once the window has its size

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    # ------------------------------------------------------------------------------------------- menus
    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.new_action = self._action("&New", self.new_design, QKeySequence.StandardKey.New, "Start an empty design")
        self.open_action = self._action("&Open…", self.open_dialog, QKeySequence.StandardKey.Open,
                                        "Open a model (.h5) or graph (.json) file")
        self.save_action = self._action("&Save", self.save, QKeySequence.StandardKey.Save)
        self.save_as_action = self._action("Save &As…", self.save_as, QKeySequence.StandardKey.SaveAs)
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        file.addActions([self.new_action, self.open_action])
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addActions([self.save_action, self.save_as_action])
        file.addSeparator()
        self.open_image_action = self._action("Open &Image…", self.open_image, "Ctrl+I",
                                              "Load a picture to see what each block makes of it")
        file.addAction(self.open_image_action)
        file.addSeparator()
        file.addAction(self.quit_action)

        edit = bar.addMenu("&Edit")
        self.undo_action = self.stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Redo), QKeySequence("Ctrl+Y")])
        edit.addActions([self.undo_action, self.redo_action])
        edit.addSeparator()
        self.cut_action = self._action("Cu&t", self.cut, QKeySequence.StandardKey.Cut)
        self.copy_action = self._action("&Copy", self.scene.copy_selection, QKeySequence.StandardKey.Copy)
        self.paste_action = self._action("&Paste", self.scene.paste, QKeySequence.StandardKey.Paste)
        self.delete_action = self._action("&Delete", self.scene.delete_selection,
                                          [QKeySequence(QKeySequence.StandardKey.Delete), QKeySequence("Backspace")])
        self.select_all_action = self._action("Select &All", self.select_all, QKeySequence.StandardKey.SelectAll)
        self.layout_action = self._action("Auto-&layout", self.scene.auto_layout, "Ctrl+L",
                                          "Arrange the blocks in layers, top to bottom")
        edit.addActions([self.cut_action, self.copy_action, self.paste_action, self.delete_action,
                         self.select_all_action])
        edit.addSeparator()
        edit.addAction(self.layout_action)

        view = bar.addMenu("&View")
        self.zoom_in_action = self._action("Zoom &In", lambda: self.view.zoom_by(1.25),
                                           [QKeySequence(QKeySequence.StandardKey.ZoomIn), QKeySequence("Ctrl+=")])
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.view.zoom_by(0.8),
                                            QKeySequence.StandardKey.ZoomOut)
        self.fit_action = self._action("&Fit to Window", lambda: self.view.fit(), "Ctrl+0")
        self.actual_size_action = self._action("&Actual Size", lambda: self.view.set_zoom(1.0), "Ctrl+1")
        view.addActions([self.zoom_in_action, self.zoom_out_action, self.fit_action, self.actual_size_action])
        view.addSeparator()
        for dock in (self.palette_dock, self.inspector_dock, self.problems_dock, self.training_dock,
                     self.activations_dock):
            view.addAction(dock.toggleViewAction())

        templates = bar.addMenu("&Templates")
        for small, section in ((True, "Small: train on a CPU in minutes"), (False, "Full size")):
            templates.addSection(section)
            for t in TEMPLATES.values():
                if t.small == small:
                    action = templates.addAction(f"{t.title}  —  {t.description}".replace("&", "&&"))
                    action.setData(t.key)
                    action.triggered.connect(lambda _=False, key=t.key: self.open_template(key))
        self.templates_menu = templates

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&About ConvDesigner", self._about)

        icons = {self.new_action: QStyle.StandardPixmap.SP_FileIcon,
                 self.open_action: QStyle.StandardPixmap.SP_DialogOpenButton,
                 self.save_action: QStyle.StandardPixmap.SP_DialogSaveButton,
                 self.undo_action: QStyle.StandardPixmap.SP_ArrowBack,
                 self.redo_action: QStyle.StandardPixmap.SP_ArrowForward,
                 self.layout_action: QStyle.StandardPixmap.SP_FileDialogListView,
                 self.fit_action: QStyle.StandardPixmap.SP_TitleBarMaxButton}
        for action, icon in icons.items():
            action.setIcon(self.style().standardIcon(icon))
        separator = QAction(self)
        separator.setSeparator(True)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)  # right-click on the canvas
        self.view.addActions([self.cut_action, self.copy_action, self.paste_action, self.delete_action, separator,
                              self.layout_action, self.fit_action])
        tools = self.addToolBar("Main")
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tools.setObjectName("main-toolbar")
        tools.setMovable(False)
        tools.addActions([self.new_action, self.open_action, self.save_action])
        tools.addSeparator()
        tools.addActions([self.undo_action, self.redo_action])
        tools.addSeparator()
        tools.addActions([self.layout_action, self.fit_action])

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.data_label = QLabel()
        self.params_label = QLabel()
        self.macs_label = QLabel()
        self.memory_label = QLabel()
        self.memory_label.setToolTip("Memory for every block's output over one float32 batch (the forward pass; "
                                     "training keeps about as much again for gradients)")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 65536)
        self.batch_spin.setValue(int(self.settings.value("batch_size", 64)))
        self.batch_spin.setPrefix("batch ")
        self.batch_spin.setToolTip("Batch size for the activation-memory estimate")
        self.batch_spin.valueChanged.connect(self.update_status)
        for w in (self.data_label, self.params_label, self.macs_label, self.memory_label):
            w.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.batch_spin)

    # ------------------------------------------------------------------------------------------- live state
    def update_status(self) -> None:
        info = self.scene.info
        self.session.set_graph(self.scene.graph)
        partial = "" if info.ok else f" <span style='color:{style.MUTED_TEXT.name()}'>so far</span>"
        self.params_label.setText(f"Parameters: <b>{style.count(info.total_params)}</b>{partial}")
        self.macs_label.setText(f"Mult-adds: <b>{style.short_count(info.total_macs)}</b>{partial}")
        batch = self.batch_spin.value()
        self.memory_label.setText(f"Activations: <b>{style.byte_size(info.activation_bytes(batch))}</b> at")
        fit = self.training.fit_problem()
        inputs = self.scene.graph.inputs()
        problems = list(info.problems) + ([Problem(inputs[0].id if inputs else None, "warning", fit[0].upper()
                                                   + fit[1:])] if fit else [])
        self.problems.show_problems(problems)
        errors = sum(p.severity == "error" for p in problems)
        warnings = len(problems) - errors
        self.problems_dock.setWindowTitle(f"Problems — {errors} error{'s' * (errors != 1)}, "
                                          f"{warnings} warning{'s' * (warnings != 1)}" if problems
                                          else "Problems")
        self._update_data_label(fit)
        self.training.update_state()

    def data_changed(self) -> None:
        """The training panel loaded other data (or failed to): the status bar and Problems tell the same story."""
        self.update_status()

    def _update_data_label(self, fit: str | None) -> None:
        parts = self.session.data()
        if parts is None:
            self.data_label.setText("Data: none" + (f" ({self.training.data_error})" if self.training.data_error
                                                    else " (loading…)"))
            return
        train, val = parts
        text = (f"Data: {train.name} ({style.count(len(train))} train / "
                f"{style.count(len(val)) if val is not None else 'no'} val)")
        if fit:
            text += f" — <span style='color:{style.WARNING.name()}'>does not fit the network</span>"
            self.data_label.setToolTip(fit)
        else:
            self.data_label.setToolTip("")
        self.data_label.setText(text)

    # ------------------------------------------------------------------------------------------- training
    def set_training(self, on: bool) -> None:
        """While a run trains, the design cannot be replaced (its edits stay possible and undoable)."""
        for action in (self.new_action, self.open_action, self.templates_menu.menuAction(),
                       self.recent_menu.menuAction()):
            action.setEnabled(not on)

    def _trained_snapshot(self, model: ModelFile) -> None:
        """The trained state after an epoch or a stop: saved with the design from now on."""
        self.trained = model
        self.training_unsaved = True
        self._keep_weights_asked = False
        self.setWindowModified(True)

    def _edited(self, _index: int) -> None:
        """The first edit after training asks whether the blocks it leaves unchanged keep their trained weights."""
        if not self.session.trained or self._keep_weights_asked or self.trained is None:
            return
        if weights_mismatch(self.scene.graph, self.trained.weights) is None:
            return
        self._keep_weights_asked = True
        answer = QMessageBox.question(
            self, "Keep the trained weights?", "This edit changes blocks of the trained network. Keep the trained "
            "weights of the blocks it leaves unchanged (Continue then trains on from them), or start every block "
            "from new weights?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes)
        self.training.keep_weights = answer == QMessageBox.StandardButton.Yes
        self.training.update_state()

    def discard_training(self) -> None:
        """End headless use (a screenshot): stop the engine, forget the run and its autosave."""
        self.stop_engine()
        self.training_unsaved = False
        recovery.discard(self.session.recovery_path)

    def stop_engine(self) -> None:
        """Stop a run between batches and end the engine thread (closing the window)."""
        self.session.stop()
        self.engine.shutdown()

    def offer_recovery(self) -> None:
        """After a crash during training: offer the model autosaved at its last epoch."""
        found = recovery.find(self.session.recovery_path)
        if found is None:
            return
        answer = QMessageBox.question(self, "Restore the autosaved model?", f"ConvDesigner stopped while training "
                                      f"“{found['title']}”. Restore the model saved after its last complete epoch?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            recovery.discard(self.session.recovery_path)
            return
        try:
            model = read_design(self.session.recovery_path)
        except ModelFileError as e:
            self.show_error("Cannot restore", str(e))
            return
        original = Path(found["path"]) if found.get("path") else None
        self.set_graph(model.graph, found["title"], original, model if model.weights is not None else None,
                       opened=model)
        self.training_unsaved = True
        self.setWindowModified(True)

    def _activations_shown(self, visible: bool) -> None:
        """The feature maps need more height than the training controls: give the docks half the window."""
        if visible and self.activations_dock.height() < 0.45 * self.height():
            self.resizeDocks([self.activations_dock], [self.height() // 2], Qt.Orientation.Vertical)

    def open_image(self) -> None:
        self.activations_dock.show()
        self.activations_dock.raise_()
        self.activations.open_image_dialog()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self.activations.dropped_picture(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self.activations.dropped_picture(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.activations_dock.show()
            self.activations_dock.raise_()
            self.activations.load_picture(path)

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def _clean_changed(self, clean: bool) -> None:
        self.setWindowModified(not clean)

    def show_block(self, node_id: int) -> None:
        if node_id in self.scene.blocks:
            self.scene.select_nodes([node_id])
            self.view.centerOn(self.scene.blocks[node_id])

    def add_at_centre(self, kind_name: str) -> None:
        """Double-click in the palette: a new block in the middle of the view, clear of the blocks already there."""
        centre = self.view.mapToScene(self.view.viewport().rect().center())
        step = 0
        while self.scene.block_at(centre + QPointF(0, step)) is not None and step < 2000:
            step += HEIGHT + 20
        self.scene.add_block(kind_name, centre + QPointF(0, step))

    def select_all(self) -> None:
        for item in self.scene.blocks.values():
            item.setSelected(True)

    def cut(self) -> None:
        if self.scene.copy_selection():
            self.scene.delete_selection()

    # ------------------------------------------------------------------------------------------- documents
    def set_graph(self, graph: Graph, title: str, path: Path | None = None, trained: ModelFile | None = None,
                  template: str | None = None, opened: ModelFile | None = None) -> None:
        """Show a new design; ``opened`` is the file it came from (its runs and settings), ``trained`` its weights."""
        self._laid_out = lay_out_if_unplaced(graph, self.view.layout_page())
        self.path, self.title, self.trained = path, title, trained
        self.template_key, self.training_unsaved, self._keep_weights_asked = template, False, False
        self.training.keep_weights = False
        self.session.open_model(opened)
        self.scene.set_graph(graph)
        self.stack.clear()
        self.stack.setClean()
        self.setWindowTitle(f"{title}[*] — ConvDesigner")
        self.setWindowModified(False)
        self.session.recovery_label = (title, path)
        self.training.apply_defaults(template, self.session.saved_settings())
        self.training.show_history()
        self.view.show_top()

    def maybe_save(self) -> bool:
        """True when the current design may be replaced: saved, discarded, or unchanged."""
        if self.stack.isClean() and not self.training_unsaved:
            return True
        answer = self.ask_unsaved()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def ask_unsaved(self) -> QMessageBox.StandardButton:
        return QMessageBox.warning(self, "Unsaved changes", f"Save the changes to “{self.title}”?",
                                   QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                                   | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)

    def new_design(self) -> None:
        if not self.maybe_save():
            return
        graph = Graph()
        graph.add("Input", "input")  # the catalogue's default: 1×28×28, the built-in MNIST sample
        self.set_graph(graph, "Untitled")

    def open_template(self, key: str) -> bool:
        if not self.maybe_save():
            return False
        self.set_graph(build(key), TEMPLATES[key].title, template=key)
        return True

    def open_dialog(self) -> None:
        start = str(self.path.parent) if self.path else str(self.settings.value("last_folder", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, FILE_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path, ask: bool = True) -> bool:
        """Open a model or graph file; a bad file gets a message box and leaves the current design as it was."""
        if interop.is_foreign(path):
            return interop.import_file(self, path, ask)
        if ask and not self.maybe_save():
            return False
        try:
            model = read_design(path)
        except ModelFileError as e:
            self.show_error("Cannot open file", str(e))
            return False
        self.show_design(model, Path(path))
        return True

    def show_design(self, model: ModelFile, path: Path) -> None:
        """Show a design read from ``path``; its trained weights, if any, are kept for saving."""
        self.set_graph(model.graph, path.name, path, model if model.weights is not None else None, opened=model)
        self._remember(path)
        if model.weights is not None:
            epochs = len(model.history or [])
            self.statusBar().showMessage(f"Opened {path.name} with trained weights"
                                         + (f" ({epochs} epoch{'s' * (epochs != 1)})" if epochs else ""), 8000)

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self) -> bool:
        start = str(self.path) if self.path else str(Path(str(self.settings.value("last_folder", Path.home())))
                                                       / f"{self.title.replace(' ', '_')}.h5")
        path, chosen = QFileDialog.getSaveFileName(self, "Save model", start, FILE_FILTER)
        if not path:
            return False
        if not Path(path).suffix:
            path += ".json" if "json" in chosen else ".h5"
        return self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        """Write the design; trained weights go along while they fit, otherwise the user decides before saving."""
        kept = self.trained
        if kept is not None and path.suffix.lower() != ".json":
            mismatch = weights_mismatch(self.scene.graph, kept.weights)
            if mismatch is not None:
                if not self.confirm_drop_weights(mismatch):
                    return False
                kept = None
        elif kept is not None and not self.confirm_drop_weights("a graph JSON file holds no weights"):
            return False
        try:
            write_design(path, self.scene.graph, kept)
        except ModelFileError as e:
            self.show_error("Cannot save", str(e))
            return False
        self.trained = kept if path.suffix.lower() != ".json" else None
        self.path, self.title = path, path.name
        self.training_unsaved = False
        self.session.recovery_label = (self.title, path)
        recovery.discard(self.session.recovery_path)
        self.stack.setClean()
        self.setWindowModified(False)
        self.setWindowTitle(f"{self.title}[*] — ConvDesigner")
        self._remember(path)
        self.statusBar().showMessage(f"Saved {path}", 6000)
        return True

    def confirm_drop_weights(self, reason: str) -> bool:
        answer = QMessageBox.question(
            self, "Trained weights no longer fit",
            f"The trained weights, optimizer state and history from the opened file cannot be saved with this "
            f"design: {reason}.\n\nSave the design without them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Save

    def show_error(self, title: str, text: str) -> None:
        QMessageBox.critical(self, title, text)

    def _remember(self, path: Path) -> None:
        recent = [p for p in self.recent_files() if p != str(path.resolve())]
        self.settings.setValue("recent_files", [str(path.resolve())] + recent[:MAX_RECENT - 1])
        self.settings.setValue("last_folder", str(path.resolve().parent))

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setStatusTip(path)
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_file(p))
        if not files:
            self.recent_menu.addAction("No recent files").setEnabled(False)

    def _about(self) -> None:
        QMessageBox.about(self, "About ConvDesigner", f"<b>ConvDesigner {__version__}</b><p>Design convolutional "
                          f"networks visually, train them, and look inside them.</p>")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.session.running:
            answer = QMessageBox.question(self, "Training is running", "Stop training and close the window? The "
                                          "weights trained so far are kept for saving.",
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.stop_engine()
            QCoreApplication.processEvents()  # the stopped run's last snapshot, so that it can be saved
        if not self.maybe_save():
            event.ignore()
            return
        self.stop_engine()
        recovery.discard(self.session.recovery_path)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("batch_size", self.batch_spin.value())
        event.accept()
