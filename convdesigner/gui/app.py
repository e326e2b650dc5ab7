"""Start the designer: the window with LeNet-5 on the MNIST sample, a model file, or a template; or a screenshot."""
from __future__ import annotations

import os
import sys
from pathlib import Path

SCREENSHOT_SIZE = (1440, 1000)


def run_app(model: str | None = None, template: str | None = None, screenshot: str | None = None) -> int:
    """Open the main window and run the event loop; with ``screenshot`` render it offscreen to a PNG and return."""
    if screenshot:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from ..graph import TEMPLATES
    from ..io.h5model import ModelFileError
    from .canvas.scene import DesignScene
    from .document import read_design
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
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.aboutToQuit.connect(DesignScene.release_clipboard)
    window = MainWindow()
    if screenshot:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    app.processEvents()  # the canvas has its final size before the design is framed in it
    if design is not None:
        window.show_design(design, Path(model))
    else:
        window.open_template(template or "lenet5")
    if problem:
        window.show_error("Cannot open file", problem)
    if not screenshot:
        return app.exec()
    app.processEvents()
    if not window.grab().save(screenshot):
        print(f"convdesigner: could not write the screenshot to '{screenshot}'", file=sys.stderr)
        return 1
    return 0
