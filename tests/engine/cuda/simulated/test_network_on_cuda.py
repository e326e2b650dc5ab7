"""A whole network compiled for 'cuda': the same training step as on the CPU (conv + fused ReLU, BatchNorm, a
residual Add, pooling, Dense, the head and SGD), the trainer's loop, evaluation, and model weights that move between
devices."""
import os

import numpy as np

from convdesigner.data.dataset import Dataset
from convdesigner.engine import compile, device_status
from convdesigner.engine.metrics import evaluate
from convdesigner.engine.optimizers import make_optimizer
from convdesigner.engine.trainer import Trainer
from convdesigner.graph.graph import Graph

from .conftest import assert_same


def small_graph():
    g = Graph()
    ids = {}

    def add(kind, name, params, *sources):
        ids[name] = g.add(kind, name, params).id
        for s in sources:
            g.connect(ids[s], ids[name])

    add("Input", "input", {"channels": 1, "height": 6, "width": 6})
    add("Conv2D", "conv", {"filters": 2, "kernel_h": 3, "kernel_w": 3, "padding": "same"}, "input")
    add("ReLU", "relu", {}, "conv")
    add("BatchNorm", "bn", {}, "relu")
    add("Add", "skip", {}, "bn", "relu")
    add("MaxPool2D", "pool", {"pool_size": 2}, "skip")
    add("Flatten", "flat", {}, "pool")
    add("Dense", "fc", {"units": 3}, "flat")
    add("SoftmaxCrossEntropy", "loss", {}, "fc")
    return g


def test_device_status_names_the_simulator_or_the_gpu():
    available, reason = device_status("cuda")
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    assert available and ("simulator" in reason) == simulated and (simulated or "compute capability" in reason)


def test_training_steps_match_the_cpu():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(4, 1, 6, 6)).astype(np.float32), np.array([0, 2, 1, 2])
    nets = [compile(small_graph(), device=d, seed=3) for d in ("cpu", "cuda")]
    assert nets[1].backend.name == "cuda" and "cuda" in repr(nets[1])
    results = []
    for net in nets:
        opt = make_optimizer("sgd", net.parameters(), 0.1, momentum=0.9)
        net.forward(x, training=True)
        losses = [net.loss(labels)]
        net.backward(input_grad=False)
        opt.step()
        dx = (net.forward(x, training=True), net.loss(labels), net.backward())[2]
        results.append({"losses": losses, "dx": dx, "weights": net.state_dict(),
                        "proba": net.predict_proba(x, batch_size=3)})
    assert_same(results[0], results[1], "network", tol=1e-4)


def test_weights_move_between_devices_and_the_trainer_runs_on_cuda():
    rng = np.random.default_rng(1)
    data = Dataset(rng.normal(size=(6, 1, 6, 6)).astype(np.float32), np.array([0, 1, 2, 0, 1, 2]),
                   ["a", "b", "c"], name="tiny")
    gpu = compile(small_graph(), device="cuda", seed=0)
    history = Trainer(gpu, make_optimizer("adam", gpu.parameters(), 0.01), data, batch_size=8, seed=0).fit(1)
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    cpu = compile(small_graph(), device="cpu", seed=5)
    cpu.load_state_dict(gpu.state_dict())
    assert all(isinstance(a, np.ndarray) for block in gpu.state_dict().values() for a in block.values())
    assert_same(cpu.forward(data.images), gpu.forward(data.images), "after the move", tol=1e-4)
    on_cpu, on_gpu = evaluate(cpu, data), evaluate(gpu, data)
    assert_same([on_cpu.loss, on_cpu.accuracy, on_cpu.confidence], [on_gpu.loss, on_gpu.accuracy, on_gpu.confidence],
                "evaluation", tol=1e-4)
