"""Layered (Sugiyama-style) auto-layout of a graph, top to bottom: pure geometry, so the canvas only places items.

Layers come from the longest path from the sources, long wires get virtual waypoints so the blocks leave room for
them, barycentre sweeps order each layer to reduce crossings, and a weighted least-squares pass straightens chains
while keeping a minimum gap between neighbours.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from itertools import pairwise

NodeKey = Hashable
Size = tuple[float, float]

LANE_WIDTH = 28.0  # width reserved for a wire passing through a layer


def layered_layout(nodes: Iterable[NodeKey], edges: Iterable[tuple[NodeKey, NodeKey]],
                   size: Callable[[NodeKey], Size], h_gap: float = 36.0, v_gap: float = 56.0,
                   sweeps: int = 6, aspect: float | None = None, wrap_above: float = 3000.0,
                   column_gap: float = 140.0) -> dict[NodeKey, tuple[float, float]]:
    """Top-left position of every node: layered top to bottom, no two blocks overlapping, chains in a straight line.

    ``edges`` are ``(source, target)`` pairs; edges on a cycle are laid out as if reversed. ``size(node)`` gives a
    block's (width, height); blocks in one layer are at least ``h_gap`` apart, layers ``v_gap`` apart. With
    ``aspect`` (height / width), a drawing taller than ``wrap_above`` continues in further columns, ``column_gap``
    apart, cut only where a single block spans its layer, so just the wires into that block cross between columns.
    """
    nodes = list(dict.fromkeys(nodes))
    if not nodes:
        return {}
    index = {n: i for i, n in enumerate(nodes)}
    pairs = [(index[a], index[b]) for a, b in edges if a in index and b in index and a != b]
    order = _acyclic_order(len(nodes), pairs)
    rank = {v: i for i, v in enumerate(order)}
    forward = sorted({(a, b) if rank[a] < rank[b] else (b, a) for a, b in pairs})
    layer = longest_path_layers(len(nodes), forward, order)

    # virtual waypoints: every edge that skips layers becomes a chain through one waypoint per skipped layer
    widths = [size(n)[0] for n in nodes]
    heights = [size(n)[1] for n in nodes]
    real = len(nodes)
    links: list[tuple[int, int]] = []
    for a, b in forward:
        prev = a
        for k in range(layer[a] + 1, layer[b]):
            layer.append(k)
            widths.append(LANE_WIDTH)
            heights.append(0.0)
            links.append((prev, len(layer) - 1))
            prev = len(layer) - 1
        links.append((prev, b))
    total = len(layer)
    up: list[list[int]] = [[] for _ in range(total)]
    down: list[list[int]] = [[] for _ in range(total)]
    for a, b in links:
        down[a].append(b)
        up[b].append(a)

    layers = _initial_order(total, layer, down, order)
    layers = _reduce_crossings(layers, up, down, sweeps)
    xs = _coordinates(layers, up, down, widths, real, h_gap)

    tops, bottoms, y = [], [], 0.0
    for row in layers:
        tops.append(y)
        bottoms.append(y + max((heights[v] for v in row), default=0.0))
        y = bottoms[-1] + v_gap
    columns = [(0, len(layers))]
    if aspect is not None and bottoms[-1] > wrap_above:
        columns = _best_columns(layers, tops, bottoms, real, xs, widths, aspect, column_gap, wrap_above, v_gap)
    out: dict[NodeKey, tuple[float, float]] = {}
    offset = 0.0
    for first, end in columns:
        members = [v for row in layers[first:end] for v in row]
        left = min(xs[v] - widths[v] / 2 for v in members)
        right = max(xs[v] + widths[v] / 2 for v in members)
        for v in members:
            if v < real:
                out[nodes[v]] = (round(xs[v] - widths[v] / 2 - left + offset, 1), tops[layer[v]] - tops[first])
        offset += right - left + column_gap
    return out


def _best_columns(layers: list[list[int]], tops: list[float], bottoms: list[float], real: int, xs: list[float],
                  widths: list[float], aspect: float, column_gap: float, wrap_above: float,
                  v_gap: float) -> list[tuple[int, int]]:
    """The wrap into columns that shows the drawing largest on a page of height / width ``aspect``: each count of
    columns is tried, and the one whose drawing needs the least shrinking to fit the page wins (counting the room
    the wires between columns take above and below them)."""
    def extent(first: int, end: int) -> float:
        members = [v for row in layers[first:end] for v in row]
        return max(xs[v] + widths[v] / 2 for v in members) - min(xs[v] - widths[v] / 2 for v in members)

    best, best_scale = [(0, len(layers))], 0.0
    for count in range(1, 17):
        height = max(bottoms[-1] / count, wrap_above / 2)
        columns = _columns(layers, tops, bottoms, real, height) if count > 1 else [(0, len(layers))]
        width = sum(extent(a, b) for a, b in columns) + column_gap * (len(columns) - 1)
        tall = max(bottoms[b - 1] - tops[a] for a, b in columns) + (2 * v_gap if len(columns) > 1 else 0)
        scale = min(1 / width, aspect / tall)  # the zoom that fits the page, per unit of page width
        if scale > best_scale * 1.05:  # fewer columns unless more show the network clearly larger
            best, best_scale = columns, scale
        if height <= wrap_above / 2:
            break
    return best


def _columns(layers: list[list[int]], tops: list[float], bottoms: list[float], real: int,
             height: float) -> list[tuple[int, int]]:
    """Runs of layers ``[first, end)`` no taller than ``height`` where possible; each run after the first starts at a
    layer holding one real block and no passing wire, preferably one whose layer above is a single block as well
    (then one wire crosses, and a branching module such as an Inception block stays in one column)."""
    def single(i: int) -> bool:
        return len(layers[i]) == 1 and layers[i][0] < real

    cuts, start = [0], 0
    loose = strict = None
    for i in range(1, len(layers)):
        if bottoms[i] - tops[start] > height and loose is not None:
            cut = strict if strict is not None and tops[strict] - tops[start] >= height / 2 else loose
            cuts.append(cut)
            start = cut
            loose = strict = None
        if single(i):
            loose = i
            if single(i - 1):
                strict = i
    cuts.append(len(layers))
    return list(pairwise(cuts))


def longest_path_layers(count: int, edges: list[tuple[int, int]], order: list[int]) -> list[int]:
    """Layer of each node: 0 for sources, else one more than its deepest input (``order`` is topological)."""
    layer = [0] * count
    feeds: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        feeds[b].append(a)
    for v in order:
        layer[v] = max((layer[u] + 1 for u in feeds[v]), default=0)
    return layer


def crossings(upper: list[int], lower: list[int], down: list[list[int]]) -> int:
    """Number of wire crossings between two adjacent layers in their given orders."""
    pos = {v: i for i, v in enumerate(lower)}
    ends = [p for v in upper for p in sorted(pos[w] for w in down[v] if w in pos)]
    return sum(1 for i in range(len(ends)) for j in range(i + 1, len(ends)) if ends[j] < ends[i])


def pack(desired: list[float], weights: list[float], gaps: list[float]) -> list[float]:
    """Positions closest to ``desired`` (weighted least squares) keeping ``x[i+1] - x[i] >= gaps[i]``, in order.

    Shifting by the cumulative gaps turns it into isotonic regression, solved by pooling adjacent violators.
    """
    offsets = [0.0]
    for g in gaps:
        offsets.append(offsets[-1] + g)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for d, w, o in zip(desired, weights, offsets, strict=False):  # offsets has one more entry
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out = []
    for mean, _, count in blocks:
        out.extend([mean] * count)
    return [y + o for y, o in zip(out, offsets, strict=False)]


def _acyclic_order(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """A topological order by depth-first finishing times; nodes on a cycle still get a place (its back edge flips)."""
    succ: list[list[int]] = [[] for _ in range(count)]
    indegree = [0] * count
    for a, b in edges:
        succ[a].append(b)
        indegree[b] += 1
    seen = [False] * count
    finished: list[int] = []
    starts = [v for v in range(count) if indegree[v] == 0] + list(range(count))
    for s in starts:
        if seen[s]:
            continue
        seen[s] = True
        stack = [(s, iter(succ[s]))]
        while stack:
            v, it = stack[-1]
            for w in it:
                if not seen[w]:
                    seen[w] = True
                    stack.append((w, iter(succ[w])))
                    break
            else:
                stack.pop()
                finished.append(v)
    return finished[::-1]


def _initial_order(total: int, layer: list[int], down: list[list[int]], order: list[int]) -> list[list[int]]:
    """Each layer in depth-first discovery order from the sources: chains and branches start out untangled."""
    layers: list[list[int]] = [[] for _ in range(max(layer) + 1)]
    seen = [False] * total
    for s in order:
        if seen[s]:
            continue
        stack = [s]
        while stack:
            v = stack.pop()
            if seen[v]:
                continue
            seen[v] = True
            layers[layer[v]].append(v)
            stack.extend(reversed(down[v]))
    return layers


def _reduce_crossings(layers: list[list[int]], up: list[list[int]], down: list[list[int]],
                      sweeps: int) -> list[list[int]]:
    """Barycentre sweeps down and up; the order with the fewest crossings seen is kept."""
    def total_crossings(ls: list[list[int]]) -> int:
        return sum(crossings(ls[i], ls[i + 1], down) for i in range(len(ls) - 1))

    best, best_count = [row[:] for row in layers], total_crossings(layers)
    current = [row[:] for row in layers]
    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        rows = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for i in rows:
            ref = current[i - 1] if downward else current[i + 1]
            current[i] = _barycentre_order(current[i], ref, up if downward else down)
        count = total_crossings(current)
        if count < best_count:
            best, best_count = [row[:] for row in current], count
        if best_count == 0:
            break
    return best


def _barycentre_order(row: list[int], ref: list[int], nbrs: list[list[int]]) -> list[int]:
    """``row`` sorted by the mean position of each node's neighbours in the adjacent layer ``ref``; a node without
    neighbours there keeps its relative place."""
    pos = {v: k for k, v in enumerate(ref)}
    scale = len(ref) / max(len(row), 1)
    keys = {}
    for k, v in enumerate(row):
        ps = [pos[u] for u in nbrs[v] if u in pos]
        keys[v] = sum(ps) / len(ps) if ps else k * scale
    return sorted(row, key=keys.__getitem__)


def _coordinates(layers: list[list[int]], up: list[list[int]], down: list[list[int]], widths: list[float],
                 real: int, h_gap: float) -> list[float]:
    """Centre x of every node: neighbours pull each node into line; real blocks weigh more than wire waypoints."""
    xs = [0.0] * len(widths)

    def place(row: list[int], desired: list[float]) -> None:
        weights = [1.0 if v < real else 0.001 for v in row]
        gaps = [(widths[a] + widths[b]) / 2 + (h_gap if a < real and b < real else h_gap / 3)
                for a, b in pairwise(row)]
        for v, x in zip(row, pack(desired, weights, gaps), strict=True):
            xs[v] = x

    for row in layers:
        place(row, [0.0] * len(row))
    for sweep in range(8):
        downward = sweep % 2 == 0
        rows = layers[1:] if downward else layers[-2::-1]
        for row in rows:
            nbrs = up if downward else down
            desired = []
            for v in row:
                pull = [(xs[u], 1.0 if u < real else 0.001) for u in nbrs[v]]
                weight = sum(w for _, w in pull)
                desired.append(sum(x * w for x, w in pull) / weight if pull else xs[v])
            place(row, desired)
    return xs
