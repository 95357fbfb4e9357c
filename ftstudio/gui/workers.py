"""Running long calls off the GUI thread.

``TaskThread`` runs a plain function on a QThread. The function gets a
``report`` callable for progress (delivered to the GUI thread as a signal)
and an ``interrupted`` callable to poll; it must not touch widgets. The
thread object lives in the GUI thread, so its signals arrive there.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QEventLoop, QThread, QTimer, Signal


class TaskThread(QThread):
    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str)  # message, traceback text (for the log, not for the user's face)

    def __init__(self, fn: Callable[..., Any], *args: Any, parent=None, **kwargs: Any) -> None:
        super().__init__(parent)
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def run(self) -> None:  # worker thread: emit only
        try:
            result = self._fn(*self._args, report=self.progressed.emit,
                              interrupted=self.isInterruptionRequested, **self._kwargs)
        except Exception as exc:  # shown to the user in words by the page
            self.failed.emit(str(exc) or type(exc).__name__, traceback.format_exc())
            return
        self.succeeded.emit(result)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0, poll_ms: int = 50) -> bool:
    """Run an event loop until ``predicate()`` is true (or the time is up); True if it became true.

    A timer asks the predicate every ``poll_ms``; in between the GUI thread waits for events, so
    worker threads run and nothing sleeps."""
    if predicate():
        return True
    loop = QEventLoop()
    end = time.monotonic() + timeout_s
    met = [False]

    def check() -> None:
        if predicate():
            met[0] = True
            loop.quit()
        elif time.monotonic() > end:
            loop.quit()

    timer = QTimer()
    timer.setInterval(poll_ms)
    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    return met[0]
