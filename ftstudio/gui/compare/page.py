"""The Compare page: the base model and adapters side by side, blind rating
for domain experts, what the votes say, held-out evaluation and a chat.

The left column (``SelectionPanel``) chooses models, prompts and sampling
settings for every tab. The page runs one job at a time on a worker thread
(a ``workers.Job`` over the plain functions of ``jobs``), stores what comes
back in the project database on the GUI thread, and hands it to the tab.

The device is shared with training through ``context.compute``: a job asks
for it first; when a training run holds it, the job waits in a queue (the
banner says so and offers Cancel) and starts by itself when the device is
free. When another holder takes the device while the page is idle, the
page lets go of the model it had loaded, so training gets the memory.

``ComparePage(context, parent=None, engine=None)``: ``engine`` lets a caller
share one loaded ``ComparisonEngine`` (tests do, to load the model once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QFileDialog, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSplitter, QTabWidget, QVBoxLayout, QWidget,
)

from ftstudio.core import ratings
from ftstudio.engine.comparison import ComparisonEngine, ModelRef, PromptItem
from ftstudio.gui.page_header import page_layout
from ftstudio.gui import style
from ftstudio.gui.compare import jobs
from ftstudio.gui.compare.blind_tab import BlindItem, BlindTab
from ftstudio.gui.compare.chat_tab import ChatTab
from ftstudio.gui.compare.compare_tab import CompareTab
from ftstudio.gui.compare.evaluate_tab import EvaluateTab
from ftstudio.gui.compare.results_tab import ResultsTab
from ftstudio.gui.compare.selection import SOURCE_TYPED, SelectionPanel
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.workers import Job, Outcome
from ftstudio.gui.pages import Page

log = logging.getLogger("ftstudio.gui.compare")

COMPARE, BLIND, EVALUATE, CHAT = "compare", "blind", "evaluate", "chat"
HOLDERS = {
    COMPARE: "Comparing models",
    BLIND: "Preparing blind answers",
    EVALUATE: "Evaluating models",
    CHAT: "Chat",
}
WHAT = {COMPARE: "comparison", BLIND: "blind round", EVALUATE: "evaluation", CHAT: "chat answer"}


@dataclass
class _Task:
    """What one of the page's jobs is for: the worker function and what to do with its news."""

    kind: str
    fn: Callable[..., Any]
    args: tuple
    on_progress: Callable[[Any], None]
    on_end: Callable[[str, Any], None]  # outcome ("done" | "stopped" | "failed" | "cancelled"), value or message


@dataclass
class _BlindRound:
    prompts: list[PromptItem]
    settings: dict[str, Any]
    wanted: list[list[str]]  # per prompt: the model keys to show
    ids: list[dict[str, int]] = field(default_factory=list)  # per prompt: model key -> generation id
    queued: set[int] = field(default_factory=set)  # prompts handed to the blind tab

    def complete(self, i: int) -> bool:
        return all(k in self.ids[i] for k in self.wanted[i])


class BusyBanner(QFrame):
    """A line above the tabs while another part of the program holds the device."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("BusyBanner")
        self.setStyleSheet(f"QFrame#BusyBanner {{ background: {style.WARN_SOFT}; border: 1px solid #f0d9a8; "
                           "border-radius: 6px; }")
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 6, 8, 6)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setStyleSheet(f"color: {style.WARN};")
        self.cancel_button = QPushButton("Cancel waiting")
        row.addWidget(self.text, 1)
        row.addWidget(self.cancel_button)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.hide()


class ComparePage(Page):
    job_started = Signal(str)  # kind
    job_queued = Signal(str)  # kind, waiting for the device
    job_finished = Signal(str, str)  # kind, outcome

    def __init__(self, context: ProjectContext, parent: QWidget | None = None,
                 engine: ComparisonEngine | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.project = context.project
        self.engine: ComparisonEngine | None = engine
        self._owns_engine = engine is None
        # The one model job (running, or queued behind the device's holder) and what it is for.
        self._job: Job | None = None
        self._task: _Task | None = None
        self._checks: set[Job] = set()  # adapter folders being checked
        self._compare_run: dict[str, Any] | None = None
        self._blind_round: _BlindRound | None = None
        self._eval_refs: list[ModelRef] = []
        self._eval_models = 0
        self._chat_ref: ModelRef | None = None

        layout, _head, self.summary = page_layout(self, "Compare", stretch_hint=True)

        self.banner = BusyBanner()
        layout.addWidget(self.banner)

        self.selection = SelectionPanel(context)
        side = QScrollArea()
        side.setWidgetResizable(True)
        side.setWidget(self.selection)
        side.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side.setMinimumWidth(self.selection.minimumWidth() + 14)
        side.setMaximumWidth(self.selection.maximumWidth() + 14)
        side_frame = QFrame()
        side_frame.setObjectName("Card")
        sl = QVBoxLayout(side_frame)
        sl.setContentsMargins(1, 1, 1, 1)
        sl.addWidget(side)
        self.side = side_frame

        self.compare = CompareTab()
        self.blind = BlindTab(context)
        self.results = ResultsTab(context)
        self.evaluate = EvaluateTab(context)
        self.chat = ChatTab()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.compare, "Side by side")
        self.tabs.addTab(self.blind, "Blind rating")
        self.tabs.addTab(self.results, "Results")
        self.tabs.addTab(self.evaluate, "Held-out evaluation")
        self.tabs.addTab(self.chat, "Chat")

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(side_frame)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter, 1)

        self.compare.run_requested.connect(self.start_comparison)
        self.compare.stop_requested.connect(self.stop)
        self.blind.start_requested.connect(self.start_blind_round)
        self.blind.stop_requested.connect(self.stop)
        self.blind.voted.connect(self._on_voted)
        self.evaluate.run_requested.connect(self.start_evaluation)
        self.evaluate.stop_requested.connect(self.stop)
        self.chat.send_requested.connect(self.send_chat)
        self.chat.stop_requested.connect(self.stop)
        self.banner.cancel_requested.connect(self.stop)
        self.selection.add_folder_button.clicked.connect(self._ask_adapter_folder)
        self.selection.models_changed.connect(self._models_changed)
        self.selection.base_changed.connect(self._base_changed)
        self.selection.prompts_changed.connect(self._update_summary)
        self.tabs.currentChanged.connect(self._tab_changed)
        context.compute.changed.connect(self._compute_changed)
        self._models_changed()
        self._compute_changed(context.compute.holder)
        self.show_saved_answers()

    # -- state --------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A job is running or waiting for the device."""
        return self._job is not None

    @property
    def running(self) -> bool:
        """A model job runs (not only waits for the device)."""
        return self._job is not None and self._job.running

    def running_kind(self) -> str | None:
        return self._task.kind if self._task is not None and self.running else None

    def queued_kind(self) -> str | None:
        waiting = self._job is not None and self._job.waiting
        return self._task.kind if self._task is not None and waiting else None

    def _update_summary(self) -> None:
        refs = self.selection.checked_refs()
        n = len(self.selection.prompts())
        adapters = sum(1 for r in refs if not r.is_base)
        base = any(r.is_base for r in refs)
        parts = []
        if base:
            parts.append("the base model")
        if adapters:
            parts.append(f"{adapters} adapter{'s' if adapters != 1 else ''}")
        who = " and ".join(parts) if parts else "no model"
        self.summary.setText(f"{who} · {n} prompt{'s' if n != 1 else ''} · "
                             f"base {self.selection.base_combo.currentText()}")

    @Slot()
    def _models_changed(self) -> None:
        self.chat.set_models(self.selection.all_refs())
        self._update_summary()

    @Slot(str)
    def _base_changed(self, spec: str) -> None:
        if self.engine is not None and self.engine.base_spec != spec and not self.busy:
            self._drop_engine()

    @Slot(int)
    def _tab_changed(self, index: int) -> None:
        widget = self.tabs.widget(index)
        if widget is self.results:
            self.results.refresh()
        elif widget is self.blind:
            self.blind.setFocus()
        elif widget is self.chat:
            self.chat.input.setFocus()

    def _set_buttons(self) -> None:
        busy = self.busy
        kind = self._task.kind if self._task is not None else None
        self.compare.set_running(busy)
        self.compare.run_button.setEnabled(not busy)
        self.compare.stop_button.setEnabled(kind == COMPARE)
        self.blind.start_button.setEnabled(not busy)
        self.blind.stop_button.setEnabled(kind == BLIND)
        self.evaluate.run_button.setEnabled(not busy)
        self.evaluate.stop_button.setEnabled(kind == EVALUATE)
        self.chat.send_button.setEnabled(not busy)
        self.chat.stop_button.setEnabled(kind == CHAT)
        self.selection.base_combo.setEnabled(not busy)
        self.selection.add_folder_button.setEnabled(not busy)

    # -- the engine ---------------------------------------------------------------------

    def _engine(self) -> ComparisonEngine:
        spec = self.selection.base_spec()
        four_bit = self.selection.base_four_bit()
        stale = self.engine is not None and self._owns_engine and self.engine.four_bit != four_bit
        if self.engine is None or self.engine.base_spec != spec or stale:
            self._drop_engine()
            self.engine = ComparisonEngine(spec, four_bit=four_bit)
            self._owns_engine = True
        return self.engine

    def _drop_engine(self) -> None:
        """Let go of the loaded model (only one this page loaded itself)."""
        if self.engine is not None and self._owns_engine:
            self.engine.close()
        if self._owns_engine:
            self.engine = None

    # -- the device ---------------------------------------------------------------------

    @Slot(str)
    def _compute_changed(self, holder: str) -> None:
        ours = holder in HOLDERS.values()
        if holder and not ours:
            if not self.running and self.engine is not None and self._owns_engine and self.engine.loaded:
                self._drop_engine()
                log.info("let go of the comparison model while %s uses the device", holder)
            self._show_banner(holder)
        elif not holder:
            self.banner.hide()  # a queued job starts by itself now
        else:
            self.banner.hide()

    def _show_banner(self, holder: str) -> None:
        queued = self.queued_kind()
        if queued is not None:
            what = WHAT[queued]
            self.banner.text.setText(f"<b>{holder}</b> is using the device. Your {what} will start by itself "
                                     "as soon as it is free.")
            self.banner.cancel_button.show()
        else:
            self.banner.text.setText(f"<b>{holder}</b> is using the device. Comparisons wait until it is free; "
                                     "you can still read answers and vote.")
            self.banner.cancel_button.hide()
        self.banner.show()

    # -- running jobs -------------------------------------------------------------------

    def _launch(self, task: _Task) -> str:
        """Start ``task`` now ("started"), or queue it while someone else holds the device ("queued")."""
        if self._job is not None:
            return "refused"
        job = Job(task.fn, *task.args, parent=self, lock=self.context.compute, holder=HOLDERS[task.kind],
                  queue=True)
        job.progressed.connect(task.on_progress)
        job.queued.connect(self._job_queued)
        job.started.connect(self._job_started)
        job.ended.connect(self._job_ended)
        self._job, self._task = job, task
        return job.start()

    @Slot(str)
    def _job_queued(self, holder: str) -> None:
        assert self._task is not None
        self._show_banner(holder)
        self._set_buttons()
        self._task.on_progress(("waiting", holder))
        self.job_queued.emit(self._task.kind)

    @Slot()
    def _job_started(self) -> None:
        assert self._task is not None
        self._set_buttons()
        self.job_started.emit(self._task.kind)

    @Slot()
    def stop(self) -> None:
        """Stop the running job (it keeps what is finished), or stop waiting for the device."""
        if self._job is not None:
            self._job.stop()

    @Slot(object)
    def _job_ended(self, outcome: Outcome) -> None:
        task = self._task
        self._job, self._task = None, None
        if task is None:
            return
        if outcome.failed:
            log.warning("compare job failed: %s\n%s", outcome.value, outcome.trace)
        if outcome.status == "cancelled":
            self._compute_changed(self.context.compute.holder)  # the banner no longer promises a start
        self._set_buttons()
        try:
            task.on_end(outcome.status, outcome.value)
        finally:
            self.job_finished.emit(task.kind, outcome.status)

    # -- side by side -------------------------------------------------------------------

    @Slot()
    def start_comparison(self) -> str:
        refs = self.selection.checked_refs()
        prompts = self.selection.prompts()
        if not refs:
            self.compare.set_status("Check at least one model on the left.")
            return "refused"
        if not prompts:
            self.compare.set_status(self._no_prompts_text())
            return "refused"
        settings = self.selection.sampling()
        self._compare_run = {"refs": refs, "prompts": prompts, "settings": settings, "done": 0}
        self.compare.start(refs, prompts)
        self.tabs.setCurrentWidget(self.compare)
        task = _Task(COMPARE, jobs.compare_job, (self._engine(), refs, prompts, settings),
                   self._compare_progress, self._compare_end)
        return self._launch(task)

    def show_saved_answers(self) -> int:
        """Show the answers already stored for the chosen models, prompts and settings (no model runs).

        Reopening the page shows where the user left off; returns how many answers were found.
        """
        if self.busy:
            return 0
        refs = self.selection.checked_refs()
        prompts = self.selection.prompts()
        settings = self.selection.sampling()
        found = []
        for i, prompt in enumerate(prompts):
            for ref in refs:
                stored = ratings.find_generation(self.project, ref.key, prompt.messages, settings)
                if stored is not None:
                    found.append((i, ref.key, stored))
        if not found:
            return 0
        self.compare.start(refs, prompts)
        for i, key, stored in found:
            self.compare.set_output(i, key, stored.output, stored.id)
        self.compare.set_running(False)
        self._set_buttons()
        newest = max(g.created_at for _i, _k, g in found)[:16].replace("T", " ")
        total = len(refs) * len(prompts)
        self.compare.set_status(f"Showing {len(found)} saved answer{'s' if len(found) != 1 else ''}")
        self.compare.status.setToolTip(f"{len(found)} of {total} answers were written earlier with these settings "
                                       f"(the latest on {newest}). Generate answers writes them anew.")
        return len(found)

    def _no_prompts_text(self) -> str:
        if self.selection.source() == SOURCE_TYPED:
            return "Type a prompt on the left first (leave a blank line between prompts)."
        return "No example matches the prompt choice on the left; choose other examples or type prompts."

    def _compare_progress(self, item) -> None:
        run = self._compare_run
        kind = item[0]
        if kind == "waiting":
            self.compare.set_status(f"Waiting for the device ({item[1]} is using it)…")
        elif kind == "loading":
            self.compare.set_status(f"Loading {self.selection.base_combo.currentText()}…")
        elif kind == "loaded":
            self.compare.set_status("Generating…")
        elif kind == "piece":
            _, i, key, text = item
            self.compare.add_piece(i, key, text)
        elif kind == "output":
            assert run is not None  # set by the comparison before its job starts
            _, i, key, text = item
            prompt = run["prompts"][i]
            gid = ratings.add_generation(self.project, key, prompt.messages, text, run["settings"],
                                         example_id=prompt.example_id)
            self.compare.set_output(i, key, text, gid)
            run["done"] += 1
            total = len(run["refs"]) * len(run["prompts"])
            self.compare.set_status(f"Writing… {run['done']} of {total} answers done")

    def _compare_end(self, outcome: str, value) -> None:
        run = self._compare_run or {"done": 0, "refs": [], "prompts": []}
        self.compare.set_running(False)
        self._set_buttons()
        total = len(run["refs"]) * len(run["prompts"])
        if outcome == "done":
            # Short enough for the space beside the buttons; blind rating reuses these answers.
            self.compare.set_status(f"{run['done']} answers saved")
        elif outcome in ("stopped", "cancelled"):
            self.compare.set_status(f"Stopped after {run['done']} of {total} answers; the finished ones are kept.")
        else:
            self.compare.set_status(f"Could not finish: {value}")

    # -- blind rating -------------------------------------------------------------------

    @Slot()
    def start_blind_round(self) -> str:
        refs = self.selection.checked_refs()
        prompts = self.selection.prompts()
        if len(refs) < 2:
            self.blind.show_message("Check two or more models on the left to compare them blind.")
            return "refused"
        if not prompts:
            self.blind.show_message(self._no_prompts_text())
            return "refused"
        settings = self.selection.sampling()
        k = min(self.blind.per_prompt.value(), len(refs))
        rng = self.blind.rng
        round_ = _BlindRound(prompts, settings, wanted=[], ids=[])
        missing: list[tuple[int, ModelRef]] = []
        for i, prompt in enumerate(prompts):
            chosen = rng.sample(refs, k)
            round_.wanted.append([r.key for r in chosen])
            ids: dict[str, int] = {}
            for ref in chosen:
                stored = ratings.find_generation(self.project, ref.key, prompt.messages, settings)
                if stored is not None:
                    ids[ref.key] = stored.id
                else:
                    missing.append((i, ref))
            round_.ids.append(ids)
        self._blind_round = round_
        self.tabs.setCurrentWidget(self.blind)
        self.blind.begin(len(prompts), [ratings.prompt_text(p.messages) for p in prompts])
        if not self.blind.voter():
            self.blind.show_message("Type your name above: it goes on every vote.")
        self._offer_complete()
        if not missing:
            self.blind.set_generating(False)
            return "started"
        self.blind.set_generating(True)
        task = _Task(BLIND, jobs.answers_job, (self._engine(), missing, prompts, settings),
                   self._blind_progress, self._blind_end)
        result = self._launch(task)
        self.blind.set_generating(result != "refused")
        self._set_buttons()
        return result

    def _offer_complete(self) -> None:
        round_ = self._blind_round
        if round_ is None:
            return
        for i in range(len(round_.prompts)):
            if i not in round_.queued and round_.complete(i):
                round_.queued.add(i)
                self.blind.add_item(BlindItem(i, [round_.ids[i][k] for k in round_.wanted[i]]))

    def _blind_progress(self, item) -> None:
        round_ = self._blind_round
        kind = item[0]
        if kind == "waiting":
            self.blind.status.setText(f"Waiting for the device ({item[1]} is using it)…")
        elif kind == "loading":
            self.blind.status.setText(f"Loading {self.selection.base_combo.currentText()}…")
        elif kind == "output" and round_ is not None:
            _, i, key, text = item
            prompt = round_.prompts[i]
            round_.ids[i][key] = ratings.add_generation(self.project, key, prompt.messages, text, round_.settings,
                                                        example_id=prompt.example_id)
            self._offer_complete()

    def _blind_end(self, outcome: str, value) -> None:
        self.blind.set_generating(False)
        self._set_buttons()
        if outcome == "failed":
            self.blind.show_message(f"Could not prepare the answers: {value}")
        elif outcome in ("stopped", "cancelled") and self._blind_round is not None:
            left = sum(1 for i in range(len(self._blind_round.prompts)) if i not in self._blind_round.queued)
            self.blind.total -= left
            self.blind.set_generating(False)

    @Slot(int)
    def _on_voted(self, _vote_id: int) -> None:
        self.results.refresh()

    # -- evaluation ---------------------------------------------------------------------

    @Slot()
    def start_evaluation(self) -> str:
        refs = self.selection.checked_refs()
        if not refs:
            self.evaluate.set_status("Check at least one model on the left.")
            return "refused"
        if self.selection.source() == SOURCE_TYPED:
            self.evaluate.set_status("Evaluation needs examples with answers: choose held-out examples "
                                     "(or examples matching a filter) on the left.")
            return "refused"
        examples = self.selection.evaluation_examples()
        if not examples:
            self.evaluate.set_status("None of the chosen examples has an answer to measure against. Label some "
                                     "held-out examples first, or choose other examples on the left.")
            return "refused"
        self._eval_refs = refs
        self._eval_n = len(examples)
        self._eval_done = 0
        self.tabs.setCurrentWidget(self.evaluate)
        shots, labels = self.evaluate.prompting(examples)
        self._eval_models = len(refs) + (sum(r.is_base for r in refs) if shots else 0)
        task = _Task(EVALUATE, jobs.evaluate_job,
                   (self._engine(), refs, [ex.conversation() for ex in examples], [ex.id for ex in examples],
                    self.evaluate.max_length.value(), self.evaluate.exact_match.currentData(), shots, labels),
                   self._evaluate_progress, self._evaluate_end)
        return self._launch(task)

    def _evaluate_progress(self, item) -> None:
        kind = item[0]
        if kind == "waiting":
            self.evaluate.set_status(f"Waiting for the device ({item[1]} is using it)…")
        elif kind == "loading":
            self.evaluate.set_status(f"Loading {self.selection.base_combo.currentText()}…")
        elif kind == "started":
            self.evaluate.set_status(f"Evaluating {ratings.evaluation_label(item[1])} on {self._eval_n} examples "
                                     f"({self._eval_done + 1} of {self._eval_models} models)…")
        elif kind == "progress":
            _, key, (done, total) = item
            self.evaluate.set_status(f"Evaluating {ratings.evaluation_label(key)}: {done} of {total} steps "
                                     f"(loss, label scores, greedy answers; {self._eval_done + 1} of "
                                     f"{self._eval_models} models)…")
        elif kind == "result":
            _, key, results = item
            ratings.store_evaluation(self.project, ratings.run_id_of(key), key, results)
            self._eval_done += 1
            self.evaluate.view.refresh()
            self.results.refresh()

    def _evaluate_end(self, outcome: str, value) -> None:
        self._set_buttons()
        if outcome == "done":
            self.evaluate.set_status(f"Evaluated {self._eval_done} model{'s' if self._eval_done != 1 else ''} "
                                     "(prompts count as models) on "
                                     f"{self._eval_n} examples; stored with each run (the Runs page shows them).")
        elif outcome in ("stopped", "cancelled"):
            self.evaluate.set_status(f"Stopped; {self._eval_done} evaluation{'s' if self._eval_done != 1 else ''} "
                                     "finished and stored.")
        else:
            self.evaluate.set_status(f"Could not finish: {value}")
        if self._eval_done:
            self.context.runs_changed.emit()

    # -- chat ---------------------------------------------------------------------------

    @Slot()
    def send_chat(self) -> str:
        text = self.chat.input.toPlainText().strip()
        ref = self.chat.selected_ref()
        if not text or ref is None:
            return "refused"
        self.chat.show_message("")
        messages = self.chat.begin_turn(text, ref)
        self._chat_ref = ref
        task = _Task(CHAT, jobs.chat_job, (self._engine(), ref, messages, self.selection.sampling()),
                   self._chat_progress, self._chat_end)
        return self._launch(task)

    def _chat_progress(self, item) -> None:
        if item[0] == "piece":
            self.chat.add_piece(item[1])
        elif item[0] == "waiting":
            self.chat.show_message(f"Waiting for the device ({item[1]} is using it)…")

    def _chat_end(self, outcome: str, value) -> None:
        self._set_buttons()
        ref = self._chat_ref
        assert ref is not None  # set by send_chat before its job starts
        if outcome == "done":
            self.chat.show_message("")
            self.chat.end_turn(ref, value)
        else:
            self.chat.end_turn(ref, None)
            if outcome == "failed":
                self.chat.show_message(f"No answer: {value}")
            else:
                self.chat.show_message("")

    # -- adapter folders ----------------------------------------------------------------

    @Slot()
    def _ask_adapter_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose an adapter folder (PEFT format)",
                                                  str(self.project.path))
        if folder:
            self.add_adapter_folder(folder)

    def add_adapter_folder(self, folder: str | Path) -> Job:
        """Check ``folder`` off the GUI thread; add it to the models when it holds a loadable adapter."""
        folder = Path(folder)
        self.selection.show_model_message(f"Checking {folder.name}…")
        job = Job(jobs.check_folder_job, str(folder), parent=self)
        job.ended.connect(lambda outcome: self._folder_check_ended(job, folder, outcome))
        self._checks.add(job)
        job.start()
        return job

    def _folder_check_ended(self, job: Job, folder: Path, outcome: Outcome) -> None:
        self._checks.discard(job)
        self._folder_checked(folder, outcome.value)  # the problem in words, or None

    def _folder_checked(self, folder: Path, problem: str | None) -> None:
        if problem:
            self.selection.show_model_message(f"{folder} cannot be compared: {problem}")
            return
        self.selection.show_model_message("")
        ref = self.selection.add_folder_ref(folder)
        self.selection.set_checked([r.key for r in self.selection.checked_refs()] + [ref.key])
        self.context.status_message.emit(f"Added adapter {folder}")

    # -- pictures -----------------------------------------------------------------------

    def screenshot_states(self) -> dict:
        """Views for ``python -m ftstudio.gui.screenshots``, staged without running a model; they write
        sample runs, answers, votes and evaluations into the project (a throwaway copy there): see
        ``ftstudio.gui.compare.sample``."""
        from ftstudio.gui.compare.sample import SAMPLE_RUNS, stage_sample_state

        views = (("compare", "compare"), ("compare-blind", "blind"), ("compare-results", "results"),
                 ("compare-evaluation", "evaluate"), ("compare-chat", "chat"))
        return {name: (lambda tab=tab: stage_sample_state(self, tab, sample_runs=len(SAMPLE_RUNS)))
                for name, tab in views}

    # -- closing ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop what runs, wait for it, give the device back and let go of the model."""
        job = self._job
        if job is not None:
            if job.waiting:  # forgotten, not reported: the page is going
                job.ended.disconnect(self._job_ended)
                self._job, self._task = None, None
            job.stop()
            job.wait()
        for check in list(self._checks):
            check.wait()
        self._drop_engine()
