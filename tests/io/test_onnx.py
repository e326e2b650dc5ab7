"""ONNX export and import: every template and every layer kind leave with our numbers, checked in ONNX Runtime, and
come back as the same graph; files from other tools import and match ONNX Runtime; bad files are clear errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from interop_cases import HEADS, SMALL, every_kind, gated_image, images, ours, same_graph, trained_like, with_mse_head

from convdesigner import cli
from convdesigner.graph import KINDS, TEMPLATES
from convdesigner.io import ModelFileError, load_model, save_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convdesigner.io.onnx_export import export_onnx, to_onnx  # noqa: E402
from convdesigner.io.onnx_import import read_onnx  # noqa: E402


def runtime(model_or_path, x: np.ndarray) -> np.ndarray:
    data = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# ----------------------------------------------------------------------------------------------- export

def test_the_cases_cover_every_kind():
    used = {n.kind for head in HEADS for n in every_kind(head).nodes.values()}
    assert used == set(KINDS)


@pytest.mark.parametrize("key", SMALL)
def test_every_small_template_matches_onnx_runtime(key, tmp_path):
    graph = with_mse_head(TEMPLATES[key].build())
    weights = trained_like(graph)
    check = export_onnx(tmp_path / "m.onnx", graph, weights)
    x = images(graph)
    expected = ours(graph, weights, x)
    got = runtime(tmp_path / "m.onnx", x)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * (1 + np.abs(expected).max())
    assert check.max_difference is not None and check.max_difference <= 1e-4 * (1 + np.abs(expected).max())


@pytest.mark.parametrize("head", HEADS)
def test_every_kind_matches_onnx_runtime_with_the_heads_inference_output(head, tmp_path):
    graph = every_kind(head)
    weights = trained_like(graph)
    export_onnx(tmp_path / "m.onnx", graph, weights)
    x = images(graph, 4)
    expected = ours(graph, weights, x)
    got = runtime(tmp_path / "m.onnx", x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    if head == "SoftmaxCrossEntropy":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    if head == "SigmoidBCE":
        assert 0 < got.min() and got.max() < 1


def test_known_pitfalls_are_written_explicitly():
    graph = every_kind("SoftmaxCrossEntropy")
    model = to_onnx(graph, trained_like(graph))
    nodes = {n.name: n for n in model.graph.node}
    attrs = {name: {a.name: helper.get_attribute_value(a) for a in n.attribute} for name, n in nodes.items()}
    assert not any("auto_pad" in a for a in attrs.values())
    assert attrs["c1"]["pads"] == [0, 1, 1, 1]  # 'same' at stride 2 on 10×9: top 0, left 1, bottom 1, right 1
    assert attrs["mp"]["pads"] == [1, 1, 0, 0] and "ceil_mode" not in attrs["mp"]  # ceil mode in the end pads
    assert nodes["ap/pad"].op_type == "Pad" and attrs["ap"]["count_include_pad"] == 0
    assert attrs["smx"]["axis"] == 1 and attrs["head"]["axis"] == 1
    assert nodes["head"].op_type == "Softmax" and nodes["bn1"].op_type == "BatchNormalization"
    assert "training_mode" not in attrs["bn1"] and attrs["bn1"]["momentum"] == pytest.approx(0.8)
    assert model.opset_import[0].version == 17
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["N", 3, 10, 9]
    onnx.checker.check_model(model, full_check=True)


def test_flat_gate_over_an_image(tmp_path):
    graph = gated_image()
    weights = trained_like(graph)
    export_onnx(tmp_path / "g.onnx", graph, weights)
    x = images(graph)
    np.testing.assert_allclose(runtime(tmp_path / "g.onnx", x), ours(graph, weights, x), rtol=1e-4, atol=1e-5)


def test_an_untrained_design_exports_its_initial_weights(tmp_path):
    check = export_onnx(tmp_path / "d.onnx", TEMPLATES["lenet5"].build(), None)
    assert "initial weights" in check.note and "ONNX Runtime" in check.note
    assert (tmp_path / "d.onnx").stat().st_size > 4 * 61_706


def test_without_onnx_runtime_the_note_says_outputs_were_not_compared(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    check = export_onnx(tmp_path / "m.onnx", TEMPLATES["lenet5"].build(), None)
    assert check.max_difference is None and "not compared (ONNX Runtime is not installed)" in check.note


def test_without_onnx_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ModelFileError, match=r'pip install "convdesigner\[onnx\]"'):
        export_onnx(tmp_path / "m.onnx", TEMPLATES["lenet5"].build(), None)
    with pytest.raises(ModelFileError, match=r'pip install "convdesigner\[onnx\]"'):
        read_onnx(tmp_path / "m.onnx")


def test_a_graph_with_errors_or_a_failed_check_writes_nothing(tmp_path, monkeypatch):
    broken = TEMPLATES["lenet5"].build()
    broken.remove(broken.by_name("flatten").id)
    with pytest.raises(ModelFileError, match="cannot be exported: the network cannot be compiled"):
        export_onnx(tmp_path / "a.onnx", broken, None)
    monkeypatch.setattr("convdesigner.io.onnx_export.compare_with_runtime", lambda data, net, samples: (0.5, 1.0))
    with pytest.raises(ModelFileError, match="differ from ConvDesigner's by 0.5"):
        export_onnx(tmp_path / "b.onnx", TEMPLATES["lenet5"].build(), None)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_and_import(tmp_path, capsys):
    graph = TEMPLATES["seed-cnn"].build()
    weights = trained_like(graph)
    save_model(tmp_path / "m.h5", graph, weights)
    assert cli.main(["export", str(tmp_path / "m.h5"), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    assert "outputs agree within" in capsys.readouterr().out
    assert cli.main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "back.h5")]) == 0
    assert "wrote" in capsys.readouterr().out
    back = load_model(tmp_path / "back.h5")
    assert same_graph(back.graph, graph)
    x = images(graph)
    np.testing.assert_array_equal(ours(back.graph, back.weights, x), ours(graph, weights, x))


def test_cli_errors_are_messages(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "none.h5"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["import", str(tmp_path / "x.pb"), "-o", str(tmp_path / "x.h5")]) == 2
    assert "give an ONNX file (.onnx) or a Keras model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli.main(["export", "--help"])
    assert stop.value.code == 0 and "--format" in capsys.readouterr().out
    assert cli.main(["exprot", "--help"]) == 2
    assert "unknown command or file 'exprot'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- import

@pytest.mark.parametrize("key", SMALL)
def test_round_trip_gives_the_same_graph_and_outputs(key, tmp_path):
    graph = TEMPLATES[key].build()
    weights = trained_like(graph)
    export_onnx(tmp_path / "m.onnx", graph, weights)
    model, notes = read_onnx(tmp_path / "m.onnx")
    assert same_graph(model.graph, graph) and notes == []
    x = images(graph, 2)
    np.testing.assert_array_equal(ours(model.graph, model.weights, x), ours(graph, weights, x))


@pytest.mark.parametrize("case", [*HEADS, "gate"])
def test_round_trip_of_every_kind(case, tmp_path):
    graph = gated_image() if case == "gate" else every_kind(case)
    weights = trained_like(graph)
    export_onnx(tmp_path / "m.onnx", graph, weights)
    model, _ = read_onnx(tmp_path / "m.onnx")
    assert same_graph(model.graph, graph)
    x = images(graph, 2)
    np.testing.assert_array_equal(ours(model.graph, model.weights, x), ours(graph, weights, x))


def _const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _foreign_model(rng):
    """A classifier as another tool writes it: auto_pad, Pad + AveragePool, Constant reshape, MatMul + Add,
    Identity, Sigmoid·x, Gemm with alpha/beta and an untransposed B, default attributes, unnamed nodes."""
    r = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)  # noqa: E731
    inits = [_const("w1", r(6, 2, 3, 3)), _const("b1", r(6)), _const("scale", rng.uniform(0.5, 1.5, 6)),
             _const("shift", r(6)), _const("mean", r(6)), _const("var", rng.uniform(0.5, 2, 6)),
             _const("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), _const("w2", r(96, 12)), _const("b2", r(12)),
             _const("w3", r(12, 4)), _const("b3", r(4)), _const("slope", r(6, 1, 1))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv/1", auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "scale", "shift", "mean", "var"], ["bn"], name="bn"),
        helper.make_node("Sigmoid", ["bn"], ["s"], name="sig"),
        helper.make_node("Mul", ["bn", "s"], ["swish"], name="swish"),
        helper.make_node("PRelu", ["swish", "slope"], ["pr"], name="prelu"),
        helper.make_node("Pad", ["pr", "pads"], ["padded"], name="pad"),
        helper.make_node("AveragePool", ["padded"], ["ap"], name="avg", kernel_shape=[3, 3], strides=[2, 2],
                         ceil_mode=1),
        helper.make_node("MaxPool", ["ap"], ["mp"], name="max", kernel_shape=[2, 2], strides=[1, 1],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Constant", [], ["shape"], value=_const("v", [-1, 96], np.int64)),
        helper.make_node("Reshape", ["mp", "shape"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "w2"], ["mm"], name="fc1"),
        helper.make_node("Add", ["mm", "b2"], ["fc1_out"], name="fc1_bias"),
        helper.make_node("Relu", ["fc1_out"], ["relu"]),
        helper.make_node("Identity", ["relu"], ["same"], name="id"),
        helper.make_node("Dropout", ["same"], ["dropped"], name="drop"),
        helper.make_node("Gemm", ["dropped", "w3", "b3"], ["logits"], name="fc2", alpha=0.5, beta=2.0),
        helper.make_node("Softmax", ["logits"], ["probs"], name="probs", axis=1),
    ]
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 10, 10])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="a-test")


def test_a_model_from_another_tool_imports_and_matches_onnx_runtime(tmp_path):
    model = _foreign_model(np.random.default_rng(3))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, tmp_path / "f.onnx")
    imported, notes = read_onnx(tmp_path / "f.onnx")
    kinds = {n.name: n.kind for n in imported.graph.nodes.values()}
    assert kinds == {"x": "Input", "conv_1": "Conv2D", "bn": "BatchNorm", "swish": "SiLU", "prelu": "PReLU",
                     "avg": "AvgPool2D", "max": "MaxPool2D", "reshape": "Flatten", "fc1": "Dense",
                     "relu": "ReLU", "drop": "Dropout", "fc2": "Dense", "probs": "SoftmaxCrossEntropy"}
    assert imported.graph.by_name("conv_1").params["padding"] == "same"
    assert imported.graph.by_name("avg").params == {"pool_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    assert notes == []
    x = np.random.default_rng(4).standard_normal((1, 2, 10, 10), dtype=np.float32)
    np.testing.assert_allclose(ours(imported.graph, imported.weights, x), runtime(model, x), rtol=1e-4, atol=1e-6)


def test_a_model_ending_in_scores_gets_an_mse_head_that_passes_them_through(tmp_path):
    model = _foreign_model(np.random.default_rng(3))
    model.graph.node.pop()  # no Softmax: the file's output is the Gemm's scores
    model.graph.output[0].name = "logits"
    onnx.save(model, tmp_path / "f.onnx")
    imported, notes = read_onnx(tmp_path / "f.onnx")
    assert imported.graph.outputs()[0].kind == "MSE" and "change it to SoftmaxCrossEntropy" in notes[0]
    x = np.random.default_rng(4).standard_normal((1, 2, 10, 10), dtype=np.float32)
    np.testing.assert_allclose(ours(imported.graph, imported.weights, x), runtime(model, x), rtol=1e-4, atol=1e-5)


def test_unsupported_nodes_are_listed_by_name_and_operator_in_one_error(tmp_path):
    model = _foreign_model(np.random.default_rng(3))
    nodes = list(model.graph.node)
    nodes[4] = helper.make_node("LRN", ["swish"], ["pr"], name="norm", size=3)
    nodes[8] = helper.make_node("Shape", ["mp"], ["shape"], name="dynamic_shape")
    nodes.insert(2, helper.make_node("Mystery", ["bn"], ["unused"], name="custom", domain="com.example"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, tmp_path / "f.onnx")
    with pytest.raises(ModelFileError) as e:
        read_onnx(tmp_path / "f.onnx")
    assert "3 node(s) have no ConvDesigner block: custom (com.example.Mystery); norm (LRN); dynamic_shape (Shape)" \
        in str(e.value)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.graph.input[0].type.tensor_type.shape.dim[2].ClearField("dim_value"),
     r"its input 'x' is 1×2×\?×10; ConvDesigner takes float32 images N×C×H×W"),
    (lambda m: m.graph.node[0].attribute.append(helper.make_attribute("dilations", [1, 2])),
     r"conv/1 \(Conv: dilations \[1, 2\] differ between height and width"),
    (lambda m: m.graph.node[-1].attribute[0].CopyFrom(helper.make_attribute("axis", 0)),
     r"probs \(Softmax: softmax over axis 0"),
])
def test_what_the_catalogue_cannot_express_is_named(change, message, tmp_path):
    model = _foreign_model(np.random.default_rng(3))
    change(model)
    onnx.save(model, tmp_path / "f.onnx")
    with pytest.raises(ModelFileError, match=message):
        read_onnx(tmp_path / "f.onnx")


def test_damaged_and_hostile_files_are_clear_errors(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelFileError, match="junk.onnx"):
        read_onnx(tmp_path / "junk.onnx")
    with pytest.raises(ModelFileError, match="no such file"):
        read_onnx(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match="is a folder"):
        read_onnx(tmp_path)
    model = _foreign_model(np.random.default_rng(3))
    weight = model.graph.initializer[0]
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    (tmp_path / "external.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError, match="keeps its data in another file"):
        read_onnx(tmp_path / "external.onnx")
    model = _foreign_model(np.random.default_rng(3))
    model.graph.initializer[0].dims[0] = 7  # 7×2×3×3 declared, 6×2×3×3 stored
    onnx.save(model, tmp_path / "short.onnx")
    with pytest.raises(ModelFileError, match="short.onnx"):
        read_onnx(tmp_path / "short.onnx")
