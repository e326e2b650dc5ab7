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
    than in size), and a count of the live gradients that use each one."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self._free: list[np.ndarray] = []
        self._made: dict[int, np.ndarray] = {}
        self._live: Counter = Counter()

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """A buffer of ``shape`` that no live gradient uses: the smallest free one that fits, else a new one."""
        size = math.prod(shape)
        fits = [i for i, b in enumerate(self._free) if b.size >= size]
        if fits:
            buf = self._free.pop(min(fits, key=lambda i: self._free[i].size))
        else:
            buf = self._backend.empty((size,))
            self._made[id(buf)] = buf
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

    def buffers(self) -> set[int]:
        return set(self._made)

    def forget(self, keep: set[int]) -> None:
        """Lets go of every buffer but ``keep`` (inspection drops what it made for a batch size used once)."""
        self._made = {k: b for k, b in self._made.items() if k in keep}
        self.reset()

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._made.values())
