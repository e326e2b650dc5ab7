"""GUI tests run offscreen, with settings in a temporary folder and message boxes answered by the test."""
import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import pytest  # noqa: E402
from PySide6.QtCore import QCoreApplication, QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def clipboard_released_at_exit():
    """pytest-qt's application never emits aboutToQuit, so release the clipboard as the app would."""
    yield
    from convdesigner.gui.canvas.scene import DesignScene
    DesignScene.release_clipboard()


@pytest.fixture(autouse=True)
def settings_folder(tmp_path, monkeypatch):
    QCoreApplication.setOrganizationName("ConvDesignerTests")
    QCoreApplication.setApplicationName("ConvDesignerTests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    return tmp_path / "settings"


class Dialogs:
    """Records every message box and answers questions from ``answers`` (a test that gets an unexpected one fails)."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str, str]] = []
        self.answers: list[QMessageBox.StandardButton] = []

    def _box(self, kind):
        def show(parent, title, text, *args, **kwargs):
            self.shown.append((kind, title, text))
            if kind in ("warning", "question"):
                assert self.answers, f"unexpected question: {title}: {text}"
                return self.answers.pop(0)
            return QMessageBox.StandardButton.Ok
        return show


@pytest.fixture(autouse=True)
def dialogs(monkeypatch):
    d = Dialogs()
    for kind in ("critical", "warning", "question", "information"):
        monkeypatch.setattr(QMessageBox, kind, staticmethod(d._box(kind)))
    return d


@pytest.fixture
def window(qtbot):
    from convdesigner.gui.main_window import MainWindow
    w = MainWindow()
    def discard(w):  # closing must not ask to save
        w.stack.setClean()
        w.training_unsaved = False
    qtbot.addWidget(w, before_close_func=discard)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def lenet(window):
    window.open_template("lenet5")
    return window
