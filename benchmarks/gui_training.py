"""Training from the window, measured: the longest gap between 10 ms timer ticks of the GUI event loop during a
full epoch of LeNet-5 on the MNIST sample (the window must never block longer than 50 ms), and the window's
training img/s next to `convdesigner train` with the same settings in a fresh process.

    python benchmarks/gui_training.py [--epochs 3] [--skip-cli]

Run it on a quiet machine (nothing else running): it is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def window_run(epochs: int, ticks: bool = True, refresh: int | None = None) -> dict:
    """Train LeNet-5 from the panel; with ``ticks`` a 10 ms timer measures the event loop's gaps (its hundred
    wake-ups a second take GIL time from training, so img/s is measured in a run without it). With ``refresh``, a
    validation picture is loaded and conv1 selected in the Activations dock, refreshed every ``refresh`` batches
    (0: every epoch) while training."""
    from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("ConvDesignerBench")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = QApplication.instance() or QApplication([])
    from convdesigner.gui.main_window import MainWindow
    window = MainWindow()
    window.resize(1440, 900)
    window.show()
    window.open_template("lenet5")
    loop = QEventLoop()
    panel = window.training
    while window.session.data() is None or panel.readiness() is not None:
        app.processEvents()
        time.sleep(0.01)
    panel.form.set_values({"epochs": epochs})
    if refresh is not None:
        window.activations.pick_from_dataset(False, 0)
        window.activations.select_block("conv1")
        window.session.set_refresh_batches(refresh)
        while window.activations.result is None:
            app.processEvents()
            time.sleep(0.01)
    gaps, clock = [], QElapsedTimer()
    ticker = QTimer()
    ticker.setInterval(10)

    def tick():
        gaps.append(clock.restart())
    ticker.timeout.connect(tick)
    ended = []
    window.session.run_ended.connect(lambda reason, outcome: (ended.append(outcome), loop.quit()))
    first_batch = []
    window.session.batch_end.connect(lambda info: first_batch.append(time.perf_counter()) if not first_batch else None)
    clock.start()
    if ticks:
        ticker.start()
    started = time.perf_counter()
    panel.train_button.click()
    loop.exec()
    ticker.stop()
    run = window.session.runs[-1]
    # gaps measured once the first batch has run (compiling kernels is reported in the panel, not counted here)
    result = {"outcome": ended[0], "max_gap_ms": max(gaps[5:], default=None),
              "median_gap_ms": sorted(gaps)[len(gaps) // 2] if gaps else None, "ticks": len(gaps),
              "img_s": [r["img_s"] for r in run.history],
              "val_acc": [r["val_acc"] for r in run.history], "seconds": time.perf_counter() - started,
              "start_to_first_batch_s": first_batch[0] - started if first_batch else None,
              "redraws": panel.plots.redraws}
    window.training_unsaved = False
    window.stack.setClean()
    window.close()
    return result


def cli_run(epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "lenet.h5"
        subprocess.run([sys.executable, "-m", "convdesigner.cli", "train", "--template", "lenet5", "--epochs",
                        str(epochs), "--optimizer", "adam", "--lr", "2e-3", "--batch-size", "32", "--schedule",
                        "cosine", "--augment", "shift=2,rotate=10", "--out", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        from convdesigner.io import load_model
        history = load_model(out).history
    return {"img_s": [r["img_s"] for r in history], "val_acc": [r["val_acc"] for r in history]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument("--live", type=int, metavar="N", help="also time a run with the Activations dock refreshing "
                                                          "conv1 of a picture every N batches (0: every epoch)")
    args = p.parse_args()
    if args.live is not None:
        plain, live = window_run(args.epochs, ticks=False), window_run(args.epochs, ticks=False, refresh=args.live)
        later = slice(1, None) if args.epochs > 1 else slice(None)
        print(f"training img/s with the live view / without: {np.mean(live['img_s'][later]):.0f} / "
              f"{np.mean(plain['img_s'][later]):.0f} = "
              f"{np.mean(live['img_s'][later]) / np.mean(plain['img_s'][later]):.3f}")
        return
    cli = None if args.skip_cli else cli_run(args.epochs)
    gui = window_run(args.epochs, ticks=False)
    gaps = window_run(1)
    print(json.dumps({"window": gui, "window_with_ticks": gaps, "cli": cli}, indent=1))
    if cli:  # the first epoch also loads the kernels: compare the epochs after it where there are some
        later = slice(1, None) if args.epochs > 1 else slice(None)
        ratio = np.mean(gui["img_s"][later]) / np.mean(cli["img_s"][later])
        print(f"window / CLI img/s: {ratio:.3f}; longest event-loop gap {gaps['max_gap_ms']} ms")


if __name__ == "__main__":
    main()
