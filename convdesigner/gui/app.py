"""Start the designer: the window with LeNet-5 on the MNIST sample, a model file, or a template; or a screenshot."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

SCREENSHOT_SIZE = (1440, 1000)
# Qt's offscreen platform warns about this on every top-level window; it says nothing about the screenshot.
_OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints()"


def no_display() -> bool:
    """On Linux, no X11 or Wayland display and no platform chosen: creating the application would abort."""
    return sys.platform.startswith("linux") and not any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def missing_x11_library() -> str | None:
    """Qt's X11 plugin needs system libraries (libxcb-cursor, libxcb-icccm...) that many Linux systems lack, and Qt
    aborts the process without them; load the plugin first to name what is missing. None where it loads."""
    import ctypes
    from pathlib import Path

    import PySide6
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    uses_x11 = platform.startswith("xcb") or (not platform and os.environ.get("DISPLAY")
                                              and not os.environ.get("WAYLAND_DISPLAY"))
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not (sys.platform.startswith("linux") and uses_x11 and plugin.is_file()):
        return None
    try:
        ctypes.CDLL(str(plugin))
    except OSError as e:
        named = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", str(e))
        missing = named.group(1) if named else f"({e})"
        return (f"the window cannot open on X11: the system library {missing} is missing; install Qt's X11 "
                f"libraries (Debian/Ubuntu: sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 "
                f"libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0) and start again")
    return None


def run_app(model: str | None = None, template: str | None = None, screenshot: str | None = None,
            train_epochs: int | None = None, image: str | None = None, select: str | None = None,
            gradcam: bool = False) -> int:
    """Open the main window and run the event loop; with ``screenshot`` render it offscreen to a PNG and return
    (after training ``train_epochs`` from the training panel, or showing the activations of ``image``)."""
    if screenshot:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif no_display():
        print("convdesigner: no display to open the window on; use a command (convdesigner -h) or --screenshot FILE",
              file=sys.stderr)
        return 2
    elif problem := missing_x11_library():
        print(f"convdesigner: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtCore import QCoreApplication, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from ..graph import TEMPLATES
    from ..io.design import read_design
    from ..io.h5model import ModelFileError
    from .canvas.scene import DesignScene
    from .main_window import MainWindow

    if template is not None and template not in TEMPLATES:
        print(f"convdesigner: unknown template '{template}'; choose one of {', '.join(TEMPLATES)}", file=sys.stderr)
        return 2
    design = problem = None
    if model:
        try:
            design = read_design(model)
        except ModelFileError as e:
            if screenshot:
                print(f"convdesigner: {e}", file=sys.stderr)
                return 2
            problem = str(e)
    if not QCoreApplication.organizationName():
        QCoreApplication.setOrganizationName("ConvDesigner")
        QCoreApplication.setApplicationName("ConvDesigner")
    previous = qInstallMessageHandler(_quiet_offscreen) if screenshot else None
    try:
        app = QApplication.instance() or QApplication(sys.argv[:1])
        app.aboutToQuit.connect(DesignScene.release_clipboard)
        window = MainWindow()
        if screenshot:
            window.resize(*SCREENSHOT_SIZE)
        window.show()
        for _ in range(3):  # the docks settle (the first start sizes the training panel), then the canvas's size
            app.processEvents()
        if design is not None:
            window.show_design(design, Path(model))
        else:
            window.open_template(template or "lenet5")
        if problem:
            window.show_error("Cannot open file", problem)
        if not screenshot:
            window.offer_recovery()
            return app.exec()
        app.processEvents()
        error = _prepare_screenshot(window, train_epochs, image, select, gradcam)
        if error:
            window.discard_training()
            print(f"convdesigner: {error}", file=sys.stderr)
            return 2
        app.processEvents()
        saved = window.grab().save(screenshot)
        window.discard_training()
    finally:
        if screenshot:
            qInstallMessageHandler(previous)
    if not saved:
        print(f"convdesigner: could not write the screenshot to '{screenshot}'", file=sys.stderr)
        return 1
    return 0


def _prepare_screenshot(window, train_epochs: int | None, image: str | None, select: str | None,
                        gradcam: bool) -> str | None:
    """Train from the panel and/or show a picture's activations before the grab; an error message, or None."""
    from PySide6.QtCore import QEventLoop, QTimer

    def wait(condition, seconds: float) -> bool:
        loop = QEventLoop()
        timer = QTimer()
        timer.timeout.connect(lambda: loop.quit() if condition() else None)
        timer.start(20)
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()
        timer.stop()
        return condition()

    if train_epochs:
        panel = window.training
        window.training_dock.raise_()
        if not wait(lambda: panel.session.data() is not None or panel.data_error, 120):
            return "the training data did not load"
        panel.form.set_values({"epochs": train_epochs})
        if not panel.train_button.isEnabled():
            return f"cannot train: {panel.readiness()}"
        outcome = []
        window.session.run_ended.connect(lambda reason, result: outcome.append((reason, result)))
        panel.train_button.click()
        if not wait(lambda: bool(outcome), 3600):
            return "training did not finish"
        if outcome[0][1] in ("diverged", "failed"):
            return outcome[0][0]
        panel.tabs.setCurrentWidget(panel.plots)
        wait(lambda: False, 0.2)
    if image:
        from .inspect import show_inspection
        window.activations_dock.raise_()
        return show_inspection(window.activations, image, select, gradcam)
    return None


def _quiet_offscreen(kind, context, message: str) -> None:
    """Qt's messages as its default handler writes them, less the offscreen platform's propagateSizeHints warning."""
    if _OFFSCREEN_NOISE not in message:
        print(message, file=sys.stderr)
