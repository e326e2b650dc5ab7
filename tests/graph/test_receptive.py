"""Receptive fields worked out by hand for a few conv/pool stacks, and the boxes the activation viewer outlines."""
import pytest

from convdesigner.graph.graph import Graph
from convdesigner.graph.receptive import ReceptiveField, receptive_fields
from convdesigner.graph.templates import build


def chain(shape, *blocks):
    """A straight graph Input → blocks → Flatten → Dense → head; returns it and {name: node id}."""
    g = Graph()
    prev = g.add("Input", "input", {"channels": shape[0], "height": shape[1], "width": shape[2]}).id
    ids = {"input": prev}
    for kind, name, params in blocks + (("Flatten", "flat", {}), ("Dense", "fc", {"units": 2}),
                                        ("SoftmaxCrossEntropy", "loss", {})):
        node = g.add(kind, name, params)
        g.connect(prev, node.id)
        ids[name] = prev = node.id
    return g, ids


def fields_by_name(g, ids):
    rf = receptive_fields(g)
    return {name: rf[i] for name, i in ids.items()}


def test_valid_convs_and_a_pool_grow_the_field_by_hand_worked_steps():
    g, ids = chain((1, 20, 20),
                   ("Conv2D", "c1", {"kernel_h": 3, "kernel_w": 3, "padding": "valid"}),
                   ("ReLU", "r1", {}),
                   ("Conv2D", "c2", {"kernel_h": 3, "kernel_w": 3, "padding": "valid"}),
                   ("MaxPool2D", "p1", {"pool_size": 2}),
                   ("Conv2D", "c3", {"kernel_h": 3, "kernel_w": 3, "padding": "valid"}))
    f = fields_by_name(g, ids)
    assert f["input"] == ReceptiveField((1, 1), (1, 1), (0, 0))
    assert f["c1"] == f["r1"] == ReceptiveField((3, 3), (1, 1), (0, 0))
    assert f["c2"] == ReceptiveField((5, 5), (1, 1), (0, 0))
    assert f["p1"] == ReceptiveField((6, 6), (2, 2), (0, 0))
    assert f["c3"] == ReceptiveField((10, 10), (2, 2), (0, 0))  # 6 + (3 − 1)·2
    assert f["flat"].whole and f["fc"].whole and f["loss"].whole
    assert f["c3"].box(1, 2, (20, 20)) == (2, 4, 11, 13)


def test_padding_stride_dilation_and_rectangular_kernels():
    g, ids = chain((1, 32, 32),
                   ("Conv2D", "c1", {"kernel_h": 5, "kernel_w": 3, "stride": 2, "padding": "explicit", "pad_h": 2,
                                     "pad_w": 1}),
                   ("Conv2D", "c2", {"kernel_h": 3, "kernel_w": 3, "dilation": 2, "padding": "valid"}),
                   ("AvgPool2D", "p", {"pool_size": 3, "stride": 2, "padding": 1}))
    f = fields_by_name(g, ids)
    assert f["c1"] == ReceptiveField((5, 3), (2, 2), (-2, -1))
    assert f["c2"] == ReceptiveField((13, 11), (2, 2), (-2, -1))  # dilated 3×3 spans 5: + 4 steps of 2
    assert f["p"] == ReceptiveField((17, 15), (4, 4), (-4, -3))  # padding 1 moves the start back one jump
    assert f["c1"].box(0, 0, (32, 32)) == (0, 0, 2, 1)  # clipped where it reaches into the padding


def test_same_padding_splits_like_the_engine():
    g, ids = chain((1, 8, 8), ("Conv2D", "c", {"kernel_h": 4, "kernel_w": 4, "padding": "same"}))
    assert fields_by_name(g, ids)["c"] == ReceptiveField((4, 4), (1, 1), (-1, -1))  # 3 rows: 1 above, 2 below


def test_lenet5_and_vgg16_match_their_published_fields():
    g = build("lenet5")
    rf = {g.nodes[i].name: f for i, f in receptive_fields(g).items()}
    assert rf["conv1"] == ReceptiveField((5, 5), (1, 1), (-2, -2))
    assert rf["pool1"] == ReceptiveField((6, 6), (2, 2), (-2, -2))
    assert rf["conv2"] == ReceptiveField((14, 14), (2, 2), (-2, -2))
    assert rf["pool2"] == ReceptiveField((16, 16), (4, 4), (-2, -2))
    assert rf["fc1"].whole
    g = build("vgg16")
    rf = {g.nodes[i].name: f for i, f in receptive_fields(g).items()}
    assert rf["conv5_3"].size == (196, 196) and rf["conv5_3"].jump == (16, 16)
    assert rf["pool5"].size == (212, 212) and rf["pool5"].jump == (32, 32)


def test_branches_merge_to_the_union_and_a_global_pool_sees_everything():
    g = Graph()
    x = g.add("Input", "input", {"channels": 1, "height": 16, "width": 16}).id
    a = g.add("Conv2D", "a", {"kernel_h": 1, "kernel_w": 1, "filters": 4}).id
    b = g.add("Conv2D", "b", {"kernel_h": 5, "kernel_w": 5, "filters": 4}).id
    add = g.add("Add", "add").id
    gap = g.add("GlobalAvgPool2D", "gap").id
    for src, dst in ((x, a), (x, b), (a, add), (b, add), (add, gap)):
        g.connect(src, dst)
    rf = receptive_fields(g)
    assert rf[add] == ReceptiveField((5, 5), (1, 1), (-2, -2))
    assert rf[gap].whole and rf[gap].box(3, 3, (16, 16)) == (0, 0, 15, 15)


def test_blocks_without_a_shape_have_no_field():
    g, ids = chain((1, 4, 4), ("Conv2D", "c", {"kernel_h": 7, "kernel_w": 7, "padding": "valid"}),
                   ("ReLU", "r", {}))
    f = fields_by_name(g, ids)
    assert f["c"] is None and f["r"] is None


@pytest.mark.parametrize("row,col", [(0, 0), (3, 5)])
def test_box_is_inclusive_and_inside_the_picture(row, col):
    top, left, bottom, right = ReceptiveField((16, 16), (4, 4), (-2, -2)).box(row, col, (28, 28))
    assert 0 <= top <= bottom <= 27 and 0 <= left <= right <= 27
