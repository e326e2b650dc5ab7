"""Inverted dropout: the mask holds 0 or 1/(1 − rate), so evaluation needs no rescaling."""
import numpy as np

from convdesigner.engine.cpu.parallel import elementwise


def uniform(rng, out):
    """Fills ``out`` (float32) with uniform [0, 1) numbers from the network's dropout generator."""
    rng.random(out=out, dtype=np.float32)


@elementwise(1 << 22)
def dropout_forward(x, u, rate, y):
    """Turns the uniform numbers ``u`` into the mask in place and writes y = x · mask."""
    scale = 1.0 / (1.0 - rate)
    for i in range(x.size):
        m = scale if u[i] >= rate else 0.0
        u[i] = m
        y[i] = x[i] * m


def dropout_backward(mask, dy, dx):
    np.multiply(dy, mask, out=dx)
