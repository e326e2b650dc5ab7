"""`convdesigner`: opens the designer; `convdesigner train|eval|predict|bench|info|export|import` run the same work
headless.

Every command prints a user's message and exits non-zero on a bad input; tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .graph import CATEGORIES, KINDS, TEMPLATES


class CommandError(Exception):
    """A problem the user can fix (bad path, bad option); printed without a traceback."""


def _count(n: int) -> str:
    return f"{n:,}"


def cmd_info(args: argparse.Namespace) -> int:
    """Without a file: the layer catalogue and the templates with their parameter counts."""
    if args.model:
        return _model_info(args.model)
    print(f"ConvDesigner {__version__}\n\nLayer kinds:")
    for category in CATEGORIES:
        print(f"  {category}")
        for k in KINDS.values():
            if k.category == category:
                params = ", ".join(f"{p.name}={p.default}" for p in k.params)
                print(f"    {k.name:<20} {k.help}" + (f"  [{params}]" if params else ""))
    print("\nTemplates:")
    for t in TEMPLATES.values():
        info = t.build().infer()
        tag = "small" if t.small else "full"
        print(f"  {t.key:<20} {t.title:<22} {tag:<5} {_count(info.total_params):>13} parameters "
              f"{info.total_macs / 1e6:>10.1f} M mult-adds  {t.description}")
    return 0


_LESS_MEMORY = "use fewer images (--limit), a smaller batch (--batch-size) or a smaller network"


def _training_data(args: argparse.Namespace, resumed=None):
    """The network to train and the (train, validation) sets, with what was changed to make them fit: a resumed
    graph gets the data prepared for its input; a template is fitted to the data (or, if it cannot take their size,
    the pictures are resized to the template)."""
    from .data import load_dataset
    from .graph.graph import adapt_graph
    from .graph.layers import fmt
    options = {"val_split": args.val_split, "seed": args.seed, "limit": args.limit}
    try:
        if resumed is not None:
            node = resumed.inputs()[0].params if resumed.inputs() else None
            shape = (node["channels"], node["height"], node["width"]) if node else None
            train, val = load_dataset(args.data, input_shape=shape, **options)
            return resumed, train, val, list(train.meta.get("notes", []))
        if args.template not in TEMPLATES:
            raise CommandError(f"unknown template '{args.template}'; choose one of {', '.join(TEMPLATES)}")
        graph = TEMPLATES[args.template].build()
        node = graph.inputs()[0].params
        wanted = (node["channels"], node["height"], node["width"])
        train, val = load_dataset(args.data, **options)
        try:
            graph, changes = adapt_graph(graph, train.input_shape, train.num_classes)
        except ValueError as e:
            have = fmt(train.input_shape)
            train, val = load_dataset(args.data, input_shape=wanted, **options)
            graph, changes = adapt_graph(graph, wanted, train.num_classes)
            changes.insert(0, f"{args.template} expects {fmt(wanted)} input and cannot take {have} ({e}); the "
                              f"pictures were converted instead")
    except ValueError as e:  # DatasetError, or a template that fits neither way
        raise CommandError(str(e)) from None
    return graph, train, val, changes + list(train.meta.get("notes", []))


@contextlib.contextmanager
def _ctrl_c_stops(trainer):
    """The first Ctrl-C asks the trainer to stop after the current batch; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def stop(signum, frame):
        signal.signal(signal.SIGINT, previous)
        print("\nstopping after this batch (Ctrl-C again to abort)", file=sys.stderr, flush=True)
        trainer.stop()

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a template on a dataset with a progress line per epoch; exit 130 when stopped with Ctrl-C."""
    from .console import ConsoleProgress
    from .engine import compile, settings
    from .engine.optimizers import OPTIMIZERS
    from .engine.trainer import Trainer, TrainingDiverged
    from .io import ModelFileError
    from .io.resume import restore
    if not args.template and not args.resume:
        raise CommandError("give --template NAME to start training, or --resume MODEL.h5 to continue")
    run = _resume(args) if args.resume else None
    for key, value in settings.defaults().items():  # left None by the parser, so `--resume` can tell what was given
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.optimizer not in OPTIMIZERS:
        raise CommandError(f"unknown optimizer '{args.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
    if args.lr is None:
        args.lr = OPTIMIZERS[args.optimizer].default_lr  # recorded as given, so a resumed run can name it
    _check_train_options(args)
    try:
        graph, train, val, notes = _training_data(args, run.model.graph if run else None)
    except MemoryError:
        raise CommandError(f"the data do not fit in memory; {_LESS_MEMORY}") from None
    values = vars(args)
    try:
        net = compile(graph, device=args.device, seed=args.seed)
        optimizer = settings.make_optimizer_for(values, net.parameters())
        schedule = settings.make_schedule_for(values, args.epochs)
        progress = ConsoleProgress(args.epochs_done + args.epochs, args.batch_size)
        saving = _checkpoints(args, train)
        trainer = Trainer(net, optimizer, train, val, schedule, [progress, *saving], args.batch_size, args.seed,
                          settings.make_augment_for(values), args.clip_norm, args.early_stopping, args.restore_best)
        if run is not None:
            restore(run.model, net, optimizer, trainer)
        for checkpoints in saving:
            checkpoints.attach(trainer)
    except ValueError as e:  # CompileError, DatasetError and bad settings are all ValueErrors with a message
        raise CommandError(str(e)) from None
    except MemoryError:
        raise CommandError(f"the network does not fit in memory; {_LESS_MEMORY}") from None
    weights = sum(p.value.size for p in net.parameters())
    if run is None:
        what = args.template
    else:
        what = (f"{args.template} from {args.resume}" if args.template else f"the graph in {args.resume}") + \
            f" after epoch {run.epochs_done}"
    print(f"Training {what} ({_count(weights)} weights) on {train.name}: {_count(len(train))} training, "
          f"{_count(len(val)) if val is not None else 'no'} validation images; {optimizer!r}, "
          f"{schedule.describe()} schedule, batch {args.batch_size}, seed {args.seed}")
    for note in notes:
        print(f"  note: {note}")
    with _ctrl_c_stops(trainer):
        try:
            trainer.fit(args.epochs)
            for checkpoints in saving:
                checkpoints.save()
        except (TrainingDiverged, ModelFileError) as e:
            raise CommandError(str(e)) from None
        except MemoryError:
            raise CommandError(f"training ran out of memory; {_LESS_MEMORY}") from None
    summary = progress.reason
    if val is not None:
        loss, acc = trainer.evaluate(val)
        summary += f"; validation accuracy {acc:.2%}, loss {loss:.4f}"
    print(summary)
    for checkpoints in saving:
        best = (f"; best epoch so far in {checkpoints.best_path}"
                if checkpoints.best_path is not None and checkpoints.best_path.exists() else "")
        print(f"saved {checkpoints.path} (epoch {trainer.epoch}){best}")
    return 130 if progress.reason.startswith("stopped") else 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Training and inference images per second of the benchmark networks, ours next to PyTorch if installed."""
    import numba

    from .engine import bench, bench_probes
    templates = [t.strip() for t in (args.templates or ",".join(bench.default_templates(args.device))).split(",")
                 if t.strip()]
    unknown = [t for t in templates if t not in TEMPLATES]
    if unknown:
        raise CommandError(f"unknown template {', '.join(unknown)}; choose from {', '.join(TEMPLATES)}")
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        raise CommandError(f"--batch-sizes takes whole numbers separated by commas, not {args.batch_sizes!r}") from None
    if min(sizes) < 1:
        raise CommandError(f"--batch-sizes must each be at least 1, not {min(sizes)}")
    timing = bench.Timing(seconds=0.5, repeats=3, warmup=2) if args.quick else bench.Timing()
    print(f"Timing {len(templates) * len(sizes) * 2} cells per engine (about {timing.seconds:g} s each)...",
          flush=True)
    try:
        bench.check_threads(args.threads)
        threads = args.threads or numba.get_num_threads()
        sgemm = bench_probes.sgemm_rate(threads) if args.device == "cpu" else None  # measured again after the cells
        cells, notes = bench.run(templates, sizes, timing, with_torch=not args.no_torch, threads=args.threads,
                                 report=lambda cell: print(".", end="", flush=True), device=args.device)
    except ValueError as e:
        raise CommandError(str(e)) from None
    sgemm = max(sgemm, bench_probes.sgemm_rate(threads)) if sgemm else None  # the higher, should the machine speed up
    print("\n" + bench.format_table(cells, sgemm))
    for note in notes:
        print(f"  {note}")
    if sgemm:
        print(f"  GFLOP/s from the catalogue's multiply-adds (training counts 3 passes); numpy's sgemm here: "
              f"{sgemm:.0f} GFLOP/s ({bench_probes.SGEMM_SIZE}² matrices, the same thread count; OpenBLAS "
              f"{bench_probes.OPENBLAS_CORE or 'of unknown'} kernels)")
    if args.memory:
        print("\nPeak memory of a training step (resident growth in a fresh process, MiB):")
        for key in templates:
            for size in sizes:
                ours, theirs = bench_probes.step_memory(key, size, threads,
                                                        not args.no_torch and bench._import_torch() is not None)
                versus = f"   torch {theirs:7.1f}   ours/torch {ours / theirs:.2f}" if theirs else ""
                print(f"  {key:<18} batch {size:>4}   ours {ours:7.1f}{versus}", flush=True)
    if args.startup:
        cold, warm = bench_probes.start_times()
        print(f"\nStart to the end of the first batch of `convdesigner train` (LeNet-5): {cold:.1f} s with an empty "
              f"Numba cache, {warm:.1f} s with it filled")
    for key in templates if args.profile else ():
        print(f"\n{bench.format_profile(key, bench.profile(key, sizes[0], device=args.device), sizes[0])}")
    return 0


# ----------------------------------------------------------------------------------------------- training runs
def _resume(args: argparse.Namespace):
    """The model file to continue, its recorded run settings put into ``args``: the same data, optimizer, schedule,
    batch size and seed make the continuation exact, so a different value given for one of them is refused."""
    from .io import ModelFileError
    from .io.resume import RUN_SETTINGS, saved_run
    try:
        run = saved_run(args.resume)
    except ModelFileError as e:
        raise CommandError(str(e)) from None
    recorded = dict(run.settings)
    recorded.setdefault("template", None)  # the file holds the graph: a template is never taken with --resume
    changed = [key for key in RUN_SETTINGS if key in recorded and getattr(args, key) is not None
               and not _same_setting(key, getattr(args, key), recorded[key])]
    if changed:
        options = [f"--{key.replace('_', '-')}" for key in changed]
        if len(changed) == 1:
            was = _setting_text(args, changed[0], recorded[changed[0]])
        else:
            was = ", ".join(f"{o} {_setting_text(args, k, recorded[k])}" for o, k in zip(options, changed, strict=True))
        raise CommandError(f"{', '.join(options)} cannot be changed when resuming (the run was trained with {was}); "
                           f"resume with the same settings, or start a new run with --template")
    for key, value in recorded.items():
        setattr(args, key, value)
    args.epochs_done = run.epochs_done
    if args.out is None:
        args.out = args.resume  # resuming continues the model in its own file (each save replaces it atomically)
    return run


def _same_setting(key: str, given, recorded) -> bool:
    if key == "data" and isinstance(recorded, str) and Path(given).exists():
        return str(Path(given).resolve()) == recorded
    return given == recorded


def _setting_text(args: argparse.Namespace, key: str, value) -> str:
    if key == "template" and value is None:
        return f"the graph in {args.resume}"
    return "the default" if value is None else "none" if value == "" else str(value)


def _check_train_options(args: argparse.Namespace) -> None:
    """Refuse out-of-range numbers and an --out that cannot be written, before any data are loaded."""
    from .engine.settings import BY_NAME, problems
    found = problems({name: getattr(args, name) for name in BY_NAME})
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        found.append(f"--checkpoint-every must be 0 or more, not {args.checkpoint_every}")
    if found:
        raise CommandError(found[0])
    if args.out is None:
        if args.checkpoint_every is not None:
            raise CommandError("--checkpoint-every needs --out MODEL.h5 to save to")
        return
    out = Path(args.out)
    folder = out.resolve().parent
    if out.is_dir():
        raise CommandError(f"cannot save to {args.out}: it is a folder; give a file name, e.g. {out / 'model.h5'}")
    if not folder.is_dir():
        raise CommandError(f"cannot save to {args.out}: the folder {out.parent} does not exist")
    if not os.access(folder, os.W_OK):
        raise CommandError(f"cannot save to {args.out}: the folder {out.parent} is not writable")


def _checkpoints(args: argparse.Namespace, train) -> list:
    """The saving callback for `--out` (none without it), recording the run's settings for `--resume`."""
    from .io.checkpoint import Checkpoints
    from .io.resume import run_settings
    if args.out is None:
        return []
    every = 1 if args.checkpoint_every is None else args.checkpoint_every
    return [Checkpoints(args.out, train.description(), every, run_settings(vars(args), args.epochs_done + args.epochs))]


def _load_network(path: str, device: str = "cpu"):
    """A model file and the network built from it on ``device``, or a CommandError saying why not."""
    from .engine import compile, device_status
    from .io import ModelFileError, load_model
    available, reason = device_status(device)
    if not available:
        raise CommandError(f"--device {device} cannot be used: {reason}")
    try:
        model = load_model(path)
    except ModelFileError as e:
        raise CommandError(str(e)) from None
    if model.weights is None:
        raise CommandError(f"{path} is a design without trained weights; train it first, e.g. "
                           f"convdesigner train --resume {path} --out trained.h5")
    try:
        net = compile(model.graph, device=device)
        net.load_state_dict(model.weights)
    except ValueError as e:
        raise CommandError(f"{path}: {e}") from None
    except MemoryError:
        raise CommandError(f"{path}: its network needs more memory than this computer has") from None
    return model, net


def cmd_eval(args: argparse.Namespace) -> int:
    """Loss, accuracy and confusion matrix of a trained model on a dataset, prepared as its training data were."""
    from .data import load_dataset
    from .engine.metrics import evaluate
    from .io.report import confusion_table
    model, net = _load_network(args.model, args.device)
    described = model.dataset or {}
    settings = (model.trainer or {}).get("settings") or {}
    spec = args.data or settings.get("data")
    if not spec:
        raise CommandError(f"{args.model} does not say which data it was trained on; give --data")
    try:
        train, val = load_dataset(spec, input_shape=net.input_shape, seed=settings.get("seed", 0),
                                  val_split=0 if args.part == "all" else settings.get("val_split"))
    except ValueError as e:
        raise CommandError(str(e)) from None
    data = val if args.part == "val" else train
    if data is None:  # only a model trained without a validation part leaves none
        raise CommandError(f"{args.model} was trained with --val-split 0, so its data have no validation part; use "
                           f"--part train or --part all")
    names = described.get("class_names")
    if names and [str(n) for n in names] != [str(n) for n in data.class_names]:
        raise CommandError(f"the model knows classes {_listed(names)} but '{spec}' has "
                           f"{_listed(data.class_names)}; give --data with the classes it was trained on")
    if described.get("mean") and described.get("std"):  # the model's normalisation, not one measured on these data
        data.mean, data.std = tuple(described["mean"]), tuple(described["std"])
    try:
        result = evaluate(net, data)
    except ValueError as e:
        raise CommandError(str(e)) from None
    print(f"{args.model} on {data.name} ({args.part}, {_count(len(data))} images): loss {result.loss:.4f}, "
          f"accuracy {result.accuracy:.2%}")
    print(confusion_table(result.confusion, names or data.class_names))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """The five most likely classes of each picture, with their probabilities."""
    from .data import load_image
    from .engine.metrics import top_k
    if args.gradcam and args.device != "cpu":
        raise CommandError("--gradcam runs on the CPU only for now; leave out --device cuda to get the overlay")
    model, net = _load_network(args.model, args.device)
    described = model.dataset or {}
    if args.gradcam and len(args.pictures) > 1:
        raise CommandError("--gradcam writes the overlay of one picture; give a single picture with it")
    if not 0 <= args.opacity <= 1:
        raise CommandError(f"--opacity must lie between 0 and 1, not {args.opacity:g}")
    for picture in args.pictures:
        try:
            x = load_image(picture, net.input_shape, described)
        except ValueError as e:
            raise CommandError(str(e)) from None
        scores = net.predict_proba(x)[0]
        names = described.get("class_names") or [f"output {i}" for i in range(len(scores))]
        print(f"{picture}:")
        for rank, (i, value) in enumerate(top_k(scores, 5), start=1):
            shown = f"{value:.4g}" if net.loss_kind == "MSE" else f"{value:7.2%}"
            print(f"  {rank}. {names[i] if i < len(names) else f'output {i}':<24} {shown}")
        if args.gradcam:
            _write_gradcam(args, net, x, described, names)
    return 0


def _write_gradcam(args: argparse.Namespace, net, x, described: dict, names: list) -> None:
    """Grad-CAM of the top class at ``--block`` (default: the last block with maps) over the picture as the network
    sees it, enlarged to at least 224 pixels so a 28×28 digit can be looked at."""
    from PIL import Image

    from .engine import inspect
    channels = net.input_shape[0]
    try:
        block = args.block or inspect.last_map_block(net)
        cam = inspect.grad_cam(net, x, block)
    except inspect.InspectError as e:
        raise CommandError(str(e)) from None
    seen = inspect.picture(x, described.get("mean") or (0.0,) * channels, described.get("std") or (1.0,) * channels)
    image = Image.fromarray(inspect.overlay(seen, cam.heat, args.opacity))
    scale = max(1, -(-224 // max(image.size)))
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    try:
        image.save(args.gradcam, format="PNG")
    except (OSError, ValueError) as e:
        raise CommandError(f"cannot write the Grad-CAM overlay to '{args.gradcam}': {e}") from None
    label = names[cam.cls] if cam.cls < len(names) else f"output {cam.cls}"
    print(f"Grad-CAM of class {label} at block {block} written to {args.gradcam}")


EXPORT_FORMATS = ("onnx", "pytorch")


def cmd_export(args: argparse.Namespace) -> int:
    """A model file's network and weights as an ONNX file (checked against our outputs before it is written) or as
    a PyTorch package that trains with torchrun."""
    from .io import ModelFileError
    from .io.design import read_design
    from .io.onnx_export import export_onnx
    from .io.pytorch_export import export_pytorch
    try:
        model = read_design(args.model)
        if args.format == "onnx":
            check = export_onnx(args.out, model.graph, model.weights)
        else:
            notes = export_pytorch(args.out, model, Path(args.model).stem)
    except ModelFileError as e:
        raise CommandError(str(e)) from None
    if args.format == "onnx":
        print(f"wrote {args.out} (ONNX opset 17, {check.seconds:.1f} s): {check.note}")
        return 0
    for note in notes:
        print(f"wrote {note}")
    print(f"train it with: cd {args.out} && torchrun --nproc-per-node N train.py --out trained.h5 "
          f"(or python train.py on one CPU), then open trained.h5 in ConvDesigner")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """An ONNX or Keras file's network and weights saved as a ConvDesigner model file (or its graph as JSON)."""
    from .io import ModelFileError
    from .io.design import is_graph_json, write_design
    from .io.keras_import import read_keras
    from .io.onnx_import import read_onnx
    readers = {".onnx": read_onnx, ".h5": read_keras, ".keras": read_keras}
    reader = readers.get(Path(args.source).suffix.lower())
    if reader is None:
        raise CommandError(f"cannot import {args.source}: give an ONNX file (.onnx) or a Keras model (.h5, .keras)")
    if not is_graph_json(args.out) and Path(args.out).suffix.lower() != ".h5":
        raise CommandError(f"cannot save to {args.out}: give a model file name ending in .h5 (or .json for the "
                           f"graph only)")
    try:
        model, notes = reader(args.source)
        write_design(args.out, model.graph, model)
    except ModelFileError as e:
        raise CommandError(str(e)) from None
    info = model.graph.infer()
    kept = "graph only" if is_graph_json(args.out) else f"{_count(info.total_params)} weights"
    print(f"wrote {args.out}: {len(model.graph.nodes)} blocks, {kept}")
    for note in notes:
        print(f"  note: {note}")
    return 0


def _listed(names: list) -> str:
    """Class names for a message: all of a few, the first two and the last of many."""
    names = [str(n) for n in names]
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]}, ... {names[-1]}"


def _model_info(path: str) -> int:
    from .io import ModelFileError
    from .io.design import read_design
    from .io.report import model_report
    try:
        print(model_report(path, read_design(path)))
    except ModelFileError as e:
        raise CommandError(str(e)) from None
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convdesigner", description="Design, train and inspect convolutional networks.")
    p.add_argument("--version", action="version", version=f"ConvDesigner {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    train = sub.add_parser("train", help="train a template on a dataset",
                           description="Train a template on a dataset. The template's Input block and last Dense "
                                       "block are adapted to the data's image shape and number of classes.")
    train.add_argument("--template", help=f"network to train: {', '.join(TEMPLATES)}")
    from .engine.settings import SETTINGS
    for setting in SETTINGS:
        _add_setting(train, setting)
    train.add_argument("--out", metavar="MODEL.h5",
                       help="save the model here as it trains and at the end, and its best epoch (lowest validation "
                            "loss) to MODEL.best.h5")
    train.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="save --out every N epochs (default 1; 0: only at the end)")
    train.add_argument("--resume", metavar="MODEL.h5",
                       help="continue training a model file for --epochs more epochs, with the data, optimizer, "
                            "schedule, batch size and seed it was trained with (only --epochs, --out and "
                            "--checkpoint-every may be given; a design starts from new weights); saves back into "
                            "that file unless --out names another")
    train.set_defaults(func=cmd_train, epochs_done=0)
    evaluate = sub.add_parser("eval", help="loss, accuracy and confusion matrix of a model on a dataset")
    evaluate.add_argument("model", help="a trained model file (.h5)")
    evaluate.add_argument("--data", help="mnist-sample, shapes, or a dataset file or folder (default: the data the "
                                         "model was trained on)")
    evaluate.add_argument("--part", choices=("val", "train", "all"), default="val",
                          help="which part of the data: the validation part held out in training (default), the "
                               "training part, or all of it")
    _device_option(evaluate)
    evaluate.set_defaults(func=cmd_eval)
    predict = sub.add_parser("predict", help="the top-5 classes of pictures, with probabilities")
    predict.add_argument("model", help="a trained model file (.h5)")
    predict.add_argument("pictures", nargs="+", metavar="picture", help="picture files (PNG, JPEG, ...)")
    predict.add_argument("--gradcam", metavar="OUT.png", help="write the Grad-CAM overlay of the top class (one "
                                                              "picture)")
    predict.add_argument("--block", help="the block Grad-CAM looks at (default: the last one with feature maps)")
    predict.add_argument("--opacity", type=float, default=0.5, help="of the Grad-CAM heat map over the picture "
                                                                    "(0–1, default 0.5)")
    _device_option(predict)
    predict.set_defaults(func=cmd_predict)
    bench = sub.add_parser("bench", help="images per second of training and inference, ours vs PyTorch",
                           description="Training (SGD, momentum 0.9) and inference throughput on random data, "
                                       "next to PyTorch with the same network and thread count when it is installed.")
    bench.add_argument("--quick", action="store_true", help="a short run (about 0.5 s per cell)")
    bench.add_argument("--templates", help="networks to time (default lenet5,seed-cnn; on cuda also resnet-small)")
    bench.add_argument("--batch-sizes", default="64,256", help="batch sizes (default 64,256)")
    bench.add_argument("--no-torch", action="store_true", help="time our engine only")
    bench.add_argument("--threads", type=int, help="threads for both engines (default: numba's, all cores)")
    bench.add_argument("--profile", action="store_true",
                       help="also time each block's forward and backward, next to PyTorch's when it is installed")
    bench.add_argument("--memory", action="store_true",
                       help="also measure the peak memory of a training step, ours and PyTorch's (child processes)")
    bench.add_argument("--startup", action="store_true",
                       help="also time `convdesigner train` to its first batch with an empty and a warm Numba cache")
    _device_option(bench)
    bench.set_defaults(func=cmd_bench)
    info = sub.add_parser("info", help="list layer kinds and templates, or describe a model file")
    info.add_argument("model", nargs="?", help="a model file (.h5): its graph, parameters, history and file layout; "
                                               "or a graph JSON file: its graph")
    info.set_defaults(func=cmd_info)
    export = sub.add_parser("export", help="write a model as ONNX or as PyTorch code",
                            description="Write a model file's network with its weights (a design without weights: "
                                        "its initial ones) as an ONNX file, checked against ConvDesigner's own "
                                        "outputs before it is written, or as a PyTorch package whose train.py "
                                        "trains it on one or many GPUs (torchrun) and saves a model file again.")
    export.add_argument("model", help="a model file (.h5) or graph JSON file")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="onnx",
                        help="onnx (default), or pytorch: a folder with model.py, weights.py and train.py (torchrun)")
    export.add_argument("-o", "--out", required=True, metavar="PATH",
                        help="the file (model.onnx) or, for pytorch, the folder to write")
    export.set_defaults(func=cmd_export)
    imported = sub.add_parser("import", help="turn an ONNX or Keras file into a ConvDesigner model file",
                              description="Read an ONNX file or a Keras model (nothing in it is run; no TensorFlow "
                                          "needed) and save its network with its weights as a ConvDesigner model "
                                          "file, to open, inspect and train on.")
    imported.add_argument("source", help="an ONNX file (.onnx) or a Keras model (.h5, .keras)")
    imported.add_argument("-o", "--out", required=True, metavar="MODEL.h5",
                          help="the model file (.h5) to write, or a graph JSON file (.json: the graph only)")
    imported.set_defaults(func=cmd_import)
    return p


def _add_setting(parser: argparse.ArgumentParser, setting) -> None:
    """One `train` option from the training settings' description; left None so that `--resume` can tell it was
    not given (the default is filled in later)."""
    default = str(setting.default).lower() if setting.type is bool else setting.default
    shown = "" if setting.default in (None, "") else f" (default {default})"
    if setting.type is bool:
        parser.add_argument(setting.option, action=argparse.BooleanOptionalAction, default=None,
                            help=setting.help + shown)
        return
    choices = f"; one of {', '.join(setting.choices())}" if setting.choices is not None and not setting.editable \
        else ""
    parser.add_argument(setting.option, type=setting.type, help=setting.help + choices + shown,
                        metavar="PATIENCE" if setting.name == "early_stopping" else None)


def _device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the network runs: cpu (default), or cuda (an NVIDIA GPU, with the cuda extra)")


def _gui_parser(known: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convdesigner", description="Open the designer window "
                                f"(commands: {', '.join(known)}; see convdesigner COMMAND -h).")
    p.add_argument("--version", action="version", version=f"ConvDesigner {__version__}")
    p.add_argument("model", nargs="?", help="a model file (.h5) or graph JSON file to open")
    p.add_argument("--template", help=f"open a template instead: {', '.join(TEMPLATES)}")
    p.add_argument("--screenshot", metavar="PNG", help="render the window offscreen to this PNG and exit")
    p.add_argument("--train-epochs", type=int, metavar="N",
                   help="with --screenshot: first train N epochs from the training panel (as pressing Train does)")
    p.add_argument("--image", metavar="PICTURE", help="with --screenshot: show the activations of this picture")
    p.add_argument("--select", metavar="BLOCK", help="with --image: the block whose feature maps are shown")
    p.add_argument("--gradcam", action="store_true", help="with --image: overlay Grad-CAM for the predicted class")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = _parser()
    known = list(commands._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    try:
        if argv and argv[0] in known:
            args = commands.parse_args(argv)
            return args.func(args)
        # the first word is checked before parsing, so that `convdesigner typo --help` is an error too
        unknown = argv[0] if argv and not argv[0].startswith("-") and not Path(argv[0]).exists() else None
        if unknown is None:
            args = _gui_parser(known).parse_args(argv)
            unknown = args.model if args.model and not Path(args.model).exists() else None
        if unknown:
            raise CommandError(f"unknown command or file '{unknown}'; commands are {', '.join(known)} (or give a "
                               f"model file to open)")
        from .gui.app import run_app
        if (args.train_epochs is not None or args.image) and not args.screenshot:
            raise CommandError("--train-epochs and --image go with --screenshot PNG")
        if args.train_epochs is not None and args.train_epochs < 1:
            raise CommandError(f"--train-epochs must be at least 1, not {args.train_epochs}")
        return run_app(model=args.model, template=args.template, screenshot=args.screenshot,
                       train_epochs=args.train_epochs, image=args.image, select=args.select, gradcam=args.gradcam)
    except CommandError as e:
        print(f"convdesigner: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\nconvdesigner: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
