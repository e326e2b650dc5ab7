"""Graph editing, validation of every problem kind, inference totals and the versioned dict round trip."""
import json

import pytest

from convdesigner.graph import Graph, GraphError, build


def chain(*kinds):
    g = Graph()
    prev = None
    for k in kinds:
        node = g.add(k)
        if prev is not None:
            g.connect(prev.id, node.id)
        prev = node
    return g


def small_net():
    g = chain("Input", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "SoftmaxCrossEntropy")
    g.set_params(g.by_name("input1").id, channels=1, height=8, width=8)
    return g


def messages(g):
    return [p.message for p in g.validate()]


def test_a_well_formed_graph_has_no_problems_and_infers_shapes():
    g = small_net()
    info = g.infer()
    assert info.problems == []
    assert info.nodes[g.by_name("conv1").id].output_shape == (16, 8, 8)
    assert info.nodes[g.by_name("pool1").id].output_shape == (16, 4, 4)
    assert info.nodes[g.by_name("dense1").id].output_shape == (10,)
    assert info.total_params == 16 * 9 + 16 + 256 * 10 + 10
    assert info.total_macs > 0
    floats = 16 * 64 + 16 * 64 + 16 * 16 + 256 + 10 + 10 + 64  # conv, relu, pool, flatten, dense, loss, input
    assert info.activation_floats() == floats
    assert info.activation_bytes(32) == floats * 32 * 4


def test_names_are_unique_and_renames_checked():
    g = Graph()
    a, b = g.add("Conv2D"), g.add("Conv2D")
    assert (a.name, b.name) == ("conv1", "conv2")
    with pytest.raises(GraphError, match="already called 'conv1'"):
        g.rename(b.id, "conv1")
    with pytest.raises(GraphError, match="not a valid block name"):
        g.rename(b.id, "my conv!")
    g.rename(b.id, "features")
    assert g.by_name("features") is b


def test_connect_refuses_illegal_wires():
    g = small_net()
    inp, conv = g.by_name("input1"), g.by_name("conv1")
    with pytest.raises(GraphError, match="takes no inputs"):
        g.connect(conv.id, inp.id)
    with pytest.raises(GraphError, match="already wired"):
        g.connect(inp.id, conv.id, 0)
    with pytest.raises(GraphError, match="takes 1 input"):
        g.connect(inp.id, conv.id, 1)
    with pytest.raises(GraphError, match="cannot feed itself"):
        g.connect(conv.id, conv.id)


def test_remove_returns_its_wires():
    g = small_net()
    gone = g.remove(g.by_name("relu1").id)
    assert len(gone) == 2
    with pytest.raises(GraphError, match="no block called 'relu1'"):
        g.by_name("relu1")


def test_set_params_checks_values():
    g = small_net()
    with pytest.raises(GraphError, match="Conv2D 'conv1': 'filters' must be at least 1"):
        g.set_params(g.by_name("conv1").id, filters=0)


def test_shape_error_names_the_block_and_downstream_stays_quiet():
    g = small_net()
    g.set_params(g.by_name("conv1").id, kernel_h=11, kernel_w=11, padding="valid")
    problems = g.validate()
    assert [p.message for p in problems] == [
        "Conv2D 'conv1': kernel 11×11 is larger than its 8×8 input; lower the kernel or add padding"]
    assert problems[0].node_id == g.by_name("conv1").id
    assert problems[0].severity == "error"


def test_missing_input_and_dangling_block():
    g = small_net()
    g.add("ReLU", "lonely")
    dense = g.by_name("dense1")
    g.disconnect(next(e for e in g.edges if e.dst == dense.id))
    found = messages(g)
    assert "ReLU 'lonely' has no input; wire an input into it" in found
    assert "Dense 'dense1' has no input; wire an input into it" in found
    assert "Flatten 'flatten1' is dangling: its output leads to no output head; wire it onward or delete it" in found


def test_merge_needs_more_inputs():
    g = small_net()
    add = g.add("Add")
    g.connect(g.by_name("relu1").id, add.id)
    assert "Add 'add1' needs 1 more input; wire them into it" in messages(g)


def test_cycle_is_reported_on_each_block_of_it():
    g = small_net()
    a, b = g.add("ReLU", "a"), g.add("ReLU", "b")
    g.connect(a.id, b.id)
    g.connect(b.id, a.id)
    found = messages(g)
    assert "'a' is part of a cycle; remove one of the wires that loops back" in found
    assert "'b' is part of a cycle; remove one of the wires that loops back" in found


def test_block_fed_only_from_outside_the_network_is_unreachable():
    g = small_net()
    a, b = g.add("Tanh", "a"), g.add("ReLU", "b")
    g.connect(a.id, b.id)
    problems = {p.message: p.severity for p in g.validate()}
    assert problems["Tanh 'a' has no input; wire an input into it"] == "error"
    assert problems["ReLU 'b' is not reachable from the Input; wire it into the network or delete it"] == "warning"


def test_no_input_no_output_and_duplicates():
    assert set(messages(Graph())) == {"the network has no Input block; add one from the palette",
                                      "the network has no output head; end it with SoftmaxCrossEntropy, SigmoidBCE "
                                      "or MSE"}
    g = small_net()
    g.add("Input", "second")
    g.add("MSE", "head2")
    found = messages(g)
    assert any("only one Input block is supported" in m for m in found)
    assert any("only one output head is supported" in m for m in found)


def test_validate_never_raises_on_broken_graphs():
    g = small_net()
    g.set_params(g.by_name("input1").id, height=2, width=2)
    g.set_params(g.by_name("conv1").id, padding="valid", kernel_h=3, kernel_w=3)
    assert any("larger than its 2×2 input" in m for m in messages(g))


def test_serialisation_round_trip_is_exact():
    g = build("googlenet-small")
    g.move(3, (12.5, -4.0))
    data = g.to_dict()
    again = Graph.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    assert again == g
    assert again.infer().total_params == g.infer().total_params
    n = again.add("ReLU")
    assert n.id == max(g.nodes) + 1


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(version=99), "written by a newer ConvDesigner .*version 99"),
    (lambda d: d.update(format="other"), "not a ConvDesigner graph"),
    (lambda d: d["nodes"][1].update(kind="Conv9D"), "unknown kind 'Conv9D'"),
    (lambda d: d["nodes"][1].update(params={"filters": -1}), "bad parameter: 'filters' must be at least 1"),
    (lambda d: d["nodes"][1].update(name=d["nodes"][0]["name"]), "two blocks are called"),
    (lambda d: d["edges"].append({"src": 1, "dst": 999, "slot": 0}), "no block with id 999"),
    (lambda d: d["nodes"][0].pop("kind"), "malformed"),
])
def test_bad_serialised_graphs_give_clear_errors(mutate, message):
    data = small_net().to_dict()
    mutate(data)
    with pytest.raises(GraphError, match=message):
        Graph.from_dict(data)


def test_topological_order_puts_inputs_first():
    g = build("resnet-small")
    order = g.topological_order()
    position = {i: k for k, i in enumerate(order)}
    assert len(order) == len(g.nodes)
    for e in g.edges:
        assert position[e.src] < position[e.dst]


def test_wiring_problem_and_cycles_are_answered_before_wiring():
    g = small_net()
    conv, relu, loss = g.by_name("conv1"), g.by_name("relu1"), g.by_name("loss1")
    assert g.wiring_problem(relu.id, conv.id) == "every input of 'conv1' is already wired; remove a wire first"
    add = g.add("Add")
    assert g.wiring_problem(relu.id, add.id) is None
    assert g.wiring_problem(relu.id, add.id, -1) == "input slots start at 0"
    assert g.closes_cycle(loss.id, conv.id)
    assert not g.closes_cycle(conv.id, add.id)
