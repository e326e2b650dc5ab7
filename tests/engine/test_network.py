"""compile() turns graphs into networks that run forward and backward end to end, with gradients that match finite
differences through branches, and weights that round-trip through state_dict."""
import numpy as np
import pytest

from convdesigner.engine import CompileError, Network, Parameter, compile
from convdesigner.graph.graph import Graph
from convdesigner.graph.layers import ShapeError
from convdesigner.graph.templates import TEMPLATES, build

from .conftest import assert_close_gradient, numeric_gradient

SMALL = [key for key, t in TEMPLATES.items() if t.small]


def images(net, n, seed=0):
    return np.random.default_rng(seed).normal(size=(n,) + net.input_shape).astype(np.float32)


@pytest.mark.parametrize("key", SMALL)
def test_small_templates_run_forward_and_backward(key):
    net = compile(build(key), seed=0)
    x = images(net, 2)
    y = net.forward(x, training=True)
    assert y.shape == (2, 10) and net.output_shape == (10,) and net.loss_kind == "SoftmaxCrossEntropy"
    loss = net.loss(np.array([3, 7]))
    assert np.isfinite(loss) and loss > 0
    dx = net.backward()
    assert dx.shape == x.shape and np.isfinite(dx).all()
    for p in net.parameters():
        assert p.grad.shape == p.value.shape and p.grad.dtype == np.float32 and np.isfinite(p.grad).all(), p
    assert any(np.abs(p.grad).sum() > 0 for p in net.parameters())


def test_lenet_gradient_matches_finite_differences_at_sampled_weights():
    """ReLU and max-pool make the loss piecewise smooth: weights whose one-sided slopes differ sit on a kink and
    are skipped; the rest must agree with backward."""
    net = compile(build("lenet5"), seed=0)
    x, labels = images(net, 4), np.array([1, 5, 0, 9])

    def loss():
        net.forward(x, training=True)
        return net.loss(labels)

    base = loss()
    net.backward(input_grad=False)
    pick = np.random.default_rng(2)
    checked = 0
    for p in net.parameters():
        analytic = p.grad.copy()
        scale = max(np.abs(analytic).max(), 1e-4)
        cells = p.value.reshape(-1)
        for i in pick.choice(cells.size, size=min(5, cells.size), replace=False):
            old, eps = cells[i], 3e-4
            cells[i] = old + eps
            right = (loss() - base) / eps
            cells[i] = old - eps
            left = (base - loss()) / eps
            cells[i] = old
            if abs(right - left) > 0.01 * scale:
                continue
            checked += 1
            central = (right + left) / 2
            assert abs(central - analytic.flat[i]) / scale < 1e-2, f"{p} [{i}]: {analytic.flat[i]} vs {central}"
    assert checked >= 25


def wiring():
    """A new graph and ``add(kind, name, inputs=(), **params)``, which adds a block wired from named blocks."""
    g, ids = Graph(), {}

    def add(kind, name, inputs=(), **params):
        ids[name] = g.add(kind, name, params).id
        for src in inputs:
            g.connect(ids[src], ids[name])
    return g, add


def branching_graph():
    """Input → conv → {ReLU, gate branch, Concat} with a block feeding three consumers: gradients must add up."""
    g, add = wiring()
    add("Input", "input", channels=2, height=5, width=5)
    add("Conv2D", "conv", ["input"], filters=3, padding="same")
    add("Tanh", "act", ["conv"])
    add("GlobalAvgPool2D", "gap", ["act"])
    add("Sigmoid", "gate", ["gap"])
    add("Multiply", "scale", ["act", "gate"])
    add("Add", "sum", ["scale", "act"])
    add("Concat", "cat", ["sum", "act"])
    add("BatchNorm", "bn", ["cat"])
    add("Flatten", "flat", ["bn"])
    add("Dense", "fc", ["flat"], units=4)
    add("SoftmaxCrossEntropy", "loss", ["fc"])
    return g


def test_gradients_of_a_block_with_several_consumers_are_summed():
    net = compile(branching_graph(), seed=3)
    x, labels = images(net, 3), np.array([0, 3, 2])

    def loss():
        net.forward(x, training=True)
        return net.loss(labels)

    loss()
    dx = net.backward()
    assert_close_gradient(dx, numeric_gradient(loss, x, 1e-2), "network input")
    conv = net.parameters()[0]
    assert (conv.block, conv.name) == ("conv", "kernel")
    analytic = conv.grad.copy()
    assert_close_gradient(analytic, numeric_gradient(loss, conv.value, 1e-2), "conv kernel")


def test_input_gradient_can_be_skipped_without_changing_weight_gradients():
    net = compile(build("lenet5"))
    x, labels = images(net, 3), np.array([1, 2, 3])
    net.forward(x, True)
    net.loss(labels)
    assert net.backward().shape == x.shape
    full = [p.grad.copy() for p in net.parameters()]
    assert net.backward(input_grad=False) is None
    for p, g in zip(net.parameters(), full, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_forward_returns_head_input_and_predict_proba_applies_the_head():
    net = compile(build("lenet5"))
    x = images(net, 5)
    logits = net.forward(x)
    p = net.predict_proba(x, batch_size=2)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)


def test_parameters_are_stable_and_flag_weight_decay():
    net = compile(build("resnet-small"))
    names = [(p.block, p.name) for p in net.parameters()]
    assert names == [(p.block, p.name) for p in compile(build("resnet-small")).parameters()]
    assert all(isinstance(p, Parameter) for p in net.parameters())
    decay = {(p.block, p.name): p.decay for p in net.parameters()}
    assert decay[("conv1", "kernel")] and decay[("fc", "kernel")]
    assert not decay[("fc", "bias")] and not decay[("conv1_bn", "gamma")] and not decay[("conv1_bn", "beta")]
    bn = net.state_dict()["conv1_bn"]
    np.testing.assert_array_equal(bn["gamma"], 1)
    np.testing.assert_array_equal(bn["running_var"], 1)
    np.testing.assert_array_equal(bn["running_mean"], 0)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (compile(build("lenet5"), seed=s).state_dict() for s in (5, 5, 6))
    np.testing.assert_array_equal(a["conv1"]["kernel"], b["conv1"]["kernel"])
    assert not np.array_equal(a["conv1"]["kernel"], c["conv1"]["kernel"])
    std = a["fc1"]["kernel"].std()
    assert abs(std - np.sqrt(2 / 400)) < 0.1 * std  # He-normal over a fan-in of 16×5×5


def test_state_dict_round_trip_and_misshapen_arrays():
    src = compile(build("resnet-small"), seed=1)
    x = images(src, 4)
    src.forward(x, training=True)  # moves the BatchNorm running statistics
    state = src.state_dict()
    assert "running_mean" in state["conv1_bn"] and "relu" not in "".join(state)
    dst = compile(build("resnet-small"), seed=2)
    dst.load_state_dict(state)
    np.testing.assert_array_equal(dst.forward(x), src.forward(x))
    state["conv1"]["kernel"][...] = 0  # a copy: the network is untouched
    assert np.abs(src.state_dict()["conv1"]["kernel"]).sum() > 0
    bad = src.state_dict()
    bad["fc"]["kernel"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"'kernel' of block 'fc' is 3×3 but the network needs 10×64"):
        dst.load_state_dict(bad)
    missing = src.state_dict()
    del missing["conv1_bn"]["running_var"]
    with pytest.raises(ValueError, match="block 'conv1_bn' have no array 'running_var'"):
        dst.load_state_dict(missing)
    with pytest.raises(ValueError, match="no block 'conv1'"):
        dst.load_state_dict({})


def test_dropout_masks_follow_reseed():
    net = compile(build("seed-cnn"))
    x = images(net, 4)
    runs = []
    for seed, epoch in ((1, 0), (1, 0), (1, 1)):
        net.reseed(seed, epoch)
        runs.append(net.forward(x, training=True))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    np.testing.assert_array_equal(net.forward(x), net.forward(x))


def test_keep_activations_fills_one_map_per_block():
    net = compile(build("lenet5"))
    net.keep_activations = True
    net.forward(images(net, 1))
    assert net.activations["conv1"].shape == (1, 6, 28, 28)
    assert net.activations["flatten"].shape == (1, 400)


def test_loss_and_backward_need_a_forward_first():
    net = compile(build("lenet5"))
    with pytest.raises(RuntimeError, match="forward"):
        net.loss(np.array([1]))
    net.forward(images(net, 1))
    with pytest.raises(RuntimeError, match="loss"):
        net.backward()
    with pytest.raises(ValueError, match="1×10"):
        net.backward(np.zeros((1, 3), np.float32))


def test_wrong_input_shape_is_reported():
    net = compile(build("lenet5"))
    with pytest.raises(ShapeError, match="1×28×28"):
        net.forward(np.zeros((2, 3, 32, 32), np.float32))


def test_compile_errors_name_the_problem():
    g = build("lenet5")
    g.remove(g.by_name("flatten").id)
    with pytest.raises(CompileError, match="fc1"):
        compile(g)
    with pytest.raises(CompileError, match="no output head"):
        compile(Graph.from_dict({**build("lenet5").to_dict(), "nodes": build("lenet5").to_dict()["nodes"][:-1],
                                 "edges": build("lenet5").to_dict()["edges"][:-1]}))
    with pytest.raises(CompileError, match="CUDA backend is not available"):
        compile(build("lenet5"), device="cuda")
    with pytest.raises(CompileError, match="unknown device 'tpu'"):
        compile(build("lenet5"), device="tpu")
    assert isinstance(compile(build("lenet5")), Network)


def test_a_dangling_branch_gets_zero_gradients():
    g = build("lenet5")
    extra = g.add("Dense", "unused", {"units": 3})
    g.connect(g.by_name("relu3").id, extra.id)
    net = compile(g)
    p = next(p for p in net.parameters() if p.block == "unused")
    p.grad[...] = 7
    net.forward(images(net, 2), True)
    net.loss(np.array([0, 1]))
    net.backward()
    np.testing.assert_array_equal(p.grad, 0)


def fused_graph():
    """A grouped conv (direct kernels), an ungrouped one (im2col) and a BatchNorm each feeding only a ReLU, so all
    three are fused; a third conv feeds a ReLU and a branch, so its ReLU stays a block of its own."""
    g, add = wiring()
    add("Input", "input", channels=2, height=6, width=6)
    add("Conv2D", "grouped", ["input"], filters=4, groups=2, padding="same")
    add("ReLU", "relu1", ["grouped"])
    add("Conv2D", "conv", ["relu1"], filters=3, padding="same")
    add("ReLU", "relu2", ["conv"])
    add("MaxPool2D", "pool", ["relu2"], pool_size=2)
    add("BatchNorm", "bn", ["pool"])
    add("ReLU", "relu_bn", ["bn"])
    add("Conv2D", "shared", ["relu_bn"], filters=3, padding="same")
    add("ReLU", "relu3", ["shared"])
    add("Add", "sum", ["relu3", "shared"])
    add("Flatten", "flat", ["sum"])
    add("Dense", "fc", ["flat"], units=4)
    add("SoftmaxCrossEntropy", "loss", ["fc"])
    return g


def test_conv_relu_fusion_gives_the_unfused_results_bit_for_bit():
    """The network computes a ReLU inside the Conv2D before it unless keep_activations asks for the conv's own
    (negative-valued) output; either way every number is the same."""
    results = []
    for keep in (False, True):
        net = compile(fused_graph(), seed=5)
        net.keep_activations = keep
        x = images(net, 3)
        y = net.forward(x, training=True)
        net.loss(np.array([0, 3, 1]))
        dx = net.backward()
        results.append([y, dx] + [p.grad.copy() for p in net.parameters()])
    assert {net.layers[conv].name for conv in net._fusions.values()} == {"grouped", "conv", "bn"}
    assert (net.activations["conv"] < 0).any() and (net.activations["relu2"] >= 0).all()
    assert (net.activations["bn"] < 0).any() and (net.activations["relu_bn"] >= 0).all()
    for fused, unfused in zip(*results, strict=True):
        np.testing.assert_array_equal(fused, unfused)


def test_batchnorm_is_folded_into_the_conv_before_it_in_evaluation():
    """Evaluation folds a Conv2D -> BatchNorm (-> ReLU) chain into one conv: the same outputs within float32 rounding
    as running the blocks one by one (keep_activations), and backward refuses a folded forward."""
    g, add = wiring()
    add("Input", "input", channels=3, height=8, width=8)
    add("Conv2D", "conv", ["input"], filters=4, padding="same")
    add("BatchNorm", "bn", ["conv"])
    add("ReLU", "relu", ["bn"])
    add("Conv2D", "conv2", ["relu"], filters=4, padding="same", bias=False)
    add("BatchNorm", "bn2", ["conv2"])
    add("Flatten", "flat", ["bn2"])
    add("Dense", "fc", ["flat"], units=3)
    add("SoftmaxCrossEntropy", "loss", ["fc"])
    net = compile(g, seed=2)
    x = images(net, 4)
    for _ in range(3):  # running statistics away from their initial 0 and 1
        net.forward(x * 3 + 1, training=True)
    assert {net.layers[c].name for c in net._folds.values()} == {"conv", "conv2"}
    folded = net.forward(x)
    with pytest.raises(RuntimeError, match="folds away"):
        net.backward(np.zeros_like(folded))
    net.keep_activations = True
    unfolded = net.forward(x)
    np.testing.assert_allclose(folded, unfolded, rtol=1e-5, atol=1e-5)
    assert not np.array_equal(net.activations["conv"], net.activations["bn"])
