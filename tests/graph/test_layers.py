"""Every layer kind's shape rule, parameter checks and the messages a user sees for impossible settings."""
import pytest

from convdesigner.graph import KINDS, Graph, ParamError, ShapeError, kind
from convdesigner.graph.layers import conv_padding, pool_output


def shape(kind_name, input_shapes, **params):
    spec = kind(kind_name)
    return spec.output_shape(spec.checked_params(params), list(input_shapes))


def test_every_kind_has_category_help_and_checked_defaults():
    for spec in KINDS.values():
        assert spec.category and spec.help
        assert spec.checked_params({}) == spec.defaults()


def test_input_shape_comes_from_its_params():
    assert shape("Input", [], channels=3, height=32, width=24) == (3, 32, 24)


@pytest.mark.parametrize("params, expected", [
    (dict(filters=8, kernel_h=3, kernel_w=3, padding="valid"), (8, 26, 26)),
    (dict(filters=8, kernel_h=3, kernel_w=3, padding="same"), (8, 28, 28)),
    (dict(filters=8, kernel_h=3, kernel_w=3, padding="same", stride=2), (8, 14, 14)),
    (dict(filters=8, kernel_h=5, kernel_w=3, padding="explicit", pad_h=2, pad_w=0), (8, 28, 26)),
    (dict(filters=8, kernel_h=3, kernel_w=3, padding="valid", dilation=2), (8, 24, 24)),
    (dict(filters=4, kernel_h=3, kernel_w=3, padding="same", groups=4), (4, 28, 28)),
])
def test_conv2d_output_shape(params, expected):
    assert shape("Conv2D", [(4, 28, 28)], **params) == expected


def test_conv2d_same_padding_is_asymmetric_when_it_must_be():
    p = kind("Conv2D").checked_params(dict(kernel_h=3, kernel_w=2, stride=2, padding="same"))
    assert conv_padding(p, (224, 224)) == (0, 1, 0, 0)
    p = kind("Conv2D").checked_params(dict(kernel_h=4, kernel_w=4, stride=1, padding="same"))
    assert conv_padding(p, (8, 8)) == (1, 2, 1, 2)


def test_conv2d_kernel_larger_than_input_says_how_to_fix():
    with pytest.raises(ShapeError, match=r"kernel 5×5 is larger than its 3×3 input; lower the kernel or add padding"):
        shape("Conv2D", [(1, 3, 3)], kernel_h=5, kernel_w=5, padding="valid")


def test_conv2d_groups_must_divide_channels():
    with pytest.raises(ShapeError, match="groups=3 must divide"):
        shape("Conv2D", [(4, 8, 8)], groups=3, filters=6)


def test_conv2d_weights_and_macs():
    spec = kind("Conv2D")
    p = spec.checked_params(dict(filters=6, kernel_h=5, kernel_w=5, padding="explicit", pad_h=2, pad_w=2))
    assert spec.weight_shapes(p, [(1, 28, 28)]) == {"kernel": (6, 1, 5, 5), "bias": (6,)}
    assert spec.param_count(p, [(1, 28, 28)]) == 156
    assert spec.macs(p, [(1, 28, 28)], (6, 28, 28)) == 6 * 28 * 28 * 25
    dw = spec.checked_params(dict(filters=32, groups=32, bias=False))
    assert spec.weight_shapes(dw, [(32, 8, 8)]) == {"kernel": (32, 1, 3, 3)}


def test_conv_on_flat_input_points_to_flatten():
    with pytest.raises(ShapeError, match="needs an image input .* flat 10 vector; move it before the Flatten"):
        shape("Conv2D", [(10,)])


@pytest.mark.parametrize("kind_name", ["MaxPool2D", "AvgPool2D"])
def test_pooling_shapes(kind_name):
    assert shape(kind_name, [(3, 28, 28)]) == (3, 14, 14)
    assert shape(kind_name, [(3, 7, 7)], pool_size=2) == (3, 3, 3)
    assert shape(kind_name, [(3, 7, 7)], pool_size=2, ceil_mode=True) == (3, 4, 4)
    assert shape(kind_name, [(3, 112, 112)], pool_size=3, stride=2, padding=1) == (3, 56, 56)
    with pytest.raises(ShapeError, match="window 5×5 is larger than its 3×3 input"):
        shape(kind_name, [(3, 3, 3)], pool_size=5)
    with pytest.raises(ShapeError, match="more than half"):
        shape(kind_name, [(3, 8, 8)], pool_size=2, padding=2)


def test_pool_ceil_mode_follows_pytorch_rule():
    # a last window that would start in the right padding is dropped
    assert pool_output(5, 2, 2, 1, True) == 3
    assert pool_output(112, 3, 2, 0, True) == 56
    assert pool_output(14, 3, 1, 1, True) == 14


def test_global_pool_flatten_dense():
    assert shape("GlobalAvgPool2D", [(64, 7, 7)]) == (64, 1, 1)
    assert shape("Flatten", [(16, 5, 5)]) == (400,)
    assert shape("Dense", [(400,)], units=120) == (120,)
    spec = kind("Dense")
    assert spec.param_count(spec.checked_params({"units": 120}), [(400,)]) == 48120
    with pytest.raises(ShapeError, match="needs a flat vector but gets 16×5×5; insert a Flatten block before it"):
        shape("Dense", [(16, 5, 5)])


@pytest.mark.parametrize("kind_name", ["ReLU", "LeakyReLU", "PReLU", "ELU", "SiLU", "Sigmoid", "Tanh", "Softmax",
                                       "Dropout", "BatchNorm"])
def test_shape_preserving_kinds(kind_name):
    assert shape(kind_name, [(8, 5, 5)]) == (8, 5, 5)
    assert shape(kind_name, [(12,)]) == (12,)


def test_per_channel_learnables():
    prelu, bn = kind("PReLU"), kind("BatchNorm")
    assert prelu.weight_shapes({}, [(8, 5, 5)]) == {"slope": (8,)}
    assert bn.weight_shapes(bn.defaults(), [(8, 5, 5)]) == {"gamma": (8,), "beta": (8,)}
    assert bn.state_shapes(bn.defaults(), [(12,)]) == {"running_mean": (12,), "running_var": (12,)}


def test_merge_shapes_and_messages():
    assert shape("Add", [(8, 4, 4)] * 3) == (8, 4, 4)
    with pytest.raises(ShapeError, match="input 2 is 4×4×4 but input 1 is 8×4×4; Add needs identical shapes"):
        shape("Add", [(8, 4, 4), (4, 4, 4)])
    assert shape("Concat", [(8, 4, 4), (3, 4, 4)]) == (11, 4, 4)
    assert shape("Concat", [(8,), (3,)]) == (11,)
    with pytest.raises(ShapeError, match="Concat joins channels and needs the same height×width"):
        shape("Concat", [(8, 4, 4), (8, 2, 2)])
    assert shape("Multiply", [(8, 4, 4), (8, 1, 1)]) == (8, 4, 4)
    assert shape("Multiply", [(8, 1, 1), (8, 4, 4)]) == (8, 4, 4)
    with pytest.raises(ShapeError, match="C×1×1 gate"):
        shape("Multiply", [(8, 4, 4), (4, 1, 1)])


def test_heads():
    assert kind("SoftmaxCrossEntropy").is_loss
    assert shape("SoftmaxCrossEntropy", [(10,)]) == (10,)
    with pytest.raises(ShapeError, match="insert a Flatten"):
        shape("SoftmaxCrossEntropy", [(10, 2, 2)])
    with pytest.raises(ShapeError, match="at least 2 class scores"):
        shape("SoftmaxCrossEntropy", [(1,)])
    assert shape("SigmoidBCE", [(3,)]) == (3,)
    assert shape("MSE", [(1, 4, 4)]) == (1, 4, 4)


@pytest.mark.parametrize("bad, message", [
    ({"filters": 0}, "'filters' must be at least 1"),
    ({"filters": 2.5}, "must be a whole number"),
    ({"padding": "full"}, "must be one of valid, same, explicit"),
    ({"bias": "yes"}, "must be true or false"),
    ({"colour": 1}, "has no parameter 'colour'"),
])
def test_parameter_checks(bad, message):
    with pytest.raises(ParamError, match=message):
        kind("Conv2D").checked_params(bad)


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown layer kind 'Conv3D'; known kinds: Input, Conv2D"):
        kind("Conv3D")


def test_every_kind_can_be_placed_in_a_graph():
    g = Graph()
    for spec in KINDS.values():
        g.add(spec.name)
    assert len({n.name for n in g.nodes.values()}) == len(KINDS)
