"""What the Label page's model workers share: one loaded model, one job on it at a time.

A suggestion (``suggest.Suggester``) and the label predictions (``assist.Predictor``) each keep a
``ComparisonEngine`` between jobs, so the model loads once, and run their jobs through a
``JobSlot`` that stops the running job when a new request comes (latest request wins). Each job
holds the project's compute lock under the worker's own holder line, which is what a refused
job tells the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from ftstudio.engine.comparison import ComparisonEngine
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.workers import Job, JobSlot


class ModelJobs(QObject):
    """The life cycle of one worker's jobs: a subclass's ``request`` hands ``self._slot`` a
    maker that builds its job with ``_job`` (on the model of ``_engine_for``) and connects what
    becomes of its progress and outcome; ``busy``, ``cancel`` and ``shutdown`` are the same for all.

    ``holder``: who holds the device while a job runs, in the user's words."""

    def __init__(self, context: ProjectContext, holder: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.holder = holder
        self._engine: ComparisonEngine | None = None
        # A new request stops the running job, waits for it to end, then starts.
        self._slot = JobSlot(self, stop_running=True)

    @property
    def busy(self) -> bool:
        return self._slot.busy

    def _engine_for(self, base_spec: str, four_bit: bool) -> ComparisonEngine:
        """The loaded model when it is this base (in 4-bit or not, as asked), else a new engine;
        the old one's model is freed with it."""
        engine = self._engine
        if engine is None or engine.base_spec != base_spec or engine.four_bit != four_bit:
            engine = self._engine = ComparisonEngine(base_spec, four_bit=four_bit)
        return engine

    def _job(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """A job of ``fn`` that holds the device as this worker while it runs."""
        return Job(fn, *args, parent=self, lock=self.context.compute, holder=self.holder, **kwargs)

    def cancel(self) -> None:
        """Stop the running job and forget any request waiting behind it."""
        self._slot.stop()

    def shutdown(self) -> None:
        """Stop, wait for the thread to end, and let go of the model."""
        self._slot.stop()
        self._slot.wait()
        self._engine = None
