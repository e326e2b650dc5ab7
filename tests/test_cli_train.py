"""`convdesigner train` and `convdesigner bench` run in-process on a few hundred images."""
import os

import numpy as np
import pytest

from convdesigner import cli
from convdesigner.graph.templates import build as cli_build


def train(*extra):
    return cli.main(["train", "--template", "lenet5", "--epochs", "1", "--limit", "192", "--batch-size", "32",
                     *extra])


def test_train_prints_progress_and_validation(capsys):
    assert train("--optimizer", "sgd", "--lr", "0.05", "--schedule", "cosine", "--warmup", "3") == 0
    out = capsys.readouterr().out
    assert "Training lenet5 (61,706 weights) on mnist-sample: 192 training, 192 validation images" in out
    assert "sgd(lr=0.05, momentum=0.9" in out and "warmup(3 steps) then cosine(epochs=1, min_lr=0)" in out
    lines = out.splitlines()  # not a terminal: no in-place progress, one line per epoch
    assert "\r" not in out and len(lines) == 3
    assert lines[1].startswith("epoch 1/1 [####################]  loss ") and "val_acc" in lines[1]
    assert lines[2].startswith("completed 1 epoch; validation accuracy ")


def test_same_seed_prints_the_same_losses(capsys):
    runs = []
    for _ in range(2):
        assert train("--seed", "3", "--augment", "shift=2") == 0
        runs.append(capsys.readouterr().out.splitlines()[-1])
    assert runs[0] == runs[1]


def test_template_is_adapted_to_the_data(tmp_path, capsys):
    # 5 classes of 8×8 grey pictures: lenet5's second 5×5 conv cannot run on 8×8, so the pictures are resized
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=rng.integers(0, 255, (60, 8, 8), dtype=np.uint8), labels=np.arange(60) % 5)
    assert train("--data", str(path), "--val-split", "0.2") == 0
    out = capsys.readouterr().out
    assert "note: lenet5 expects 1×28×28 input and cannot take 1×8×8" in out
    assert "Dense 'fc3' units 10 → 5" in out
    assert "48 training, 12 validation images" in out


@pytest.mark.parametrize("args,message", [
    (["--template", "lenet9"], "unknown template 'lenet9'; choose one of lenet5, seed-cnn"),
    (["--optimizer", "lion"], "unknown optimizer 'lion'; choose one of sgd, adam, adamw, rmsprop, adagrad"),
    (["--schedule", "step:gamma=2"], "gamma must be in (0, 1]"),
    (["--optimizer", "adam", "--momentum", "0.9"], "adam has no setting momentum"),
    (["--data", "no/such/dir"], "no/such/dir: no such file or folder"),
    (["--augment", "blur"], "unknown augmentation 'blur'"),
    (["--batch-size", "0"], "--batch-size must be at least 1, not 0"),
    (["--epochs", "0"], "--epochs must be at least 1, not 0"),
    (["--seed", "-1"], "--seed must be 0 or more, not -1"),
    (["--lr", "0"], "--lr must be above 0, not 0.0"),
    (["--lr", "-0.1"], "--lr must be above 0, not -0.1"),
    (["--val-split", "1"], "--val-split must be at least 0 and below 1, not 1.0"),
    (["--val-split", "-0.1"], "--val-split must be at least 0 and below 1, not -0.1"),
    (["--warmup", "-2"], "--warmup must be 0 or more, not -2"),
    (["--limit", "0"], "--limit must be at least 1, not 0"),
])
def test_bad_options_give_a_message_not_a_traceback(args, message, capsys):
    argv = ["train", "--template", "lenet5", "--epochs", "1", "--limit", "64"]
    assert cli.main(argv + args if args[0] != "--template" else ["train", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convdesigner: ") and message in err and "Traceback" not in err


def test_divergence_is_reported_as_a_user_error(capsys):
    assert train("--optimizer", "sgd", "--lr", "1e6") == 2
    err = capsys.readouterr().err
    assert "training diverged in epoch 1, batch" in err and "lower the learning rate (now 1e+06)" in err


def test_bench_quick_without_torch(capsys):
    assert cli.main(["bench", "--quick", "--no-torch", "--templates", "lenet5", "--batch-sizes", "16",
                     "--profile", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("network"))):]
    assert table[1].split()[:3] == ["lenet5", "16", "training"] and table[2].split()[2] == "inference"
    row = table[1].split()
    assert float(row[3].replace(",", "")) > 0 and row[5] == "-"
    macs = cli_build("lenet5").infer().total_macs
    assert float(row[6]) == pytest.approx(6 * macs * float(row[3].replace(",", "")) / 1e9, abs=0.06)  # 3 passes
    assert row[7].endswith("%") and "numpy's sgemm here:" in out
    assert "lenet5, batch 16: milliseconds per training step by block" in out and "conv1" in out
    assert "1 thread; optimizer sgd momentum 0.9" in out


def test_bench_memory_is_measured_in_child_processes(capsys):
    assert cli.main(["bench", "--quick", "--no-torch", "--templates", "lenet5", "--batch-sizes", "8", "--threads", "1",
                     "--memory"]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.strip().startswith("lenet5") and "ours" in t)
    assert 0 < float(line.split()[-1]) < 200  # MiB; LeNet-5's step at batch 8 holds a few


def test_the_first_batch_ends_the_start_up_probe():
    """The start-up probe's child trains until its first batch and exits cleanly (the warm half of start_times)."""
    import subprocess
    import sys
    code = "from convdesigner.engine.bench_probes import first_batch_then_exit; first_batch_then_exit('lenet5')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("args,message", [
    (["--templates", "lenet5,vgg99"], "unknown template vgg99"),
    (["--batch-sizes", "64,big"], "--batch-sizes takes whole numbers"),
    (["--batch-sizes", "16,0"], "--batch-sizes must each be at least 1, not 0"),
    (["--threads", "999"], "threads must be between 1 and"),
])
def test_bench_bad_options(args, message, capsys):
    assert cli.main(["bench", "--quick", "--no-torch", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("template", ["seed-cnn", "resnet-small"])
def test_bench_runs_the_same_network_on_pytorch(template):
    """Where PyTorch is installed, the benchmark's twin computes our logits (BatchNorm, Add, pooling included)."""
    torch = pytest.importorskip("torch")
    from convdesigner.engine import bench, compile
    from convdesigner.graph import build

    graph = build(template)
    net = compile(graph, seed=2)
    twin = bench.TorchTwin(torch, graph, net)
    assert twin.check(net) < 1e-4


def test_bench_profile_times_pytorch_block_by_block():
    """The profile's PyTorch columns: every block PyTorch runs as a module timed, forward and backward (the first
    conv's backward too, whose input needs no gradient), the rest of its step apart; and a sum by kind."""
    pytest.importorskip("torch")
    from convdesigner.engine import bench

    rows = {row[0]: row for row in bench.profile("lenet5", 8, steps=2)}
    assert rows["input"][4:] == (None, None) and rows["loss"][4:] == (None, None)  # not modules in PyTorch
    for name in ("conv1", "conv2", "pool1", "fc1", "relu1"):
        assert rows[name][4] > 0 and rows[name][5] > 0, name
    assert rows["(rest)"][4] >= 0 and rows["(rest)"][5] == 0
    text = bench.format_profile("lenet5", list(rows.values()), 8)
    assert "torch fwd" in text and "PyTorch's" in text
    kinds = text[text.index("by kind"):].splitlines()[1:]
    conv = next(line.split() for line in kinds if line.split()[0] == "Conv2D")
    ours = rows["conv1"][2] + rows["conv1"][3] + rows["conv2"][2] + rows["conv2"][3]
    assert float(conv[1]) == pytest.approx(ours, abs=0.01)


def test_out_that_is_a_folder_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert train("--out", str(tmp_path / "runs")) == 2
    err = capsys.readouterr().err
    assert f"cannot save to {tmp_path / 'runs'}: it is a folder" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["runs"]  # nothing trained, no stray best file


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to any folder")
def test_out_in_a_read_only_folder_is_refused_before_training(tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert train("--out", str(folder / "m.h5")) == 2
        assert f"the folder {folder} is not writable" in capsys.readouterr().err
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_limit_is_taken_before_pictures_are_resized(tmp_path, capsys, monkeypatch):
    """A full-size template on MNIST converts only the --limit images, not the whole source."""
    from convdesigner.data import load as load_module
    resized = []
    real = load_module.resize

    def counting(images, size):
        resized.append(len(images))
        return real(images, size)
    monkeypatch.setattr(load_module, "resize", counting)
    train_part, val_part = load_module.load_dataset("mnist-sample", input_shape=(3, 32, 32), limit=5)
    assert resized == [5, 5] and train_part.images.shape == (5, 3, 32, 32) and len(val_part) == 5
    assert train_part.meta["split"] == "5 train / 5 validation"
