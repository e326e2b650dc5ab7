"""The layered auto-layout: pure geometry, checked on small worked cases and on every template."""
import itertools

import pytest

from convdesigner.graph import TEMPLATES, build
from convdesigner.graph.layout import crossings, layered_layout, pack

W, H, HG, VG = 100.0, 40.0, 20.0, 30.0


def lay(nodes, edges):
    return layered_layout(nodes, edges, lambda _: (W, H), HG, VG)


def test_chain_is_one_straight_column():
    pos = lay([1, 2, 3, 4], [(1, 2), (2, 3), (3, 4)])
    assert {x for x, _ in pos.values()} == {0.0}
    assert [pos[i][1] for i in (1, 2, 3, 4)] == [0.0, 70.0, 140.0, 210.0]


def test_diamond_branches_sit_side_by_side_under_their_source():
    pos = lay("abcd", [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    assert pos["b"][1] == pos["c"][1] == 70.0 and pos["d"][1] == 140.0
    assert abs(pos["b"][0] - pos["c"][0]) == pytest.approx(W + HG)
    centre = (pos["b"][0] + pos["c"][0]) / 2
    assert pos["a"][0] == pytest.approx(centre) and pos["d"][0] == pytest.approx(centre)


def test_long_wire_gets_a_lane_beside_the_chain():
    # a -> b -> c -> d with a skip a -> d (a residual): the chain stays straight, no block sits on the skip's lane
    pos = lay("abcd", [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    assert len({round(x) for x, _ in pos.values()}) == 1
    assert [pos[k][1] for k in "abcd"] == [0.0, 70.0, 140.0, 210.0]


def test_layers_follow_the_longest_path():
    pos = lay("abc", [("a", "c"), ("a", "b"), ("b", "c")])
    assert pos["c"][1] > pos["b"][1] > pos["a"][1]


def test_cycle_and_isolated_blocks_still_get_places():
    pos = lay([1, 2, 3, 4], [(1, 2), (2, 3), (3, 1)])
    assert set(pos) == {1, 2, 3, 4}
    assert len({p for p in pos.values()}) == 4
    assert lay([], []) == {}


def test_crossings_counts_a_swapped_pair():
    down = {0: [3], 1: [2], 2: [], 3: []}
    assert crossings([0, 1], [2, 3], down) == 1
    assert crossings([0, 1], [3, 2], down) == 0


def test_pack_keeps_gaps_with_least_squares_movement():
    assert pack([0.0, 0.0], [1.0, 1.0], [10.0]) == pytest.approx([-5.0, 5.0])
    heavy_light = pack([0.0, 0.0], [1.0, 0.001], [10.0])
    assert heavy_light[0] == pytest.approx(0.0, abs=0.02) and heavy_light[1] - heavy_light[0] == pytest.approx(10.0)
    assert pack([0.0, 50.0, 51.0], [1, 1, 1], [10.0, 10.0]) == pytest.approx([0.0, 45.5, 55.5])


def test_crossed_sources_are_untangled():
    # s1 feeds t2 and s2 feeds t1: the targets are ordered so the wires do not cross
    pos = lay(["s1", "s2", "t1", "t2"], [("s1", "t2"), ("s2", "t1")])
    assert (pos["s1"][0] < pos["s2"][0]) == (pos["t2"][0] < pos["t1"][0])


def test_long_chain_wraps_into_columns_cut_at_single_blocks():
    chain = list(range(60))
    pos = layered_layout(chain, list(itertools.pairwise(chain)), lambda _: (W, H), HG, VG, aspect=1.0, wrap_above=500)
    columns = sorted({x for x, _ in pos.values()})
    assert len(columns) >= 3
    assert max(y for _, y in pos.values()) + H <= 60 * (H + VG) / len(columns) * 1.5
    # reading order is kept: each column continues where the previous one stopped, top to bottom
    order = sorted(chain, key=lambda i: (pos[i][0], pos[i][1]))
    assert order == chain
    assert lay(chain, list(itertools.pairwise(chain)))[59][0] == 0.0  # no aspect: one column


@pytest.mark.parametrize("key", list(TEMPLATES))
@pytest.mark.parametrize("aspect", [None, 0.75])
def test_templates_lay_out_without_overlaps(key, aspect):
    g = build(key)
    pos = layered_layout(g.nodes, [(e.src, e.dst) for e in g.edges], lambda _: (W, H), HG, VG, aspect=aspect)
    assert set(pos) == set(g.nodes)
    rects = sorted(pos.values(), key=lambda p: p[1])
    for (x1, y1), (x2, y2) in itertools.combinations(rects, 2):
        if y2 - y1 >= H:
            continue
        assert abs(x1 - x2) >= W + HG - 1e-6, f"blocks at {(x1, y1)} and {(x2, y2)} overlap"
    if aspect is None:
        assert all(pos[e.dst][1] > pos[e.src][1] for e in g.edges)
