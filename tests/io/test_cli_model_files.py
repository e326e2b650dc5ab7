"""`convdesigner train --out/--resume`, `eval`, `predict` and `info MODEL.h5` run in-process on a few MNIST images."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convdesigner import cli
from convdesigner.data import load_dataset
from convdesigner.graph import build
from convdesigner.io import load_model, save_model


def train(*extra) -> int:
    return cli.main(["train", "--limit", "96", "--batch-size", "32", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """LeNet-5 trained 2 epochs with --out, and the same run trained 3 epochs straight."""
    folder = tmp_path_factory.mktemp("runs")
    assert train("--template", "lenet5", "--epochs", "2", "--out", str(folder / "two.h5")) == 0
    assert train("--template", "lenet5", "--epochs", "3", "--out", str(folder / "three.h5")) == 0
    return folder


def test_a_run_stopped_mid_epoch_saves_its_position_and_resumes_exactly(trained, tmp_path, monkeypatch):
    """Ctrl-C asks the trainer to stop (as the CLI's handler does); here a callback asks after two of the three
    batches of epoch 2. The file records the position, and resuming equals the run straight through."""
    from convdesigner.engine import trainer as training

    start = training.Trainer.__init__

    def stopping_after_the_fifth_batch(self, *args, **kwargs):
        start(self, *args, **kwargs)
        seen = []
        self.add_callback(type("Stop", (), {"on_batch_end": lambda _, info: seen.append(1) or (
            len(seen) == 5 and self.stop())})())
    monkeypatch.setattr(training.Trainer, "__init__", stopping_after_the_fifth_batch)
    cut = tmp_path / "cut.h5"
    assert train("--template", "lenet5", "--epochs", "2", "--out", str(cut)) == 130
    monkeypatch.undo()
    saved = load_model(cut)
    assert saved.trainer["epoch"] == 1 and saved.trainer["position"]["batch"] == 2 and saved.optimizer["step"] == 5
    assert train("--resume", str(cut), "--epochs", "1") == 0
    resumed, straight = load_model(cut), load_model(trained / "two.h5")
    assert resumed.trainer["epoch"] == 2 and resumed.optimizer["step"] == straight.optimizer["step"] == 6
    for block, arrays in straight.weights.items():
        for name, array in arrays.items():
            assert np.array_equal(resumed.weights[block][name], array), f"{block}/{name}"


def test_train_saves_the_model_and_its_best_epoch(trained):
    m = load_model(trained / "two.h5")
    assert [row["epoch"] for row in m.history] == [1, 2] and m.trainer["epoch"] == 2
    assert m.optimizer["kind"] == "adam" and m.optimizer["step"] == 6
    assert m.dataset["name"] == "mnist-sample" and m.dataset["class_names"] == [str(i) for i in range(10)]
    assert m.trainer["settings"]["template"] == "lenet5" and m.trainer["settings"]["limit"] == 96
    best = load_model(trained / "two.best.h5")
    losses = [row["val_loss"] for row in m.history]
    assert best.trainer["epoch"] == 1 + int(np.argmin(losses))


def test_resume_two_plus_one_is_three_straight_bit_for_bit(trained, tmp_path, capsys):
    assert train("--resume", str(trained / "two.h5"), "--epochs", "1", "--out", str(tmp_path / "resumed.h5")) == 0
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and f"saved {tmp_path / 'resumed.h5'} (epoch 3)" in out
    resumed, straight = load_model(tmp_path / "resumed.h5"), load_model(trained / "three.h5")
    for block, arrays in straight.weights.items():
        for name, array in arrays.items():
            assert np.array_equal(resumed.weights[block][name], array), f"{block}/{name}"
    assert resumed.optimizer["step"] == straight.optimizer["step"] == 9
    for key, slots in straight.optimizer["slots"].items():
        for slot, array in slots.items():
            assert np.array_equal(resumed.optimizer["slots"][key][slot], array)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in straight.history]


def test_resume_without_out_continues_in_the_same_file(trained, tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes((trained / "two.h5").read_bytes())
    assert train("--resume", str(path), "--epochs", "1") == 0
    assert load_model(path).trainer["epoch"] == 3


def test_eval_prints_loss_accuracy_and_confusion_matrix(trained, capsys):
    assert cli.main(["eval", str(trained / "three.h5")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{trained / 'three.h5'} on mnist-sample (val, 2,000 images): loss ")
    accuracy = float(lines[0].split("accuracy ")[1].rstrip("%")) / 100
    rows = [[int(v.replace(",", "")) for v in line.split()[1:]] for line in lines[3:13]]
    matrix = np.array(rows)
    assert matrix.shape == (10, 10) and matrix.sum() == 2000
    assert np.trace(matrix) / 2000 == pytest.approx(accuracy, abs=5e-5)


def test_predict_prints_the_top_five(trained, tmp_path, capsys):
    train_part, _ = load_dataset("mnist-sample")
    picture = tmp_path / "digit.png"
    Image.fromarray(train_part.images[0, 0]).save(picture)
    assert cli.main(["predict", str(trained / "three.h5"), str(picture)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{picture}:" and len(lines) == 6
    ranks = [line.split()[0] for line in lines[1:]]
    classes = [line.split()[1] for line in lines[1:]]
    probabilities = [float(line.split()[2].rstrip("%")) for line in lines[1:]]
    assert ranks == ["1.", "2.", "3.", "4.", "5."] and set(classes) <= {str(i) for i in range(10)}
    assert probabilities == sorted(probabilities, reverse=True) and 10 < sum(probabilities) <= 100.01


def test_info_describes_a_model_file(trained, capsys):
    assert cli.main(["info", str(trained / "two.h5")]) == 0
    out = capsys.readouterr().out
    assert "fc1                      Dense                           120       48,120" in out
    assert "14 blocks, 61,706 parameters" in out
    assert "History:" in out and out.count("      0.001") == 2
    assert "/weights/conv1/kernel  float32 6×1×5×5 (600 bytes)" in out
    assert "Optimizer: adam(lr=0.001" in out and "6 steps taken" in out


def test_info_without_a_file_still_lists_the_catalogue(capsys):
    assert cli.main(["info"]) == 0
    assert "Layer kinds:" in capsys.readouterr().out


def test_a_design_trains_from_fresh_weights(tmp_path, capsys):
    save_model(tmp_path / "design.h5", build("lenet5"))
    assert train("--resume", str(tmp_path / "design.h5"), "--epochs", "1", "--out", str(tmp_path / "t.h5")) == 0
    assert load_model(tmp_path / "t.h5").trainer["epoch"] == 1


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "1"], "give --template NAME to start training, or --resume MODEL.h5"),
    (["train", "--template", "lenet5", "--checkpoint-every", "2"], "--checkpoint-every needs --out"),
    (["train", "--template", "lenet5", "--out", "no/such/folder/m.h5"], "the folder no/such/folder does not exist"),
    (["train", "--resume", "missing.h5"], "model file 'missing.h5': no such file"),
    (["eval", "missing.h5"], "model file 'missing.h5': no such file"),
    (["predict", "missing.h5", "x.png"], "model file 'missing.h5': no such file"),
    (["info", "missing.h5"], "model file 'missing.h5': no such file"),
])
def test_bad_model_options_give_a_message_not_a_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("convdesigner: ") and message in err and "Traceback" not in err


def test_eval_and_predict_refuse_a_design(tmp_path, capsys):
    save_model(tmp_path / "design.h5", build("lenet5"))
    for argv in (["eval", str(tmp_path / "design.h5"), "--data", "mnist-sample"],
                 ["predict", str(tmp_path / "design.h5"), "x.png"]):
        assert cli.main(argv) == 2
        assert "is a design without trained weights; train it first" in capsys.readouterr().err


def test_a_damaged_file_is_reported_by_every_command(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    for argv in (["info", str(bad)], ["eval", str(bad)], ["predict", str(bad), "x.png"],
                 ["train", "--resume", str(bad)]):
        assert cli.main(argv) == 2
        assert f"model file '{bad}'" in capsys.readouterr().err


@pytest.mark.parametrize("given, message", [
    (["--lr", "0.5"], "--lr cannot be changed when resuming (the run was trained with 0.001); resume with the same "
                      "settings, or start a new run with --template"),
    (["--optimizer", "sgd", "--seed", "4"], "--seed, --optimizer cannot be changed when resuming (the run was "
                                            "trained with --seed 0, --optimizer adam)"),
    (["--template", "seed-cnn"], "--template cannot be changed when resuming (the run was trained with lenet5)"),
    (["--data", "shapes"], "--data cannot be changed when resuming"),
])
def test_resume_refuses_changed_run_settings(trained, tmp_path, given, message, capsys):
    out = tmp_path / "resumed.h5"
    assert cli.main(["train", "--resume", str(trained / "two.h5"), "--epochs", "1", "--out", str(out), *given]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_resume_names_the_template_and_keeps_the_best_file_name(trained, tmp_path, capsys):
    best = tmp_path / "m.best.h5"
    best.write_bytes((trained / "two.best.h5").read_bytes())
    epoch = load_model(best).trainer["epoch"]
    assert cli.main(["train", "--resume", str(best), "--epochs", "1", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert f"Training lenet5 from {best} after epoch {epoch} (61,706 weights) on mnist-sample" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.best.h5"]  # no m.best.best.h5
    assert load_model(best).trainer["epoch"] == epoch + 1
    assert cli.main(["train", "--resume", str(best), "--epochs", "1", "--out", str(tmp_path / "n.h5")]) == 0
    assert (tmp_path / "n.best.h5").exists()


def test_eval_refuses_data_with_other_classes(trained, capsys):
    assert cli.main(["eval", str(trained / "two.h5"), "--data", "shapes"]) == 2
    err = capsys.readouterr().err
    assert "the model knows classes 0, 1, ... 9 but 'shapes' has circle, ring, ..." in err


def test_eval_of_a_run_without_validation_part_names_the_split(tmp_path, capsys):
    path = tmp_path / "all.h5"
    assert train("--template", "lenet5", "--epochs", "1", "--limit", "64", "--val-split", "0", "--out", str(path)) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(path)]) == 2
    assert "was trained with --val-split 0, so its data have no validation part; use --part train or --part all" \
        in capsys.readouterr().err
    assert cli.main(["eval", str(path), "--part", "train"]) == 0
    assert f"{path} on mnist-sample (train, 10,000 images): loss " in capsys.readouterr().out


def test_predict_on_a_folder_says_so(trained, tmp_path, capsys):
    assert cli.main(["predict", str(trained / "two.h5"), str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder, not a picture" in capsys.readouterr().err


def test_info_describes_a_graph_json_file(tmp_path, capsys):
    from convdesigner.io.design import write_design
    write_design(tmp_path / "design.json", build("lenet5"))
    assert cli.main(["info", str(tmp_path / "design.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Graph JSON file {tmp_path / 'design.json'}")
    assert "fc1                      Dense                           120       48,120" in out
    assert "14 blocks, 61,706 parameters" in out and "File layout" not in out


def test_resume_refuses_a_damaged_setting_and_keeps_equal_ones(trained, tmp_path, capsys):
    """io.resume checks what a file records; giving the recorded value again is not a change."""
    from convdesigner.io.resume import saved_run
    run = saved_run(trained / "two.h5")
    assert run.epochs_done == 2 and run.settings["lr"] == 0.001 and run.settings["template"] == "lenet5"
    model = load_model(trained / "two.h5")
    model.trainer["settings"]["seed"] = "zero"
    save_model(tmp_path / "bad.h5", model.graph, model.weights, model.optimizer, model.trainer, model.history,
               model.dataset)
    assert cli.main(["train", "--resume", str(tmp_path / "bad.h5")]) == 2
    assert "its training setting seed='zero' is not valid" in capsys.readouterr().err
    assert train("--resume", str(trained / "two.h5"), "--epochs", "1", "--lr", "0.001", "--seed", "0",
                 "--out", str(tmp_path / "same.h5")) == 0
