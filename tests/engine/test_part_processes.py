"""Parts of split batches run in worker processes (engine/part_processes.py) give the whole batch's numbers, and a
worker that cannot start or stops costs nothing but speed."""
import gc
import os
import time

import numpy as np
import pytest

from convdesigner.engine import compile, part_processes, replicas
from convdesigner.engine.part_processes import MIN_PART, PartProcesses
from convdesigner.graph.templates import build

from .conftest import reseeded_training, split_batch, train_step

BATCH = 2 * MIN_PART + 5  # two uneven parts


def _batch(net, n=BATCH, seed=1):
    return split_batch(net, n, seed)


def _pair(key="lenet5"):
    """A network with its workers ready, and the same network run whole."""
    split, whole = compile(build(key), seed=0), compile(build(key), seed=0)
    whole.split_batches = False
    assert split.start_part_processes() is None
    return split, whole


def _close(got, want):
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert got[1] == pytest.approx(want[1], rel=1e-6)
    if want[2] is not None:
        np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-8)
    for a, b in zip(got[3], want[3], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_parts_in_a_worker_give_the_whole_batch_logits_loss_and_gradients(two_cores):
    split, whole = _pair()
    x, labels = _batch(split)
    for input_grad in (False, True):  # the worker's backward runs ahead of the call, or waits for it
        got, want = train_step(split, x, labels, input_grad), train_step(whole, x, labels, input_grad)
        assert isinstance(split._runner, PartProcesses) and split._parts == [(0, BATCH // 2), (BATCH // 2, BATCH)]
        _close(got, want)
    np.testing.assert_allclose(split.forward(x), whole.forward(x), rtol=1e-5, atol=1e-5)
    grad = np.random.default_rng(2).normal(size=(BATCH, 10)).astype(np.float32)
    np.testing.assert_allclose(split.backward(grad), whole.backward(grad), rtol=1e-4, atol=1e-5)
    split.loss(labels)  # an evaluation's loss: nothing runs ahead, nothing is left owed
    np.testing.assert_allclose(split.forward(x[:70]), whole.forward(x[:70]), rtol=1e-5, atol=1e-5)  # a bigger part
    assert split._processes.failure is None


def test_dropout_in_a_worker_draws_the_masks_the_threads_draw(two_cores, monkeypatch):
    monkeypatch.setitem(replicas.MIN_PART, True, MIN_PART)  # the threads split this batch the same way

    def train(processes):
        net = compile(build("seed-cnn"), seed=3)
        net.part_processes = processes
        if processes:
            assert net.start_part_processes() is None
        weights = reseeded_training(net, *_batch(net))
        assert isinstance(net._runner, PartProcesses) == processes and net._parts is not None
        return weights

    for a, b in zip(train(True), train(False), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_workers_start_only_for_a_long_run(two_cores):
    net = compile(build("resnet-small"), seed=0)
    whole = compile(build("resnet-small"), seed=0)
    whole.split_batches = False
    x, labels = _batch(net)
    for _ in range(part_processes.SPAWN_AFTER - 1):
        net.forward(x[:2 * MIN_PART])
    assert net._processes is None
    net.forward(x)
    assert net._processes is not None and net._processes.wait()
    np.testing.assert_allclose(net.forward(x), whole.forward(x), rtol=1e-4, atol=1e-5)
    assert isinstance(net._runner, PartProcesses)


def _thread_twin(key, monkeypatch):
    """``key`` split on threads into the parts the processes use, BatchNorm blocks however heavy."""
    monkeypatch.setitem(replicas.MIN_PART, True, MIN_PART)
    net = compile(build(key), seed=0)
    net.part_processes = False
    net._splittable[True] = True
    return net


@pytest.mark.parametrize("key", ["resnet-small", "densenet-small"])
def test_batchnorm_in_workers_trades_statistics_as_the_threads_do(two_cores, monkeypatch, key):
    split, threads = compile(build(key), seed=0), _thread_twin(key, monkeypatch)
    assert split.start_part_processes() is None
    x, labels = _batch(split)
    for _ in range(2):  # the second step from the weights and running statistics the first one left
        got, want = train_step(split, x, labels), train_step(threads, x, labels)
        assert isinstance(split._runner, PartProcesses) and isinstance(threads._runner, replicas.Replicas)
        assert got[1] == want[1]
        for a, b in [(got[0], want[0]), (got[2], want[2]), *zip(got[3], want[3], strict=True),
                     *zip(split.states(), threads.states(), strict=True)]:
            np.testing.assert_array_equal(a, b)  # the same numbers in the same order
        for net in (split, threads):
            for p in net.parameters():
                p.value -= 0.1 * p.grad


def test_a_step_that_fails_here_before_an_exchange_leaves_the_workers_ready(two_cores, monkeypatch):
    split, threads = compile(build("resnet-small"), seed=0), _thread_twin("resnet-small", monkeypatch)
    assert split.start_part_processes() is None
    x, labels = _batch(split)
    bn = next(layer for layer in split.layers if layer.kind == "BatchNorm")

    def broken(xs, training):
        raise MemoryError("no room for this part")

    bn.forward = broken
    with pytest.raises(MemoryError, match="no room for this part"):
        split.forward(x, training=True)  # the worker now waits at that BatchNorm's exchange
    del bn.forward
    got, want = train_step(split, x, labels), train_step(threads, x, labels)
    assert isinstance(split._runner, PartProcesses) and split._processes.failure is None
    np.testing.assert_array_equal(got[3][0], want[3][0])


def test_a_worker_that_stops_mid_step_leaves_the_step_whole_and_the_network_on_threads(two_cores):
    split, whole = _pair()
    x, labels = _batch(split)
    train_step(split, x, labels)
    train_step(whole, x, labels)
    worker = split._processes.workers[0].process
    split.forward(x, training=True)
    worker.kill()
    worker.wait()
    _close(train_step(split, x, labels), train_step(whole, x, labels))
    assert "worker process 1" in split._processes.failure and "exit code -9" in split._processes.failure
    assert not isinstance(split._runner, PartProcesses) and split._processes.workers == []
    assert split.start_part_processes() == split._processes.failure  # and it is not tried again


def test_a_worker_that_cannot_start_costs_only_speed(two_cores, monkeypatch):
    monkeypatch.setattr(part_processes.sys, "executable", "/nonexistent/python")
    split, whole = compile(build("lenet5"), seed=0), compile(build("lenet5"), seed=0)
    whole.split_batches = False
    assert "could not start the engine's worker processes" in split.start_part_processes()
    x, labels = _batch(split)
    _close(train_step(split, x, labels), train_step(whole, x, labels))


def test_workers_end_with_their_network_and_leave_no_file(two_cores):
    starting = compile(build("lenet5"), seed=0)
    starting._start_processes(2)
    path = starting._processes.weights.path
    assert os.path.exists(path)  # until the workers have mapped it
    del starting
    gc.collect()
    assert not os.path.exists(path)
    net, _ = _pair()
    process = net._processes.workers[0].process
    del net
    gc.collect()
    end = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert process.poll() == 0
