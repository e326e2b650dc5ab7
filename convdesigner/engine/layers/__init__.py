"""One layer class per catalogue kind, forward and backward side by side; the arithmetic is in the backend's kernels.

``LAYER_CLASSES`` maps every kind of ``graph.layers.KINDS`` to its class, found among the Layer subclasses.
"""
from ...graph.layers import KINDS
from . import activation, conv, dense, dropout, input, losses, merge, normalization, pooling, reshape  # noqa: F401
from .base import Layer, Parameter


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


_BY_KIND = {cls.kind: cls for cls in _subclasses(Layer) if cls.kind}
LAYER_CLASSES: dict[str, type[Layer]] = {name: _BY_KIND[name] for name in KINDS if name in _BY_KIND}
if len(LAYER_CLASSES) != len(KINDS):
    raise ImportError(f"no engine layer for {', '.join(sorted(set(KINDS) - set(LAYER_CLASSES)))}")

__all__ = ["LAYER_CLASSES", "Layer", "Parameter"]
