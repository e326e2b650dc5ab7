"""Templates: full-size parameter counts equal torchvision's; small variants stay small; all are valid."""
import pytest

from convdesigner.graph import TEMPLATES, build

REFERENCE = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "efficientnet-b0": 5_288_548,
}


@pytest.mark.parametrize("key, params", REFERENCE.items())
def test_full_size_parameter_counts_match_the_reference(key, params):
    info = build(key).infer()
    assert info.problems == []
    assert info.total_params == params


@pytest.mark.parametrize("key", [k for k, t in TEMPLATES.items() if t.small])
def test_small_variants_are_valid_and_small(key):
    g = build(key)
    info = g.infer()
    assert info.problems == []
    assert info.total_params <= 400_000
    (inp,) = g.inputs()
    assert info.nodes[inp.id].output_shape in {(1, 28, 28), (3, 32, 32)}
    (head,) = g.outputs()
    assert info.nodes[head.id].output_shape == (10,)


def test_seed_network_shapes():
    g = build("seed-cnn")
    info = g.infer()
    shapes = {n.name: info.nodes[i].output_shape for i, n in g.nodes.items()}
    assert shapes["conv1"] == (16, 32, 32)
    assert shapes["pool1"] == (16, 16, 16)
    assert shapes["conv2"] == (32, 16, 16)
    assert shapes["pool2"] == (32, 8, 8)
    assert shapes["flatten"] == (2048,)
    assert shapes["fc1"] == (128,)
    assert shapes["fc2"] == (10,)
    assert g.by_name("dropout").kind == "Dropout"


def test_full_size_networks_see_224_pixel_images_and_1000_classes():
    for key in REFERENCE:
        if key == "lenet5":
            continue
        g = build(key)
        info = g.infer()
        assert info.nodes[g.inputs()[0].id].output_shape == (3, 224, 224)
        assert info.nodes[g.outputs()[0].id].output_shape == (1000,)


def test_densenet121_has_about_430_blocks():
    assert 400 <= len(build("densenet121").nodes) <= 460


def test_unknown_template():
    with pytest.raises(KeyError, match="unknown template 'resnet9'; choose one of lenet5"):
        build("resnet9")
