"""The training run on a worker thread.

``train_job`` is the function a ``workers.Job`` runs: it only calls
``engine.training.train``; it touches no widget. Engine events go into an
``EventQueue`` that the dashboard drains on its redraw timer, so no signal
is sent per event. ``Job.stop()`` is the stop flag the engine polls every step.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import EventSink
from ftstudio.core.examples import PreparedData
from ftstudio.core.machine import usable_cores


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
    return max(1, usable_cores() - 1)


def train_job(
    cfg: TrainConfig,
    data: PreparedData,
    run_dir: Path,
    resume: bool,
    sink: EventSink,
    cpu_threads: int | None = None,
    micro_batch_ceiling: int | None = None,
    *,
    report: Callable[[Any], None],
    interrupted: Callable[[], bool],
) -> Any:
    """Worker thread (a ``workers.Job``): one training session; returns the engine's TrainResult.

    Events go to ``sink`` (the dashboard's queue), not through ``report``: the
    dashboard drains them on its redraw timer, so no signal is sent per event."""
    from ftstudio.engine.training import train

    return train(
        cfg,
        data,
        sink,
        interrupted,
        run_dir=Path(run_dir),
        resume=resume,
        cpu_threads=cpu_threads or training_threads(),
        micro_batch_ceiling=micro_batch_ceiling,
    )
