"""Graphs read from files: loading and validating take time linear in their size, and slots, ids and positions a
file gives are checked, not trusted."""
from __future__ import annotations

import time

import pytest

from convdesigner.graph import Graph, GraphError
from convdesigner.graph.graph import FORMAT, MAX_INPUT_SLOTS, VERSION


def chain(n: int) -> dict:
    """Input → n-3 ReLUs → Flatten → MSE, as a design file holds it."""
    nodes = [{"id": 1, "name": "input", "kind": "Input", "params": {"channels": 1, "height": 4, "width": 4},
              "pos": [0, 0]}]
    nodes += [{"id": i, "name": f"relu{i}", "kind": "ReLU", "params": {}, "pos": [0, 60 * i]} for i in range(2, n - 1)]
    nodes += [{"id": n - 1, "name": "flat", "kind": "Flatten", "params": {}, "pos": [0, 0]},
              {"id": n, "name": "loss", "kind": "MSE", "params": {}, "pos": [0, 0]}]
    edges = [{"src": i - 1, "dst": i, "slot": 0} for i in range(2, n + 1)]
    return {"format": FORMAT, "version": VERSION, "nodes": nodes, "edges": edges}


def test_loading_and_validating_is_linear():
    """30,000 blocks: about 45 s with the quadratic scans of before, well under a second or two now."""
    small, large = chain(3_000), chain(30_000)
    timings = []
    for data in (small, large):
        start = time.perf_counter()
        g = Graph.from_dict(data)
        assert g.validate() == []
        timings.append(time.perf_counter() - start)
    assert timings[1] < 15 and timings[1] < 40 * timings[0] + 1, timings


def test_duplicate_names_and_ids_are_found():
    data = chain(10)
    data["nodes"][5]["name"] = data["nodes"][3]["name"]
    with pytest.raises(GraphError, match="two blocks are called 'relu4'"):
        Graph.from_dict(data)
    data = chain(10)
    data["nodes"][5]["id"] = data["nodes"][3]["id"]
    with pytest.raises(GraphError, match="two blocks have the id 4"):
        Graph.from_dict(data)


def merge_design(slot: int) -> dict:
    data = chain(5)
    data["nodes"].append({"id": 6, "name": "add", "kind": "Add", "params": {}, "pos": [0, 0]})
    data["edges"].append({"src": 2, "dst": 6, "slot": slot})
    return data


def test_an_input_slot_beyond_the_kinds_arity_is_an_error():
    with pytest.raises(GraphError, match=f"Add 'add' takes at most {MAX_INPUT_SLOTS} inputs"):
        Graph.from_dict(merge_design(10 ** 9))
    assert Graph.from_dict(merge_design(MAX_INPUT_SLOTS - 1)).edges[-1].slot == MAX_INPUT_SLOTS - 1
    g = Graph.from_dict(chain(5))
    mul = g.add("Multiply", "mul")
    with pytest.raises(GraphError, match="takes 2 inputs"):
        g.connect(2, mul.id, 2)


@pytest.mark.parametrize("field, value", [("id", "3"), ("id", 1.5), ("id", True), ("id", [1]), ("name", 7),
                                          ("pos", [float("inf"), 0])])
def test_ids_names_and_positions_must_have_their_types(field, value):
    data = chain(5)
    data["nodes"][2][field] = value
    with pytest.raises(GraphError):
        Graph.from_dict(data)


@pytest.mark.parametrize("field, value", [("slot", 1e300), ("src", "2"), ("dst", None)])
def test_wire_ends_and_slots_must_be_whole_numbers(field, value):
    data = chain(5)
    data["edges"][1][field] = value
    with pytest.raises(GraphError, match="expected a whole number"):
        Graph.from_dict(data)
