"""Colours, sizes and number formats shared by the canvas, palette and status bar, so every view looks the same."""
from __future__ import annotations

import zlib

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

# one colour per palette category; a category the catalogue gains later gets a stable colour from its name
CATEGORY_COLOURS = {
    "Input": "#4c78a8", "Convolution": "#f58518", "Pooling": "#54a24b", "Reshape": "#b279a2",
    "Dense": "#72b7b2", "Activation": "#d6a800", "Regularisation": "#9d755d", "Normalisation": "#7f7f7f",
    "Merge": "#e377c2", "Output": "#3b3b98",
}
ERROR = QColor("#d62728")
WARNING = QColor("#e08a00")
SELECTED = QColor("#1f77d0")
WIRE = QColor("#5b6770")
CANVAS_BACKGROUND = QColor("#f4f5f7")
BLOCK_FILL = QColor("#ffffff")
ERROR_FILL = QColor("#fde8e8")
TEXT = QColor("#1d2329")
MUTED_TEXT = QColor("#5f6b76")


def problem_colour(severity: str) -> QColor:
    """Errors red, warnings amber: the canvas, the inspector and the Problems list agree."""
    return ERROR if severity == "error" else WARNING


def category_colour(category: str) -> QColor:
    if category in CATEGORY_COLOURS:
        return QColor(CATEGORY_COLOURS[category])
    return QColor.fromHsv(zlib.crc32(category.encode()) % 360, 150, 190)


def category_icon(category: str, size: int = 14) -> QIcon:
    """A small rounded square in the category's colour, used in the palette."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(category_colour(category))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(1, 1, size - 2, size - 2, 3, 3)
    painter.end()
    return QIcon(pix)


def count(n: int) -> str:
    """Thousands separators: 61,706."""
    return f"{n:,}"


def short_count(n: float) -> str:
    """A large count the way the status bar shows it: 1.82 G, 431.1 M, 61.7 k."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}" if n / scale < 100 else f"{n / scale:.0f} {unit}"
    return f"{n:.0f}"


def byte_size(n: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
