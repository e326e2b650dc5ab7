"""Whole-array image conversions shared by the loaders: resizing, channel conversion, per-channel statistics."""
from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 weights, as Pillow's RGB -> L conversion


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Rows of triangle-filter weights mapping n_in samples to n_out; the filter widens when shrinking (antialias)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of ``(N, C, H, W)`` to ``size`` = (H', W'); keeps the dtype."""
    h, w = images.shape[2:]
    if (h, w) == tuple(size):
        return images
    ry, rx = _resample_matrix(h, size[0]), _resample_matrix(w, size[1])
    out = np.empty(images.shape[:2] + tuple(size), images.dtype)
    for start in range(0, len(images), 4096):  # bounded float32 scratch for large sets
        x = images[start:start + 4096].astype(np.float32)
        y = np.einsum("ih,nchw,jw->ncij", ry, x, rx, optimize=True)
        out[start:start + 4096] = np.clip(np.rint(y), 0, 255) if images.dtype == np.uint8 else y
    return out


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """1 -> 3 replicates the grey channel; 3 -> 1 takes BT.601 luminance; keeps the dtype."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return np.repeat(images, 3, axis=1)
    if c == 3 and channels == 1:
        grey = np.einsum("nchw,c->nhw", images.astype(np.float32), LUMA)[:, None]
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8) if images.dtype == np.uint8 else grey
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels (only 1 and 3 are supported)")


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``(N, C, H, W)`` scaled to [0, 1] as Dataset.normalise sees them; a constant
    channel gets std 1 so normalising never divides by zero."""
    means, stds = [], []
    for c in range(images.shape[1]):
        if images.dtype == np.uint8:
            counts = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
            values = np.arange(256) / 255.0
            n = counts.sum()
            mean = float(counts @ values / n)
            var = float(counts @ (values - mean) ** 2 / n)
        else:
            s = s2 = 0.0
            for start in range(0, len(images), 4096):
                x = images[start:start + 4096, c].astype(np.float64)
                s += x.sum()
                s2 += np.square(x).sum()
            n = images[:, c].size
            mean = s / n
            var = max(s2 / n - mean * mean, 0.0)
        std = var ** 0.5
        means.append(round(mean, 6))
        stds.append(round(std, 6) if std > 1e-6 else 1.0)
    return tuple(means), tuple(stds)


def to_dataset_dtype(images: np.ndarray) -> tuple[np.ndarray, str | None]:
    """uint8 as is; whole numbers in 0..255 become uint8; other numbers become float32 (values in [0, 1] expected,
    values up to 255 are divided by 255). Returns the array and a note when a guess was made."""
    if images.dtype == np.uint8:
        return images, None
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * np.uint8(255), "boolean images mapped to 0/255"
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
        raise ValueError(f"images have data type {images.dtype}, expected numbers")
    lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("images contain NaN or infinite values")
    if np.issubdtype(images.dtype, np.integer):
        if lo < 0 or hi > 255:
            raise ValueError(f"integer images range from {lo:g} to {hi:g}; expected 0..255")
        return images.astype(np.uint8), None
    if lo >= 0 and hi <= 1.0:
        return images.astype(np.float32), None
    if lo >= 0 and hi <= 255:
        return (images / 255.0).astype(np.float32), f"float images range up to {hi:g}: assumed 0..255, divided by 255"
    raise ValueError(f"float images range from {lo:g} to {hi:g}; expected 0..1 or 0..255")
