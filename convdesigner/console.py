"""Training progress on a terminal, for the command line (the GUI plots the same callbacks)."""
from __future__ import annotations

import math
import sys
import time


class ConsoleProgress:
    """A trainer callback for terminals: one progress line per epoch, redrawn in place (at most 10 times a
    second), then the epoch's validation figures. Into a file or pipe only the epoch lines are written."""

    def __init__(self, epochs: int, batch_size: int, stream=None) -> None:
        self.epochs, self.batch_size = epochs, batch_size
        self.stream = stream or sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown, self._width = 0.0, 0
        self.reason = ""  # why the last fit ended

    def _write(self, text: str, end: str = "") -> None:
        self.stream.write(("\r" if self.live else "") + text.ljust(self._width) + end)
        self.stream.flush()
        self._width = 0 if end else len(text)

    def _line(self, info: dict) -> str:
        done = info["batch"] / info["batches"]
        bar = "#" * round(20 * done) + "-" * (20 - round(20 * done))
        left = (info["batches"] - info["batch"]) * self.batch_size / info["img_s"] if info["img_s"] else 0.0
        return (f"epoch {info['epoch']}/{self.epochs} [{bar}] {info['batch']}/{info['batches']}  "
                f"loss {info['loss']:.4f}  acc {info['acc']:.1%}  {info['img_s']:,.0f} img/s  "
                f"ETA {int(left) // 60}:{int(left) % 60:02d}")

    def on_batch_end(self, info: dict) -> None:
        now = time.perf_counter()
        if self.live and (info["batch"] == info["batches"] or now - self._shown >= 0.1):
            self._shown = now
            self._write(self._line(info))

    def on_epoch_end(self, row: dict) -> None:
        val = (f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.2%}"
               if not math.isnan(row["val_loss"]) else "")
        self._write(f"epoch {row['epoch']}/{self.epochs} [{'#' * 20}]  loss {row['train_loss']:.4f}  "
                    f"acc {row['train_acc']:.2%}  {row['img_s']:,.0f} img/s  {row['seconds']:.1f} s{val}", end="\n")

    def on_stop(self, reason: str) -> None:
        self.reason = reason
        if self._width:
            self.stream.write("\n")
            self._width = 0
