"""Turns a graph into a runnable network and trains it: ``compile(graph, device, seed) -> Network``."""
from .layers import Parameter
from .network import CompileError, Network, compile

__all__ = ["compile", "Network", "Parameter", "CompileError"]
