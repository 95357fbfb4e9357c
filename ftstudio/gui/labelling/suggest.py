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

from PySide6.QtCore import QObject, Signal

from ftstudio.core import ratings
from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.engine.comparison import ComparisonEngine, ModelRef
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.labelling.model_jobs import ModelJobs
from ftstudio.gui.workers import Job, Outcome

log = logging.getLogger("ftstudio.gui.labelling")

HOLDER = "Suggesting an answer (Label page)"
DEFAULT_MAX_TOKENS = 200


@dataclass(frozen=True)
class SuggestionModel:
    """One choice in "Suggestions from": a base model, with an adapter or without."""

    title: str
    base_spec: str
    ref: ModelRef
    four_bit: bool = False  # the base in 4-bit: the run trained QLoRA (inference.loads_in_4bit)


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
    from ftstudio.engine.inference import loads_in_4bit

    for r in runs:
        key = ratings.run_key(r.id)
        out.append(SuggestionModel(f"Adapter of run {r.id}", r.model or BUNDLED_MODEL,
                                   ModelRef(key, ratings.model_label(key), project.run_dir(r.id) / "adapter"),
                                   loads_in_4bit([r.config])))
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


class Suggester(ModelJobs):
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
        super().__init__(context, HOLDER, parent)
        self.max_new_tokens = DEFAULT_MAX_TOKENS
        self.temperature = 0.0  # greedy: the model's most likely answer, the same each time
        self._running_for: int | None = None

    @property
    def running_for(self) -> int | None:
        """The example whose suggestion is being written (None: none is)."""
        return self._running_for if self._slot.busy else None

    def request(self, example_id: int, model: SuggestionModel, messages: list[dict[str, Any]]) -> str:
        """Ask for a suggestion: "started", "waiting" (after the running one) or "refused" (device busy)."""
        return self._slot.request(lambda: self._make_job(example_id, model, messages))

    def _make_job(self, example_id: int, model: SuggestionModel, messages: list[dict[str, Any]]) -> Job:
        engine = self._engine_for(model.base_spec, model.four_bit)
        job = self._job(suggest_job, engine, model.ref, messages, self.max_new_tokens, self.temperature)
        job.refused.connect(lambda holder: self.refused.emit(example_id, holder))
        job.progressed.connect(lambda item: self._on_progress(example_id, item))
        job.started.connect(lambda: setattr(self, "_running_for", example_id))
        job.ended.connect(lambda outcome: self._on_ended(example_id, outcome))
        return job

    def _on_progress(self, example_id: int, item: tuple[str, str]) -> None:
        kind, text = item
        if kind == "loading":
            self.loading.emit(example_id)
        elif kind == "piece":
            self.piece.emit(example_id, text)

    def _on_ended(self, example_id: int, outcome: Outcome) -> None:
        if outcome.done:
            self.finished.emit(example_id, str(outcome.value))
        elif outcome.failed:
            log.warning("suggestion failed: %s\n%s", outcome.value, outcome.trace)
            self.failed.emit(example_id, f"No suggestion: {outcome.value}")
        else:
            self.stopped.emit(example_id)
