"""Model files in training: a network saved and loaded predicts the same, a run resumed from its file continues
bit for bit, and checkpoints bound what an interrupted run loses."""
from __future__ import annotations

import numpy as np
import pytest

from convdesigner.data.dataset import Dataset
from convdesigner.engine import compile
from convdesigner.engine.optimizers import make_optimizer
from convdesigner.engine.schedules import make_schedule
from convdesigner.engine.trainer import Trainer
from convdesigner.graph import Graph
from convdesigner.io import load_model, save_model
from convdesigner.io.checkpoint import Checkpoints, best_path


def small_net_graph() -> Graph:
    """1×8×8 → conv 4 → BatchNorm → ReLU → pool → flatten → dropout → dense 3: every kind of saved state."""
    g = Graph()
    last = g.add("Input", "input", {"channels": 1, "height": 8, "width": 8}).id
    for kind, name, params in (("Conv2D", "conv", {"filters": 4}), ("BatchNorm", "bn", {}), ("ReLU", "relu", {}),
                               ("MaxPool2D", "pool", {}), ("Flatten", "flatten", {}),
                               ("Dropout", "drop", {"rate": 0.3}), ("Dense", "fc", {"units": 3}),
                               ("SoftmaxCrossEntropy", "loss", {})):
        node = g.add(kind, name, params)
        g.connect(last, node.id)
        last = node.id
    return g


def data(n: int, seed: int) -> Dataset:
    """Three classes told apart by where a bright square sits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, 1, 8, 8)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 0, 3 * label:3 * label + 2, 2:6] = 250
    return Dataset(images, labels, ["top", "middle", "bottom"], (0.2,), (0.3,), name="squares")


def new_trainer(seed: int = 5, callbacks=()) -> Trainer:
    net = compile(small_net_graph(), seed=seed)
    optimizer = make_optimizer("adam", net.parameters(), 0.01, weight_decay=1e-4)
    schedule = make_schedule("plateau", 0.01, warmup=3, patience=0, factor=0.5)
    return Trainer(net, optimizer, data(40, 1), data(12, 2), schedule, callbacks, batch_size=8, seed=11)


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k][n], b[k][n]) for k in a for n in a[k])


def save_run(path, trainer: Trainer) -> None:
    save_model(path, trainer.net.graph, trainer.net.state_dict(), trainer.optimizer.state_dict(),
               trainer.state_dict(), dataset=trainer.train_data.description())


def test_saved_network_predicts_the_same(tmp_path):
    trainer = new_trainer()
    trainer.fit(1)
    save_run(tmp_path / "m.h5", trainer)
    m = load_model(tmp_path / "m.h5")
    assert m.graph == trainer.net.graph
    fresh = compile(m.graph, seed=99)
    fresh.load_state_dict(m.weights)
    assert weights_equal(fresh.state_dict(), trainer.net.state_dict())
    x = data(10, 3).normalise(data(10, 3).images)
    assert np.array_equal(fresh.predict_proba(x), trainer.net.predict_proba(x))
    optimizer = make_optimizer("adam", fresh.parameters(), 0.5)
    optimizer.load_state_dict(m.optimizer)
    saved, restored = trainer.optimizer.state_dict(), optimizer.state_dict()
    assert saved["hyper"] == restored["hyper"] and saved["step"] == restored["step"] == 5
    assert weights_equal({k: v for k, v in saved["slots"].items()}, restored["slots"])
    assert m.dataset == {"name": "squares", "input_shape": [1, 8, 8], "class_names": ["top", "middle", "bottom"],
                         "mean": [0.2], "std": [0.3]}


def test_two_epochs_saved_and_one_resumed_equal_three_straight(tmp_path):
    straight = new_trainer()
    straight.fit(3)

    first = new_trainer()
    first.fit(2)
    save_run(tmp_path / "run.h5", first)
    m = load_model(tmp_path / "run.h5")
    resumed = new_trainer(seed=123)  # different initial weights: everything must come from the file
    resumed.net.load_state_dict(m.weights)
    resumed.optimizer.load_state_dict(m.optimizer)
    resumed.load_state_dict(m.trainer)
    resumed.fit(1)

    assert weights_equal(resumed.net.state_dict(), straight.net.state_dict())
    assert resumed.optimizer.state_dict()["step"] == straight.optimizer.state_dict()["step"] == 15
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert resumed.optimizer.lr == straight.optimizer.lr


class Crash:
    """Kills the run (as a power cut would) at the end of epoch ``epoch``, after the checkpoint had its chance."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, row: dict) -> None:
        if row["epoch"] == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("every, kept", [(1, 3), (2, 2), (3, 3)])
def test_an_interrupted_run_loses_at_most_n_epochs(tmp_path, every, kept):
    path = tmp_path / "run.h5"
    checkpoints = Checkpoints(path, {"name": "squares"}, every, {"template": "small"})
    trainer = new_trainer(callbacks=[checkpoints, Crash(3)])
    checkpoints.attach(trainer)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(5)
    m = load_model(path)
    assert m.trainer["epoch"] == kept and len(m.history) == kept
    assert m.trainer["settings"] == {"template": "small"}


def test_the_best_epoch_is_kept_beside_the_run(tmp_path):
    path = tmp_path / "run.h5"
    checkpoints = Checkpoints(path, None, 0)
    trainer = new_trainer(callbacks=[checkpoints])
    checkpoints.attach(trainer)
    trainer.fit(4)
    assert not path.exists()  # every=0: only when asked
    best = load_model(best_path(path))
    losses = [row["val_loss"] for row in trainer.history]
    assert best.trainer["epoch"] == 1 + int(np.argmin(losses))
    assert checkpoints.best_loss == min(losses)


def test_best_path_names():
    assert best_path("runs/model.h5").as_posix() == "runs/model.best.h5"
    assert best_path("model").as_posix() == "model.best.h5"
    assert best_path("runs/model.best.h5").as_posix() == "runs/model.best.h5"  # not model.best.best.h5
    assert Checkpoints("runs/model.best.h5", None).best_path is None  # continued in place: no second best file
