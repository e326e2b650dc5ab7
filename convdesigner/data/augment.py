"""Random augmentation of whole float32 batches (N, C, H, W), configured from a comma list such as
"flip,shift=4,rotate=12,noise=0.1"; the trainer calls ``augment(x, rng)`` on each normalised batch."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .dataset import DatasetError

# name -> (default, meaning of the value)
OPERATIONS = {
    "flip": (0.5, "probability of a left-right mirror"),
    "shift": (None, "largest shift in pixels (default 1/8 of the side), empty border filled with 0"),
    "rotate": (12.0, "largest turn in degrees either way (bilinear, empty corners filled with 0)"),
    "noise": (0.1, "standard deviation of added Gaussian noise, in normalised units"),
}


def flip(x: np.ndarray, rng: np.random.Generator, probability: float = 0.5) -> np.ndarray:
    mirror = rng.random(len(x)) < probability
    return np.where(mirror[:, None, None, None], x[..., ::-1], x)


def shift(x: np.ndarray, rng: np.random.Generator, pixels: float | None = None) -> np.ndarray:
    """Pad-and-crop as one gather: each sample moves by its own whole-pixel (dy, dx) within ±pixels."""
    n, c, h, w = x.shape
    most = max(1, round(min(h, w) / 8)) if pixels is None else int(pixels)
    dy, dx = rng.integers(-most, most + 1, (2, n))
    rows, cols = np.arange(h)[None] - dy[:, None], np.arange(w)[None] - dx[:, None]
    keep = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    out = x[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
            np.clip(rows, 0, h - 1)[:, None, :, None], np.clip(cols, 0, w - 1)[:, None, None, :]]
    return np.where(keep, out, np.float32(0))


@njit(cache=True, nogil=True, fastmath=False)
def _rotate(x, angles, out):
    n, c, h, w = x.shape
    cy, cx = (h - 1) * 0.5, (w - 1) * 0.5
    for i in range(n):
        co, si = math.cos(angles[i]), math.sin(angles[i])
        for yy in range(h):
            for xx in range(w):
                dx, dy = xx - cx, yy - cy
                sx, sy = co * dx + si * dy + cx, co * dy - si * dx + cy  # inverse turn: where this pixel comes from
                x0, y0 = math.floor(sx), math.floor(sy)
                fx, fy = sx - x0, sy - y0
                for ch in range(c):
                    acc = 0.0
                    for oy in range(2):
                        py = y0 + oy
                        if py < 0 or py >= h:
                            continue
                        wy = fy if oy else 1.0 - fy
                        for ox in range(2):
                            px = x0 + ox
                            if px < 0 or px >= w:
                                continue
                            acc += wy * (fx if ox else 1.0 - fx) * x[i, ch, py, px]
                    out[i, ch, yy, xx] = acc


def rotate(x: np.ndarray, rng: np.random.Generator, degrees: float = 12.0) -> np.ndarray:
    angles = np.radians(rng.uniform(-degrees, degrees, len(x)))
    out = np.empty_like(x)
    _rotate(np.ascontiguousarray(x), angles, out)
    return out


def noise(x: np.ndarray, rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    return x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)


_FUNCTIONS = {"flip": flip, "shift": shift, "rotate": rotate, "noise": noise}


class Augment:
    """The operations of a spec, applied in the order written; each draws its randomness from the rng it is given,
    so the same rng state gives the same batch."""

    def __init__(self, spec: str = "") -> None:
        self.operations: list[tuple[str, float | None]] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item or item == "none":
                continue
            name, _, value = (s.strip() for s in item.partition("="))
            if name not in OPERATIONS:
                raise DatasetError(f"unknown augmentation '{name}'; choose from {', '.join(OPERATIONS)}")
            try:
                number = float(value) if value else OPERATIONS[name][0]
            except ValueError:
                raise DatasetError(f"augmentation '{name}' needs a number after '=', not '{value}'") from None
            if number is not None and not (math.isfinite(number) and number >= 0
                                           and (name != "flip" or number <= 1)):
                raise DatasetError(f"augmentation '{name}={value}' is out of range (flip: 0..1, others: 0 or more)")
            self.operations.append((name, number))

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if x.dtype != np.float32 or x.ndim != 4:
            raise ValueError(f"augmentation works on float32 N×C×H×W batches, got {x.dtype} {x.shape}")
        for name, value in self.operations:
            x = _FUNCTIONS[name](x, rng) if value is None else _FUNCTIONS[name](x, rng, value)
        return x

    def __bool__(self) -> bool:
        return bool(self.operations)

    def __str__(self) -> str:
        return ",".join(name if value is None else f"{name}={value:g}" for name, value in self.operations)

    def __repr__(self) -> str:
        return f"Augment({str(self)!r})"
