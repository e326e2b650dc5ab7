"""Looking inside from the window: the Activations dock (feature maps, filters, why-this-class overlays, what
excites a channel, health badges on the canvas) and its headless rendering for ``--screenshot``."""
from __future__ import annotations

import time

from PySide6.QtWidgets import QApplication

from ...graph.graph import GraphError
from .view import ActivationsView


def install_activations(window) -> ActivationsView:
    """The Activations dock's content for ``window`` (which provides ``engine``, ``session`` and ``scene``); the
    caller docks it (object name ``activations_dock``) and routes File › Open Image to ``open_image_dialog``."""
    return ActivationsView(window)


def show_inspection(view: ActivationsView, image: str, select: str | None = None, gradcam: bool = False,
                    timeout_s: float = 120.0) -> str | None:
    """For ``--screenshot ... --image PICTURE --select BLOCK [--gradcam]``: load the picture, select the block on
    the canvas, wait until its maps (and the Grad-CAM overlay) are drawn. Returns an error message, or None."""
    if not view.load_picture(image):
        return view.status.text()
    if select is not None:
        try:
            node = view.scene.graph.by_name(select)
        except GraphError:
            names = ", ".join(n.name for n in view.scene.graph.nodes.values())
            return f"the design has no block '{select}'; blocks: {names}"
        view.scene.select_nodes([node.id])
        view.select_block(select)
    if gradcam:
        view.tabs.setCurrentWidget(view.why)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        QApplication.processEvents()
        ready = view.result is not None and (not gradcam or view.why.result is not None)
        if view.last_error is not None:
            return view.last_error
        if ready and not view.engine.busy:
            QApplication.processEvents()
            return None
        time.sleep(0.01)
    return f"the engine did not answer within {timeout_s:.0f} s"


__all__ = ["ActivationsView", "install_activations", "show_inspection"]
