"""One picture of the user's own, prepared exactly as a model's training data were (size, channels, normalisation),
for ``predict`` and the activation viewer."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import DatasetError, normalise
from .folder import read_picture


def load_image(path, input_shape=None, description: dict | None = None, invert: bool | str = "auto") -> np.ndarray:
    """float32 (1, C, H, W) from a picture file: converted to C channels, resized to H×W (bilinear), scaled to
    [0, 1] and normalised with the description's per-channel mean/std.

    Polarity: MNIST-style data are white ink on black. With ``invert="auto"`` a single-channel model whose training
    data were mostly dark (mean below 0.5) gets a mostly light picture (median above 0.5, e.g. a digit drawn in black
    on white paper) inverted first; ``invert=True/False`` forces the choice."""
    description = description or {}
    shape = tuple(input_shape or description.get("input_shape") or ())
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise DatasetError(f"{path}: need an input shape C×H×W with C 1 or 3 to prepare a picture, got {shape or None}")
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder, not a picture; give picture files")
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    channels = int(shape[0])
    pixels = read_picture(path, channels, (int(shape[1]), int(shape[2])))[None]
    mean = tuple(description.get("mean") or (0.0,) * channels)
    std = tuple(description.get("std") or (1.0,) * channels)
    if len(mean) != channels or len(std) != channels:
        raise DatasetError(f"{path}: the model's normalisation has {len(mean)} channels but its input has {channels}")
    if invert == "auto":
        invert = channels == 1 and float(np.mean(mean)) < 0.5 and float(np.median(pixels)) > 127.5
    if invert:
        pixels = 255 - pixels
    return normalise(pixels, mean, std)
