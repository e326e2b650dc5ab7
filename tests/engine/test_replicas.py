"""Batches split between copies of a network on every core (engine/replicas.py) give the whole batch's numbers."""
import threading

import numpy as np
import pytest

from convdesigner.engine import compile, inspect
from convdesigner.engine.cpu import blas_threads
from convdesigner.engine.replicas import MIN_PART
from convdesigner.graph.templates import build

from .conftest import reseeded_training, split_batch, train_step

BATCH = 2 * MIN_PART[True] + 5  # two uneven parts, in training and evaluation


def _batch(net, n=BATCH, seed=1):
    return split_batch(net, n, seed)


def test_split_batch_gives_the_whole_batch_logits_loss_and_gradients(two_cores):
    split, whole = compile(build("lenet5"), seed=0), compile(build("lenet5"), seed=0)
    whole.split_batches = False
    x, labels = _batch(split)
    got, want = train_step(split, x, labels), train_step(whole, x, labels)
    assert split._parts == [(0, BATCH // 2), (BATCH // 2, BATCH)] and whole._parts is None
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert got[1] == pytest.approx(want[1], rel=1e-6)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-8)
    for a, b in zip(got[3], want[3], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(split.predict_proba(x), whole.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_an_explicit_output_gradient_is_split_and_checked(two_cores):
    split, whole = compile(build("lenet5"), seed=0), compile(build("lenet5"), seed=0)
    whole.split_batches = False
    x, _ = _batch(split)
    grad = np.random.default_rng(2).normal(size=(BATCH, 10)).astype(np.float32)
    split.forward(x)
    whole.forward(x)
    np.testing.assert_allclose(split.backward(grad), whole.backward(grad), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=f"the gradient must match the last output, {BATCH}×10, not {BATCH - 1}×10"):
        split.backward(grad[1:])
    with pytest.raises(ValueError, match=f"{BATCH - 1} targets for a batch of {BATCH} outputs"):
        split.loss(np.zeros(BATCH - 1, np.int64))


def test_small_batches_run_whole(two_cores):
    net = compile(build("lenet5"))
    x = _batch(net, 2 * MIN_PART[True] - 1)[0]
    net.forward(x, training=True)
    assert net._parts is None and net._replicas is None  # no copy is made (nor its gradients held) until needed
    net.forward(x[:2 * MIN_PART[False] - 1])
    assert net._parts is None
    net.forward(x)
    assert net._parts is not None  # evaluation splits smaller batches


def test_batchnorm_networks_train_split_only_where_their_blocks_are_light(two_cores):
    for key, splits in (("efficientnet-small", True), ("resnet-small", False), ("densenet-small", False)):
        net = compile(build(key))
        x = _batch(net)[0]
        net.forward(x, training=True)
        assert (net._parts is not None) == splits, key
        net.forward(x)
        assert net._parts is not None, key  # evaluation reads the running statistics: no exchange


def _without_dropout(key):
    graph = build(key)
    for node in graph.nodes.values():
        if node.kind == "Dropout":
            node.params["rate"] = 0.0  # the parts draw their own masks
    return graph


def _gates(net, parts=None):
    """Each ReLU's output after the forward just run, the parts' joined in batch order (a fused ReLU's is its
    producer's output)."""
    nets = [net] if parts is None else net._replicas.networks[:len(parts)]
    gated = sorted(set(net._fusions.values()) | {i for i, layer in enumerate(net.layers) if layer.kind == "ReLU"}
                   - set(net._fusions))
    return {net.layers[i].name: np.concatenate([n.layers[i]._y for n in nets]) for i in gated}


def _flipped_samples(got, want):
    """Samples in which some ReLU opened in one run and stayed shut in the other. Summing in another order moves
    a pre-activation by rounding only, so such a gate must sit at zero within rounding."""
    samples = set()
    for name, b in want.items():
        a = got[name]
        flip = (a > 0) != (b > 0)
        if flip.any():
            assert np.maximum(a, b)[flip].max() < 1e-5, f"{name} opens a gate that is not at zero"
            samples.update(np.nonzero(flip)[0].tolist())
    return sorted(samples)


def _forward_without_flips(split, whole, x, labels):
    """Both networks' training forward on ``x``, less the samples whose gradients differ by a whole gate's: where
    a ReLU sits at zero within rounding, the split and the whole batch open it differently (_flipped_samples).
    Each retry starts from the running statistics the first try found."""
    states = [a.copy() for a in split.states()], [a.copy() for a in whole.states()]
    while True:
        got, want = split.forward(x, training=True), whole.forward(x, training=True)
        assert split._parts is not None and whole._parts is None
        flipped = _flipped_samples(_gates(split, split._parts), _gates(whole))
        if not flipped:
            return x, labels, got, want
        for net, saved in zip((split, whole), states, strict=True):
            for a, b in zip(net.states(), saved, strict=True):
                a[...] = b
        keep = np.setdiff1d(np.arange(len(x)), flipped)
        x, labels = x[keep], labels[keep]


@pytest.mark.parametrize("key", ["resnet-small", "efficientnet-small"])
def test_batchnorm_on_parts_normalises_with_the_whole_batch(two_cores, key):
    split, whole = compile(_without_dropout(key), seed=0), compile(_without_dropout(key), seed=0)
    whole.split_batches = False
    split._splittable[True] = True  # ResNet-small's blocks are too heavy to gain from it, but they work split
    batch, labels = _batch(split)
    for _ in range(2):  # the second step starts from the running statistics and weights the first one left
        x, y, got, want = _forward_without_flips(split, whole, batch, labels)
        assert len(x) >= BATCH - BATCH // 20
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert split.loss(y) == pytest.approx(whole.loss(y), rel=1e-6)
        got, want = split.backward(input_grad=True), whole.backward(input_grad=True)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6 * np.abs(want).max())
        for p, q in zip(split.parameters(), whole.parameters(), strict=True):
            np.testing.assert_allclose(p.grad, q.grad, rtol=1e-3, atol=1e-5 * np.abs(q.grad).max() + 1e-8)
        for a, b in zip(split.states(), whole.states(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        for p, q in zip(split.parameters(), whole.parameters(), strict=True):
            p.value -= 0.1 * p.grad
            q.value -= 0.1 * q.grad
    np.testing.assert_allclose(split.forward(batch), whole.forward(batch), rtol=1e-4, atol=1e-5)  # evaluation too
    assert split._parts is not None


def test_a_part_failing_mid_step_stops_the_others_and_names_its_error(two_cores):
    net = compile(build("resnet-small"), seed=0)
    net._splittable[True] = True
    x, labels = _batch(net)
    net.forward(x, training=True)  # makes the copy
    copy = net._replicas.copies[0]
    bn = next(layer for layer in copy.layers if layer.kind == "BatchNorm")

    def broken(xs, training):
        raise MemoryError("no room for this part")

    bn.forward = broken
    done = []
    worker = threading.Thread(target=lambda: done.append(pytest.raises(MemoryError, net.forward, x, True)))
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the other part still waits at the exchange"
    assert done and "no room for this part" in str(done[0].value)
    del bn.forward
    whole = compile(build("resnet-small"), seed=0)
    whole.split_batches = False
    np.testing.assert_allclose(net.forward(x, training=True), whole.forward(x, training=True), rtol=1e-4, atol=1e-5)
    assert net._parts is not None  # the next step splits again, nothing left waiting or half-updated


def test_training_with_dropout_on_parts_repeats_from_the_seed(two_cores):
    def train():
        net = compile(build("seed-cnn"), seed=3)
        weights = reseeded_training(net, *_batch(net))
        assert net._parts is not None
        return weights

    for a, b in zip(train(), train(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_inspection_reads_the_whole_batch(two_cores):
    net = compile(build("lenet5"), seed=0)
    x, _ = _batch(net)
    maps = inspect.activations(net, x)
    assert maps["conv1"].shape == (BATCH, 6, 28, 28)
    net.split_batches = False
    np.testing.assert_allclose(maps["conv1"], inspect.activations(net, x)["conv1"], rtol=1e-6, atol=1e-6)


def test_run_parts_runs_kernels_single_threaded_and_waits_for_every_job():
    seen, finished = [], []

    def ok():
        seen.append(blas_threads.serial())
        finished.append(True)
        return 7

    def fails():
        raise RuntimeError("part failed")

    assert blas_threads.run_parts([ok, ok]) == [7, 7]
    if blas_threads.parts() > 1 and blas_threads.OPENBLAS_THREADS is not None:
        assert seen == [True, True]
    assert not blas_threads.serial()
    finished.clear()
    with pytest.raises(RuntimeError, match="part failed"):
        blas_threads.run_parts([fails, ok])
    assert finished == [True]
