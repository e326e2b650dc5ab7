"""One picture of the user's own, prepared exactly as a model's training data were (size, channels, normalisation),
for ``predict`` and the activation viewer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import DatasetError, normalise
from .folder import read_picture


def load_image(path, input_shape=None, description: dict | None = None, invert: bool | str = "auto",
               fit: bool | str = "auto", crop: bool = False) -> np.ndarray:
    """float32 (1, C, H, W) from a picture file: converted to C channels, resized to H×W (bilinear), scaled to
    [0, 1] and normalised with the description's per-channel mean/std.

    Polarity: MNIST-style data are white ink on black. With ``invert="auto"`` a single-channel model whose training
    data were mostly dark (mean below 0.5) gets a mostly light picture (median above 0.5, e.g. a digit drawn in black
    on white paper) inverted first; ``invert=True/False`` forces the choice.

    Digit-like models (one channel, 28×28, dark training data) get the picture fitted as MNIST's digits were
    (:func:`fit_digit`) with ``fit="auto"``: a digit drawn edge to edge is otherwise read as another digit.
    ``crop``: cut the largest centred part of the input's aspect ratio before resizing, instead of squeezing."""
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
    mean = tuple(description.get("mean") or (0.0,) * channels)
    std = tuple(description.get("std") or (1.0,) * channels)
    if len(mean) != channels or len(std) != channels:
        raise DatasetError(f"{path}: the model's normalisation has {len(mean)} channels but its input has {channels}")
    size = (int(shape[1]), int(shape[2]))
    if fit == "auto":
        fit = digit_like(shape, mean)
    pixels = read_picture(path, channels, None if (fit and channels == 1) or crop else size)[None]
    if crop and not (fit and channels == 1):
        pixels = centre_crop(pixels[0], size)[None]
    if invert == "auto":
        invert = channels == 1 and float(np.mean(mean)) < 0.5 and float(np.median(pixels)) > 127.5
    if invert:
        pixels = 255 - pixels
    if fit and channels == 1:
        fitted = fit_digit(pixels[0], size)
        pixels = fitted[None] if fitted is not None else read_picture(path, channels, size)[None]
        if fitted is None and invert:
            pixels = 255 - pixels
    return normalise(pixels, mean, std)


def digit_like(input_shape, mean) -> bool:
    """Whether a model's pictures are MNIST-like digits (one channel, 28×28, dark training data)."""
    return tuple(input_shape) == (1, 28, 28) and float(np.mean(mean)) < 0.5


def centre_crop(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The largest centred part of a (C, H, W) uint8 picture with the aspect ratio of ``size``, resized to it."""
    c, h, w = pixels.shape
    scale = min(h / size[0], w / size[1])
    ch, cw = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    part = pixels[:, top:top + ch, left:left + cw]
    image = Image.fromarray(part[0] if c == 1 else part.transpose(1, 2, 0))
    resized = np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.uint8)
    return resized[None] if resized.ndim == 2 else resized.transpose(2, 0, 1)


def fit_digit(pixels: np.ndarray, size: tuple[int, int] = (28, 28), box: int = 20) -> np.ndarray | None:
    """MNIST's preparation of a (1, H, W) white-on-black uint8 digit: background level removed, cropped to the ink,
    scaled (aspect kept) into a ``box``×``box`` square and placed in ``size`` with its centre of mass in the middle.
    None when the picture holds no ink."""
    img = pixels[0].astype(np.float32)
    img = np.clip(img - float(np.median(img)), 0, None)
    peak = float(img.max())
    if peak <= 0:
        return None
    rows, cols = np.nonzero(img > 0.2 * peak)
    crop = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1] * (255 / peak)
    scale = box * size[0] / 28 / max(crop.shape)
    h, w = (max(1, round(n * scale)) for n in crop.shape)
    small = np.clip(np.asarray(Image.fromarray(crop, "F").resize((w, h), Image.Resampling.BILINEAR)), 0, 255)
    mass = small.sum()
    centre = [(small.sum(axis=1 - a) * np.arange(small.shape[a])).sum() / mass for a in (0, 1)]
    top, left = (int(np.clip(round((size[a] - 1) / 2 - centre[a]), 0, size[a] - small.shape[a])) for a in (0, 1))
    out = np.zeros(size, np.uint8)
    out[top:top + h, left:left + w] = np.round(small).astype(np.uint8)
    return out[None]
