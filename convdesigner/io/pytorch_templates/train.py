"""Train the exported network with PyTorch: on a CPU, one GPU, or many GPUs and machines (DistributedDataParallel).

    python train.py --epochs 1                                   one process (the CPU, or the first GPU)
    torchrun --nproc-per-node 4 train.py                         four GPUs of this machine
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 train.py
                                                                 two machines (run it on both)

The optimizer, learning-rate schedule, batch size (over all processes together) and seed are the ConvDesigner
run's, from settings.json; training starts from the weights in start.h5, reads data.h5 (or --data: an HDF5 file
with images, labels, images_val, labels_val) and saves a ConvDesigner model file (--out) that the designer opens.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

# isort: split
from model import HEAD, Net, loss
from weights import START, load_h5, save_h5

HERE = Path(__file__).resolve().parent
SETTINGS = json.loads((HERE / "settings.json").read_text(encoding="utf-8"))


def read_data(path) -> tuple[TensorDataset, TensorDataset | None]:
    """(train, validation) from an HDF5 file, normalised as ConvDesigner does: uint8 images scaled to [0, 1], then
    (x − mean) / std per channel with the file's mean and std (measured on the training images if it has none)."""
    with h5py.File(path, "r") as f:
        parts = [(f["images"][()], f["labels"][()])]
        if "images_val" in f:
            parts.append((f["images_val"][()], f["labels_val"][()]))
        mean, std = f.attrs.get("mean"), f.attrs.get("std")
    scale = 1 / 255 if parts[0][0].dtype == np.uint8 else 1.0
    if mean is None or std is None:
        train = parts[0][0].astype(np.float32) * scale
        mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3)) + 1e-8
    mean = torch.tensor(np.asarray(mean, np.float32)).reshape(1, -1, 1, 1)
    std = torch.tensor(np.asarray(std, np.float32)).reshape(1, -1, 1, 1)

    def tensors(images, labels):
        x = (torch.from_numpy(images.astype(np.float32)) * scale - mean) / std
        y = torch.from_numpy(labels.astype(np.int64 if HEAD == "SoftmaxCrossEntropy" else np.float32))
        return TensorDataset(x, y)

    datasets = [tensors(*part) for part in parts]
    return datasets[0], datasets[1] if len(datasets) > 1 else None


def make_optimizer(net: nn.Module) -> torch.optim.Optimizer:
    """ConvDesigner's optimizer with its settings; weight decay on convolution and dense kernels only, as there."""
    hyper = dict(SETTINGS["hyper"])
    decay = hyper.pop("weight_decay", 0.0)
    kernels = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    chosen = {id(p) for p in kernels}
    groups = [{"params": kernels, "weight_decay": decay},
              {"params": [p for p in net.parameters() if id(p) not in chosen], "weight_decay": 0.0}]
    kind, lr = SETTINGS["optimizer"], SETTINGS["lr"]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=hyper.get("momentum", 0.0),
                               nesterov=bool(hyper.get("nesterov", False)))
    if kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        return cls(groups, lr=lr, betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])
    if kind == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=hyper["alpha"], eps=hyper["eps"],
                                   momentum=hyper.get("momentum", 0.0))
    if kind == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, eps=hyper["eps"])
    raise SystemExit(f"settings.json names an unknown optimizer {kind!r}")


class Rate:
    """ConvDesigner's learning-rate schedules (constant, step, cosine, plateau) after a linear warmup in batches; a
    cosine runs over the epochs of this run."""

    def __init__(self, epochs: int) -> None:
        self.spec, self.base, self.epochs = SETTINGS["schedule"], SETTINGS["lr"], epochs
        self.scale, self.best, self.bad = 1.0, math.inf, 0

    def __call__(self, epoch: int, batch: int, batches: int) -> float:
        s, kind = self.spec, self.spec["kind"]
        if kind == "step":
            lr = self.base * s["gamma"] ** (epoch // s["step_size"])
        elif kind == "cosine":
            t = min(epoch, self.epochs) / self.epochs
            lr = s["min_lr"] + (self.base - s["min_lr"]) * (1 + math.cos(math.pi * t)) / 2
        elif kind == "plateau":
            lr = max(self.base * self.scale, s["min_lr"])
        else:
            lr = self.base
        warmup = SETTINGS["warmup"]
        return lr * min(1.0, (epoch * batches + batch + 1) / warmup) if warmup else lr

    def observe(self, value: float) -> None:
        if self.spec["kind"] != "plateau":
            return
        if value < self.best * (1 - self.spec["threshold"]):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > self.spec["patience"]:
            self.scale, self.bad = self.scale * self.spec["factor"], 0


def evaluate(net: nn.Module, data: TensorDataset, batch: int, device, rank: int, world: int) -> tuple[float, float]:
    """Mean loss and accuracy over every process's share of ``data``."""
    net.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    sampler = DistributedSampler(data, world, rank, shuffle=False) if world > 1 else None
    with torch.no_grad():
        for x, y in DataLoader(data, batch, sampler=sampler):
            x, y = x.to(device), y.to(device)
            scores = net(x)
            totals[0] += float(loss(scores, y)) * len(x)
            if HEAD == "SoftmaxCrossEntropy":
                totals[1] += float((scores.argmax(1) == y).sum())
            totals[2] += len(x)
    if world > 1:
        dist.all_reduce(totals)
    net.train()
    return float(totals[0] / totals[2]), float(totals[1] / totals[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HERE / "data.h5"), help="HDF5 file of images and labels")
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    parser.add_argument("--batch-size", type=int, default=SETTINGS["batch_size"], help="over all processes")
    parser.add_argument("--start", default=str(START), help="ConvDesigner model file to start from")
    parser.add_argument("--out", default="trained.h5", help="ConvDesigner model file to write")
    args = parser.parse_args()

    distributed = "LOCAL_RANK" in os.environ  # started by torchrun
    cuda = torch.cuda.is_available()
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
        rank, world, local = dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"])
    else:
        rank, world, local = 0, 1, 0
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    seed = SETTINGS["seed"]
    torch.manual_seed(seed)

    net = Net()
    load_h5(net, args.start)
    net.to(device)
    model = DistributedDataParallel(net, device_ids=[local] if cuda else None) if distributed else net
    if not Path(args.data).exists():
        raise SystemExit(f"no data file {args.data}; give --data FILE.h5 (datasets images, labels, images_val, "
                         f"labels_val)")
    train, val = read_data(args.data)
    per_process = max(1, args.batch_size // world)
    sampler = DistributedSampler(train, world, rank, shuffle=True, seed=seed) if distributed else None
    loader = DataLoader(train, per_process, shuffle=sampler is None, sampler=sampler,
                        generator=torch.Generator().manual_seed(seed))
    optimizer, rate = make_optimizer(net), Rate(args.epochs)
    if rank == 0:
        print(f"training on {world} process(es) ({device.type}), {len(train):,} images, batch {per_process} per "
              f"process, {SETTINGS['optimizer']} at lr {SETTINGS['lr']:g}")
        if SETTINGS.get("augment"):
            print(f"note: ConvDesigner's augmentation '{SETTINGS['augment']}' is not repeated here")
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        total, count = 0.0, 0
        for i, (x, y) in enumerate(loader):
            for group in optimizer.param_groups:
                group["lr"] = rate(epoch, i, len(loader))
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            value = loss(model(x), y)
            value.backward()
            if SETTINGS.get("clip_norm"):
                nn.utils.clip_grad_norm_(net.parameters(), SETTINGS["clip_norm"])
            optimizer.step()
            total, count = total + value.item() * len(x), count + len(x)
        line = f"epoch {epoch + 1}/{args.epochs}: training loss {total / max(count, 1):.4f}"
        monitored = total / max(count, 1)
        if val is not None:
            monitored, accuracy = evaluate(net, val, per_process, device, rank, world)
            line += f", validation loss {monitored:.4f}, accuracy {accuracy:.2%}"
        rate.observe(monitored)
        if rank == 0:
            print(line, flush=True)
    if rank == 0:
        save_h5(net, args.out, like=args.start)
        print(f"saved {args.out}: open it with `convdesigner {args.out}`")
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
