"""Model-assisted labelling: the newest finished run predicts each example's
label (calibrated label scores, ``engine.label_scores``) on a worker thread,
and the Label page pre-selects the prediction with its probability; the
expert confirms with Enter or picks another label.

The worker scores the queue from the example on screen onwards, one example
(one forward pass over the label set) at a time, and hands each prediction to
the GUI thread, which stores it under the run id (``core.review``) and shows
it if that example is still on screen. A key press never waits for it: an
example without a prediction yet shows "predicting…" and takes the key as
usual. The worker holds the project's compute lock while it runs, as a
suggestion does; it is not started while something else holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from ftstudio.core import review
from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.core.labelling import prompt_messages
from ftstudio.core.ratings import run_key
from ftstudio.engine.comparison import ComparisonEngine, ModelRef
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.labelling.model_jobs import ModelJobs
from ftstudio.gui.workers import Job, Outcome

log = logging.getLogger("ftstudio.gui.labelling")

HOLDER = "Predicting labels (Label page)"
HOLD_OFF_S = 0.6  # predictions wait this long after a key press: the expert's pace comes first


def predict_job(
    engine: ComparisonEngine,
    ref: ModelRef,
    items: Sequence[tuple[int, list[dict[str, Any]]]],
    labels: Sequence[str],
    *,
    report,
    interrupted,
    paused: Callable[[], bool] = lambda: False,
) -> int:
    """Worker thread: ("predicted", example id, probabilities in ``labels``' order) per example.

    Between examples it waits while ``paused()``: the expert is pressing keys, and on a CPU with few
    cores the scoring (tokenising through the chat template holds the interpreter) would slow each
    key press down.
    """
    from ftstudio.engine.label_scores import score_labels

    report(("loading", None, None))
    engine.ensure([ref])
    name = engine.model_name(ref)
    n = 0
    for example_id, messages in items:
        while paused() and not interrupted():
            time.sleep(0.05)
        if interrupted():
            break
        probs = score_labels(engine.generator, [messages], list(labels), model=name)[0]
        if probs is not None and not interrupted():
            report(("predicted", example_id, probs))
            n += 1
    return n


class Predictor(ModelJobs):
    """Predictions of the assisting run for a list of examples, one job at a time (latest request wins)."""

    predicted = Signal(int, str, float)  # example id, label, probability (already stored)
    status = Signal(str)  # a short line on what the worker does

    def __init__(self, context: ProjectContext, parent: QObject | None = None) -> None:
        super().__init__(context, HOLDER, parent)
        self._run_id: str | None = None
        self._labels: list[str] = []
        self._quiet_until = 0.0

    def hold_off(self, seconds: float = HOLD_OFF_S) -> None:
        """The expert is at work: the worker waits until ``seconds`` after the last key press."""
        self._quiet_until = time.monotonic() + seconds

    def typing(self) -> bool:
        """(Worker thread) whether a key was pressed in the last moment: a float read, no lock needed."""
        return time.monotonic() < self._quiet_until

    @property
    def run_id(self) -> str | None:
        return review.assisting_run(self.context.project)

    def request(self, example_ids: Sequence[int], labels: Sequence[str], template: str) -> str:
        """Predict the examples of ``example_ids`` not predicted yet, in that order: "started", "waiting"
        (after the running one, which is stopped), "nothing" (nothing to do, or no run) or "refused"
        (the device is busy)."""
        return self._slot.request(lambda: self._make_job(list(example_ids), list(labels), template))

    def _make_job(self, example_ids: list[int], labels: list[str], template: str) -> Job | None:
        project = self.context.project
        run_id = self.run_id
        if run_id is None or not labels:
            return None
        done = review.predicted_ids(project, run_id)
        todo = [i for i in example_ids if i not in done]
        if not todo:
            return None
        run = project.get_run(run_id)
        from ftstudio.engine.inference import loads_in_4bit

        # a QLoRA run answers from the 4-bit base it trained on
        engine = self._engine_for(run.model or BUNDLED_MODEL, loads_in_4bit([run.config]))
        ref = ModelRef(run_key(run_id), f"Run {run_id}", project.run_dir(run_id) / "adapter")
        items = [(ex.id, prompt_messages(ex, template)) for ex in project.get_examples(todo)]
        self._run_id, self._labels = run_id, labels
        job = self._job(predict_job, engine, ref, items, labels, paused=self.typing)
        job.progressed.connect(self._on_progress)
        job.started.connect(lambda: self.status.emit(f"Run {run_id} is predicting labels…"))
        job.ended.connect(self._on_ended)
        return job

    @Slot(object)
    def _on_progress(self, item: tuple[str, Any, Any]) -> None:
        kind, example_id, probs = item
        if kind == "loading":
            self.status.emit(f"Loading run {self._run_id} to predict labels…")
        elif kind == "predicted" and self._run_id is not None:
            review.store_predictions(self.context.project, self._run_id, [(example_id, self._labels, probs)])
            top = max(range(len(probs)), key=probs.__getitem__)
            self.predicted.emit(int(example_id), self._labels[top], float(probs[top]))

    @Slot(object)
    def _on_ended(self, outcome: Outcome) -> None:
        if outcome.failed:
            log.warning("label prediction failed: %s\n%s", outcome.value, outcome.trace)
            self.status.emit(f"No predictions: {outcome.value}")
        else:
            self.status.emit("")


class LabelAssist(QObject):
    """What the Label mode shows of the model: the assisting run's prediction for the example on screen
    (pre-selected when the example has no label yet) and, in the review queue, what the model answered.

    The mode calls ``on_show`` while it puts an example on screen (one indexed query, no model) and
    ``queue_loaded`` when it reads a queue (which asks the worker for the predictions still missing).
    """

    def __init__(self, mode: Any) -> None:
        super().__init__(mode)
        from PySide6.QtWidgets import QLabel

        self.mode = mode
        self.predictor = Predictor(mode.context, self)
        self.predictor.predicted.connect(self._predicted)
        self.line = QLabel()
        self.line.setObjectName("AssistLine")
        self.line.setWordWrap(True)
        self.line.hide()
        self.run_id: str | None = None
        self.prediction: review.Prediction | None = None
        self.preselected = False
        self._has_label = False
        self._chosen_at_show: str | None = None
        mode.context.runs_changed.connect(self.queue_loaded)

    def queue_loaded(self) -> None:
        mode = self.mode
        self.run_id = self.predictor.run_id if mode.schema.uses_labels else None
        if self.run_id is None or not mode.annotator:
            return
        todo = mode.lab.queue("todo", mode.annotator)
        ahead = mode.queue_cursor.ids[mode.queue_cursor.pos :] if mode.queue_name != "least_sure" else []
        order = list(dict.fromkeys([*ahead, *todo]))  # what comes next on screen first
        self.predictor.request(order, [d.name for d in mode.schema.labels], mode.schema.template)

    def on_show(self, example_id: int, has_label: bool) -> list[str]:
        """Meta-line pieces for ``example_id``; pre-selects the prediction when it has no label yet."""
        import html

        from ftstudio.core.ratings import model_label

        mode = self.mode
        self.predictor.hold_off()
        bits: list[str] = []
        if mode.queue_name == review.REVIEW:
            request = review.review_request(mode.context.project, example_id)
            if request is not None:
                sure = f" ({request.confidence:.0%} sure)" if request.confidence is not None else ""
                bits.append(
                    f"{html.escape(model_label(request.model))} answered "
                    f"<b>{html.escape(request.answer or '(nothing)')}</b>{sure}"
                )
        self.prediction = (
            review.prediction(mode.context.project, self.run_id, example_id)
            if self.run_id is not None
            else None
        )
        self.preselected = False
        self._has_label = has_label
        if self.prediction is not None and not has_label and self.prediction.label in mode._buttons:
            mode.chosen = self.prediction.label
            self.preselected = True
        self._chosen_at_show = mode.chosen
        self._show_line()
        return bits

    def _show_line(self) -> None:
        import html

        from PySide6.QtCore import Qt

        if self.run_id is None:
            self.line.hide()
            return
        p = self.prediction
        if p is None:
            text = (
                f"Run {html.escape(self.run_id)} is predicting a label…"
                if self.predictor.busy
                else f"Run {html.escape(self.run_id)} has no prediction for this example."
            )
        else:
            text = (
                f"Run {html.escape(self.run_id)} predicts <b>{html.escape(p.label)}</b> "
                f"· {p.probability:.0%} sure"
            )
            if self.preselected:
                text += " — pre-selected: Enter confirms, or press another label's key"
        self.line.setTextFormat(Qt.TextFormat.RichText)
        self.line.setText(text)
        self.line.show()

    @Slot(int, str, float)
    def _predicted(self, example_id: int, label: str, probability: float) -> None:
        mode = self.mode
        if example_id != mode.current_id or self.run_id is None:
            return
        self.prediction = review.prediction(mode.context.project, self.run_id, example_id)
        # Only while the expert has not picked a label since the example came up.
        if not self._has_label and mode.chosen == self._chosen_at_show and label in mode._buttons:
            mode.chosen = label
            self.preselected = True
            for name, b in mode._buttons.items():
                b.setChecked(name == label)
        self._show_line()

    def shutdown(self) -> None:
        self.predictor.shutdown()
