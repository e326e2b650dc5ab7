"""Time the CPU conv/pool kernels on the LeNet-5, seed-CNN, ResNet-small, DenseNet-small and EfficientNet-small
depthwise layer shapes (forward + backward, every conv strategy that applies), optionally against PyTorch
(``--torch``; torch is not a project dependency) with every candidate interleaved in each repetition, so a busy
machine slows all of them alike.
Run: python benchmarks/kernels.py [--torch] [--reps 21] [--batches 64] [--only effnet]."""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from convdesigner.engine.cpu import blocked, conv, pointwise, pool, winograd

# name: (C, H, W, filters, k, stride, pad, groups, need_dx) -- need_dx False for a layer fed by the network input
CONV_SHAPES = {
    "lenet.conv1": (1, 28, 28, 6, 5, 1, 2, 1, False),
    "lenet.conv2": (6, 14, 14, 16, 5, 1, 0, 1, True),
    "seed.conv1": (3, 32, 32, 16, 3, 1, 1, 1, False),
    "seed.conv2": (16, 16, 16, 32, 3, 1, 1, 1, True),
    "resnet.layer1_conv": (16, 32, 32, 16, 3, 1, 1, 1, True),
    "resnet.layer2_1_conv1": (16, 32, 32, 32, 3, 2, 1, 1, True),
    "resnet.layer2_conv2": (32, 16, 16, 32, 3, 1, 1, 1, True),
    "resnet.layer3_conv2": (64, 8, 8, 64, 3, 1, 1, 1, True),
    "densenet.block1_conv2": (48, 32, 32, 12, 3, 1, 1, 1, True),
    "effnet.stage1_1_dw": (16, 32, 32, 16, 3, 1, 1, 16, True),
    "effnet.stage2_1_dw": (64, 32, 32, 64, 3, 2, 1, 64, True),
    "effnet.stage2_2_dw": (96, 16, 16, 96, 3, 1, 1, 96, True),
    "effnet.stage3_1_dw": (96, 16, 16, 96, 5, 2, 2, 96, True),
    "effnet.stage4_1_dw": (160, 8, 8, 160, 3, 2, 1, 160, True),
}
# name: (C, H) of a 2x2 max-pool input
POOL_SHAPES = {"lenet.pool1": (6, 28), "lenet.pool2": (16, 10), "seed.pool1": (16, 32), "seed.pool2": (32, 16)}


def interleaved_medians(candidates: dict, reps: int) -> dict:
    """Median milliseconds per candidate, each repetition running every candidate once."""
    for fn in candidates.values():
        fn()
    times = {name: [] for name in candidates}
    for _ in range(reps):
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(t) * 1e3) for name, t in times.items()}


def conv_step(x, w, b, stride, pad, groups, need_dx, method):
    pads = (pad,) * 4

    def run():
        y = conv.conv2d_forward(x, w, b, stride, pads, 1, groups, method=method)
        conv.conv2d_backward(x, w, y, stride, pads, 1, groups, need_dx=need_dx, method=method)
    return run


def torch_conv_step(torch, x, w, b, stride, pad, groups, need_dx):
    xt = torch.tensor(x, requires_grad=need_dx)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)

    def run():
        y = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad, groups=groups)
        y.backward(y.detach())
    return run


def pool_step(x):
    h = x.shape[2]

    def run():
        y, arg = pool.maxpool2d_forward(x, 2, 2, 0, h // 2, h // 2)
        pool.maxpool2d_backward(y, arg, 2, 2, 0, h, h)
    return run


def torch_pool_step(torch, x):
    xt = torch.tensor(x, requires_grad=True)

    def run():
        y = torch.nn.functional.max_pool2d(xt, 2)
        y.backward(y.detach())
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--torch", action="store_true", help="compare with torch.nn.functional on 2 threads")
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--only", nargs="+", default=[""], metavar="PART",
                        help="time only the shapes whose name contains one of these, e.g. effnet")
    args = parser.parse_args()
    torch = None
    if args.torch:
        import torch
        torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    for n in args.batches:
        for name, (c, h, w_, f, k, stride, pad, groups, need_dx) in CONV_SHAPES.items():
            if not any(part in name for part in args.only):
                continue
            x = rng.standard_normal((n, c, h, w_), dtype=np.float32)
            w = rng.standard_normal((f, c // groups, k, k), dtype=np.float32)
            b = rng.standard_normal(f, dtype=np.float32)
            pads = (pad,) * 4
            fast = (["winograd"] if winograd.supports(w.shape, stride, pads, 1, groups) else []) + \
                (["pointwise"] if pointwise.supports(w.shape, pads, groups) else []) + \
                (["blocked"] if blocked.supports(stride, groups) else [])
            grouped = ["direct", "depthwise"] if groups == c else ["direct"]
            methods = ["direct", "gemm", *fast] if groups == 1 else grouped
            candidates = {m: conv_step(x, w, b, stride, pad, groups, need_dx, m) for m in methods}
            if torch is not None:
                candidates["torch"] = torch_conv_step(torch, x, w, b, stride, pad, groups, need_dx)
            ms = interleaved_medians(candidates, args.reps)
            auto = conv.strategy(c, w.shape, stride, pads, 1, groups)
            line = f"N={n:3d} {name:18s} conv fwd+bwd ms: " + "  ".join(f"{m} {t:7.3f}" for m, t in ms.items())
            if torch is not None:
                line += f"  | chosen {auto}: torch/ours = {ms['torch'] / ms[auto]:4.2f}x"
            print(line, flush=True)
        for name, (c, h) in POOL_SHAPES.items():
            if not any(part in name for part in args.only):
                continue
            x = rng.standard_normal((n, c, h, h), dtype=np.float32)
            candidates = {"ours": pool_step(x)}
            if torch is not None:
                candidates["torch"] = torch_pool_step(torch, x)
            ms = interleaved_medians(candidates, args.reps)
            print(f"N={n:3d} {name:18s} maxpool fwd+bwd ms: " + "  ".join(f"{m} {t:7.3f}" for m, t in ms.items()),
                  flush=True)
    print(f"numba {numba.__version__}, threading layer {numba.threading_layer()!r}, {numba.get_num_threads()} threads")


if __name__ == "__main__":
    main()
