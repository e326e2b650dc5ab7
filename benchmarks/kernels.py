"""Time the CPU conv/pool kernels on the LeNet-5 and seed-CNN layer shapes (forward + backward), optionally against
PyTorch (``--torch``; torch is not a project dependency) with every candidate interleaved in each repetition, so a
busy machine slows all of them alike.  Run: python benchmarks/kernels.py [--torch] [--reps 21]."""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from convdesigner.engine.cpu import conv, pool

# name: (C, H, W, filters, k, pad, need_dx) -- need_dx False for a layer fed by the network input
CONV_SHAPES = {
    "lenet.conv1": (1, 28, 28, 6, 5, 2, False),
    "lenet.conv2": (6, 14, 14, 16, 5, 0, True),
    "seed.conv1": (3, 32, 32, 16, 3, 1, False),
    "seed.conv2": (16, 16, 16, 32, 3, 1, True),
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


def conv_step(x, w, b, pad, need_dx, method):
    pads = (pad,) * 4

    def run():
        y = conv.conv2d_forward(x, w, b, 1, pads, 1, 1, method=method)
        conv.conv2d_backward(x, w, y, 1, pads, 1, 1, need_dx=need_dx, method=method)
    return run


def torch_conv_step(torch, x, w, b, pad, need_dx):
    xt = torch.tensor(x, requires_grad=need_dx)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)

    def run():
        y = torch.nn.functional.conv2d(xt, wt, bt, padding=pad)
        y.backward(y.detach())
    return run


def pool_step(x):
    h = x.shape[2]

    def run():
        y, arg = pool.maxpool2d_forward(x, 2, 2, 0, h // 2, h // 2)
        pool.maxpool2d_backward(y, arg, h, h)
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
    args = parser.parse_args()
    torch = None
    if args.torch:
        import torch
        torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    for n in args.batches:
        for name, (c, h, w_, f, k, pad, need_dx) in CONV_SHAPES.items():
            x = rng.standard_normal((n, c, h, w_), dtype=np.float32)
            w = rng.standard_normal((f, c, k, k), dtype=np.float32)
            b = rng.standard_normal(f, dtype=np.float32)
            candidates = {m: conv_step(x, w, b, pad, need_dx, m) for m in ("direct", "gemm")}
            if torch is not None:
                candidates["torch"] = torch_conv_step(torch, x, w, b, pad, need_dx)
            ms = interleaved_medians(candidates, args.reps)
            auto = "gemm" if conv.uses_gemm(1) else "direct"
            line = f"N={n:3d} {name:12s} conv fwd+bwd ms: " + "  ".join(f"{m} {t:7.3f}" for m, t in ms.items())
            if torch is not None:
                line += f"  | chosen {auto}: torch/ours = {ms['torch'] / ms[auto]:4.2f}x"
            print(line, flush=True)
        for name, (c, h) in POOL_SHAPES.items():
            x = rng.standard_normal((n, c, h, h), dtype=np.float32)
            candidates = {"ours": pool_step(x)}
            if torch is not None:
                candidates["torch"] = torch_pool_step(torch, x)
            ms = interleaved_medians(candidates, args.reps)
            print(f"N={n:3d} {name:12s} maxpool fwd+bwd ms: " + "  ".join(f"{m} {t:7.3f}" for m, t in ms.items()),
                  flush=True)
    print(f"numba {numba.__version__}, threading layer {numba.threading_layer()!r}, {numba.get_num_threads()} threads")


if __name__ == "__main__":
    main()
