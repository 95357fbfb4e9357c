"""The model's own suggestion for an answer, generated on a worker thread.

The base model (or an adapter on it) is loaded once, the first time a
suggestion is asked for, by ``ComparisonEngine`` on the worker thread; the GUI
thread never touches torch. Each request holds the project's compute lock
while it runs, and is refused in plain words while training holds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from PySide6.QtCore import QObject, Signal, Slot

from ftstudio.core import ratings
from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.engine.comparison import ComparisonEngine, ModelRef
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.workers import TaskThread

log = logging.getLogger("ftstudio.gui.labelling")

HOLDER = "Suggesting an answer (Label page)"
DEFAULT_MAX_TOKENS = 200


@dataclass(frozen=True)
class SuggestionModel:
    """One choice in "Suggestions from": a base model, with an adapter or without."""

    title: str
    base_spec: str
    ref: ModelRef


def suggestion_models(context: ProjectContext, extra_bases: Sequence[str] = ()) -> list[SuggestionModel]:
    """The base models of this project's runs (the bundled one first), and each finished run's adapter."""
    project = context.project
    runs = [r for r in project.runs() if (project.run_dir(r.id) / "adapter" / "adapter_config.json").is_file()]
    bases = [*extra_bases, BUNDLED_MODEL, *sorted({r.model for r in project.runs() if r.model} - {BUNDLED_MODEL})]
    out: list[SuggestionModel] = []
    seen = set()
    for spec in bases:
        if spec in seen:
            continue
        seen.add(spec)
        key = ratings.base_key(spec)
        out.append(SuggestionModel(ratings.model_label(key).replace("Base (", "Base model (", 1), spec,
                                   ModelRef(key, ratings.model_label(key))))
    for r in runs:
        key = ratings.run_key(r.id)
        out.append(SuggestionModel(f"Adapter of run {r.id}", r.model or BUNDLED_MODEL,
                                   ModelRef(key, ratings.model_label(key), project.run_dir(r.id) / "adapter")))
    return out


def suggest_job(engine: ComparisonEngine, ref: ModelRef, messages: list[dict[str, Any]], max_new_tokens: int,
                temperature: float = 0.0, *, report, interrupted) -> str:
    """Worker thread: load the model if it is not yet, then answer ``messages``, streaming pieces."""
    from ftstudio.engine.inference import SamplingSettings

    if not engine.loaded:
        report(("loading", ""))
    engine.ensure([ref])
    report(("started", ""))
    return engine.generate(ref, messages, SamplingSettings(temperature=temperature, max_new_tokens=max_new_tokens),
                           on_token=lambda text: report(("piece", text)), should_stop=interrupted)


class Suggester(QObject):
    """One suggestion at a time; a new request while one runs waits for it (the old one is stopped).

    Signals carry the example id the suggestion is for, so a late answer never
    lands on another example.
    """

    loading = Signal(int)
    piece = Signal(int, str)
    finished = Signal(int, str)  # example id, the whole suggestion
    failed = Signal(int, str)  # example id, what went wrong, in words
    refused = Signal(int, str)  # example id, who holds the device
    stopped = Signal(int)  # example id whose suggestion was stopped before it was whole

    def __init__(self, context: ProjectContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.max_new_tokens = DEFAULT_MAX_TOKENS
        self.temperature = 0.0  # greedy: the model's most likely answer, the same each time
        self._engine: ComparisonEngine | None = None
        self._thread: TaskThread | None = None
        self._running_id: int | None = None
        self._outcome: tuple[str, Any] | None = None
        self._pending: tuple[int, SuggestionModel, list[dict[str, Any]]] | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def request(self, example_id: int, model: SuggestionModel, messages: list[dict[str, Any]]) -> str:
        """Ask for a suggestion: "started", "waiting" (after the running one) or "refused" (device busy)."""
        if self._thread is not None:
            self._pending = (example_id, model, messages)
            self._thread.requestInterruption()
            return "waiting"
        if not self.context.compute.try_acquire(HOLDER):
            self.refused.emit(example_id, self.context.compute.holder)
            return "refused"
        if self._engine is None or self._engine.base_spec != model.base_spec:
            self._engine = ComparisonEngine(model.base_spec)  # the old one's model is freed with it
        self._running_id, self._outcome = example_id, None
        thread = TaskThread(suggest_job, self._engine, model.ref, messages, self.max_new_tokens, self.temperature,
                            parent=self)
        thread.progressed.connect(self._on_progress)
        thread.succeeded.connect(self._on_succeeded)
        thread.failed.connect(self._on_failed)
        thread.finished.connect(self._on_thread_finished)
        self._thread = thread
        thread.start()
        return "started"

    def cancel(self) -> None:
        self._pending = None
        if self._thread is not None:
            self._thread.requestInterruption()

    def shutdown(self) -> None:
        self.cancel()
        if self._thread is not None:
            self._thread.wait()
            self._on_thread_finished()
        self._engine = None

    @Slot(object)
    def _on_progress(self, item) -> None:
        kind, text = item
        if kind == "loading":
            self.loading.emit(self._running_id)
        elif kind == "piece":
            self.piece.emit(self._running_id, text)

    @Slot(object)
    def _on_succeeded(self, text) -> None:
        stopped = self._thread is not None and self._thread.isInterruptionRequested()
        self._outcome = ("stopped" if stopped else "done", str(text))

    @Slot(str, str)
    def _on_failed(self, message: str, trace: str) -> None:
        log.warning("suggestion failed: %s\n%s", message, trace)
        self._outcome = ("failed", message)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self._thread
        if thread is None:
            return
        thread.wait()
        thread.deleteLater()
        self._thread = None
        self.context.compute.release(HOLDER)
        example_id, (outcome, value) = self._running_id, (self._outcome or ("failed", "no answer came back"))
        self._running_id = None
        if outcome == "done":
            self.finished.emit(example_id, value)
        elif outcome == "failed":
            self.failed.emit(example_id, f"No suggestion: {value}")
        else:
            self.stopped.emit(example_id)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.request(*pending)

