"""The network as data: layer catalogue, graph, shape inference, validation, templates (numpy-free, Qt-free)."""
from .graph import Edge, Graph, GraphError, GraphInfo, Node, NodeInfo, Problem
from .layers import CATEGORIES, KINDS, LayerKind, Param, ParamError, ShapeError, kind
from .templates import TEMPLATES, build

__all__ = ["CATEGORIES", "KINDS", "TEMPLATES", "Edge", "Graph", "GraphError", "GraphInfo", "LayerKind", "Node",
           "NodeInfo", "Param", "ParamError", "Problem", "ShapeError", "build", "kind"]
