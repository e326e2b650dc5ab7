"""The one worker thread that runs every engine call started from the window, in order, never two at once.

A forward pass on the GUI thread would freeze the window, and two threads in numba's parallel kernels at once
oversubscribe the cores (numba's workqueue layer aborts the process). So training, the activation viewer and every
later view submit jobs here. A long job (training) calls :meth:`EngineThread.service` between batches, so the jobs
queued meanwhile (a feature map for the picture just loaded) run then, on this same thread, without waiting for the
run to end. Results and errors come back to the GUI thread through a queued signal.
"""
from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QThread, QTimer, Signal

GC_INTERVAL_MS = 50  # training allocates ~100k objects a second: collected every second, they took 40-60 ms


def collect_garbage_on_the_gui_thread() -> None:
    """Python's cyclic garbage collector runs in whichever thread allocates; on the engine thread it can free a Qt
    widget, whose destructor then deadlocks or crashes against the GUI thread. So once an engine thread exists,
    automatic collection is off and a timer on the GUI thread collects instead (as pyqtgraph advises), often enough
    that each collection is short. What exists by then (the window, Qt's and numba's modules, nearly all of it
    living as long as the process) is moved out of the collector's reach with gc.freeze(): a full collection walked
    all of it (0.1-0.2 s) for nothing."""
    app = QCoreApplication.instance()
    if app is None or app.property("convdesigner-gc") is not None:
        return
    gc.disable()
    gc.freeze()
    timer = QTimer(app)
    timer.setInterval(GC_INTERVAL_MS)
    timer.timeout.connect(_collect_due_generations)
    timer.start()
    app.setProperty("convdesigner-gc", True)


def _collect_due_generations() -> None:
    """What automatic collection would have done by now: the generations whose counts passed their thresholds
    (a full collection only when due, so the timer seldom takes long)."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    due = [g for g in range(3) if counts[g] > thresholds[g]]
    if due:
        gc.collect(max(due))


class Job:
    """One call queued on the engine thread; ``done(result)`` or ``failed(error)`` run on the GUI thread after it."""

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, done: Callable | None, failed: Callable | None,
                 tag: str) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done, self.failed, self.tag = done, failed, tag
        self.cancelled = False
        self.finished = threading.Event()

    def cancel(self) -> None:
        """Drop the job if it has not started; its callbacks will not run either way."""
        self.cancelled = True


class EngineThread(QThread):
    """A QThread owning a queue of :class:`Job`; ``busy`` tells whether a job is running now."""

    _delivered = Signal(object, object, object)  # job, result, error: emitted on the worker, handled on the GUI
    crashed = Signal(str, str)  # tag, message of a job that raised without a ``failed`` callback

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("engine-thread")
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._running: Job | None = None
        self._delivered.connect(self._deliver)

    @property
    def busy(self) -> bool:
        return self._running is not None

    def submit(self, fn: Callable, *args: Any, done: Callable | None = None, failed: Callable | None = None,
               tag: str = "", **kwargs: Any) -> Job:
        """Queue ``fn(*args, **kwargs)`` on the engine thread (started on first use); returns the job."""
        job = Job(fn, args, kwargs, done, failed, tag or getattr(fn, "__name__", "job"))
        if not self.isRunning():
            collect_garbage_on_the_gui_thread()
            self.start()
        self._queue.put(job)
        return job

    def replace(self, tag: str, fn: Callable, *args: Any, **kwargs: Any) -> Job:
        """Like :meth:`submit`, cancelling queued jobs with the same tag first: a view that asks again (another
        block clicked) only needs the newest answer."""
        with self._queue.mutex:
            for job in self._queue.queue:
                if job is not None and job.tag == tag:
                    job.cancel()
        return self.submit(fn, *args, tag=tag, **kwargs)

    def run(self) -> None:  # on the worker thread
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._execute(job)

    def service(self) -> None:
        """Run the jobs queued since the current one started; called by a long job between its steps."""
        if QThread.currentThread() is not self:
            raise RuntimeError("EngineThread.service() runs jobs on the engine thread only")
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is None:
                self._queue.put(None)  # shutting down: leave the sentinel for the main loop
                return
            self._execute(job)

    def _execute(self, job: Job) -> None:
        if job.cancelled:
            job.finished.set()
            return
        outer, self._running = self._running, job
        try:
            result = job.fn(*job.args, **job.kwargs)
        except Exception as e:  # noqa: BLE001 - every failure goes back to the window as a message
            self._delivered.emit(job, None, e)
        else:
            self._delivered.emit(job, result, None)
        finally:
            self._running = outer
            job.finished.set()

    def _deliver(self, job: Job, result: Any, error: BaseException | None) -> None:  # on the GUI thread
        if job.cancelled:
            return
        if error is None:
            if job.done is not None:
                job.done(result)
        elif job.failed is not None:
            job.failed(error)
        else:
            self.crashed.emit(job.tag, f"{type(error).__name__}: {error}")

    def shutdown(self, wait_ms: int = 30000) -> bool:
        """Cancel queued jobs, let the running one finish (a training job stops when asked first) and end."""
        with self._queue.mutex:
            for job in self._queue.queue:
                if job is not None:
                    job.cancel()
        self._queue.put(None)
        return self.wait(wait_ms) if self.isRunning() else True
