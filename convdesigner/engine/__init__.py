"""Turns a graph into a runnable network and trains it: ``compile(graph, device, seed) -> Network``."""
from . import cpu  # noqa: F401  (first: it picks numba's threading layer before anything can start one)
from .cuda.status import device_status
from .layers import Parameter
from .network import CompileError, Network, compile

__all__ = ["compile", "Network", "Parameter", "CompileError", "device_status"]
