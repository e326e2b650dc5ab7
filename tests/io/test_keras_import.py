"""Keras import without TensorFlow: files crafted here in the layouts Keras 2 (.h5) and Keras 3 (.keras) write,
compared with a NumPy channels-last reference of the same layers; a Lambda layer and hostile files are refused."""
from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest
from interop_cases import ours

from convdesigner import cli
from convdesigner.io import ModelFileError, load_model
from convdesigner.io.keras_import import read_keras

RNG = np.random.default_rng(7)


def _r(*shape, scale=0.4):
    return RNG.normal(0, scale, shape).astype(np.float32)


# ----------------------------------------------------------------------------------------------- NumPy reference (NHWC)

def conv(x, k, b=None, stride=1, pads=(0, 0, 0, 0), groups=1):
    top, bottom, left, right = pads
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw, cin, cout = k.shape
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, cout), np.float64)
    per = cout // groups
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            for g in range(groups):
                out[:, i, j, g * per:(g + 1) * per] = np.einsum(
                    "nhwc,hwco->no", patch[..., g * cin:(g + 1) * cin], k[..., g * per:(g + 1) * per])
    return out + (0 if b is None else b)


def same_pads(size, k, stride):
    total = max((-(-size // stride) - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def maxpool(x, k, stride):
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    return np.stack([np.stack([x[:, i * stride:i * stride + k, j * stride:j * stride + k].max(axis=(1, 2))
                               for j in range(ow)], 1) for i in range(oh)], 1)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------------------------- Keras 2 .h5

def _layer(cls, **config):
    return {"class_name": cls, "config": config}


def sequential_h5(path, extra_layers=()):
    """A Keras 2 Sequential model file: its config in the root's model_config, weights under model_weights."""
    w = {"conv2d": {"kernel": _r(3, 3, 3, 4), "bias": _r(4)},
         "bn": {"gamma": RNG.uniform(0.5, 1.5, 4).astype(np.float32), "beta": _r(4),
                "moving_mean": _r(4), "moving_variance": RNG.uniform(0.5, 2, 4).astype(np.float32)},
         "dense": {"kernel": _r(48, 5), "bias": _r(5)}}
    layers = [_layer("Conv2D", name="conv2d", filters=4, kernel_size=[3, 3], strides=[2, 2], padding="same",
                     activation="relu", use_bias=True, batch_input_shape=[None, 9, 8, 3], data_format="channels_last"),
              _layer("MaxPooling2D", name="pool", pool_size=[2, 2], strides=[1, 1], padding="valid"),
              _layer("BatchNormalization", name="bn", axis=[3], epsilon=0.001, momentum=0.99, center=True,
                     scale=True),
              _layer("Flatten", name="flatten"), _layer("Dropout", name="dropout", rate=0.25),
              *extra_layers,
              _layer("Dense", name="dense", units=5, activation="softmax", use_bias=True)]
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)  # variable-length text, as Keras writes it
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"conv2d", b"pool", b"bn", b"flatten", b"dropout", b"dense"])
        for layer, arrays in w.items():
            group = g.create_group(layer)
            names = [f"{layer}/{key}:0" for key in arrays]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for name, value in zip(names, arrays.values(), strict=True):
                group.create_dataset(name, data=value)
    return w


def sequential_reference(w, x):
    y = np.maximum(conv(x, w["conv2d"]["kernel"], w["conv2d"]["bias"], 2, (*same_pads(9, 3, 2), *same_pads(8, 3, 2))),
                   0)
    y = maxpool(y, 2, 1)
    bn = w["bn"]
    y = bn["gamma"] * (y - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) + bn["beta"]
    y = y.reshape(len(y), -1)  # H·W·C order
    return softmax(y @ w["dense"]["kernel"] + w["dense"]["bias"])


def test_a_keras2_sequential_h5_matches_the_channels_last_reference(tmp_path):
    w = sequential_h5(tmp_path / "seq.h5")
    model, notes = read_keras(tmp_path / "seq.h5")
    kinds = [(n.name, n.kind) for n in model.graph.nodes.values()]
    assert kinds == [("input", "Input"), ("conv2d", "Conv2D"), ("conv2d_relu", "ReLU"), ("pool", "MaxPool2D"),
                     ("bn", "BatchNorm"), ("flatten", "Flatten"), ("dropout", "Dropout"), ("dense", "Dense"),
                     ("dense_softmax", "SoftmaxCrossEntropy")]
    assert model.graph.by_name("conv2d").params["padding"] == "same"
    assert model.graph.by_name("bn").params == {"momentum": 0.01, "eps": 0.001}
    assert notes == []
    x = _r(2, 9, 8, 3, scale=1.0)
    np.testing.assert_allclose(ours(model.graph, model.weights, nchw(x)), sequential_reference(w, x), atol=1e-5)


# ----------------------------------------------------------------------------------------------- Keras 3 .keras

def _tensor(name):
    history = {"shape": [], "dtype": "float32", "keras_history": [name, 0, 0]}
    return {"class_name": "__keras_tensor__", "config": history}


def _node(cls, name, inputs, **config):
    args = [[_tensor(i) for i in inputs]] if cls in ("Add", "Multiply", "Concatenate") else [_tensor(inputs[0])] \
        if inputs else []
    return {"module": "keras.layers", "class_name": cls, "config": {"name": name, **config}, "name": name,
            "inbound_nodes": [{"args": args, "kwargs": {}}] if inputs else []}


def functional_keras(path, layers_extra=()):
    """A Keras 3 functional model: config.json and model.weights.h5 (variables by position) in a zip."""
    w = {"c1": [_r(3, 3, 2, 4), _r(4)], "dw": [_r(3, 3, 4, 1), _r(4)], "se": [_r(4, 4), _r(4)],
         "probs": [_r(64, 3), _r(3)]}
    layers = [_node("InputLayer", "inp", [], batch_shape=[None, 6, 6, 2]),
              _node("Conv2D", "c1", ["inp"], filters=4, kernel_size=[3, 3], strides=[1, 1], padding="valid",
                    activation="linear", use_bias=True),
              _node("ZeroPadding2D", "zp", ["c1"], padding=[[1, 1], [1, 1]]),
              _node("DepthwiseConv2D", "dw", ["zp"], kernel_size=[3, 3], strides=[1, 1], padding="valid",
                    depth_multiplier=1, use_bias=True, activation="linear"),
              _node("ReLU", "act", ["dw"]),
              _node("Add", "add", ["c1", "act"]),
              _node("GlobalAveragePooling2D", "gap", ["add"], keepdims=False),
              _node("Dense", "se", ["gap"], units=4, activation="sigmoid", use_bias=True),
              _node("Reshape", "rs", ["se"], target_shape=[1, 1, 4]),
              _node("Multiply", "mul", ["add", "rs"]),
              _node("Flatten", "flat", ["mul"]),
              *layers_extra,
              _node("Dense", "probs", [layers_extra[-1]["name"] if layers_extra else "flat"], units=3,
                    activation="softmax", use_bias=True)]
    config = {"module": "keras.src.models.functional", "class_name": "Functional",
              "config": {"name": "net", "layers": layers, "input_layers": [["inp", 0, 0]],
                         "output_layers": [["probs", 0, 0]]}}
    weights = tmp = path.with_suffix(".weights.h5")
    with h5py.File(weights, "w") as f:
        for layer, arrays in w.items():
            for i, value in enumerate(arrays):
                f.create_dataset(f"layers/{layer}/vars/{i}", data=value)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        z.writestr("config.json", json.dumps(config))
        z.write(tmp, "model.weights.h5")
    return w


def functional_reference(w, x):
    c1 = conv(x, w["c1"][0], w["c1"][1])
    dw = conv(c1, w["dw"][0].reshape(3, 3, 1, 4), w["dw"][1], pads=(1, 1, 1, 1), groups=4)  # one filter per channel
    add = c1 + np.maximum(dw, 0)
    gate = sigmoid(add.mean(axis=(1, 2)) @ w["se"][0] + w["se"][1])
    flat = (add * gate[:, None, None, :]).reshape(len(x), -1)
    return softmax(flat @ w["probs"][0] + w["probs"][1])


def test_a_keras3_functional_model_matches_the_channels_last_reference(tmp_path):
    w = functional_keras(tmp_path / "net.keras")
    model, _ = read_keras(tmp_path / "net.keras")
    g = model.graph
    assert g.by_name("dw").params["groups"] == 4 and g.by_name("dw").params["pad_h"] == 1
    assert [g.nodes[i].name for i in g.inputs_of(g.by_name("mul").id)] == ["add", "se_sigmoid"]
    assert g.outputs()[0].kind == "SoftmaxCrossEntropy"
    x = _r(3, 6, 6, 2, scale=1.0)
    np.testing.assert_allclose(ours(g, model.weights, nchw(x)), functional_reference(w, x), atol=1e-5)


def test_cli_import_of_a_keras_file(tmp_path, capsys):
    sequential_h5(tmp_path / "seq.h5")
    assert cli.main(["import", str(tmp_path / "seq.h5"), "-o", str(tmp_path / "design.h5")]) == 0
    assert "9 blocks" in capsys.readouterr().out
    assert load_model(tmp_path / "design.h5").weights["dense"]["kernel"].shape == (5, 48)


# ----------------------------------------------------------------------------------------------- refused

def test_a_lambda_layer_is_refused_never_run_and_every_unsupported_layer_is_named(tmp_path):
    code = "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAdABkAYMBUwApAk7pAQAAACkB2gRleGl0KQHaAXipAHIDAAAA"
    sequential_h5(tmp_path / "lambda.h5", [_layer("Lambda", name="evil", function=[code, None, None]),
                                           _layer("LayerNormalization", name="ln")])
    with pytest.raises(ModelFileError) as e:
        read_keras(tmp_path / "lambda.h5")
    text = str(e.value)
    assert "1 layer(s) have no ConvDesigner block: evil (Lambda: a Lambda layer holds Python code, which " \
           "ConvDesigner never runs" in text  # ln reads the refused layer, so only the cause is listed
    sequential_h5(tmp_path / "two.h5", [_layer("LayerNormalization", name="ln"), _layer("GaussianNoise", name="gn")])
    with pytest.raises(ModelFileError, match=r"ln \(LayerNormalization: this layer kind is not in the catalogue\)"):
        read_keras(tmp_path / "two.h5")


def test_files_that_are_not_whole_keras_models(tmp_path):
    with h5py.File(tmp_path / "weights_only.h5", "w") as f:
        f.attrs["layer_names"] = np.array([b"dense"])
    with pytest.raises(ModelFileError, match="holds no model_config: it is a weights-only file"):
        read_keras(tmp_path / "weights_only.h5")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as z:
        z.writestr("metadata.json", "{}")
    with pytest.raises(ModelFileError, match="zip file without config.json"):
        read_keras(tmp_path / "empty.keras")
    (tmp_path / "junk.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="junk.keras': is damaged"):
        read_keras(tmp_path / "junk.keras")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ModelFileError, match="neither a .keras"):
        read_keras(tmp_path / "text.h5")
    with pytest.raises(ModelFileError, match="no such file"):
        read_keras(tmp_path / "missing.keras")


def test_a_link_to_another_file_is_refused_unfollowed(tmp_path):
    sequential_h5(tmp_path / "seq.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("kernel", data=np.zeros((48, 5), np.float32))
    with h5py.File(tmp_path / "seq.h5", "a") as f:
        del f["model_weights/dense/dense/kernel:0"]
        f["model_weights/dense/dense/kernel:0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "kernel")
    with pytest.raises(ModelFileError, match="seq.h5"):
        read_keras(tmp_path / "seq.h5")
