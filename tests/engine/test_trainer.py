"""The Trainer drives any network that follows the engine contract: a small softmax-regression stand-in with dropout
makes the loop's own behaviour (seeding, resume, stop, divergence, early stopping) checkable in milliseconds."""
import io
import math

import numpy as np
import pytest

from convdesigner.console import ConsoleProgress
from convdesigner.data.dataset import Dataset
from convdesigner.engine import Parameter
from convdesigner.engine.optimizers import make_optimizer
from convdesigner.engine.schedules import make_schedule
from convdesigner.engine.trainer import Trainer, TrainingDiverged
from convdesigner.graph import build
from convdesigner.graph.graph import adapt_graph


class LinearNet:
    """Flatten → inverted dropout (training only) → Dense: the engine's Network contract in numpy."""

    def __init__(self, input_shape=(1, 4, 4), classes=3, loss_kind="SoftmaxCrossEntropy", dropout=0.2, seed=0):
        d = int(np.prod(input_shape))
        rng = np.random.default_rng(seed)
        self.input_shape, self.output_shape, self.loss_kind, self.dropout = input_shape, (classes,), loss_kind, dropout
        self.w = Parameter("fc", "kernel", rng.normal(0, 0.1, (classes, d)).astype(np.float32),
                           np.zeros((classes, d), np.float32), True)
        self.b = Parameter("fc", "bias", np.zeros(classes, np.float32), np.zeros(classes, np.float32), False)
        self.rng = np.random.default_rng(0)

    def reseed(self, seed, epoch, batch=0):
        self.rng = np.random.default_rng([seed, epoch, batch])

    def forward(self, x, training=False):
        h = x.reshape(len(x), -1)
        if training and self.dropout:
            h = h * (self.rng.random(h.shape) >= self.dropout) / np.float32(1 - self.dropout)
        self.h = h.astype(np.float32)
        self.y = self.h @ self.w.value.T + self.b.value
        return self.y

    def loss(self, targets):
        n = len(self.y)
        if self.loss_kind == "SigmoidBCE":
            p = 1 / (1 + np.exp(-self.y))
            self.dy = ((p - targets) / (n * self.y.shape[1])).astype(np.float32)
            return float(-np.mean(targets * np.log(p + 1e-12) + (1 - targets) * np.log(1 - p + 1e-12)))
        z = self.y - self.y.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(n), targets]))
        p[np.arange(n), targets] -= 1
        self.dy = (p / n).astype(np.float32)
        return float(loss)

    def backward(self, grad=None, input_grad=True):
        g = self.dy if grad is None else grad
        self.w.grad[...] = g.T @ self.h
        self.b.grad[...] = g.sum(axis=0)
        return (g @ self.w.value).reshape((len(g),) + self.input_shape)

    def parameters(self):
        return [self.w, self.b]

    @property
    def head(self):
        """What ``evaluate`` asks of the loss block: probabilities from the outputs."""
        def proba(y):
            if self.loss_kind == "SigmoidBCE":
                return 1 / (1 + np.exp(-y))
            e = np.exp(y - y.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return type("Head", (), {"proba": staticmethod(proba)})

    def state_dict(self):
        return {"fc": {"kernel": self.w.value.copy(), "bias": self.b.value.copy()}}

    def load_state_dict(self, d):
        self.w.value[...] = d["fc"]["kernel"]
        self.b.value[...] = d["fc"]["bias"]


def blobs(n, seed, classes=3, shift=0):
    """uint8 1×4×4 images: class k lights row k (plus noise); ``shift`` relabels to make a contradicting set."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.normal(60, 25, (n, 1, 4, 4))
    images[np.arange(n), 0, labels] += 120
    return Dataset(np.clip(images, 0, 255).astype(np.uint8), (labels + shift) % classes,
                   [f"c{k}" for k in range(classes)], mean=(0.3,), std=(0.2,), name="blobs")


def make(seed=0, kind="adam", lr=0.05, schedule=None, callbacks=(), val=None, **kw):
    net = LinearNet()
    opt = make_optimizer(kind, net.parameters(), lr)
    trainer = Trainer(net, opt, blobs(200, 1), blobs(60, 2) if val is None else val, schedule=schedule,
                      callbacks=callbacks, batch_size=16, seed=seed, **kw)
    return net, opt, trainer


class Recorder:
    def __init__(self):
        self.batches, self.rows, self.reasons = [], [], []

    def on_batch_end(self, info):
        self.batches.append(info)

    def on_epoch_end(self, row):
        self.rows.append(row)

    def on_stop(self, reason):
        self.reasons.append(reason)


def test_fit_learns_and_reports_every_batch_and_epoch():
    rec = Recorder()
    net, opt, trainer = make(callbacks=[rec])
    history = trainer.fit(4)
    assert trainer.epoch == 4 and len(history) == 4 and rec.rows == history
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "img_s"}
    assert history[-1]["val_acc"] > 0.9 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert len(rec.batches) == 4 * 13  # 200 images in batches of 16
    first = rec.batches[0]
    assert (first["epoch"], first["batch"], first["batches"]) == (1, 1, 13)
    assert set(first) == {"epoch", "batch", "batches", "loss", "batch_loss", "acc", "lr", "seen", "seconds",
                          "img_s"} and first["img_s"] > 0
    assert rec.reasons == ["completed 4 epochs"]
    loss, acc = trainer.evaluate(trainer.val_data)
    assert (loss, acc) == (history[-1]["val_loss"], history[-1]["val_acc"])


def test_same_seed_same_losses_other_seed_other_losses():
    runs = [make(seed=s)[2].fit(2) for s in (7, 7, 8)]
    losses = [[r["train_loss"] for r in h] for h in runs]
    assert losses[0] == losses[1] and losses[0] != losses[2]


def test_resume_is_bit_identical_to_training_straight_through():
    def setup():
        return make(kind="adam", schedule=make_schedule("plateau", 0.05, warmup=5, patience=0, factor=0.5),
                    augment=lambda x, rng: x + rng.normal(0, 0.1, x.shape).astype(np.float32))

    net, opt, trainer = setup()
    straight = trainer.fit(3)
    net1, opt1, trainer1 = setup()
    trainer1.fit(2)
    saved = (net1.state_dict(), opt1.state_dict(), trainer1.state_dict())
    net2, opt2, trainer2 = setup()
    net2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    trainer2.load_state_dict(saved[2])
    resumed = trainer2.fit(1)
    assert trainer2.epoch == 3
    strip = [{k: v for k, v in r.items() if k not in ("seconds", "img_s")} for r in straight]
    assert [{k: v for k, v in r.items() if k not in ("seconds", "img_s")} for r in resumed] == strip
    np.testing.assert_array_equal(net2.w.value, net.w.value)


def test_schedule_sets_the_rate_per_batch_and_epoch():
    rec = Recorder()
    make(lr=0.1, schedule=make_schedule("step", 0.1, warmup=2, step_size=1, gamma=0.5), callbacks=[rec])[2].fit(2)
    assert [b["lr"] for b in rec.batches[:3]] == pytest.approx([0.05, 0.1, 0.1])
    assert [r["lr"] for r in rec.rows] == pytest.approx([0.1, 0.05])


def test_stop_from_a_callback_ends_after_the_current_batch():
    class StopAtThird(Recorder):
        def on_batch_end(self, info):
            super().on_batch_end(info)
            if len(self.batches) == 3:
                trainer.stop()

    rec = StopAtThird()
    net, opt, trainer = make(callbacks=[rec])
    assert trainer.fit(5) == []
    assert len(rec.batches) == 3 and opt.step_count == 3 and trainer.epoch == 0
    assert rec.reasons == ["stopped during epoch 1 after batch 3; the last complete epoch is 0"]
    assert trainer.position["batch"] == 3 and trainer.state_dict()["position"]["epoch"] == 1
    assert len(trainer.fit(1)) == 1  # the flag is cleared: a new fit runs, finishing the cut epoch
    assert opt.step_count == 13 and len(rec.batches) == 13 and trainer.position is None


def test_divergence_raises_before_the_bad_update():
    data = blobs(64, 3)
    images = data.images.astype(np.float32) / 255
    images[40, 0, 1, 1] = np.nan  # one poisoned picture: its batch's loss is NaN
    poisoned = Dataset(images, data.labels, data.class_names, name="poisoned")
    snapshots = []

    class Snapshot:
        def on_batch_end(self, info):
            snapshots.append((info["loss"], net.w.value.copy()))

    net = LinearNet()
    opt = make_optimizer("sgd", net.parameters(), 0.1)
    reasons = []
    stop = type("S", (), {"on_stop": lambda self, r: reasons.append(r)})()
    trainer = Trainer(net, opt, poisoned, None, callbacks=[Snapshot(), stop], batch_size=16)
    snapshots.append((math.nan, net.w.value.copy()))
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(1)
    message = str(err.value)
    assert "epoch 1, batch" in message and "the loss became nan" in message
    assert "last finite loss was" in message and "lower the learning rate (now 0.1)" in message
    np.testing.assert_array_equal(net.w.value, snapshots[-1][1])  # untouched since the last good batch
    assert reasons == [message]


def test_early_stopping_restores_the_best_epoch():
    rec = Recorder()
    best = {}

    class KeepWeights:
        def on_epoch_end(self, row):
            best[row["epoch"]] = net.w.value.copy()

    # validation labels contradict the training ones: the better it fits, the worse validation gets
    net, opt, trainer = make(val=blobs(60, 2, shift=1), callbacks=[rec, KeepWeights()], early_stopping=2)
    trainer.fit(10)
    assert trainer.epoch == 3 and trainer.best["epoch"] == 1
    assert rec.reasons == ["early stopping after epoch 3: the validation loss has not improved for 2 epochs; "
                           "restored the weights of epoch 1"]
    np.testing.assert_array_equal(net.w.value, best[1])


def test_sigmoid_bce_accuracy_needs_every_output_right():
    class Fixed(LinearNet):
        def forward(self, x, training=False):
            self.y = np.array([[2, -1, -3], [0.5, 0.2, -1]], np.float32)[:len(x)]
            return self.y

    net = Fixed(loss_kind="SigmoidBCE")
    data = Dataset(np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 1]), ["a", "b", "c"], name="two")
    trainer = Trainer(net, make_optimizer("sgd", net.parameters(), 0.1), data)
    # sample 1: [+, −, −] vs one-hot 0: right; sample 2: [+, +, −] vs one-hot 1: the first output is wrong
    loss, acc = trainer.evaluate(data)
    assert acc == 0.5 and math.isfinite(loss)


def test_data_that_does_not_fit_the_network_is_refused():
    net = LinearNet(input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="takes 1×5×5 images but 'blobs' has 1×4×4; change the Input block"):
        Trainer(net, make_optimizer("sgd", net.parameters(), 0.1), blobs(10, 0))
    net = LinearNet(classes=4)
    with pytest.raises(ValueError, match="4 outputs but 'blobs' has 3 classes"):
        Trainer(net, make_optimizer("sgd", net.parameters(), 0.1), blobs(10, 0))


def test_resume_is_exact_with_the_real_engine():
    """Conv, BatchNorm (running statistics), Dropout (reseeded masks) and Adam through compile()."""
    setup = real_net_setup
    net, opt, trainer = setup()
    straight = trainer.fit(3)
    assert straight[-1]["val_acc"] > 0.8
    net1, opt1, trainer1 = setup()
    trainer1.fit(2)
    net2, opt2, trainer2 = setup()
    net2.load_state_dict(net1.state_dict())
    opt2.load_state_dict(opt1.state_dict())
    trainer2.load_state_dict(trainer1.state_dict())
    resumed = trainer2.fit(1)
    assert_same_run(resumed, straight, net2, net)


def assert_same_run(history, straight, net, straight_net):
    """A continued run equals the run straight through: the same losses, bit for bit the same arrays."""
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in straight]
    assert [r["val_loss"] for r in history] == [r["val_loss"] for r in straight]
    for block, arrays in straight_net.state_dict().items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(net.state_dict()[block][name], value, err_msg=f"{block}/{name}")


def real_net_setup(**kw):
    """Conv, BatchNorm, Dropout and Adam through compile(), on the blob pictures."""
    from convdesigner.engine import compile
    from convdesigner.graph import Graph

    g = Graph()
    chain = [("Input", {"channels": 1, "height": 4, "width": 4}), ("Conv2D", {"filters": 4}), ("BatchNorm", {}),
             ("ReLU", {}), ("Flatten", {}), ("Dropout", {"rate": 0.3}), ("Dense", {"units": 3}),
             ("SoftmaxCrossEntropy", {})]
    ids = [g.add(kind, params=params).id for kind, params in chain]
    for a, b in zip(ids, ids[1:], strict=False):
        g.connect(a, b)
    net = compile(g, seed=4)
    opt = make_optimizer("adam", net.parameters(), kw.pop("lr", 0.01))
    return net, opt, Trainer(net, opt, blobs(96, 1), blobs(32, 2), batch_size=16, seed=5, **kw)


def test_a_stop_mid_epoch_saved_and_resumed_equals_the_run_straight_through():
    from convdesigner.data import Augment
    net, opt, trainer = real_net_setup(augment=Augment("noise=0.05"))
    straight = trainer.fit(2)

    class StopAt(Recorder):
        def on_batch_end(self, info):
            if info["epoch"] == 2 and info["batch"] == 2:
                cut.stop()

    net1, opt1, cut = real_net_setup(augment=Augment("noise=0.05"), callbacks=[StopAt()])
    cut.fit(2)
    assert cut.epoch == 1 and cut.position["batch"] == 2
    net2, opt2, resumed = real_net_setup(augment=Augment("noise=0.05"))
    net2.load_state_dict(net1.state_dict())
    opt2.load_state_dict(opt1.state_dict())
    resumed.load_state_dict(cut.state_dict())
    history = resumed.fit(1)
    assert_same_run(history, straight, net2, net)


def test_divergence_keeps_the_batchnorm_statistics_of_the_last_good_batch():
    net, opt, trainer = real_net_setup()
    trainer.fit(1)
    data = trainer.train_data
    images = data.images.astype(np.float32) / 255
    images[:] = np.inf  # every picture poisoned: the next batch's loss is not finite
    trainer.train_data = Dataset(images, data.labels, data.class_names, name="poisoned")
    before = {b: {n: a.copy() for n, a in arrays.items()} for b, arrays in net.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        trainer.fit(1)
    for block, arrays in net.state_dict().items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(value, before[block][name], err_msg=f"{block}/{name}")


def test_a_loss_that_explodes_while_finite_is_reported_as_divergence():
    net, opt, trainer = real_net_setup(lr=1e3)  # Adam at 1e3: finite losses around 1e7 within a few batches
    with pytest.raises(TrainingDiverged, match=r"exploded to .* over 1e\+06 times the first epoch's"):
        trainer.fit(20)


def test_early_stopping_can_keep_the_last_weights():
    rec = Recorder()
    net, opt, trainer = make(lr=0.5, val=blobs(60, 2, shift=1), early_stopping=1, restore_best=False,
                             callbacks=[rec])
    trainer.fit(10)
    assert "kept the weights of the last epoch" in rec.reasons[-1]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_console_progress_redraws_one_line_per_epoch():
    screen = Terminal()
    progress = ConsoleProgress(epochs=2, batch_size=16, stream=screen)
    make(callbacks=[progress])[2].fit(1)
    text = screen.getvalue()
    assert text.startswith("\repoch 1/2 [##------------------] 1/13  loss ")  # the first batch is always drawn
    assert "\repoch 1/2 [####################] 13/13  loss" in text and "ETA 0:00" in text
    last = text.split("\r")[-1]
    assert last.startswith("epoch 1/2 [####################]  loss ") and "val_acc" in last and last.endswith("\n")
    assert "\n" not in text[:-1] and progress.reason == "completed 1 epoch"


def test_adapt_graph_fits_a_template_to_the_data_or_says_why_not():
    graph = build("lenet5")
    adapted, changes = adapt_graph(graph, (3, 32, 32), 4)
    assert changes == ["Input 'input' 1×28×28 → 3×32×32", "Dense 'fc3' units 10 → 4"]
    assert graph.by_name("fc3").params["units"] == 10  # the template itself is left alone
    info = adapted.infer()
    assert info.nodes[adapted.by_name("loss").id].output_shape == (4,)
    assert adapt_graph(graph, (1, 28, 28), 10)[1] == []
    with pytest.raises(ValueError, match="kernel 5×5 is larger than its 4×4 input"):
        adapt_graph(graph, (1, 8, 8), 10)
