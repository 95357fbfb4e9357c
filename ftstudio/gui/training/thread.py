"""The training run on its own thread.

``TrainingThread.run()`` only calls ``engine.training.train`` and emits; it
touches no widget. Engine events go into an ``EventQueue`` that the
dashboard drains on its redraw timer, so no signal is sent per event.
``requestInterruption()`` is the stop flag the engine polls every step.
"""

from __future__ import annotations

import os
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import QThread, Signal

from ftstudio.core.config import TrainConfig
from ftstudio.core.examples import PreparedData


class EventQueue:
    """Engine events from the training thread, collected for the GUI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list = []

    def put(self, event) -> None:
        with self._lock:
            self._items.append(event)

    def drain(self) -> list:
        with self._lock:
            items, self._items = self._items, []
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def training_threads() -> int:
    """CPU threads for a run started from the app: every core but one, which stays free
    for the window. With as many compute threads as cores, any other busy thread (the
    window redrawing, another program) stalls every parallel operation at its barrier,
    and both training and the window slow down many times over."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class TrainingThread(QThread):
    """Runs one training session; emits ``result_ready(TrainResult)`` or ``crashed(message, trace)``.

    The thread object lives in the GUI thread, so its signals are delivered there.
    """

    result_ready = Signal(object)
    crashed = Signal(str, str)

    def __init__(self, cfg: TrainConfig, data: PreparedData, run_dir: Path, resume: bool, sink,
                 cpu_threads: int | None = None, parent=None) -> None:
        super().__init__(parent)
        self.cfg, self.data, self.run_dir, self.resume, self.sink = cfg, data, Path(run_dir), resume, sink
        self.cpu_threads = cpu_threads or training_threads()
        self.result = None  # also kept here, for a caller that waits instead of listening

    def run(self) -> None:  # worker thread: no widgets, only the engine and emits
        try:
            from ftstudio.engine.training import train

            result = train(self.cfg, self.data, self.sink, self.isInterruptionRequested,
                           run_dir=self.run_dir, resume=self.resume, cpu_threads=self.cpu_threads)
        except BaseException as exc:  # noqa: BLE001 - the engine reports expected failures itself
            self.crashed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
            return
        self.result = result
        self.result_ready.emit(result)
