"""A folder with one sub-folder of pictures per class (optionally split into train/ and val/ or test/)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .dataset import Dataset, DatasetError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SPLIT_NAMES = ("val", "valid", "validation", "test")


def read_picture(path: Path, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """One picture as uint8 (C, H, W): grey (L) or RGB, alpha composited on black, resized bilinearly if asked."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot decode this picture ({exc})") from None
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise _too_large(path, exc) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _too_large(path: Path, error: Exception) -> DatasetError:
    """Pillow refuses pictures of over twice MAX_IMAGE_PIXELS before decoding them (a 200-byte file can declare
    60000×60000); its message holds the declared count."""
    declared = re.search(r"\((\d+) pixels\)", str(error))
    size = f" of {int(declared[1]):,} pixels" if declared else ""
    return DatasetError(f"{path}: the picture{size} is too large to read (at most {Image.MAX_IMAGE_PIXELS:,} "
                        f"pixels); scale it down first")


def _pictures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS
                  and not p.name.startswith("."))


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_colour(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            return img.mode not in ("1", "L", "LA", "I", "I;16", "F")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot decode this picture ({exc})") from None
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise _too_large(path, exc) from None


def _scan(root: Path, classes: list[str] | None) -> dict[str, list[Path]]:
    folders = _class_folders(root)
    if not folders:
        loose = len(_pictures(root))
        lying = f" ({loose} pictures lie directly in it)" if loose else ""
        raise DatasetError(f"{root}: no class sub-folders{lying}; put each class's pictures in a folder named after "
                           f"the class")
    found = {f.name: _pictures(f) for f in folders}
    empty = [name for name, files in found.items() if not files]
    if empty:
        raise DatasetError(f"{root}: class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)} hold"
                           f"{'' if len(empty) > 1 else 's'} no pictures ({', '.join(sorted(EXTENSIONS))})")
    if classes is not None:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DatasetError(f"{root}: classes {', '.join(unknown)} are not among the training classes")
    return found


def _read(root: Path, found: dict[str, list[Path]], classes: list[str], channels: int,
          size: tuple[int, int] | None, like: tuple[Path, tuple[int, ...]] | None = None) -> Dataset:
    files = [(path, classes.index(name)) for name, paths in found.items() for path in paths]
    images = [read_picture(path, channels, size) for path, _ in files]
    first, shape = like or (files[0][0], images[0].shape[1:])
    for (path, _), img in zip(files, images, strict=True):
        if img.shape[1:] != shape:
            raise DatasetError(f"inconsistent image sizes: {first} is {shape[1]}×{shape[0]} but {path} is "
                               f"{img.shape[2]}×{img.shape[1]} (width×height); resize the pictures to one size, or "
                               f"train a design whose Input block sets the size (convdesigner train --resume "
                               f"DESIGN.h5), to which they are then resized")
    return Dataset(np.stack(images), np.array([label for _, label in files]), list(classes), name=root.name,
                   meta={"source": str(root), "notes": []})


def load_image_folder(root: Path, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[Dataset, Dataset | None]:
    """Pictures under root/<class>/ (or root/train/<class>/ plus root/val|valid|validation|test/<class>/), converted
    to ``channels`` (default: 3 if any picture is in colour, else 1) and resized to ``size`` = (H, W) if given."""
    if not any(root.iterdir()):
        raise DatasetError(f"{root}: the folder is empty; expected one sub-folder of pictures per class")
    sub = {p.name.lower(): p for p in _class_folders(root)}
    split = next((sub[n] for n in SPLIT_NAMES if n in sub), None) if "train" in sub else None
    train_root = sub["train"] if split is not None else root
    train_found = _scan(train_root, None)
    classes = sorted(train_found)
    val_found = _scan(split, classes) if split is not None else None
    notes = []
    if channels is None:
        every = [p for files in train_found.values() for p in files]
        channels = 3 if any(_is_colour(p) for p in every) else 1
        notes.append(f"pictures read as {'RGB' if channels == 3 else 'grey'}")
    train = _read(train_root, train_found, classes, channels, size)
    train.name, train.meta["notes"] = root.name, notes
    if val_found is None:
        return train, None
    notes.append(f"validation pictures from {split.name}/")
    first = next(iter(train_found.values()))[0]
    return train, _read(split, val_found, classes, channels, size, (first, train.input_shape[1:]))
