"""The network as data: blocks (nodes) wired by edges into input slots, with validation and shape inference.

A ``Graph`` never raises on a broken network: :meth:`Graph.validate` lists every :class:`Problem` so the canvas can
mark the offending blocks while the rest stays usable. Serialisation is a plain, versioned, JSON-able dict.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .layers import KINDS, LayerKind, ParamError, Shape, ShapeError, fmt, kind

FORMAT = "convdesigner-graph"
VERSION = 1
MAX_INPUT_SLOTS = 256  # a block that takes any number of inputs (Add, Concat) takes at most this many


class GraphError(ValueError):
    """An edit or a serialised graph that cannot be applied (unknown block, bad slot, newer format...)."""


@dataclass
class Node:
    id: int
    name: str
    kind: str
    params: dict[str, Any]
    pos: tuple[float, float] = (0.0, 0.0)

    @property
    def spec(self) -> LayerKind:
        return KINDS[self.kind]


@dataclass(frozen=True)
class Edge:
    src: int
    dst: int
    slot: int = 0


@dataclass(frozen=True)
class Problem:
    node_id: int | None  # None: a problem of the whole graph (no input, no output)
    severity: str  # "error" or "warning"
    message: str


@dataclass
class NodeInfo:
    """What inference found for one block; ``output_shape`` is None when it could not be worked out."""

    input_shapes: list[Shape]
    output_shape: Shape | None
    params: int = 0
    macs: int = 0


@dataclass
class GraphInfo:
    nodes: dict[int, NodeInfo] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes.values())

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes.values())

    def activation_floats(self) -> int:
        """Floats held per sample by all block outputs."""
        return sum(math.prod(n.output_shape) for n in self.nodes.values() if n.output_shape)

    def activation_bytes(self, batch_size: int) -> int:
        """Memory the block outputs of one float32 batch take: the estimate the status bar shows."""
        return self.activation_floats() * batch_size * 4

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


class Graph:
    """Nodes keyed by id, edges into numbered input slots. Every mutation keeps names unique and params checked."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self.edges: list[Edge] = []
        self._next_id = 1

    # ------------------------------------------------------------------------------------------- editing
    def add(self, kind_name: str, name: str | None = None, params: dict | None = None,
            pos: tuple[float, float] = (0.0, 0.0), node_id: int | None = None) -> Node:
        """Add a block of ``kind_name``; a missing or taken name becomes a fresh one (``conv2``...)."""
        spec = kind(kind_name)
        checked = spec.checked_params(params or {})
        if node_id is None:
            node_id = self._next_id
        elif node_id in self.nodes:
            raise GraphError(f"a block with id {node_id} already exists")
        self._next_id = max(self._next_id, node_id + 1)
        if name is not None:
            _check_name(name)
        node = Node(node_id, self.unique_name(name or _base_name(kind_name)), kind_name, checked,
                    (float(pos[0]), float(pos[1])))
        self.nodes[node_id] = node
        return node

    def remove(self, node_id: int) -> list[Edge]:
        """Remove a block and its wires; returns the removed wires (for undo)."""
        self.node(node_id)
        gone = [e for e in self.edges if node_id in (e.src, e.dst)]
        self.edges = [e for e in self.edges if node_id not in (e.src, e.dst)]
        del self.nodes[node_id]
        return gone

    def connect(self, src: int, dst: int, slot: int | None = None) -> Edge:
        """Wire ``src``'s output into ``dst``'s input ``slot`` (the first free one when None)."""
        return self._connect(src, dst, slot, {e.slot for e in self.edges if e.dst == dst})

    def _connect(self, src: int, dst: int, slot: int | None, used: set[int]) -> Edge:
        """:meth:`connect` given the slots of ``dst`` already wired (``used``, updated here)."""
        problem = self._wiring_problem(src, dst, slot, used)
        if problem:
            raise GraphError(problem)
        if slot is None:
            slot = next(i for i in range(len(used) + 1) if i not in used)
        edge = Edge(src, dst, slot)
        self.edges.append(edge)
        used.add(slot)
        return edge

    def wiring_problem(self, src: int, dst: int, slot: int | None = None) -> str | None:
        """Why a wire from ``src`` into ``dst`` (input ``slot``, or the first free one) cannot be made, else None.
        A wire closing a cycle is allowed here (validation reports it); the canvas also asks :meth:`closes_cycle`."""
        return self._wiring_problem(src, dst, slot, {e.slot for e in self.edges if e.dst == dst})

    def _wiring_problem(self, src: int, dst: int, slot: int | None, used: set[int]) -> str | None:
        self.node(src)
        target = self.node(dst)
        if src == dst:
            return f"'{target.name}' cannot feed itself"
        limit = target.spec.max_inputs
        if limit == 0:
            return f"{target.kind} '{target.name}' takes no inputs"
        if limit is None:
            limit = MAX_INPUT_SLOTS
        if slot is None:
            if len(used) >= limit:
                return f"every input of '{target.name}' is already wired; remove a wire first"
            return None
        if slot < 0:
            return "input slots start at 0"
        if slot >= limit:
            most = "at most " if target.spec.max_inputs is None else ""
            return f"{target.kind} '{target.name}' takes {most}{limit} input{'s' if limit > 1 else ''}"
        if slot in used:
            return f"input {slot + 1} of '{target.name}' is already wired; remove that wire first"
        return None

    def closes_cycle(self, src: int, dst: int) -> bool:
        """Whether a wire from ``src`` into ``dst`` would make a loop (``dst`` already leads to ``src``)."""
        return src in self._reach([dst], forward=True)

    def disconnect(self, edge: Edge) -> None:
        if edge not in self.edges:
            raise GraphError("that wire does not exist")
        self.edges.remove(edge)

    def rename(self, node_id: int, name: str) -> None:
        node = self.node(node_id)
        name = _check_name(name.strip())
        if any(n.name == name and n.id != node_id for n in self.nodes.values()):
            raise GraphError(f"another block is already called '{name}'")
        node.name = name

    def set_params(self, node_id: int, **changes: Any) -> None:
        node = self.node(node_id)
        try:
            node.params = node.spec.checked_params({**node.params, **changes})
        except ParamError as e:
            raise GraphError(f"{node.kind} '{node.name}': {e}") from None

    def move(self, node_id: int, pos: tuple[float, float]) -> None:
        self.node(node_id).pos = (float(pos[0]), float(pos[1]))

    # ------------------------------------------------------------------------------------------- queries
    def node(self, node_id: int) -> Node:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise GraphError(f"no block with id {node_id}") from None

    def by_name(self, name: str) -> Node:
        for n in self.nodes.values():
            if n.name == name:
                return n
        raise GraphError(f"no block called '{name}'")

    def unique_name(self, base: str) -> str:
        taken = {n.name for n in self.nodes.values()}
        if base not in taken:
            return base
        stem = re.sub(r"\d+$", "", base) or base
        i = 1
        while f"{stem}{i}" in taken:
            i += 1
        return f"{stem}{i}"

    def inputs_of(self, node_id: int) -> list[int]:
        """Source ids feeding ``node_id``, in slot order."""
        return [e.src for e in sorted((e for e in self.edges if e.dst == node_id), key=lambda e: e.slot)]

    def consumers_of(self, node_id: int) -> list[int]:
        return [e.dst for e in self.edges if e.src == node_id]

    def topological_order(self) -> list[int]:
        """Node ids so that every block comes after its inputs; blocks on a cycle are left out."""
        indegree = {i: 0 for i in self.nodes}
        out: dict[int, list[int]] = {i: [] for i in self.nodes}
        for e in self.edges:
            indegree[e.dst] += 1
            out[e.src].append(e.dst)
        ready = sorted(i for i, d in indegree.items() if d == 0)
        order = []
        while ready:
            i = ready.pop()
            order.append(i)
            for j in out[i]:
                indegree[j] -= 1
                if indegree[j] == 0:
                    ready.append(j)
        return order

    def inputs(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "Input"]

    def outputs(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.spec.is_loss]

    # ------------------------------------------------------------------------------------------- checking
    def infer(self) -> GraphInfo:
        """Every block's input/output shapes, parameter count and multiply-adds, and every problem found."""
        info = GraphInfo()
        problems = info.problems
        order = self.topological_order()
        on_cycle = set(self.nodes) - set(order)
        for i in sorted(on_cycle):
            problems.append(Problem(i, "error", f"'{self.nodes[i].name}' is part of a cycle; "
                                                f"remove one of the wires that loops back"))
        feeds: dict[int, list[Edge]] = {i: [] for i in self.nodes}
        for e in self.edges:
            feeds[e.dst].append(e)
        for i in order:
            node = self.nodes[i]
            spec = node.spec
            wires = sorted(feeds[i], key=lambda e: e.slot)
            shapes = [info.nodes[e.src].output_shape for e in wires]
            ni = NodeInfo([s for s in shapes if s is not None], None)
            info.nodes[i] = ni
            label = f"{node.kind} '{node.name}'"
            if len(wires) < spec.min_inputs:
                need = spec.min_inputs - len(wires)
                hint = "an input" if spec.min_inputs == 1 else f"{need} more input{'s' if need > 1 else ''}"
                problems.append(Problem(i, "error", f"{label} has no input; wire {hint} into it"
                                        if not wires else f"{label} needs {hint}; wire them into it"))
                continue
            if spec.max_inputs is not None and len(wires) > spec.max_inputs:
                problems.append(Problem(i, "error", f"{label} takes {spec.max_inputs} input(s) but has {len(wires)}; "
                                                    f"remove the extra wires"))
                continue
            if any(s is None for s in shapes):
                continue  # the problem is upstream and already reported there
            try:
                out = spec.output_shape(node.params, shapes)
                if any(d < 1 for d in out):
                    raise ShapeError(f"output would be {'×'.join(map(str, out))}, which is empty; "
                                     f"use a smaller kernel or stride, or more padding")
            except ShapeError as e:
                problems.append(Problem(i, "error", f"{label}: {e}"))
                continue
            ni.output_shape = tuple(int(d) for d in out)
            ni.params = spec.param_count(node.params, shapes)
            ni.macs = int(spec.macs(node.params, shapes, ni.output_shape))
        self._check_reachability(problems, on_cycle, feeds)
        return info

    def _check_reachability(self, problems: list[Problem], on_cycle: set[int], feeds: dict[int, list[Edge]]) -> None:
        ins, outs = self.inputs(), self.outputs()
        if not ins:
            problems.append(Problem(None, "error", "the network has no Input block; add one from the palette"))
        if not outs:
            problems.append(Problem(None, "error", "the network has no output head; end it with "
                                                   "SoftmaxCrossEntropy, SigmoidBCE or MSE"))
        if len(ins) > 1:
            for n in ins[1:]:
                problems.append(Problem(n.id, "error", f"Input '{n.name}': only one Input block is supported; "
                                                       f"remove it or merge the branches"))
        if len(outs) > 1:
            for n in outs[1:]:
                problems.append(Problem(n.id, "error", f"{n.kind} '{n.name}': only one output head is supported; "
                                                       f"remove the extra head"))
        from_input = self._reach([n.id for n in ins], forward=True)
        to_output = self._reach([n.id for n in outs], forward=False)
        for i, n in self.nodes.items():
            if i in on_cycle or n.kind == "Input":
                continue
            if ins and i not in from_input:
                if feeds[i]:  # unwired blocks already got "has no input"; this is its consequence
                    problems.append(Problem(i, "warning", f"{n.kind} '{n.name}' is not reachable from the Input; "
                                                          f"wire it into the network or delete it"))
            elif outs and i not in to_output and not n.spec.is_loss:
                problems.append(Problem(i, "warning", f"{n.kind} '{n.name}' is dangling: its output leads to no "
                                                      f"output head; wire it onward or delete it"))

    def _reach(self, starts: list[int], forward: bool) -> set[int]:
        seen = set(starts)
        stack = list(starts)
        step: dict[int, list[int]] = {i: [] for i in self.nodes}
        for e in self.edges:
            a, b = (e.src, e.dst) if forward else (e.dst, e.src)
            step[a].append(b)
        while stack:
            for j in step[stack.pop()]:
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        return seen

    def validate(self) -> list[Problem]:
        """Every problem of the graph, errors and warnings, without raising."""
        return self.infer().problems

    # ------------------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION,
            "nodes": [{"id": n.id, "name": n.name, "kind": n.kind, "params": dict(n.params), "pos": list(n.pos)}
                      for n in self.nodes.values()],
            "edges": [{"src": e.src, "dst": e.dst, "slot": e.slot} for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Graph:
        """Rebuild a graph, refusing newer versions, unknown kinds and malformed entries with a clear message."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise GraphError("this is not a ConvDesigner graph (format name missing or different)")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise GraphError(f"graph version {version!r} is not valid")
        if version > VERSION:
            raise GraphError(f"the graph was written by a newer ConvDesigner (format version {version}, this one "
                             f"reads up to {VERSION}); update ConvDesigner to open it")
        g = cls()
        names: set[str] = set()
        try:
            for nd in data["nodes"]:
                if nd["kind"] not in KINDS:
                    raise GraphError(f"block '{nd.get('name')}' has unknown kind '{nd['kind']}'; it may come from a "
                                     f"newer ConvDesigner")
                name, node_id, pos = _check_name(nd["name"]), _whole(nd["id"], "block id"), nd.get("pos", (0.0, 0.0))
                if name in names:
                    raise GraphError(f"two blocks are called '{name}'")
                if node_id in g.nodes:
                    raise GraphError(f"two blocks have the id {node_id}")
                names.add(name)
                x, y = float(pos[0]), float(pos[1])
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise GraphError(f"block '{name}' has a position {x}, {y} that is not a finite number")
                g.nodes[node_id] = Node(node_id, name, nd["kind"], KINDS[nd["kind"]].checked_params(dict(nd["params"])),
                                        (x, y))
                g._next_id = max(g._next_id, node_id + 1)
            used: dict[int, set[int]] = {}
            for ed in data["edges"]:
                dst = _whole(ed["dst"], "wire target")
                g._connect(_whole(ed["src"], "wire source"), dst, _whole(ed["slot"], "input slot"),
                           used.setdefault(dst, set()))
        except GraphError:
            raise
        except ParamError as e:
            raise GraphError(f"a block has a bad parameter: {e}") from None
        except (KeyError, TypeError, ValueError, IndexError, OverflowError, RecursionError) as e:
            raise GraphError(f"the graph data is malformed ({type(e).__name__}: {e})") from None
        return g

    def copy(self) -> Graph:
        return Graph.from_dict(self.to_dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} blocks, {len(self.edges)} wires)"


def loads_json(text: str | bytes) -> Any:
    """JSON from a file or the clipboard, which may be hostile: every failure, nesting too deep for Python and
    numbers too long to convert included, is a ValueError with a message."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    except ValueError as e:
        if "integer string conversion" in str(e):
            raise ValueError("it holds a whole number thousands of digits long") from None
        raise


def _whole(value: Any, what: str) -> int:
    """An id or slot from a file: a JSON whole number (not 1.5, "3", true or 1e400)."""
    if type(value) is not int:
        raise GraphError(f"a {what} is {value!r:.40}, expected a whole number")
    return value


def _check_name(name: Any) -> str:
    valid = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name)
    if not valid or name == ".":  # "." is the group itself in a model file
        raise GraphError(f"'{name}' is not a valid block name: use up to 64 letters, digits, '_', '-' and '.'")
    return name


def _base_name(kind_name: str) -> str:
    spec = KINDS[kind_name]
    return (spec.short_name or kind_name.lower()) + "1"


def data_fit_problem(graph: Graph, info: GraphInfo, input_shape: tuple[int, ...], classes: int,
                     data_name: str) -> str | None:
    """Why data of ``input_shape`` images and ``classes`` classes cannot train ``graph`` as it is (None: they fit);
    the one message the Problems list, the status bar and the training panel all show."""
    inputs, outputs = graph.inputs(), graph.outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        return None  # the graph's own problems say what is wrong
    shape = info.nodes[inputs[0].id].output_shape if inputs[0].id in info.nodes else None
    if shape is not None and tuple(shape) != tuple(input_shape):
        return (f"the network takes {fmt(shape)} images but {data_name} has {fmt(input_shape)}; fit the Input "
                f"block to the data (Fit to data in the training panel)")
    out = info.nodes[outputs[0].id].output_shape if outputs[0].id in info.nodes else None
    if out is not None and math.prod(out) != classes:
        return (f"the network has {math.prod(out)} outputs but {data_name} has {classes} classes; set the last "
                f"Dense block's units to {classes} (Fit to data in the training panel)")
    return None


def adapt_graph(graph: Graph, input_shape: tuple[int, int, int], classes: int) -> tuple[Graph, list[str]]:
    """A copy of ``graph`` fitted to a dataset: the Input block takes the data's image shape and a Dense block feeding
    the head gets one unit per class; with a list of what was changed. GraphError if the result does not work."""
    graph, changes = graph.copy(), []
    node = graph.inputs()[0]
    before = (node.params["channels"], node.params["height"], node.params["width"])
    if before != tuple(input_shape):
        c, h, w = input_shape
        graph.set_params(node.id, channels=c, height=h, width=w)
        changes.append(f"Input '{node.name}' {fmt(before)} → {fmt(input_shape)}")
    feeding = [graph.nodes[i] for i in graph.inputs_of(graph.outputs()[0].id)]
    if feeding and feeding[0].kind == "Dense" and feeding[0].params["units"] != classes:
        changes.append(f"Dense '{feeding[0].name}' units {feeding[0].params['units']} → {classes}")
        graph.set_params(feeding[0].id, units=classes)
    errors = [p.message for p in graph.infer().problems if p.severity == "error"]
    if errors:
        raise GraphError("; ".join(errors))
    return graph, changes
