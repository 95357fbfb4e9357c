"""The Train page: settings with a live estimate on the left, the dashboard of
the running (or last) run on the right, and Start / Stop / Resume.

A run is a row in the project's ``runs`` table and a folder ``runs/<id>/``,
created and updated through ``core.runs`` exactly as ``ftstudio train`` does:
status running, then finished, stopped or failed with steps, losses and a
message. The engine runs in a ``workers.Job`` (``train_job``) holding the
project's compute lock as "Training"; the run's row is made in the Job's
``prepare`` hook, once the lock is held. A comparison holding it makes Start
refuse.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QLabel, QMessageBox, QPushButton, QScrollArea, QSplitter, QVBoxLayout, QWidget,
)

from ftstudio.core import preferences, runs
from ftstudio.core.config import PREFERENCE_OBJECTIVES, ConfigError, Problem, TrainConfig, preset, validate
from ftstudio.core.events import (
    Checkpoint, EvalMetrics, Failed, Finished, FitPlan, Log, Progress, Sample, StepMetrics, read_events,
)
from ftstudio.core.project import Run
from ftstudio.core.run_speeds import speed_history
from ftstudio.engine.estimate import (
    CHARS_PER_TOKEN, DeviceBudget, MeasuredSpeed, ModelShape, ModelShapeError, cpu_budget, estimate_time, measured_speeds,
    model_shape,
)
from ftstudio.engine.fit import plan_run
from ftstudio.engine.estimate import with_preference_passes
from ftstudio.gui.page_header import page_layout
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.training.config_form import ConfigForm, model_title
from ftstudio.gui.training.dashboard import Dashboard
from ftstudio.gui.training.estimate_view import EstimateView
from ftstudio.gui.training.thread import train_job, training_threads
from ftstudio.gui.workers import Job, Outcome
from ftstudio.gui.pages import Page
from ftstudio.gui.guide import GUIDE_LINE, connect_guide_link

log = logging.getLogger("ftstudio.gui.training")

HOLDER = "Training"
CONFIG_SETTING = "train_config"
CLOSE_TIMEOUT_MS = 10 * 60 * 1000


def _detect_device(report, interrupted) -> DeviceBudget:
    from ftstudio.engine.device import device_info

    return DeviceBudget.from_info(device_info())


def _fetch_config(spec: str, *, report, interrupted) -> str:
    from ftstudio.engine.estimate import fetch_model_config

    return fetch_model_config(spec).name


def _download_model(spec: str, *, report, interrupted) -> str:
    from ftstudio.engine.models import download_model

    return str(download_model(spec, progress=lambda done, total: report((done, total)), should_stop=interrupted))


def history_events(run_dir: Path, resuming: bool = True) -> list:
    """What the dashboard shows of a run's earlier sessions: its curves, samples and progress; and,
    when only looking at the run (not resuming it), its log and how it ended."""
    keep = (StepMetrics, EvalMetrics, Sample, Progress) if resuming else \
        (StepMetrics, EvalMetrics, Sample, Progress, FitPlan, Log, Checkpoint, Finished, Failed)
    return [e for e in read_events(Path(run_dir) / "metrics.jsonl") if isinstance(e, keep)]


@dataclass(frozen=True)
class _RowResult:
    """The parts of a TrainResult a run row keeps (for showing a past run's outcome)."""

    steps: int
    train_loss: float | None
    eval_loss: float | None
    adapter_dir: Path


def describe_shape(shape: ModelShape) -> str:
    n = shape.total_params
    size = f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"
    text = (f"{size} weights \u00b7 {shape.num_layers} layers \u00b7 hidden size {shape.hidden_size:,} "
            f"\u00b7 vocabulary {shape.vocab_size:,}")
    if shape.source == "table":
        text += " \u00b7 shape from FT Studio's table of popular models"
    elif shape.source == "config":
        text += " \u00b7 shape from its config.json on the hub"
    return text


def not_downloaded_problem(shape: ModelShape) -> str:
    """Why Start waits for a model known only by its shape, with the size of the download."""
    size = f" (about {shape.download_bytes / 1e9:,.1f} GB)" if shape.download_bytes else ""
    return f"'{shape.name}' is not in the local Hugging Face cache yet: download it{size} to train"


class TrainPage(Page):
    """``TrainPage(context)``. The window calls ``can_close`` (asks, then stops and waits)
    and ``shutdown``; ``is_busy``, ``start``, ``stop``, ``resume`` and ``stop_and_wait`` are public."""

    run_started = Signal(str)  # run id
    run_finished = Signal(str, str)  # run id, "finished" | "stopped" | "failed"

    def __init__(self, context: ProjectContext, parent=None) -> None:
        super().__init__(parent)
        self.context = context
        self.project = context.project
        self._job: Job | None = None  # the training run
        self._run_id: str | None = None
        self._closing = False
        self._problems: list[Problem] = []
        self._blocking_problem = ""
        self._shapes: dict[str, ModelShape | ModelShapeError] = {}
        self._cpu = replace(cpu_budget(), cores=training_threads())
        self._gpu: DeviceBudget | None = None
        self._device_checked = False
        self._device_job: Job | None = None
        self._download_job: Job | None = None
        self._data = (0, 0, 0)  # training examples, their tokens (rough), held-out examples
        self._speeds: list[MeasuredSpeed] = []  # earlier runs' measured speeds, newest first
        self._fetch_job: Job | None = None
        self._preference_sizes: dict[str, dict[str, tuple[int, int]]] = {}  # objective -> training_sizes

        layout, head, self.data_label = page_layout(self, "Train")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue a stopped run from its last checkpoint")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; the run keeps its last checkpoint and can be resumed")
        self.start_button = QPushButton("Start training")
        self.start_button.setProperty("primary", True)
        for b in (self.resume_button, self.stop_button, self.start_button):
            b.setMinimumHeight(30)
            head.addWidget(b)

        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)
        # The empty state until the project's first run: where to learn the path.
        self.guide_hint = QLabel(f"No run yet: keep the Quick preset and press <b>Start training</b>. {GUIDE_LINE}")
        self.guide_hint.setObjectName("Hint")
        self.guide_hint.setWordWrap(True)
        connect_guide_link(self.guide_hint)
        layout.addWidget(self.guide_hint)

        self.form = ConfigForm()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.form)
        self.estimate = EstimateView()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(8)
        left_layout.addWidget(scroll, 1)
        left_layout.addWidget(self.estimate)
        left.setMinimumWidth(330)
        self.dashboard = Dashboard()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.dashboard)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([420, 680])
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter, 1)

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(400)
        self._save_timer.timeout.connect(self._save_config)
        self._data_timer = QTimer(self)
        self._data_timer.setSingleShot(True)
        self._data_timer.setInterval(500)
        self._data_timer.timeout.connect(self.refresh_data)

        self.start_button.clicked.connect(lambda _checked=False: self.start())
        self.stop_button.clicked.connect(lambda _checked=False: self.stop())
        self.resume_button.clicked.connect(lambda _checked=False: self.resume())
        self.form.changed.connect(self._settings_changed)
        self.form.download_requested.connect(self.download_model)
        self.form.fetch_config_requested.connect(self.fetch_config)
        self.estimate.suggestion_chosen.connect(self._apply_suggestion)
        context.runs_changed.connect(self._refresh_speeds)
        context.examples_changed.connect(self._examples_changed)
        context.runs_changed.connect(self._update_buttons)
        context.runs_changed.connect(self._update_guide_hint)
        context.compute.changed.connect(self._compute_changed)

        self._load_config()
        self._refresh_speeds(update=False)
        self.refresh_data()
        self._settings_changed()
        self._show_last_run()
        self._detect_device()
        self._update_guide_hint()

    # -- state ----------------------------------------------------------------------------

    @Slot()
    def _update_guide_hint(self) -> None:
        self.guide_hint.setVisible(not self.project.runs())

    def is_busy(self) -> bool:
        """A run is training (or stopping) on this page."""
        return self._job is not None

    @property
    def run_id(self) -> str | None:
        """The run shown on the dashboard (running or last)."""
        return self._run_id

    def problems(self) -> list[Problem]:
        return list(self._problems)

    def resumable_run(self) -> Run | None:
        """The run Resume continues: the one shown (else the newest), if it stopped with a checkpoint."""
        candidates = []
        if self._run_id:
            try:
                candidates.append(self.project.get_run(self._run_id))
            except KeyError:
                pass
        if not candidates:
            candidates = self.project.runs()[:1]
        for run in candidates:
            if self.is_busy() and run.id == self._run_id:
                continue
            if runs.can_resume(self.project, run):
                return run
        return None

    def _notify(self, text: str, kind: str = "info") -> None:
        colours = {"info": style.MUTED, "bad": style.BAD, "warn": style.WARN, "good": style.GOOD}
        self.notice.setStyleSheet(f"color: {colours.get(kind, style.MUTED)};")
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def _update_buttons(self) -> None:
        busy = self.is_busy()
        self.form.set_editable(not busy)
        ready = not busy and not self._problems and not self._blocking_problem
        self.start_button.setEnabled(ready)
        if busy:
            self.start_button.setToolTip("A run is training")
        elif self._problems or self._blocking_problem:
            n = len(self._problems) + bool(self._blocking_problem)
            self.start_button.setToolTip(f"{n} setting{'s' * (n != 1)} need{'s' * (n == 1)} attention (marked in red)")
        else:
            self.start_button.setToolTip("Create a new run with these settings and start training")
        stopping = self._job is not None and self._job.stop_requested
        self.stop_button.setEnabled(busy and not stopping)
        self.stop_button.setText("Stopping\u2026" if stopping else "Stop")
        candidate = None if busy else self.resumable_run()
        self.resume_button.setEnabled(candidate is not None)
        self.resume_button.setToolTip(f"Continue run {candidate.id} from its last checkpoint" if candidate else
                                      "Nothing to resume: a stopped run can be continued from its last checkpoint")

    # -- settings and estimate ------------------------------------------------------------

    def _load_config(self) -> None:
        saved = self.project.setting(CONFIG_SETTING)
        cfg = preset("quick")
        if isinstance(saved, dict):
            try:
                cfg = TrainConfig.from_dict(saved)
            except (ConfigError, TypeError):
                pass
        self.form.set_config(cfg)

    @Slot()
    def _save_config(self) -> None:
        try:
            self.project.set_setting(CONFIG_SETTING, self.form.config().to_dict())
        except Exception:  # a closed project at shutdown
            log.debug("could not save the train settings", exc_info=True)

    def _shape(self, spec: str) -> ModelShape:
        if spec not in self._shapes:
            try:
                self._shapes[spec] = model_shape(spec)
            except ModelShapeError as exc:
                self._shapes[spec] = exc
        found = self._shapes[spec]
        if isinstance(found, ModelShapeError):
            raise found
        return found

    def device_for(self, cfg: TrainConfig) -> DeviceBudget:
        if cfg.device == "cpu" or self._gpu is None:
            return self._cpu
        return self._gpu

    @Slot()
    def _settings_changed(self) -> None:
        """Validate, show problems beside their fields, and recompute the estimate (cheap: no torch)."""
        cfg = self.form.config()
        problems = validate(cfg)
        if self._device_checked and self._gpu is None and cfg.device == "cuda":
            problems.append(Problem("device", "no CUDA GPU is available here; choose Automatic or CPU"))
        self._problems = problems
        self.form.set_problems(problems)
        self._blocking_problem = ""
        shape = None
        if cfg.model:
            if isinstance(self._shapes.get(cfg.model), ModelShapeError):
                del self._shapes[cfg.model]  # look again: the folder may have been filled since
            try:
                shape = self._shape(cfg.model)
                if shape.source in ("table", "config"):
                    # Known before download: the estimate shows, Start waits for the weights.
                    self._blocking_problem = not_downloaded_problem(shape)
                    self.form.set_model_info(describe_shape(shape), self._blocking_problem)
                else:
                    self.form.set_model_info(describe_shape(shape))
            except ModelShapeError as exc:
                self._blocking_problem = str(exc)
                self.form.set_model_info("", str(exc))
        self._update_estimate(cfg, shape, problems)
        self._update_objective_notes()
        self._update_buttons()
        if not self.is_busy():
            self._save_timer.start()

    def _update_estimate(self, cfg: TrainConfig, shape: ModelShape | None, problems: list[Problem]) -> None:
        device = self.device_for(cfg)
        if shape is None:
            self.estimate.set_estimates(None, None, device, "The estimate appears once the model can be read.")
            return
        n_train, tokens, sequences, what, reference = self._training_sizes(cfg)
        try:
            # The auto-fit plan: how the engine will run these settings on this device (from the
            # smaller micro-batch an earlier run of this model came down to after running out of memory).
            plan = plan_run(cfg, shape, device, micro_batch_ceiling=runs.micro_batch_ceiling(self.project, cfg))
            planned = plan.applied_to(cfg)
            time = estimate_time(planned, shape, tokens, device, sequences, plan.micro_batch_tokens,
                                 self._speeds) if tokens else None
            if time is not None and cfg.objective in PREFERENCE_OBJECTIVES:
                time = with_preference_passes(time, cfg.objective, reference)
        except (TypeError, ValueError, ZeroDivisionError):
            self.estimate.set_estimates(None, None, device, "Fix the settings marked in red to see the estimate.")
            return
        note = f"for {n_train:,} {what} (about {tokens:,} tokens)" if tokens else \
            f"add {what} to see how long it takes"
        if cfg.method == "qlora" and device.kind == "cpu":
            note += "; QLoRA is several times slower than LoRA on a CPU"
        self.estimate.set_estimates(plan.estimate, time, device, note, plan)

    @Slot()
    def _refresh_speeds(self, update: bool = True) -> None:
        """Read the measured speeds of the project's earlier runs (for the time estimate)."""
        try:
            self._speeds = measured_speeds(speed_history(self.project))
        except Exception:  # a closed project at shutdown
            log.debug("could not read the runs' speeds", exc_info=True)
            return
        if update:
            self._settings_changed()

    @Slot(dict)
    def _apply_suggestion(self, changes: dict) -> None:
        """Make the change the plan suggests (QLoRA, a shorter context): the user asked for it."""
        if self.is_busy():
            return
        self.form.set_config(replace(self.form.config(), **changes))
        self._settings_changed()

    def _training_sizes(self, cfg: TrainConfig) -> tuple[int, int, int, str, int]:
        """(units, tokens they train on, sequences those are, what a unit is called, tokens of the
        reference pass) for ``cfg``'s objective: examples for SFT; pairs (both answers) for DPO,
        rated answers for KTO, and for both the reference pass over every training and held-out unit."""
        if cfg.objective not in PREFERENCE_OBJECTIVES:
            n_train, tokens, _ = self._data
            return n_train, tokens, n_train, "training examples", 0
        sizes = self._preference_sizes.get(cfg.objective, {})
        (units, chars), eval_chars = sizes.get("train", (0, 0)), sizes.get("eval", (0, 0))[1]
        if cfg.objective == "dpo":  # two sequences a pair, both trained
            return (units, int(chars / CHARS_PER_TOKEN), 2 * units, "training pairs",
                    int((chars + eval_chars) / CHARS_PER_TOKEN))
        # KTO trains one sequence an answer; the reference pass also reads its mismatched one
        return (units, int(chars / CHARS_PER_TOKEN), units, "rated answers",
                int(2 * (chars + eval_chars) / CHARS_PER_TOKEN))

    # -- data -----------------------------------------------------------------------------

    @Slot(list)
    def _examples_changed(self, _ids) -> None:
        self._data_timer.start()

    @Slot()
    def refresh_data(self) -> None:
        """Count the examples the engine will train on and roughly how many tokens they hold (one query)."""
        stats = self.project.trainable_sizes()
        n_train, chars = stats.get("train", (0, 0))
        n_eval = stats.get("eval", (0, 0))[0]
        self._data = (n_train, int(chars / CHARS_PER_TOKEN), n_eval)
        self.form.set_train_examples(n_train)
        if n_train:
            self.data_label.setText(f"{n_train:,} training examples \u00b7 {n_eval:,} held out")
        else:
            self.data_label.setText("No training examples yet: import or write some on the Data page")
        self._refresh_preferences()
        self._settings_changed()

    def _refresh_preferences(self) -> None:
        """The runs preference tuning can start from, and how many pairs and rated answers there are."""
        preferences.derive_from_votes(self.project)
        c = preferences.counts(self.project)
        starts = []
        for run in self.project.runs():
            adapter = self.project.run_dir(run.id) / "adapter"
            if (adapter / "adapter_config.json").exists():
                starts.append((f"Run {run.id} ({run.method.upper()})", str(adapter)))
        self.form.set_start_runs(starts)
        self._preference_counts = c
        self._preference_sizes = {o: preferences.training_sizes(self.project, o) for o in PREFERENCE_OBJECTIVES}
        self._update_objective_notes()

    def _update_objective_notes(self) -> None:
        c = getattr(self, "_preference_counts", None)
        if c is None:
            return
        pairs, held = c.pairs["train"], c.pairs["eval"]
        good, bad = c.desirable["train"], c.undesirable["train"]
        start = self.form.config().start_from
        from_run = preferences.run_of_adapter(self.project, start)
        where = f"Starts from run {from_run}." if from_run else ("Starts from the base model." if not start else
                                                               f"Starts from {start}.")
        rate = " Rate answers blind on the Compare page to make some." if not pairs else ""
        self.form.set_objective_notes({
            "dpo": f"{pairs:,} pairs to train on, {held:,} held out.{rate} {where}",
            "kto": f"{good:,} good and {bad:,} bad answers to train on.{rate if not good + bad else ''} {where}",
        })

    # -- downloading a hub model -------------------------------------------------------

    @Slot(str)
    def fetch_config(self, spec: str) -> None:
        """Fetch only hub model ``spec``'s config.json (a few KB) for its estimate, on a worker thread."""
        if self._fetch_job is not None:
            return
        job = Job(_fetch_config, spec, parent=self)
        job.ended.connect(self._fetch_ended)
        self._fetch_job = job
        self.form.show_download(0, 0, f"Fetching the config.json of {spec}\u2026")
        job.start()

    @Slot(object)
    def _fetch_ended(self, outcome: Outcome) -> None:
        self._fetch_job = None
        self.form.show_download(None, None)
        self._shapes.clear()
        self._settings_changed()
        if not outcome.done:
            log.info("fetching a config failed: %s", outcome.trace or outcome.value)
            self.form.set_model_info("", str(outcome.value))

    @Slot(str)
    def download_model(self, spec: str) -> None:
        """Fetch hub model ``spec`` into the local cache on a worker thread, with a progress bar."""
        if self._download_job is not None:
            return
        job = Job(_download_model, spec, parent=self)
        job.progressed.connect(self._download_progress)
        job.ended.connect(self._download_ended)
        self._download_job = job
        self.form.show_download(0, 0, f"Downloading {spec}\u2026")
        job.start()

    @Slot(object)
    def _download_progress(self, progress) -> None:
        done, total = progress
        self.form.show_download(done, total)

    @Slot(object)
    def _download_ended(self, outcome: Outcome) -> None:
        self._download_job = None
        self.form.show_download(None, None)
        if outcome.done:
            self._shapes.clear()  # the model can be read now
            self._notify(f"Downloaded to {outcome.value}", "info")
            self._settings_changed()
        else:
            log.info("download failed: %s", outcome.trace or outcome.value)
            self._settings_changed()
            self.form.set_model_info("", outcome.value)

    # -- device ---------------------------------------------------------------------------

    def _detect_device(self) -> None:
        job = Job(_detect_device, parent=self)
        job.ended.connect(self._device_detected)
        self._device_job = job
        job.start()

    @Slot(object)
    def _device_detected(self, outcome: Outcome) -> None:
        self._device_job = None
        self._device_checked = True
        if outcome.done:
            budget: DeviceBudget = outcome.value
            if budget.kind == "cuda":
                self._gpu = budget
            else:
                self._cpu = replace(budget, cores=training_threads())
        else:
            log.warning("device detection failed: %s", outcome.value)
        self._settings_changed()

    @property
    def device_checked(self) -> bool:
        return self._device_checked

    # -- running --------------------------------------------------------------------------

    def start(self) -> bool:
        """Create a run with the settings shown and start training it; False (with a message) if it cannot."""
        if self.is_busy():
            return False
        self._settings_changed()
        if self._problems or self._blocking_problem:
            self._notify("Fix the settings marked in red first.", "bad")
            return False
        try:
            plan = runs.plan_new(self.project, self.form.config())
        except runs.RunProblem as exc:
            if exc.kind == "no_data" and exc.objective != "sft":
                self._notify("There are no preference pairs to train on yet: rate answers blind on the Compare page "
                             "(a pick makes a pair) or import pairs on the Data page's Preferences view.", "bad")
            elif exc.kind == "no_data":
                self._notify("There are no training examples with answers yet: import some on the Data page or "
                             "label them on the Label page, then start again.", "bad")
            else:
                self._notify("Fix the settings marked in red first.", "bad")
            return False
        return self._begin(plan)

    def resume(self, run_id: str | None = None) -> bool:
        """Continue ``run_id`` (default: ``resumable_run()``) from its last checkpoint with its own settings."""
        if self.is_busy():
            return False
        if run_id is None:
            run = self.resumable_run()
            if run is None:
                self._notify("There is no stopped run to resume.", "bad")
                return False
        else:
            try:
                run = self.project.get_run(run_id)
            except KeyError:
                self._notify(f"There is no run {run_id} in this project.", "bad")
                return False
        try:
            plan = runs.plan_resume(self.project, run.id)
        except runs.RunProblem as exc:
            if exc.kind == "no_data":
                self._notify("There are no training examples with answers to resume on.", "bad")
            else:
                self._notify(f"Run {run.id} cannot be resumed: {exc}", "bad")
            return False
        return self._begin(plan)

    def _begin(self, plan: runs.RunPlan) -> bool:
        """Start the planned run once the device is ours; False (with the reason) when the device is
        busy or another process trains the run now."""
        job = Job(train_job, parent=self, lock=self.context.compute, holder=HOLDER,
                  prepare=lambda: self._open_run(plan))
        job.ended.connect(self._on_run_ended)
        state = job.start()
        if state == "refused":
            self._notify(f"The device is busy ({self.context.compute.holder}). Training can start once that is "
                         "finished or stopped; then press Start again.", "bad")
        if state != "started":
            return False
        self._job = job
        self._launched(plan.resume)
        return True

    def _open_run(self, plan: runs.RunPlan) -> tuple[Any, ...] | None:
        """With the device held, before training starts (the Job's ``prepare``): the run's row, and the
        dashboard set for it; the training function's arguments, or None when the run cannot begin."""
        if plan.resume:
            self.form.set_config(plan.config)
        try:
            run_id = runs.begin(self.project, plan)
        except runs.RunProblem as exc:
            self._notify(str(exc), "bad")
            return None
        cfg, data, resume = plan.config, plan.data, plan.resume
        run_dir = self.project.run_dir(run_id)
        self._run_id = run_id
        self.dashboard.reset()
        if resume:
            self.dashboard.ingest(history_events(run_dir))
        self.dashboard.set_state("Resuming" if resume else "Starting")
        method = cfg.method.upper() if cfg.objective == "sft" else f"{cfg.objective.upper()} ({cfg.method.upper()})"
        what = "examples" if cfg.objective == "sft" else "preference rows"
        from_run = preferences.run_of_adapter(self.project, cfg.start_from)
        self.dashboard.add_log(
            f"Run {run_id}: {method} on {model_title(cfg.model)}" + (f" from run {from_run}" if from_run else "")
            + f", {len(data.train):,} training and {len(data.eval):,} held-out {what}"
            + (" (resumed from its last checkpoint)" if resume else ""))
        self.dashboard.begin()
        # the earlier runs' smaller micro-batch after running out of memory goes to the engine's plan
        return (cfg, data, run_dir, resume, self.dashboard.queue.put, None, plan.micro_batch_ceiling)

    def _launched(self, resume: bool) -> None:
        run_id = self._run_id
        self._notify("")
        self.dashboard.set_state("Training")
        self._update_buttons()
        self.context.runs_changed.emit()
        self.context.status_message.emit(f"{'Resumed' if resume else 'Started'} run {run_id}")
        self.run_started.emit(run_id)

    def stop(self) -> None:
        """Ask the run to stop after the current step; it saves a checkpoint first."""
        if self._job is None or self._job.stop_requested:
            return
        self._job.stop()
        self.dashboard.set_state("Stopping")
        self.dashboard.add_log("Stopping after this step and saving a checkpoint\u2026")
        self._update_buttons()

    @Slot(object)
    def _on_run_ended(self, outcome: Outcome) -> None:
        self._job = None
        result = None if outcome.failed else outcome.value
        self.dashboard.end()
        run_id = self._run_id
        assert run_id is not None  # set by _launch
        if result is not None:
            status = runs.record_outcome(self.project, run_id, result)
        else:
            status = "failed"
            crash = f"{outcome.error_type}: {outcome.value}"
            log.error("training thread failed: %s\n%s", crash, outcome.trace)
            runs.record_crash(self.project, run_id, crash)
            self.dashboard.banner.show_message(
                "bad", "Training stopped on an unexpected error",
                html.escape(crash) + "<br>Details are in the log. Checkpoints already written are kept.")
        # The Job let go of the device before this: a job queued behind training may hold it now.
        self._compute_changed(self.context.compute.holder)
        self._show_outcome(status, result)
        self._update_buttons()
        self.context.runs_changed.emit()
        self.context.status_message.emit(f"Run {run_id} {status}")
        self.run_finished.emit(run_id, status)

    def _show_outcome(self, status: str, result) -> None:
        self.dashboard.set_state({"finished": "Finished", "stopped": "Stopped", "failed": "Failed"}.get(status, status))
        if result is None or status == "failed":
            return  # the dashboard shows the failure with its fix
        losses = []
        if result.train_loss is not None:
            losses.append(f"train loss {result.train_loss:.4f}")
        if result.eval_loss is not None:
            losses.append(f"held-out loss {result.eval_loss:.4f}")
        detail = (" \u00b7 " + ", ".join(losses)) if losses else ""
        if status == "finished":
            self.dashboard.banner.show_message(
                "good", f"Finished after {result.steps:,} steps{detail}",
                f"The adapter is saved in {html.escape(str(result.adapter_dir))}. See it beside earlier runs on the "
                "Runs page, and compare its answers with the base model on the Compare page.")
        else:
            self.dashboard.banner.show_message(
                "info", f"Stopped at step {result.steps:,}{detail}",
                "The last checkpoint is kept: <b>Resume</b> continues from it.")

    def _show_last_run(self) -> None:
        """On opening: the newest run, and a word about resuming it if it stopped."""
        newest = self.project.runs()[:1]
        if newest:
            self.show_run(newest[0].id)

    def show_run(self, run_id: str) -> bool:
        """Show a past run on the dashboard (its curves, samples, log and outcome); False while training."""
        if self.is_busy():
            return False
        try:
            run = self.project.get_run(run_id)
        except KeyError:
            return False
        run_dir = self.project.run_dir(run.id)
        self._run_id = run.id
        self.dashboard.reset()
        self.dashboard.ingest(history_events(run_dir, resuming=False))
        self.dashboard.redraw()
        state = {"finished": "Finished", "stopped": "Stopped", "failed": "Failed", "running": "Interrupted",
                 "interrupted": "Interrupted"}
        self.dashboard.set_state(state.get(run.status, run.status.capitalize()))
        if run.status in ("finished", "stopped"):
            result = _RowResult(run.steps, run.train_loss, run.eval_loss, run_dir / "adapter")
            self._show_outcome(run.status, result)
        if runs.can_resume(self.project, run):
            words = "was interrupted" if run.status in ("running", "interrupted") else run.status
            self._notify(f"Run {run.id} {words} at step {run.steps or '?'}. "
                         "Resume continues it from its last checkpoint.", "info")
        else:
            self._notify("")
        self._update_buttons()
        return True

    # -- pictures -------------------------------------------------------------------------

    def screenshot_states(self) -> dict:
        """Views for ``python -m ftstudio.gui.screenshots``: a finished sample run on the dashboard
        (written into the project, a throwaway copy there; see ``training.sample``) and the settings
        with the advanced section open."""
        from ftstudio.gui.training.sample import SAMPLE_RUNS, stage_sample_runs

        def finished():
            stage_sample_runs(self.project)
            self.context.runs_changed.emit()
            self.show_run(SAMPLE_RUNS[0][0])

        def settings():
            self.form.set_advanced_visible(True)
            self.form.layout().activate()
            self.form.adjustSize()
            scroll = self.form.parentWidget().parentWidget()
            QTimer.singleShot(0, lambda: scroll.verticalScrollBar().setValue(self.form.advanced_toggle.y() - 8))

        return {"train": finished, "train-settings": settings}

    def screenshot_cleanup(self) -> None:
        from ftstudio.gui.training.sample import remove_sample_runs

        remove_sample_runs(self.project)
        self.form.set_advanced_visible(False)
        self.context.runs_changed.emit()
        self.dashboard.reset()
        self.dashboard.set_state("Ready")
        self._run_id = None
        self._notify("")
        self._update_buttons()

    @Slot(str)
    def _compute_changed(self, holder: str) -> None:
        if holder and holder != HOLDER and not self.is_busy():
            self._notify(f"{holder} is using the device; training can start when it is done.", "warn")
        elif not holder and self.notice.text().endswith("training can start when it is done."):
            self._notify("")

    # -- closing --------------------------------------------------------------------------

    def stop_and_wait(self, timeout_ms: int = CLOSE_TIMEOUT_MS) -> bool:
        """Stop the run and wait (the window stays responsive) until its checkpoint is saved; False on timeout."""
        if self._job is None:
            return True
        self.stop()
        loop = QEventLoop()
        timer = QTimer(loop)
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)
        self.run_finished.connect(loop.quit)
        try:
            if self._job is not None:
                timer.start(timeout_ms)
                loop.exec()
        finally:
            self.run_finished.disconnect(loop.quit)
            timer.stop()
        return self._job is None

    def can_close(self) -> bool:
        """Asked before the project closes: a running run is stopped (keeping its checkpoint) if the user agrees."""
        if not self.is_busy():
            return True
        if self._closing:
            return False
        box = QMessageBox(QMessageBox.Icon.Question, "Training is running",
                          "A training run is in progress.", parent=self)
        box.setInformativeText("Stop it now? Its last checkpoint is kept, and Resume continues it later.")
        stop = box.addButton("Stop and close", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Keep running", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.exec()
        if box.clickedButton() is not stop:
            return False
        self._closing = True
        try:
            done = self.stop_and_wait()
        finally:
            self._closing = False
        if not done:
            self._notify("The run is still stopping; close again in a moment.", "warn")
        return done

    def shutdown(self) -> None:
        """Stop and wait for everything this page runs (blocking)."""
        self._save_timer.stop()
        self._data_timer.stop()
        for job in (self._job, self._device_job, self._download_job, self._fetch_job):
            if job is not None:
                job.stop()
                job.wait()
