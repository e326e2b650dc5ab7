"""The shared layer classes on the CUDA backend: one case of every catalogue kind from tests/engine/test_layers.py,
built on both backends with the same initial weights, must give the same output, input gradients and weight
gradients (this also checks that the layers move and fill arrays only through the backend)."""
import numpy as np
import pytest

from convdesigner.engine.layers import LAYER_CLASSES
from convdesigner.graph.layers import KINDS

from ...test_layers import CASES as LAYER_CASES
from .conftest import CPU, GPU, assert_same, down, up

N = 2


def _first_case_of_each_kind():
    chosen = {}
    for name, case in LAYER_CASES.items():
        chosen.setdefault(case[0], name)
    return sorted(chosen.values())


def build(kind, shapes, params, backend):
    spec = KINDS[kind]
    checked = spec.checked_params(params)
    layer = LAYER_CLASSES[kind](kind.lower(), checked, shapes, spec.output_shape(checked, shapes), backend)
    layer.init(np.random.default_rng(0))
    return layer


def forward_backward(layer, xs, dy, on_gpu):
    move = up if on_gpu else (lambda a: a)
    y = layer.forward([move(x) for x in xs], True)
    dxs = layer.backward(move(dy), (True,) * len(xs))
    out = {"y": y, "dx": list(dxs), **{n: p.grad for n, p in layer.weights.items()},
           **{f"state {n}": a for n, a in layer.state.items()}}
    return down(out) if on_gpu else {k: (v.copy() if isinstance(v, np.ndarray) else
                                         [d.copy() if d is not None else None for d in v]) for k, v in out.items()}


@pytest.mark.parametrize("case", [c for c in _first_case_of_each_kind() if LAYER_CASES[c][0] != "Dropout"])
def test_layer_matches_the_cpu(case):
    kind, shapes, params, maker = LAYER_CASES[case]
    rng = np.random.default_rng(0)
    xs = [maker(rng, (N, *s)) for s in shapes]
    cpu_layer, gpu_layer = build(kind, shapes, params, CPU), build(kind, shapes, params, GPU)
    assert_same({n: p.value for n, p in cpu_layer.weights.items()},
                {n: p.value.copy_to_host() for n, p in gpu_layer.weights.items()}, "initial weights", tol=0)
    dy = rng.normal(size=(N, *cpu_layer.output_shape)).astype(np.float32)
    assert_same(forward_backward(cpu_layer, xs, dy, False), forward_backward(gpu_layer, xs, dy, True), case,
                tol=1e-4)


def test_dropout_layer_is_inverted_seeded_and_the_identity_in_evaluation():
    layer = build("Dropout", [(4, 8, 8)], {"rate": 0.25}, GPU)
    x = np.ones((2, 4, 8, 8), np.float32)
    masks = []
    for _ in range(2):
        layer.rng = np.random.default_rng([3, 0, 0])
        masks.append(layer.forward([up(x)], True).copy_to_host())
    np.testing.assert_array_equal(masks[0], masks[1])
    assert set(np.unique(masks[0])) == {0.0, np.float32(1 / 0.75)}
    assert abs(np.mean(masks[0] == 0) - 0.25) < 0.06
    dx = layer.backward(up(np.full_like(x, 2.0)), (True,))[0].copy_to_host()
    np.testing.assert_array_equal(dx, 2.0 * masks[0])
    x_dev = up(x)
    assert layer.forward([x_dev], False) is x_dev
