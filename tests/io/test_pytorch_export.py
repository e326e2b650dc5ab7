"""PyTorch export: the generated module equals our network, the generated code passes ruff, and train.py run with
torchrun (DistributedDataParallel, two CPU processes) writes a model file that ConvDesigner opens."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from interop_cases import HEADS, SMALL, every_kind, gated_image, images, ours, same_graph, trained_like

from convdesigner import cli
from convdesigner.engine import compile
from convdesigner.graph import TEMPLATES
from convdesigner.io import ModelFile, ModelFileError, load_model, save_model
from convdesigner.io.pytorch_export import export_pytorch, identifiers

torch = pytest.importorskip("torch")


def generated(folder: Path):
    """The generated model and weights modules of ``folder`` (imported fresh, as train.py would)."""
    sys.path.insert(0, str(folder))
    try:
        for name in ("model", "weights"):
            sys.modules.pop(name, None)
        return importlib.import_module("model"), importlib.import_module("weights")
    finally:
        sys.path.remove(str(folder))
        for name in ("model", "weights"):
            sys.modules.pop(name, None)


def torch_outputs(folder: Path, x: np.ndarray, weights_file: Path | None = None) -> np.ndarray:
    model, weights = generated(folder)
    net = model.Net()
    weights.load_h5(net, weights_file or folder / "start.h5")
    return net.predict(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("case", [*SMALL, *HEADS, "gate"])
def test_the_module_equals_our_network(case, tmp_path):
    graph = gated_image() if case == "gate" else every_kind(case) if case in HEADS else TEMPLATES[case].build()
    weights = trained_like(graph)
    export_pytorch(tmp_path, ModelFile(graph, weights), case, with_data=False)
    x = images(graph, 2)
    expected = ours(graph, weights, x)
    np.testing.assert_allclose(torch_outputs(tmp_path, x), expected, rtol=1e-4, atol=1e-5)


def test_one_attribute_per_block_named_like_the_block(tmp_path):
    graph = TEMPLATES["resnet-small"].build()
    export_pytorch(tmp_path, ModelFile(graph, None), "ResNet", with_data=False)
    model, _ = generated(tmp_path)
    net = model.Net()
    assert isinstance(net.conv1, torch.nn.Conv2d) and isinstance(net.conv1_bn, torch.nn.BatchNorm2d)
    assert set(model.BLOCKS) == {n.name for n in graph.nodes.values() if n.kind in ("Conv2D", "Dense", "BatchNorm")}


def test_names_that_are_not_python_identifiers():
    from convdesigner.graph import Graph
    g = Graph()
    for name in ("conv.1", "conv-1", "class", "training", "9lives"):
        g.add("ReLU", name)
    assert sorted(identifiers(g).values()) == ["b_9lives", "class_", "conv_1", "conv_1_2", "training_"]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_generated_code_passes_ruff(tmp_path):
    export_pytorch(tmp_path, ModelFile(every_kind("SoftmaxCrossEntropy"), None), "every kind", with_data=False)
    done = subprocess.run(["ruff", "check", "--isolated", "--no-cache", "--select", "E,F,W,B,UP,I", "--line-length",
                           "120", "--target-version", "py310", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_train_py_with_torchrun_writes_a_model_file_convdesigner_opens(tmp_path):
    graph = TEMPLATES["lenet5"].build()
    settings = {"data": "mnist-sample", "limit": 96, "batch_size": 16, "optimizer": "sgd", "lr": 0.05,
                "schedule": "step:step_size=1,gamma=0.5", "warmup": 2, "seed": 3}
    folder = tmp_path / "lenet"
    notes = export_pytorch(folder, ModelFile(graph, None, trainer={"settings": settings}), "LeNet-5")
    assert "data.h5: 96 training and 96 validation images of mnist-sample" in notes[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "train.py", "--epochs", "1", "--out", str(tmp_path / "trained.h5")],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training on 2 process(es) (cpu), 96 images, batch 8 per process, sgd at lr 0.05" in done.stdout
    assert "epoch 1/1: training loss" in done.stdout
    trained = load_model(tmp_path / "trained.h5")
    start = load_model(folder / "start.h5")
    assert same_graph(trained.graph, graph)
    assert not np.array_equal(trained.weights["conv1"]["kernel"], start.weights["conv1"]["kernel"])
    x = images(graph, 2)
    np.testing.assert_allclose(ours(trained.graph, trained.weights, x), torch_outputs(folder, x, tmp_path /
                                                                                       "trained.h5"), atol=1e-5)


def test_cli_export_pytorch(tmp_path, capsys):
    graph = TEMPLATES["seed-cnn"].build()
    net = compile(graph)
    save_model(tmp_path / "m.h5", graph, net.state_dict())
    assert cli.main(["export", str(tmp_path / "m.h5"), "--format", "pytorch", "-o", str(tmp_path / "pkg")]) == 0
    out = capsys.readouterr().out
    assert "torchrun --nproc-per-node N train.py" in out and "no data.h5" in out
    assert {p.name for p in (tmp_path / "pkg").iterdir()} == {"model.py", "weights.py", "train.py", "settings.json",
                                                              "start.h5"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match="is a file; give a folder"):
        export_pytorch(tmp_path / "file", ModelFile(graph, None))
