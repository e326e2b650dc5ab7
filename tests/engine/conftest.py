"""Shared tools for the engine tests: building one layer outside a network and checking its gradients."""
import numpy as np
import pytest

from convdesigner.engine.backend import cpu_backend
from convdesigner.engine.layers import LAYER_CLASSES
from convdesigner.graph.layers import KINDS

BACKEND = cpu_backend()


def make_layer(kind, input_shapes, seed=0, **params):
    """A layer of ``kind`` for per-sample ``input_shapes``, initialised as compile() would."""
    spec = KINDS[kind]
    checked = spec.checked_params(params)
    shapes = [tuple(s) for s in input_shapes]
    layer = LAYER_CLASSES[kind](kind.lower(), checked, shapes, spec.output_shape(checked, shapes), BACKEND)
    layer.init(np.random.default_rng(seed))
    return layer


def numeric_gradient(f, array, eps):
    """Central differences of the scalar ``f()`` with respect to every element of ``array`` (perturbed in place)."""
    grad = np.zeros(array.shape)
    view = array.reshape(-1)
    for i in range(view.size):
        old = view[i]
        view[i] = old + eps
        plus = f()
        view[i] = old - eps
        minus = f()
        view[i] = old
        grad.flat[i] = (plus - minus) / (2 * eps)
    return grad


def assert_close_gradient(analytic, numeric, what, tol=1e-2):
    scale = max(np.abs(numeric).max(), 1e-3)
    err = np.abs(analytic - numeric).max() / scale
    assert err < tol, f"{what}: error {err:.2e}\nanalytic {analytic.ravel()[:8]}\nnumeric {numeric.ravel()[:8]}"


def check_layer_gradients(layer, xs, training=True, eps=1e-2, tol=1e-2):
    """Backward of L = Σ y·r against central differences for every input and every learnable array."""
    def run():
        if layer.uses_rng:
            layer.rng = np.random.default_rng(7)  # the same dropout mask on every evaluation
        return layer.forward(list(xs), training).astype(np.float64)

    r = np.random.default_rng(1).normal(size=run().shape)
    run()
    dxs = [None if d is None else d.copy() for d in layer.backward(r.astype(np.float32), (True,) * len(xs))]
    grads = {n: p.grad.copy() for n, p in layer.weights.items()}

    def loss():
        return float((run() * r).sum())

    for i, (x, dx) in enumerate(zip(xs, dxs, strict=True)):
        assert dx is not None and dx.shape == x.shape
        assert_close_gradient(dx, numeric_gradient(loss, x, eps), f"{layer.kind} input {i}", tol)
    for name, p in layer.weights.items():
        assert_close_gradient(grads[name], numeric_gradient(loss, p.value, eps), f"{layer.kind} {name}", tol)


def away_from_zero(rng, shape, gap=0.1):
    """Values with |v| ≥ gap, so a kink at zero (ReLU...) stays outside the finite-difference step."""
    v = rng.normal(size=shape)
    return (np.sign(v) * (gap + np.abs(v))).astype(np.float32)


def distinct(rng, shape, step=0.1, offset=-3.0):
    """Distinct values at least ``step`` apart (clear pooling winners), mostly negative to catch zero padding."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) * step + offset).astype(np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def two_cores(monkeypatch):
    """Batches split in two parts whatever this machine's core count (engine.replicas, engine.part_processes)."""
    monkeypatch.setattr(BACKEND.k, "parts", lambda: 2)


def split_batch(net, n, seed=1):
    """``n`` random inputs for ``net`` and labels of its 10 classes."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + net.input_shape).astype(np.float32), rng.integers(0, 10, n)


def train_step(net, x, labels, input_grad=True):
    """(logits, loss, dL/dx, weight gradients) of one training step."""
    y = net.forward(x, training=True)
    loss = net.loss(labels)
    dx = net.backward(input_grad=input_grad)
    return y, loss, dx, [p.grad.copy() for p in net.parameters()]


def reseeded_training(net, x, labels, steps=2, seed=3):
    """The weights after ``steps`` SGD steps on one batch, each step's dropout masks reseeded as the trainer does."""
    from convdesigner.engine.optimizers import make_optimizer
    opt = make_optimizer("sgd", net.parameters(), 0.01)
    for b in range(steps):
        net.reseed(seed, 0, b)
        train_step(net, x, labels, input_grad=False)
        opt.step()
    return [p.value.copy() for p in net.parameters()]
