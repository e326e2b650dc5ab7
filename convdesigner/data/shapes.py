""""shapes": a synthetic colour dataset of ten outline classes, drawn with numpy from a seed in a fraction of a second,
so that colour 3×32×32 templates have something real to learn without a download."""
from __future__ import annotations

import numpy as np

from .dataset import Dataset

CLASSES = ["circle", "ring", "square", "diamond", "triangle", "plus", "cross", "star", "horizontal bar",
           "vertical bar"]
# how far each class may be turned (degrees): keeps square/diamond, plus/cross and the two bars apart
_TURN = np.radians([180, 180, 20, 20, 180, 20, 20, 180, 20, 20]).astype(np.float32)
_BASE = np.radians([0, 0, 0, 0, -90, 0, 45, -90, 0, 0]).astype(np.float32)


def _signed_distance(kind: int, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Approximate signed distance in pixels (negative inside) of one class's shape, for (n, H, W) coordinates."""
    d = np.hypot(u, v)
    w = 0.3 * r
    if kind == 0:
        return d - r
    if kind == 1:
        return np.abs(d - 0.72 * r) - 0.28 * r
    if kind == 2:
        return np.maximum(np.abs(u), np.abs(v)) - 0.8 * r
    if kind == 3:
        return (np.abs(u) + np.abs(v) - 1.1 * r) * np.float32(0.7071)
    if kind == 4:
        theta = np.arctan2(v, u)  # distance to the nearest of three edges of an equilateral triangle
        sector = np.mod(theta + np.pi / 3, 2 * np.pi / 3) - np.pi / 3
        return d * np.cos(sector) - 0.6 * r
    if kind in (5, 6):
        return np.minimum(np.maximum(np.abs(u) - r, np.abs(v) - w), np.maximum(np.abs(v) - r, np.abs(u) - w))
    if kind == 7:
        return d - r * (0.6 + 0.4 * np.cos(5 * np.arctan2(v, u)))
    if kind == 8:
        return np.maximum(np.abs(u) - r, np.abs(v) - w)
    return np.maximum(np.abs(v) - r, np.abs(u) - w)


def render(labels: np.ndarray, rng: np.random.Generator, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """uint8 (N, 3, H, W) pictures of the given classes: random colour, size, place and turn on a noisy gradient."""
    n, (h, w) = len(labels), size
    s = np.float32(min(h, w))
    f32 = np.float32
    radius = rng.uniform(0.2, 0.4, n).astype(f32) * s
    cx = (rng.uniform(0, 1, n) * (w - 2 * radius - 2) + radius + 1).astype(f32)
    cy = (rng.uniform(0, 1, n) * (h - 2 * radius - 2) + radius + 1).astype(f32)
    turn = _BASE[labels] + rng.uniform(-1, 1, n).astype(f32) * _TURN[labels]
    fg = rng.uniform(0, 1, (n, 3)).astype(f32)
    bg = rng.uniform(0, 1, (n, 3)).astype(f32)
    close = np.linalg.norm(fg - bg, axis=1) < 0.45
    fg[close] = np.mod(bg[close] + 0.5, 1)  # every channel half a range away: always visible
    slope = rng.uniform(-0.15, 0.15, (n, 2)).astype(f32)
    noise_level = rng.uniform(0.02, 0.1, n).astype(f32)
    noise = rng.standard_normal((n, 1, h, w), dtype=f32)  # grain shared by the channels: a third of the cost

    yy, xx = np.mgrid[0:h, 0:w].astype(f32)
    out = np.empty((n, 3, h, w), np.uint8)
    for kind in range(len(CLASSES)):  # one class at a time: a tenth of the scratch memory, reused
        idx = np.flatnonzero(labels == kind)
        if idx.size == 0:
            continue
        dx, dy = xx - cx[idx, None, None], yy - cy[idx, None, None]
        c, sn = np.cos(turn[idx])[:, None, None], np.sin(turn[idx])[:, None, None]
        u, v = c * dx + sn * dy, c * dy - sn * dx
        a = np.clip(0.5 - _signed_distance(kind, u, v, radius[idx, None, None]), 0, 1)[:, None]
        gradient = slope[idx, 0, None, None] * (xx / s - 0.5) + slope[idx, 1, None, None] * (yy / s - 0.5)
        image = (bg[idx, :, None, None] + gradient[:, None]) * (1 - a)
        image += fg[idx, :, None, None] * a
        image += noise[idx] * noise_level[idx, None, None, None]
        image *= f32(255)
        image += f32(0.5)  # round half up once clipped to 0..255 and truncated
        out[idx] = np.clip(image, f32(0), f32(255), out=image)
    return out


def shapes_dataset(n_train: int = 6000, n_val: int = 1000, seed: int = 0,
                   size: tuple[int, int] = (32, 32)) -> tuple[Dataset, Dataset]:
    """Balanced train and validation parts; the same seed gives the same bytes, and the validation part does not
    depend on n_train."""
    parts = []
    for part, count in enumerate((n_train, n_val)):
        rng = np.random.default_rng([seed, part])
        labels = rng.permutation(np.arange(count) % len(CLASSES))
        parts.append(Dataset(render(labels, rng, size), labels, list(CLASSES), name="shapes",
                             meta={"source": f"shapes (seed {seed})", "notes": []}))
    return parts[0], parts[1]
