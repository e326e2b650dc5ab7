"""Training and inference throughput of the engine, side by side with PyTorch running the very same network.

PyTorch is optional and never a dependency: it is imported only when a comparison is asked for and installed. Both
engines get the same weights, random data, optimizer and thread count in the same process, and each cell is the
median of several timed repeats after a warm-up. On 'cuda' both run on the same GPU, PyTorch in fp32 with TF32 off
(the precision our kernels compute in), and every timed step ends with the device synchronised on both sides.
"""
from __future__ import annotations

import math
import statistics
import time
import warnings
from dataclasses import dataclass, field

import numba
import numpy as np

from ..graph.graph import Graph
from ..graph.layers import conv_padding
from ..graph.templates import build
from . import compile, device_status
from .bench_probes import gflops, status_kib
from .optimizers import make_optimizer

BENCH_TEMPLATES = ("lenet5", "seed-cnn")
CUDA_TEMPLATES = ("lenet5", "seed-cnn", "resnet-small")  # a GPU has time for the deeper network too
BENCH_BATCHES = (64, 256)
OPTIMIZER = ("sgd", {"momentum": 0.9})  # the same rule on both sides: SGD with momentum 0.9, lr 0.01
LR = 0.01


@dataclass
class Cell:
    template: str
    batch: int
    mode: str  # "train" or "infer"
    ours: float  # images per second
    torch: float | None = None
    macs: int = 0  # multiply-adds per image, from the catalogue

    @property
    def ratio(self) -> float | None:
        return self.ours / self.torch if self.torch else None

    @property
    def gflops(self) -> float:
        return gflops(self.macs, self.mode, self.ours)


@dataclass
class Timing:
    """How long each cell runs: ``repeats`` timed runs of about ``seconds / repeats`` each, after ``warmup`` calls."""
    seconds: float = 2.0
    repeats: int = 5
    warmup: int = 3
    notes: list[str] = field(default_factory=list)


def throughput(steps: list, images: int, timing: Timing) -> list[float]:
    """Median images per second of each ``step()`` (each handles ``images`` images per call). The steps take turns
    in every repeat, so a change in machine load touches them alike."""
    calls = []
    for step in steps:
        for _ in range(timing.warmup):
            step()
        start = time.perf_counter()
        step()
        once = max(time.perf_counter() - start, 1e-6)
        calls.append(max(1, math.ceil(timing.seconds / timing.repeats / once)))
    rates: list[list[float]] = [[] for _ in steps]
    for _ in range(timing.repeats):
        for step, count, seen in zip(steps, calls, rates, strict=True):
            start = time.perf_counter()
            for _ in range(count):
                step()
            seen.append(count * images / (time.perf_counter() - start))
    return [statistics.median(r) for r in rates]


def random_batch(shape: tuple[int, ...], classes: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *shape), dtype=np.float32), rng.integers(0, classes, batch)


def ours_steps(net, x: np.ndarray, labels: np.ndarray):
    """(train step, inference step) closures of our engine on one fixed batch."""
    opt = make_optimizer(OPTIMIZER[0], net.parameters(), LR, **OPTIMIZER[1])

    def train():
        net.forward(x, training=True)
        net.loss(labels)
        net.backward(input_grad=False)
        opt.step()
        net.backend.synchronize()

    def infer():
        net.forward(x, training=False)

    return train, infer


def default_templates(device: str) -> tuple[str, ...]:
    return CUDA_TEMPLATES if device == "cuda" else BENCH_TEMPLATES


def check_threads(threads: int | None) -> None:
    """ValueError unless ``threads`` is None (numba's count) or a thread count numba can run."""
    if threads is not None and not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}, not {threads}")


def run(templates=None, batches=BENCH_BATCHES, timing: Timing | None = None, with_torch: bool = True,
        report=None, threads: int | None = None, device: str = "cpu") -> tuple[list[Cell], list[str]]:
    """Every (template, batch, mode) cell on our engine and, when available, on PyTorch; returns cells and notes.
    ``report(cell)`` is called as each cell finishes. ``threads``: both engines' thread count (default numba's).
    ``device``: 'cpu' or 'cuda' (a ValueError says why a device cannot be used); ``templates`` default by device."""
    available, reason = device_status(device)
    if not available:
        raise ValueError(f"cannot benchmark on {device}: {reason}")
    check_threads(threads)
    before = numba.get_num_threads()
    numba.set_num_threads(threads or before)
    try:
        return _run(templates or default_templates(device), batches, timing or Timing(), with_torch, report,
                    device, reason)
    finally:
        numba.set_num_threads(before)


def _run(templates, batches, timing: Timing, with_torch: bool, report, device: str,
         where: str) -> tuple[list[Cell], list[str]]:
    threads = numba.get_num_threads()
    on = f"{threads} thread{'s' if threads != 1 else ''}" if device == "cpu" else f"CUDA on {where}"
    notes = [f"{on}; optimizer {OPTIMIZER[0]} momentum {OPTIMIZER[1]['momentum']} lr {LR}; random data; median of "
             f"{timing.repeats} runs of ~{timing.seconds / timing.repeats:.2g} s per cell after {timing.warmup} "
             f"warm-up steps"]
    torch = _import_torch() if with_torch else None
    if with_torch and torch is None:
        notes.append("PyTorch is not installed: only our engine was timed (pip install torch to compare)")
    if torch is not None and device == "cuda" and not torch.cuda.is_available():
        notes.append(f"PyTorch {torch.__version__} has no CUDA here: only our engine was timed")
        torch = None
    if torch is not None and device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        notes.append(f"PyTorch {torch.__version__} eager on {torch.cuda.get_device_name()} (cuDNN "
                     f"{torch.backends.cudnn.version()}), fp32 with TF32 off")
    elif torch is not None:
        torch.set_num_threads(threads)
        notes.append(f"PyTorch {torch.__version__} with torch.set_num_threads({threads})")
    cells = []
    for key in templates:
        graph = build(key)
        net = compile(graph, device=device, seed=0)
        classes = int(np.prod(net.output_shape))
        twin = TorchTwin(torch, graph, net, device) if torch is not None else None
        if twin is not None:
            notes.append(f"{key}: max |ours − torch| over the logits of one batch = {twin.check(net):.1e}")
        if device == "cpu":
            notes.append(f"{key}: {_part_processes(net)}")
        for batch in batches:
            x, labels = random_batch(net.input_shape, classes, batch)
            ours = dict(zip(("train", "infer"), ours_steps(net, x, labels), strict=True))
            theirs = dict(zip(("train", "infer"), twin.steps(x, labels), strict=True)) if twin is not None else {}
            for mode in ("train", "infer"):
                rates = throughput([ours[mode], *([theirs[mode]] if theirs else [])], batch, timing)
                cell = Cell(key, batch, mode, rates[0], rates[1] if theirs else None, graph.infer().total_macs)
                cells.append(cell)
                if report is not None:
                    report(cell)
    return cells, notes


def _part_processes(net) -> str:
    """Starts ``net``'s worker processes before its cells are timed (engine.part_processes) and says how they
    stand."""
    why = net.start_part_processes()
    if why is not None:
        return f"no worker processes ({why})"
    pids = net._processes.pids()
    try:
        sizes = ", ".join(f"{status_kib('VmRSS', pid) / 1024:.0f}" for pid in pids)
    except OSError:
        sizes = "?"
    return f"split batches' other parts in {len(pids)} worker process(es), resident {sizes} MiB"


def format_table(cells: list[Cell], sgemm: float | None = None) -> str:
    """The cells as a table; with the machine's ``sgemm`` GFLOP/s, each cell's share of it too."""
    width = max([7] + [len(c.template) for c in cells])
    share = f" {'of sgemm':>8}" if sgemm else ""
    lines = [f"{'network':<{width}} {'batch':>5}  {'mode':<9} {'ours img/s':>11} {'torch img/s':>12} "
             f"{'ours/torch':>11} {'GFLOP/s':>8}{share}"]
    for c in cells:
        torch = f"{c.torch:>12,.0f}" if c.torch else f"{'-':>12}"
        ratio = f"{c.ratio:>11.2f}" if c.ratio else f"{'-':>11}"
        mode = "training" if c.mode == "train" else "inference"
        share = f" {c.gflops / sgemm:>8.0%}" if sgemm else ""
        lines.append(f"{c.template:<{width}} {c.batch:>5}  {mode:<9} {c.ours:>11,.0f} {torch} {ratio} "
                     f"{c.gflops:>8.1f}{share}")
    return "\n".join(lines)


def profile(template: str, batch: int = 64, steps: int = 20, device: str = "cpu",
            with_torch: bool = True) -> list[tuple]:
    """Per block of ``template``: (name, kind, forward ms, backward ms, PyTorch's forward ms, backward ms) per
    training step, mean over ``steps`` (PyTorch's None without it, and for the blocks it runs as plain functions:
    merges, the input, the loss); a last row holds the rest of the step (loss, optimizer, bookkeeping). Both run the
    whole batch in this process, so the rows compare kernel with kernel. On 'cuda' every block waits for its
    kernels, so the blocks add up to more than a free-running step."""
    graph = build(template)
    net = compile(graph, device=device, seed=0)
    net.part_processes = False  # the blocks of every part timed here, in this process
    x, labels = random_batch(net.input_shape, int(np.prod(net.output_shape)), batch)
    spent = {layer.name: [0.0, 0.0] for layer in net.layers}
    for layer in net.layers:
        for slot, method in enumerate(("forward", "backward")):
            setattr(layer, method, _timed(getattr(layer, method), spent[layer.name], slot, net.backend.synchronize))
    torch = _import_torch() if with_torch else None
    twin = TorchTwin(torch, graph, net, device) if torch is not None else None
    train, _ = ours_steps(net, x, labels)
    rest = _per_step(train, spent, steps)
    theirs = _torch_blocks(twin, x, labels, steps) if twin is not None else {}
    rows = [(layer.name, layer.kind, *spent[layer.name], *theirs.get(layer.name, (None, None)))
            for layer in net.layers]
    rows.append(("(rest)", "loss, optimizer, glue", rest, 0.0, theirs.get("(rest)", None), 0.0 if theirs else None))
    return [(name, kind, *(None if t is None else t / steps * 1e3 for t in times))
            for name, kind, *times in rows]


def _per_step(step, spent: dict, steps: int) -> float:
    """Runs ``step`` 3 times, then ``steps`` times timed; ``spent`` (per block [forward, backward] seconds, filled
    by the step's timers) covers the timed ones only. Returns the seconds no block accounts for."""
    for _ in range(3):
        step()
    for times in spent.values():
        times[:] = [0.0, 0.0]
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start - sum(f + b for f, b in spent.values())


def _torch_blocks(twin, x, labels, steps: int) -> dict:
    """PyTorch's [forward, backward] seconds per block over ``steps`` training steps, from hooks around each of its
    modules: the backward from the gradient reaching the block's output to the last of its input's gradient and
    its weights' (the first block's input has none). Its "(rest)": a step without the hooks (which cost time of
    their own) less the blocks."""
    spent = {name: [0.0, 0.0] for name in twin.model.blocks}
    handles = []
    for name, module in twin.model.blocks.items():
        times, mark = spent[name], [0.0, 0.0]

        def begin(slot, mark=mark):
            return lambda *_: mark.__setitem__(slot, time.perf_counter())

        def end(slot, mark=mark, times=times):
            def hook(*_):
                twin.sync()
                now = time.perf_counter()
                times[slot] += now - mark[slot]
                mark[slot] = now
            return hook

        handles += [module.register_forward_pre_hook(begin(0)), module.register_forward_hook(end(0)),
                    module.register_full_backward_pre_hook(begin(1)), module.register_full_backward_hook(end(1))]
        handles += [p.register_post_accumulate_grad_hook(end(1)) for p in module.parameters()]
    train, _ = twin.steps(x, labels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the first block's hook fires with no input gradient
            _per_step(train, spent, steps)
    finally:
        for handle in handles:
            handle.remove()
    plain = _per_step(train, {}, steps)
    return {**spent, "(rest)": max(0.0, plain - sum(f + b for f, b in spent.values()))}


def format_profile(template: str, rows: list[tuple], batch: int) -> str:
    """Our blocks, slowest first, next to PyTorch's where it was timed; then both summed by kind of block."""
    total = sum(f + b for _, _, f, b, *_ in rows)
    theirs = any(row[4] is not None for row in rows)
    header = f"  {'block':<20} {'kind':<20} {'forward':>8} {'backward':>9} {'share':>6}"
    lines = [f"{template}, batch {batch}: milliseconds per training step by block (total {total:.2f} ms"
             + (f"; PyTorch's {sum(r[4] + r[5] for r in rows if r[4] is not None):.2f} ms)" if theirs else ")"),
             header + ("   torch fwd  torch bwd  ours/torch" if theirs else "")]
    for name, kind, f, b, tf, tb in sorted(rows, key=lambda r: -(r[2] + r[3])):
        line = f"  {name:<20} {kind:<20} {f:>8.3f} {b:>9.3f} {(f + b) / total:>6.1%}"
        if tf is not None:
            line += f"   {tf:>9.3f}  {tb:>9.3f}  {_speed(tf + tb, f + b):>10}"
        lines.append(line)
    if theirs:
        lines.append("  by kind: ours ms, PyTorch's ms, ours/torch (above 1: faster)")
        kinds: dict[str, list[float]] = {}
        for _, kind, f, b, tf, tb in rows:
            if tf is not None:
                sums = kinds.setdefault(kind, [0.0, 0.0])
                sums[0] += f + b
                sums[1] += tf + tb
        for kind, (ours, other) in sorted(kinds.items(), key=lambda item: -item[1][0]):
            lines.append(f"    {kind:<22} {ours:>9.2f} {other:>9.2f}  {_speed(other, ours):>6}")
    return "\n".join(lines)


def _speed(theirs: float, ours: float) -> str:
    """PyTorch's time over ours; '-' where either is nil (a fused block of ours, PyTorch's rest lost in its hooks)."""
    return f"{theirs / ours:.2f}" if ours > 1e-6 and theirs > 1e-6 else "-"


def _timed(method, total: list[float], slot: int, sync):
    def wrapper(*args):
        start = time.perf_counter()
        out = method(*args)
        sync()
        total[slot] += time.perf_counter() - start
        return out
    return wrapper


# ----------------------------------------------------------------------------------------------- PyTorch twin

def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


class TorchTwin:
    """The graph rebuilt as a PyTorch module with our network's weights, stepping with the same optimizer rule."""

    def __init__(self, torch, graph: Graph, net, device: str = "cpu") -> None:
        self.torch, self.device = torch, torch.device(device)
        self.model = _torch_module(torch, graph, net.state_dict()).to(self.device)
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def check(self, net) -> float:
        x, _ = random_batch(net.input_shape, 2, 8, seed=1)
        self.model.eval()
        with self.torch.no_grad():
            theirs = self.model(self.torch.from_numpy(x).to(self.device)).cpu().numpy()
        return float(np.max(np.abs(theirs - net.forward(x, training=False))))

    def steps(self, x: np.ndarray, labels: np.ndarray):
        torch, model, sync = self.torch, self.model, self.sync
        tx, ty = torch.from_numpy(x).to(self.device), torch.from_numpy(labels).to(self.device)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=OPTIMIZER[1]["momentum"])
        loss_fn = torch.nn.CrossEntropyLoss()

        def train():
            model.train()
            opt.zero_grad(set_to_none=True)
            loss_fn(model(tx), ty).backward()
            opt.step()
            sync()

        def infer():
            model.eval()
            with torch.inference_mode():
                model(tx).cpu()  # the logits come down, as ours do

        return train, infer


def _torch_module(torch, graph: Graph, weights: dict):
    """A module that runs the graph's blocks in topological order (so branches and merges work)."""
    nn = torch.nn
    info = graph.infer()

    def conv(p, shapes, w):
        top, bottom, left, right = conv_padding(p, shapes[0][1:])
        m = nn.Conv2d(shapes[0][0], p["filters"], (p["kernel_h"], p["kernel_w"]), p["stride"], 0, p["dilation"],
                      p["groups"], p["bias"])
        _load(torch, m, {"weight": w["kernel"], "bias": w.get("bias")})
        if (top, bottom, left, right) == (0, 0, 0, 0):
            return m
        return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), m)

    def dense(p, shapes, w):
        m = nn.Linear(shapes[0][0], p["units"], p["bias"])
        _load(torch, m, {"weight": w["kernel"], "bias": w.get("bias")})
        return m

    def pool(cls):
        return lambda p, shapes, w: cls(p["pool_size"], p["stride"] or p["pool_size"], p["padding"],
                                        ceil_mode=p["ceil_mode"])

    def batchnorm(p, shapes, w):
        cls = nn.BatchNorm2d if len(shapes[0]) == 3 else nn.BatchNorm1d
        m = cls(shapes[0][0], eps=p["eps"], momentum=p["momentum"])
        _load(torch, m, {"weight": w["gamma"], "bias": w["beta"], "running_mean": w["running_mean"],
                         "running_var": w["running_var"]})
        return m

    def prelu(p, shapes, w):
        m = nn.PReLU(shapes[0][0])
        _load(torch, m, {"weight": w["slope"]})
        return m

    simple = {
        "ReLU": lambda p: nn.ReLU(), "LeakyReLU": lambda p: nn.LeakyReLU(p["alpha"]),
        "ELU": lambda p: nn.ELU(p["alpha"]),
        "SiLU": lambda p: nn.SiLU(), "Sigmoid": lambda p: nn.Sigmoid(), "Tanh": lambda p: nn.Tanh(),
        "Softmax": lambda p: nn.Softmax(dim=1), "Dropout": lambda p: nn.Dropout(p["rate"]),
        "Flatten": lambda p: nn.Flatten(), "GlobalAvgPool2D": lambda p: nn.AdaptiveAvgPool2d(1),
    }
    with_weights = {"Conv2D": conv, "Dense": dense, "MaxPool2D": pool(nn.MaxPool2d), "AvgPool2D": pool(nn.AvgPool2d),
                    "BatchNorm": batchnorm, "PReLU": prelu}
    def multiply(xs):
        a, b = sorted(xs, key=lambda t: -t.dim())  # a C (or C×1×1) gate broadcasts over a C×H×W input
        return a * b.reshape(b.shape[0], -1, *([1] * (a.dim() - 2)))

    merges = {"Add": lambda xs: sum(xs[1:], xs[0]), "Concat": lambda xs: torch.cat(xs, dim=1), "Multiply": multiply}

    class GraphModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleDict()
            self.plan = []
            for node_id in graph.topological_order():
                node = graph.nodes[node_id]
                shapes = info.nodes[node_id].input_shapes
                if node.kind in with_weights:
                    self.blocks[node.name] = with_weights[node.kind](node.params, shapes, weights.get(node.name, {}))
                elif node.kind in simple:
                    self.blocks[node.name] = simple[node.kind](node.params)
                elif node.kind not in merges and node.kind != "Input" and not node.spec.is_loss:
                    raise ValueError(f"the benchmark has no PyTorch equivalent of {node.kind}")
                self.plan.append((node.name, node.kind, node.spec.is_loss, graph.inputs_of(node_id)))
            self.names = {node_id: graph.nodes[node_id].name for node_id in graph.nodes}

        def forward(self, x):
            outs = {}
            for name, kind, is_loss, sources in self.plan:
                xs = [outs[self.names[s]] for s in sources] or [x]
                if is_loss:
                    return xs[0]
                outs[name] = merges[kind](xs) if kind in merges else self.blocks[name](xs[0]) \
                    if name in self.blocks else xs[0]
            raise ValueError("the graph has no output head")

    return GraphModule()


def _load(torch, module, arrays: dict) -> None:
    with torch.no_grad():
        for name, value in arrays.items():
            if value is not None:
                getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
