"""Looking inside: activations equal a hand-written forward, class-score gradients match finite differences,
Grad-CAM and saliency find the quadrant a hand-built network reads its class from, and the top-k search and health
figures report what was built into their networks."""
import numpy as np
import pytest

from convdesigner.data.dataset import Dataset
from convdesigner.engine import compile
from convdesigner.engine import inspect as ins
from convdesigner.graph.graph import Graph
from convdesigner.graph.receptive import ReceptiveField

from .conftest import assert_close_gradient, numeric_gradient


def chain(shape, *blocks):
    g = Graph()
    prev = g.add("Input", "input", {"channels": shape[0], "height": shape[1], "width": shape[2]}).id
    for kind, name, params in blocks:
        node = g.add(kind, name, params)
        g.connect(prev, node.id)
        prev = node.id
    return g


def small_cnn(act="ReLU", seed=0):
    g = chain((2, 8, 8), ("Conv2D", "conv", {"filters": 3, "kernel_h": 3, "kernel_w": 3}), (act, "act", {}),
              ("MaxPool2D", "pool", {"pool_size": 2}), ("Flatten", "flat", {}), ("Dense", "fc", {"units": 4}),
              ("SoftmaxCrossEntropy", "loss", {}))
    return compile(g, seed=seed)


def reference_forward(net, x):
    """numpy by hand: 3×3 'same' conv, ReLU, 2×2 max-pool, flatten, dense."""
    k, b = net.state_dict()["conv"]["kernel"], net.state_dict()["conv"]["bias"]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((len(x), 3, 8, 8), np.float64)
    for r in range(8):
        for c in range(8):
            conv[:, :, r, c] = np.einsum("nchw,fchw->nf", padded[:, :, r:r + 3, c:c + 3], k) + b
    act = np.maximum(conv, 0)
    pool = act.reshape(len(x), 3, 4, 2, 4, 2).max(axis=(3, 5))
    flat = pool.reshape(len(x), -1)
    fc = flat @ net.state_dict()["fc"]["kernel"].T + net.state_dict()["fc"]["bias"]
    return {"input": x, "conv": conv, "act": act, "pool": pool, "flat": flat, "fc": fc, "loss": fc}


def test_activations_of_every_block_equal_a_manual_forward_and_leave_nothing_behind():
    net = small_cnn()
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)
    net.forward(x[:2], training=True)  # a "training" batch size whose buffers must survive
    buffers = [set(layer._buffers) for layer in net.layers]
    got = ins.activations(net, x)
    want = reference_forward(net, x.astype(np.float64))
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    assert (got["conv"] < 0).any()  # the conv's own output, not the ReLU fused into it
    assert [set(layer._buffers) for layer in net.layers] == buffers
    assert net.activations == {} and not net.keep_activations
    assert net.forward(x[:2]).shape == (2, 4)  # still runs as before


def test_input_gradient_of_a_class_score_matches_finite_differences():
    net = small_cnn(act="Tanh", seed=3)
    x = np.random.default_rng(1).normal(size=(1, 2, 8, 8)).astype(np.float32)
    g = ins.class_gradients(net, x, cls=2, blocks=("conv", "act", "fc", "input"))
    assert g.cls == 2 and g.scores.shape == (1, 4) and g.input.shape == x.shape

    def score():
        return float(net.forward(x.copy())[0, 2])
    assert_close_gradient(g.input, numeric_gradient(score, x, 1e-2), "dS/dx")
    np.testing.assert_array_equal(g.blocks["input"], g.input)
    np.testing.assert_array_equal(g.blocks["fc"], [[0, 0, 1, 0]])  # the head reads the fc scores directly
    tanh = g.outputs["act"]
    np.testing.assert_allclose(g.blocks["conv"], g.blocks["act"] * (1 - tanh ** 2), rtol=1e-4, atol=1e-6)


def test_default_class_is_the_top_one_and_unknown_classes_or_blocks_are_refused():
    net = small_cnn()
    x = np.random.default_rng(2).normal(size=(1, 2, 8, 8)).astype(np.float32)
    g = ins.class_gradients(net, x)
    assert g.cls == int(np.argmax(g.scores[0]))
    with pytest.raises(ins.InspectError, match="class 7 does not exist"):
        ins.class_gradients(net, x, cls=7)
    with pytest.raises(ins.InspectError, match="no block 'conv9'"):
        ins.grad_cam(net, x, "conv9")
    with pytest.raises(ins.InspectError, match="flat"):
        ins.grad_cam(net, x, "fc")


def quadrant_network():
    """Class 1 reads channel 0 (positive ink) from the top-left quadrant only, class 0 channel 1 (negative ink) from
    the bottom-right quadrant only."""
    g = chain((1, 8, 8), ("Conv2D", "conv", {"filters": 2, "kernel_h": 1, "kernel_w": 1}), ("ReLU", "relu", {}),
              ("Flatten", "flat", {}), ("Dense", "fc", {"units": 2}), ("SoftmaxCrossEntropy", "loss", {}))
    net = compile(g)
    quadrant = np.zeros((2, 2, 8, 8), np.float32)
    quadrant[1, 0, :4, :4] = 1.0
    quadrant[0, 1, 4:, 4:] = 1.0
    net.load_state_dict({"conv": {"kernel": np.array([1, -1], np.float32).reshape(2, 1, 1, 1),
                                  "bias": np.zeros(2, np.float32)},
                         "fc": {"kernel": quadrant.reshape(2, -1), "bias": np.zeros(2, np.float32)}})
    x = np.random.default_rng(0).uniform(-0.05, 0.05, size=(1, 1, 8, 8)).astype(np.float32)
    x[0, 0, :4, :4] += 1.0
    x[0, 0, 4:, 4:] -= 1.0
    return net, x


def quadrant_means(heat):
    return {"top-left": heat[:4, :4].mean(), "top-right": heat[:4, 4:].mean(), "bottom-left": heat[4:, :4].mean(),
            "bottom-right": heat[4:, 4:].mean()}


@pytest.mark.parametrize("cls,where", [(1, "top-left"), (0, "bottom-right")])
def test_grad_cam_and_saliency_highlight_the_quadrant_the_class_reads(cls, where):
    net, x = quadrant_network()
    for method in (lambda: ins.grad_cam(net, x, "conv", cls), lambda: ins.grad_cam(net, x, "relu", cls),
                   lambda: ins.saliency(net, x, cls), lambda: ins.integrated_gradients(net, x, cls, steps=8)):
        a = method()
        assert a.cls == cls and a.heat.shape == (8, 8) and a.heat.max() == pytest.approx(1.0)
        means = quadrant_means(a.heat)
        assert max(means, key=means.get) == where
        assert means[where] > 5 * max(v for k, v in means.items() if k != where)


def test_grad_cam_lands_along_the_receptive_fields():
    cam = np.array([[0.0, 1.0], [0.0, 0.0]])
    heat = ins.upsample(cam, ReceptiveField((2, 2), (2, 2), (0, 0)), (4, 4))
    np.testing.assert_allclose(heat[0], [0, 0.25, 0.75, 1])  # map pixels sit at input columns 0.5 and 2.5
    np.testing.assert_allclose(heat[:, 3], [1, 0.75, 0.25, 0])


def test_integrated_gradients_add_up_to_the_score_difference():
    net = small_cnn(act="Tanh", seed=5)
    x = np.random.default_rng(4).normal(size=(1, 2, 8, 8)).astype(np.float32)
    a = ins.integrated_gradients(net, x, cls=1, steps=64, batch_size=16)
    zero = float(net.forward(np.zeros_like(x))[0, 1])
    assert a.raw.shape == (2, 8, 8)
    assert float(a.raw.sum()) == pytest.approx(a.score - zero, rel=0.02, abs=1e-3)


def test_top_activating_images_are_the_brightest_with_their_peak_and_box():
    g = chain((1, 6, 6), ("Conv2D", "conv", {"filters": 1, "kernel_h": 3, "kernel_w": 3, "padding": "valid"}),
              ("Flatten", "flat", {}), ("Dense", "fc", {"units": 2}), ("SoftmaxCrossEntropy", "loss", {}))
    net = compile(g)
    net.load_state_dict({**net.state_dict(), "conv": {"kernel": np.ones((1, 1, 3, 3), np.float32) / 9,
                                                      "bias": np.zeros(1, np.float32)}})
    images = np.zeros((10, 1, 6, 6), np.uint8)
    for i in range(10):
        images[i, 0, 1 + i % 3, 2] = 20 * i  # a single dot, brighter for later images
    data = Dataset(images, np.arange(10) % 2, ["a", "b"])
    seen = []
    hits = ins.top_activating(net, data, "conv", 0, k=3, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert [h.index for h in hits] == [9, 8, 7] and seen == [(4, 10), (8, 10), (10, 10)]
    assert hits[0].value == pytest.approx(180 / 255 / 9, rel=1e-4) and hits[0].label == 1
    top, left, bottom, right = hits[0].box
    assert top <= 1 <= bottom and left <= 2 <= right and bottom - top == 2 and right - left == 2
    early = ins.top_activating(net, data, "conv", 0, k=3, batch_size=4, progress=lambda d, t: False)
    assert [h.index for h in early] == [3, 2, 1]  # stopped after the first batch
    with pytest.raises(ins.InspectError, match="channels 0..0"):
        ins.top_activating(net, data, "conv", 4)


def test_health_marks_dead_relus_nan_outputs_and_vanishing_gradients():
    net = small_cnn()
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(8, 2, 8, 8)).astype(np.float32), rng.integers(0, 4, 8)
    healthy = ins.block_health(net, x, labels)
    assert all(not h.problems for h in healthy.values()), {n: h.problems for n, h in healthy.items()}
    assert healthy["act"].dead_share < 0.5 and healthy["conv"].grad_ratio > 1e-4
    state = net.state_dict()
    state["conv"]["bias"][...] = -1e4  # a huge negative bias kills every unit of the ReLU after it
    net.load_state_dict(state)
    dead = ins.block_health(net, x, labels)
    assert dead["act"].dead_share == 1.0 and "dead units" in dead["act"].problems[0]
    assert dead["conv"].grad_ratio == 0.0 and "vanishing" in dead["conv"].problems[0]
    state["fc"]["kernel"][0, 0] = np.nan
    net.load_state_dict(state)
    assert ins.block_health(net, x, labels)["fc"].nonfinite == 8 * 1  # class 0 of every image


def test_filters_scale_kernels_and_describe_weights_and_gradients():
    g = chain((3, 8, 8), ("Conv2D", "conv", {"filters": 4, "kernel_h": 3, "kernel_w": 3}),
              ("Conv2D", "conv2", {"filters": 2, "kernel_h": 3, "kernel_w": 3}), ("Flatten", "flat", {}),
              ("Dense", "fc", {"units": 3}), ("SoftmaxCrossEntropy", "loss", {}))
    net = compile(g)
    x = np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32)
    f = ins.filters(net, "conv", x, np.array([0, 1, 2, 0]))
    assert f.kernels.shape == (4, 3, 3, 3) and f.rgb and f.kernels.min() == 0 and f.kernels.max() == 1
    kernel = f.arrays[0]
    assert kernel.name == "kernel" and kernel.counts.sum() == 4 * 27
    assert kernel.mean == pytest.approx(float(net.state_dict()["conv"]["kernel"].mean()))
    assert kernel.grad_std > 0 and kernel.grad_counts.sum() == 4 * 27
    assert not ins.filters(net, "conv2").rgb and ins.filters(net, "conv2").arrays[0].grad_mean is None
    assert ins.filters(net, "flat").kernels is None and ins.filters(net, "flat").arrays == []


def test_picture_and_overlay():
    x = (np.full((1, 1, 2, 2), 0.5, np.float32) - 0.1307) / 0.3081
    np.testing.assert_array_equal(ins.picture(x, [0.1307], [0.3081]), np.full((2, 2), 128, np.uint8))
    out = ins.overlay(np.zeros((2, 2), np.uint8), np.array([[0, 1], [0.5, 0]]), 1.0)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [0, 0, 4]) and np.testing.assert_array_equal(out[0, 1], [252, 255, 164])


def test_inspecting_between_training_batches_changes_nothing_in_training():
    from convdesigner.engine.optimizers import make_optimizer
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(4, 2, 8, 8)).astype(np.float32), rng.integers(0, 4, 4)) for _ in range(3)]
    nets = [small_cnn(seed=1), small_cnn(seed=1)]
    for n, net in enumerate(nets):
        opt = make_optimizer("adam", net.parameters(), 1e-2)
        for x, labels in batches:
            net.forward(x, training=True)
            net.loss(labels)
            net.backward(input_grad=False)
            opt.step()
            if n:  # what the live views do between batches
                ins.activations(net, x[:1])
                ins.grad_cam(net, x[:1], "conv")
                ins.integrated_gradients(net, x[:1], steps=4)
                ins.block_health(net, x, labels)
    for (block, arrays), other in zip(nets[0].state_dict().items(), nets[1].state_dict().values(), strict=True):
        for name, array in arrays.items():
            np.testing.assert_array_equal(array, other[name], err_msg=f"{block}/{name}")
