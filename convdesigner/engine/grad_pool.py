"""Input-gradient buffers shared by the layers of one network during backward.

A block's input gradient lives only until the block that produced its input has run its own backward, so holding
one buffer per block (as for the forward outputs, which backward needs) doubled the activation memory of a training
step. Layers ask the pool for their ``dx`` buffers; the network gives each gradient back once every consumer has
read it, counting views (Flatten's reshape, Add's pass-through, a fused ReLU) against the array they view.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class GradientPool:
    """Flat float32 buffers, handed out as views of any shape that fits (blocks of a network differ in shape more
    than in size), and a count of the live gradients that use each one.

    Each backward pass asks for the same sizes in the same order, so the n-th request gets the buffer the n-th got
    in the last pass where that one is free and fits; the first pass, and one that goes another way, take the
    smallest free buffer that fits, else grow the largest free one. Best fit alone from a pool with every buffer
    free gave a seed CNN's tiny first gradients its two big buffers, and the big gradients new ones, every pass."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self._free: list[np.ndarray] = []
        self._made: dict[int, np.ndarray] = {}
        self._live: Counter = Counter()
        self._last: list[np.ndarray] = []  # the buffer of each request of the last pass, in order
        self._this: list[np.ndarray] = []

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """A buffer of ``shape`` that no live gradient uses (see the class)."""
        size = math.prod(shape)
        n = len(self._this)
        planned = self._last[n] if n < len(self._last) else None
        free = [i for i, b in enumerate(self._free) if b is planned and b.size >= size]
        if not free:
            fits = [i for i, b in enumerate(self._free) if b.size >= size]
            free = [min(fits, key=lambda i: self._free[i].size)] if fits else []
        if free:
            buf = self._free.pop(free[0])
        else:
            old = None
            if self._free:  # all smaller: the largest one grows into this one, for every request it served
                old = self._free.pop(max(range(len(self._free)), key=lambda i: self._free[i].size))
                del self._made[id(old)]
            buf = self._backend.empty((size,))  # its pages are touched when written, once ``old`` is gone
            if old is not None:
                self._last = [buf if b is old else b for b in self._last]
                self._this = [buf if b is old else b for b in self._this]
            self._made[id(buf)] = buf
        self._this.append(buf)
        return buf[:size].reshape(shape)

    def hold(self, grad: np.ndarray | None) -> None:
        """``grad`` is now some block's pending gradient."""
        if grad is not None:
            self._live[id(_root(grad))] += 1

    def drop(self, grad: np.ndarray | None) -> None:
        """A pending gradient was read for the last time; its buffer is free once nothing else uses it."""
        if grad is None:
            return
        key = id(_root(grad))
        self._live[key] -= 1
        if self._live[key] <= 0:
            del self._live[key]
            buf = self._made.get(key)
            if buf is not None:
                self._free.append(buf)

    def reset(self) -> None:
        """Every buffer free again (the start of a backward pass: the last one's gradients are all consumed)."""
        self._live.clear()
        self._free = list(self._made.values())
        if self._this:
            self._last, self._this = self._this, []

    def buffers(self) -> set[int]:
        return set(self._made)

    def forget(self, keep: set[int]) -> None:
        """Lets go of every buffer but ``keep`` (inspection drops what it made for a batch size used once)."""
        self._made = {k: b for k, b in self._made.items() if k in keep}
        self._last, self._this = [], []
        self.reset()

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._made.values())
