"""Where the shipped files (the MNIST sample, icons) are: inside an installed wheel, or at the top of a clone."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """Path of a file from ``resources/``; a FileNotFoundError says where it was looked for."""
    candidates = (_HERE / "resources" / name, _HERE.parent / "resources" / name)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"resource '{name}' is missing (looked in {', '.join(str(c.parent) for c in candidates)});"
                            f" reinstall ConvDesigner")
