"""Running long calls off the GUI thread: the one place that does it.

A ``Job`` is one call of a plain function on a worker thread, and owns its
whole life cycle: it takes the device lock if asked to (or waits behind its
holder, or is refused), starts the thread, hands progress to the GUI thread,
and once the thread has ended and is cleaned up it releases the lock and
emits ``ended`` with an ``Outcome``: done, stopped, failed or cancelled.

The function is called as ``fn(*args, report=..., interrupted=..., **kwargs)``:
``report(item)`` sends ``item`` to ``Job.progressed`` on the GUI thread,
``interrupted()`` says whether ``Job.stop()`` was asked. It must not touch
widgets. Whether a job was stopped is the job's own flag, set by ``stop()``:
a finished QThread answers ``isInterruptionRequested()`` with False, so the
thread cannot be asked afterwards.

Work that must happen only once the job surely runs, with the device held, goes in the
Job's ``prepare`` hook: it runs on the GUI thread after the lock is taken (at once, or when a
queued job's turn comes) and before the thread starts, and gives the function its arguments
(the Train page creates the run's row there, so no row is made for a run the busy device
refused). It can decline; the lock is then let go and nothing runs.

A ``JobSlot`` runs one job at a time for one purpose with "latest request
wins": a request while a job runs waits (replacing any request waiting
before it) and starts when the running job has ended; the running job's
outcome says ``superseded`` so a page can drop a result nobody wants now.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QEventLoop, QObject, QThread, QTimer, Signal, Slot

from ftstudio.gui.context import ComputeLock

DONE, STOPPED, FAILED, CANCELLED = "done", "stopped", "failed", "cancelled"


class _GarbageOnTheGuiThread:
    """Python collects cyclic garbage in whichever thread happens to allocate, and a worker
    thread loading or running a model allocates the most: a collection there would destroy Qt
    objects (a plot item a page let go of, say) outside the GUI thread. While any Job's thread
    runs, automatic collection is off and the GUI thread collects the young generations every
    second instead (the young generations only: a full collection with a model loaded takes
    long enough to be felt in a key press); when the last one ends, collection is as it was."""

    def __init__(self) -> None:
        self.threads = 0
        self.was_enabled = True
        self.timer: QTimer | None = None

    def hold(self) -> None:
        if self.threads == 0:
            self.was_enabled = gc.isenabled()
            gc.disable()
            self.timer = QTimer()
            self.timer.setInterval(1000)
            self.timer.timeout.connect(lambda: gc.collect(1))
            self.timer.start()
        self.threads += 1

    def release(self) -> None:
        self.threads -= 1
        if self.threads > 0:
            return
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        if self.was_enabled:
            gc.enable()
        gc.collect(1)


_garbage = _GarbageOnTheGuiThread()


@dataclass(frozen=True)
class Outcome:
    """How a job ended. ``value``: what the function returned (done, stopped), or the error's
    message (failed); ``trace``: the traceback text of a failure, for the log only."""

    status: str
    value: Any = None
    trace: str = ""
    error_type: str = ""
    superseded: bool = False  # a newer request for the same purpose was waiting

    @property
    def done(self) -> bool:
        return self.status == DONE

    @property
    def stopped(self) -> bool:
        return self.status in (STOPPED, CANCELLED)

    @property
    def failed(self) -> bool:
        return self.status == FAILED


def _ended_fn(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("a Job runs once")


class _Worker(QThread):
    """The thread: calls the function and keeps what came of it for the Job to read."""

    progressed = Signal(object)

    def __init__(self, call: Callable[[Callable[[Any], None]], Any], parent: QObject) -> None:
        super().__init__(parent)
        self._call = call
        self.result: Any = None
        self.error: tuple[str, str, str] | None = None  # message, type name, traceback

    def run(self) -> None:  # worker thread: emit only
        try:
            self.result = self._call(self.progressed.emit)
        except BaseException as exc:  # noqa: BLE001 - told to the GUI thread as a failed outcome
            self.error = (str(exc) or type(exc).__name__, type(exc).__name__, traceback.format_exc())


class Job(QObject):
    """``Job(fn, *args, parent=..., lock=..., holder=..., queue=...)``, then ``start()``.

    ``parent`` (required: the page or widget the job works for) owns the Job, as Qt owns
    children: a Job left to Python's garbage collector could be deleted while Qt still
    delivers its thread's signals.

    ``lock``/``holder``: hold the device lock as ``holder`` while the job runs. When someone
    else holds it, ``start()`` refuses ("refused", ``refused(holder)``, nothing runs) or, with
    ``queue=True``, waits behind the holder ("queued", ``queued(holder)`` is emitted) and
    starts by itself once the lock is free; ``stop()`` while queued ends it as cancelled.

    ``prepare``: called with the lock held, just before the thread starts; it returns the
    function's arguments (a tuple, in place of ``args``), or None to decline: the lock is let
    go and nothing runs: ``start()`` answers "declined" and no ``ended`` follows (the hook has
    said why, in its own words); a queued job that declines when its turn comes ends as cancelled.
    """

    progressed = Signal(object)
    refused = Signal(str)  # who holds the device; the job will not run
    queued = Signal(str)  # who holds the device; the job starts when it is free
    started = Signal()
    ended = Signal(object)  # Outcome; the thread is gone and the lock released
    # Just before ``ended``: for an owner (a JobSlot) that must forget the job before anyone
    # hears how it ended, so that, asked then, it says it is no longer busy.
    settled = Signal()

    def __init__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        parent: QObject,
        lock: ComputeLock | None = None,
        holder: str = "",
        queue: bool = False,
        prepare: Callable[[], tuple[Any, ...] | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(parent)
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._lock, self._holder, self._queue = lock, holder, queue
        self._prepare = prepare
        self._stop = threading.Event()
        self._thread: _Worker | None = None
        self._waiting = False  # queued behind the lock's holder
        self._ended = False
        self.superseded = False

    # -- state ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """The worker thread runs (or has ended and is being cleaned up)."""
        return self._thread is not None

    @property
    def waiting(self) -> bool:
        """Queued behind the device's holder."""
        return self._waiting

    @property
    def active(self) -> bool:
        return self.running or self.waiting

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> str:
        """ "started", "queued" (waiting for the device), "refused" (the device is busy) or
        "declined" (``prepare`` decided not to run)."""
        if self._ended or self.active:
            raise RuntimeError("a Job runs once")
        if self._lock is not None and not self._lock.try_acquire(self._holder):
            if not self._queue:
                self._ended = True
                self.refused.emit(self._lock.holder)
                return "refused"
            self._waiting = True
            self._lock.changed.connect(self._lock_changed)
            self.queued.emit(self._lock.holder)
            return "queued"
        return self._run()

    def _run(self) -> str:
        """With the lock held (when there is one): prepare, then start the thread."""
        if self._prepare is not None:
            prepare, self._prepare = self._prepare, None
            prepared = None
            try:
                prepared = prepare()
            finally:  # declined, or an error in the hook (raised on): let go of the device
                if prepared is None:
                    if self._lock is not None:
                        self._lock.release(self._holder)
                    self._ended = True
                    self._fn, self._args, self._kwargs = _ended_fn, (), {}
            if prepared is None:
                return "declined"
            self._args = prepared
        fn, args, kwargs, stop = self._fn, self._args, self._kwargs, self._stop

        def call(report: Callable[[Any], None]) -> Any:
            return fn(*args, report=report, interrupted=stop.is_set, **kwargs)

        thread = _Worker(call, self)
        thread.progressed.connect(self.progressed)
        thread.finished.connect(self._finish)
        self._thread = thread
        _garbage.hold()
        thread.start()
        self.started.emit()
        return "started"

    @Slot(str)
    def _lock_changed(self, holder: str) -> None:
        if not self._waiting or holder or self._lock is None:
            return
        if self._lock.try_acquire(self._holder):
            self._waiting = False
            self._lock.changed.disconnect(self._lock_changed)
            if self._run() == "declined":
                self._end(Outcome(CANCELLED, superseded=self.superseded))

    def stop(self) -> None:
        """Ask the function to stop (it polls ``interrupted``); a queued job ends as cancelled."""
        if self._waiting:
            self._waiting = False
            assert self._lock is not None
            self._lock.changed.disconnect(self._lock_changed)
            self._end(Outcome(CANCELLED, superseded=self.superseded))
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.requestInterruption()

    def wait(self) -> None:
        """Block until the thread ends, and deliver the outcome now (for shutting down)."""
        if self._thread is not None:
            self._thread.wait()
            self._finish()

    @Slot()
    def _finish(self) -> None:
        thread = self._thread
        if thread is None:
            return  # delivered already (wait() came first)
        thread.wait()
        self._thread = None
        _garbage.release()
        if thread.error is not None:
            message, error_type, trace = thread.error
            outcome = Outcome(FAILED, message, trace, error_type, superseded=self.superseded)
        else:
            outcome = Outcome(
                STOPPED if self._stop.is_set() else DONE, thread.result, superseded=self.superseded
            )
        thread.deleteLater()
        if self._lock is not None:
            self._lock.release(self._holder)
        self._end(outcome)

    def _end(self, outcome: Outcome) -> None:
        self._ended = True
        # The Job itself stays until its parent goes (deleting it here, with lambdas connected to
        # its signals, crashes PySide when the parent is then deleted directly); it lets go of
        # the function's arguments and result so an ended job costs next to nothing.
        self._fn, self._args, self._kwargs = _ended_fn, (), {}
        self.settled.emit()
        self.ended.emit(outcome)


class JobSlot(QObject):
    """One job at a time for one purpose, latest request wins (see the module doc).

    ``request(make)``: ``make()`` builds the Job (connecting its signals) when it can start, so
    a request that waited reads the newest state. ``stop_running``: a new request also stops the
    running job instead of letting it finish.
    """

    def __init__(self, parent: QObject | None = None, stop_running: bool = False) -> None:
        super().__init__(parent)
        self._stop_running = stop_running
        self._job: Job | None = None
        self._next: Callable[[], Job | None] | None = None

    @property
    def job(self) -> Job | None:
        return self._job

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def pending(self) -> bool:
        return self._next is not None

    def request(self, make: Callable[[], Job | None]) -> str:
        """ "started", "queued", "refused", "declined" (as Job.start), "waiting" (after the running job), or
        "nothing" when ``make`` decides there is nothing to run (it returns None)."""
        if self._job is not None:
            self._next = make
            self._job.superseded = True
            if self._stop_running:
                self._job.stop()
            return "waiting"
        job = make()
        if job is None:
            return "nothing"
        job.settled.connect(self._settled)
        job.ended.connect(self._ended)  # after the handlers make() connected
        self._job = job
        state = job.start()
        if state in ("refused", "declined"):
            self._job = None
            job.deleteLater()
        return state

    def drop_pending(self) -> None:
        self._next = None

    def stop(self) -> None:
        """Stop the running job and forget any waiting request."""
        self._next = None
        if self._job is not None:
            self._job.stop()

    def wait(self) -> None:
        """Stop nothing, forget waiting requests, and block until the running job has ended."""
        self._next = None
        if self._job is not None:
            self._job.wait()

    @Slot()
    def _settled(self) -> None:
        self._job = None

    @Slot(object)
    def _ended(self, _outcome: Outcome) -> None:
        if self._next is not None and self._job is None:
            make, self._next = self._next, None
            self.request(make)


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
