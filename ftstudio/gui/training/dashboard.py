"""The live dashboard of a training run: progress, plots, log and sample answers.

Events arrive in an ``EventQueue`` (from the training thread) or through
``ingest`` (history read back from metrics.jsonl). Nothing is drawn per
event: a 100 ms timer drains the queue, appends to numpy buffers, and hands
the plots views of the buffers for the curves that changed.
"""

from __future__ import annotations

import html
import math
import time

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QSplitter, QTabWidget, QTextBrowser,
    QVBoxLayout, QWidget,
)

from ftstudio.core import events as ev
from ftstudio.gui import style
from ftstudio.gui.training import plots
from ftstudio.gui.training.series import Series, SmoothedSeries
from ftstudio.gui.training.thread import EventQueue

REDRAW_MS = 100
# Curves other than the loss are redrawn at most this often: painting a plot
# takes the GIL many times over, and while a run trains each of those waits.
SLOW_REDRAW_S = 0.5
LOSS_CURVES = frozenset({"loss", "loss_smooth", "eval"})
MAX_LOG_LINES = 5000
MAX_SAMPLE_ROUNDS = 30
GB = 1024**3

FAILURE_TITLES = {
    "oom": "Out of memory",
    "nan": "Training broke down",
    "data": "Problem with the training data",
    "model": "The model could not be loaded",
    "config": "Problem with the settings",
    "internal": "Training stopped on an unexpected error",
}


def clock(seconds: float | None) -> str:
    """0:42, 12:05, 1:02:33."""
    if seconds is None or not math.isfinite(seconds):
        return "\u2013"
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _si(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.2e}"
    return f"{value:.4g}"


class Banner(QFrame):
    """A coloured note above the plots: a failure with its fix, or the outcome of a run."""

    COLOURS = {"bad": (style.BAD_SOFT, style.BAD), "good": (style.GOOD_SOFT, style.GOOD),
               "info": (style.ACCENT_SOFT, style.ACCENT), "warn": (style.WARN_SOFT, style.WARN)}

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: 600;")
        self.body = QLabel()
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        self.kind = ""
        self.hide()

    def show_message(self, kind: str, title: str, body: str) -> None:
        soft, strong = self.COLOURS[kind]
        self.kind = kind
        self.setStyleSheet(f"QFrame#Banner {{ background: {soft}; border: 1px solid {strong}; border-radius: 6px; }}"
                           f"QFrame#Banner QLabel {{ color: {style.TEXT}; background: transparent; }}")
        self.title.setText(title)
        self.title.setStyleSheet(f"font-weight: 600; color: {strong};")
        self.body.setText(body)
        self.body.setVisible(bool(body))
        self.show()

    def clear(self) -> None:
        self.kind = ""
        self.hide()


class MetricTile(QFrame):
    """A caption and the latest value: cheap to update (a label), unlike a plot title."""

    def __init__(self, caption: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("Tile")
        self.setStyleSheet(f"QFrame#Tile {{ background: {style.SURFACE}; border: 1px solid {style.BORDER}; "
                           "border-radius: 6px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 5, 10, 6)
        layout.setSpacing(0)
        self.caption = QLabel(caption)
        self.caption.setObjectName("Hint")
        self.caption.setStyleSheet("font-size: 8pt;")
        self.value = QLabel("\u2013")
        self.value.setStyleSheet(f"font-size: 12pt; font-weight: 600; color: {style.TEXT};")
        layout.addWidget(self.caption)
        layout.addWidget(self.value)

    def set_value(self, text: str) -> None:
        if self.value.text() != text:
            self.value.setText(text)


class Dashboard(QWidget):
    """``Dashboard()``; the training thread's sink is ``dashboard.queue.put``.

    ``begin()`` starts the redraw timer, ``end()`` drains what is left and
    stops it; ``reset()`` clears everything; ``ingest(events)`` takes events
    directly (history, tests, the benchmark); ``redraw()`` is one timer tick.
    """

    failure_shown = Signal(object)  # the Failed event
    redrawn = Signal()
    clock = staticmethod(time.monotonic)  # what "every 500 ms" is measured with (the benchmark replaces it)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.queue = EventQueue()
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        self.redraw_count = 0
        self.events_seen = 0

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)

        # progress row
        row = QHBoxLayout()
        row.setSpacing(10)
        self.state_label = QLabel("Ready")
        self.state_label.setObjectName("SectionTitle")
        self.state_label.setMinimumWidth(90)
        row.addWidget(self.state_label)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("No run yet")
        self.progress.setMinimumHeight(22)
        self.progress.setStyleSheet(
            f"QProgressBar {{ border: 1px solid {style.BORDER}; border-radius: 5px; background: {style.SURFACE};"
            f" text-align: center; color: {style.TEXT}; }}"
            f"QProgressBar::chunk {{ background: {style.ACCENT_SOFT}; border-radius: 4px; }}")
        row.addWidget(self.progress, 1)
        self.time_label = QLabel("")
        self.time_label.setObjectName("Hint")
        self.time_label.setMinimumWidth(190)
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.time_label)
        layout.addLayout(row)

        # How the run fits the device (a FitPlan event), and the measured peak beside its estimate.
        self.plan_label = QLabel("")
        self.plan_label.setObjectName("Hint")
        self.plan_label.setWordWrap(True)
        self.plan_label.setTextFormat(Qt.TextFormat.PlainText)
        self.plan_label.hide()
        layout.addWidget(self.plan_label)

        self.banner = Banner()
        layout.addWidget(self.banner)

        tiles = QHBoxLayout()
        tiles.setSpacing(8)
        self.tiles = {key: MetricTile(caption) for key, caption in (
            ("loss", "Train loss"), ("eval", "Held-out loss"), ("lr", "Learning rate"),
            ("grad", "Grad norm"), ("speed", "Tokens/s"), ("memory", "GPU memory"),
            ("util", "GPU busy"), ("accuracy", "Reward accuracy"), ("margin", "Reward margin"))}
        self.tiles["accuracy"].setToolTip("Share of held-out pairs whose preferred answer the model now rates higher "
                                          "than the other, against where it started (train pairs until the first "
                                          "evaluation)")
        self.tiles["margin"].setToolTip("How much more the model now favours the preferred answers than the other "
                                        "ones, against where it started (beta times the log-ratio)")
        self.tiles["loss"].setToolTip("The training loss, smoothed (moving average of the steps)")
        for tile in self.tiles.values():
            tiles.addWidget(tile, 1)
        for key in ("memory", "util", "accuracy", "margin"):
            self.tiles[key].hide()
        layout.addLayout(tiles)

        # plots
        self.loss_plot = plots.styled_plot("Loss", bottom="step")
        plots.add_legend(self.loss_plot)
        self.lr_plot = plots.styled_plot("Learning rate", bottom="")
        self.grad_plot = plots.styled_plot("Gradient norm", bottom="")
        self.speed_plot = plots.styled_plot("Tokens per second", bottom="")
        self.memory_plot = plots.styled_plot("GPU memory (GB)", bottom="")
        plots.add_legend(self.memory_plot, left=True, bottom=True, columns=4)
        self.util_plot = plots.styled_plot("GPU utilisation (%)", bottom="")
        # Preference tuning (DPO/KTO): shown once a run reports them.
        self.accuracy_plot = plots.styled_plot("Reward accuracy", bottom="")
        plots.add_legend(self.accuracy_plot, left=True)
        self.margin_plot = plots.styled_plot("Reward margin", bottom="")
        self.logp_plot = plots.styled_plot("Answer log-probability", bottom="")
        plots.add_legend(self.logp_plot, left=True)

        self.curves = {
            "loss": plots.curve(self.loss_plot, plots.RAW, 1.0, "train"),
            "loss_smooth": plots.curve(self.loss_plot, style.ACCENT, 2.2, "train, smoothed"),
            "eval": plots.curve(self.loss_plot, plots.EVAL, 2.0, "held-out", symbol="o"),
            "lr": plots.curve(self.lr_plot, style.ACCENT, 1.8),
            "grad": plots.curve(self.grad_plot, "#9b4dca", 1.2),
            "speed": plots.curve(self.speed_plot, style.GOOD, 1.2),
            "allocated": plots.curve(self.memory_plot, style.ACCENT, 1.6, "allocated"),
            "reserved": plots.curve(self.memory_plot, "#9b4dca", 1.2, "reserved"),
            "peak": plots.curve(self.memory_plot, style.BAD, 1.2, "peak allocated", dashed=True),
            "peak_reserved": plots.curve(self.memory_plot, style.WARN, 1.6, "peak reserved"),
            "util": plots.curve(self.util_plot, style.GOOD, 1.2),
            "acc_train": plots.curve(self.accuracy_plot, plots.RAW, 1.2, "train"),
            "acc_eval": plots.curve(self.accuracy_plot, plots.EVAL, 2.0, "held-out", symbol="o"),
            "margin_train": plots.curve(self.margin_plot, plots.RAW, 1.2),
            "margin_eval": plots.curve(self.margin_plot, plots.EVAL, 2.0, symbol="o"),
            "chosen_train": plots.curve(self.logp_plot, style.GOOD, 1.2, "preferred"),
            "rejected_train": plots.curve(self.logp_plot, style.BAD, 1.2, "rejected"),
            # held-out: the same colours with dots (the legend would not fit four names)
            "chosen_eval": plots.curve(self.logp_plot, style.GOOD, 2.0, symbol="o"),
            "rejected_eval": plots.curve(self.logp_plot, style.BAD, 2.0, symbol="o"),
        }
        self._plot_of = {
            "loss": self.loss_plot, "loss_smooth": self.loss_plot, "eval": self.loss_plot, "lr": self.lr_plot,
            "grad": self.grad_plot, "speed": self.speed_plot, "allocated": self.memory_plot,
            "reserved": self.memory_plot, "peak": self.memory_plot, "peak_reserved": self.memory_plot,
            "util": self.util_plot,
            "acc_train": self.accuracy_plot, "acc_eval": self.accuracy_plot, "margin_train": self.margin_plot,
            "margin_eval": self.margin_plot, "chosen_train": self.logp_plot, "rejected_train": self.logp_plot,
            "chosen_eval": self.logp_plot, "rejected_eval": self.logp_plot,
        }
        self._curves_of: dict = {}
        for name, widget in self._plot_of.items():
            self._curves_of.setdefault(widget, []).append(name)
            widget.getPlotItem().disableAutoRange()
        self.util_plot.getPlotItem().setYRange(0, 100, padding=0.02)
        import pyqtgraph as pg

        self.total_line = pg.InfiniteLine(angle=0, movable=False, pen=plots.pen(style.MUTED, 1.2, dashed=True),
                                          label="card total", labelOpts={"position": 0.93, "color": style.MUTED,
                                                                         "anchors": [(1, 0), (1, 0)]})
        self.total_line.hide()
        self.memory_plot.addItem(self.total_line)
        self.estimate_line = pg.InfiniteLine(angle=0, movable=False, pen=plots.pen(style.WARN, 1.2, dashed=True),
                                             label="estimate", labelOpts={"position": 0.75, "color": style.WARN,
                                                                          "anchors": [(1, 1), (1, 1)]})
        self.estimate_line.hide()
        self.memory_plot.addItem(self.estimate_line)
        self.empty_hint = pg.TextItem("The loss curve appears here once training starts.", color=style.MUTED,
                                      anchor=(0.5, 0.5))
        self.loss_plot.getPlotItem().addItem(self.empty_hint, ignoreBounds=True)
        self.empty_hint.setPos(0.5, 0.5)

        self.plot_area = QWidget()
        self.plot_grid = QGridLayout(self.plot_area)
        self.plot_grid.setContentsMargins(0, 0, 0, 0)
        self.plot_grid.setSpacing(8)
        self._gpu_plots = False
        self._util_placed = False
        self._preference_plots = False
        self._new_buffers()
        self._place_plots()

        # log and samples
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(MAX_LOG_LINES)
        self.log_view.setPlaceholderText("Messages from the run appear here.")
        self.samples_view = QTextBrowser()
        self.samples_view.setOpenLinks(False)
        self.samples_view.setPlaceholderText("At each evaluation the model answers a few held-out "
                                             "prompts; its answers appear here.")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.samples_view, "Sample answers")
        self.tabs.addTab(self.log_view, "Log")

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.plot_area)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([460, 190])
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter, 1)

    # -- layout -------------------------------------------------------------------------

    def _place_plots(self) -> None:
        """Loss across the top; learning rate, gradient norm and speed below; GPU memory
        and utilisation in a third row once a GPU reports them."""
        grid = self.plot_grid
        preference = (self.accuracy_plot, self.margin_plot, self.logp_plot)
        for w in (self.loss_plot, self.lr_plot, self.grad_plot, self.speed_plot, self.memory_plot, self.util_plot,
                  *preference):
            grid.removeWidget(w)
        grid.addWidget(self.loss_plot, 0, 0, 1, 3)
        # A preference run's reward plots come right under the loss, the rest one row down.
        below = 1
        if self._preference_plots:
            for column, w in enumerate(preference):
                grid.addWidget(w, 1, column)
            below = 2
        grid.addWidget(self.lr_plot, below, 0)
        grid.addWidget(self.grad_plot, below, 1)
        grid.addWidget(self.speed_plot, below, 2)
        util = self._gpu_plots and self.series["util"].n > 0
        if self._gpu_plots:
            grid.addWidget(self.memory_plot, below + 1, 0, 1, 2 if util else 3)
            if util:
                grid.addWidget(self.util_plot, below + 1, 2)
        for column in range(3):
            grid.setColumnStretch(column, 1)
        grid.setRowStretch(0, 5 if self._gpu_plots else 3)
        if self._preference_plots:
            grid.setRowStretch(1, 3)
        grid.setRowStretch(below, 3 if self._gpu_plots else 2)
        grid.setRowStretch(below + 1, 3 if self._gpu_plots else 0)
        for row in range(below + 2, 4):
            grid.setRowStretch(row, 0)
        for w in preference:
            w.setVisible(self._preference_plots)
        self.memory_plot.setVisible(self._gpu_plots)
        self.util_plot.setVisible(util)
        self._util_placed = util

    def _new_buffers(self) -> None:
        self.series: dict[str, Series] = {name: Series() for name in self.curves}
        self.series["loss_smooth"] = SmoothedSeries(0.9)
        self._dirty: set[str] = set()
        self.last_drawn: set = set()  # the plots the last redraw changed (they repaint next)
        self._slow_drawn_at = float("-inf")
        self._ranges: dict = {}
        self.vram_total = 0
        self.fit_plan: ev.FitPlan | None = None
        self.estimated_bytes = 0  # the plan's estimate of the peak (the last plan that had one)
        self.peak_reserved = 0  # the highest peak reserved any step reported
        self._plan_dirty = False
        self.progress_event: ev.Progress | None = None
        self.last_metrics: ev.StepMetrics | None = None
        self.last_eval: ev.EvalMetrics | None = None
        self.last_preference: dict[str, ev.PreferenceMetrics] = {}
        self.outcome: ev.Finished | ev.Failed | None = None
        self._log_lines: list[str] = []
        self._sample_rounds: dict[int, list[ev.Sample]] = {}
        self._samples_dirty = False
        self._progress_dirty = False
        self._started_at: float | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything shown (a new run)."""
        self.queue.drain()
        self._new_buffers()
        for c in self.curves.values():
            c.setData([], [])
        self.total_line.hide()
        self.estimate_line.hide()
        self.plan_label.hide()
        self.empty_hint.show()
        for widget in self._curves_of:
            widget.getPlotItem().setXRange(0, 1, padding=0)
            if widget is not self.util_plot:
                widget.getPlotItem().setYRange(0, 1, padding=0)
        if self._gpu_plots or self._preference_plots:
            self._gpu_plots = self._preference_plots = False
            self._place_plots()
        self.log_view.clear()
        self.samples_view.clear()
        self.banner.clear()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Starting\u2026")
        self.time_label.setText("")
        for tile in self.tiles.values():
            tile.set_value("\u2013")
        for key in ("memory", "util", "accuracy", "margin"):
            self.tiles[key].hide()

    def begin(self) -> None:
        self._started_at = time.monotonic()
        self._timer.start()

    def end(self) -> None:
        self._timer.stop()
        self.redraw()

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def set_state(self, text: str) -> None:
        self.state_label.setText(text)

    def add_log(self, message: str, level: str = "info") -> None:
        self._log_lines.append(self._log_line(message, level))
        self._flush_log()

    # -- events -------------------------------------------------------------------------

    def ingest(self, events) -> None:
        """Take events into the buffers; nothing is drawn until ``redraw``."""
        s = self.series
        for e in events:
            self.events_seen += 1
            kind = type(e)
            if kind is ev.StepMetrics:
                x = float(e.step)
                if math.isfinite(e.loss):
                    s["loss"].append(x, e.loss)
                    s["loss_smooth"].append(x, e.loss)
                s["lr"].append(x, e.lr)
                if math.isfinite(e.grad_norm):
                    s["grad"].append(x, e.grad_norm)
                s["speed"].append(x, e.tokens_per_s)
                self._dirty.update(("loss", "loss_smooth", "lr", "grad", "speed"))
                if e.vram_total:
                    s["allocated"].append(x, e.vram_allocated / GB)
                    s["reserved"].append(x, e.vram_reserved / GB)
                    s["peak"].append(x, e.vram_peak / GB)
                    self.vram_total = e.vram_total
                    self._dirty.update(("allocated", "reserved", "peak"))
                    if e.vram_peak_reserved:  # older metrics.jsonl files do not have it
                        s["peak_reserved"].append(x, e.vram_peak_reserved / GB)
                        self._dirty.add("peak_reserved")
                        self.peak_reserved = max(self.peak_reserved, e.vram_peak_reserved)
                        self._plan_dirty = True
                if e.gpu_util is not None:
                    s["util"].append(x, e.gpu_util)
                    self._dirty.add("util")
                self.last_metrics = e
            elif kind is ev.Progress:
                self.progress_event = e
                self._progress_dirty = True
            elif kind is ev.EvalMetrics:
                s["eval"].append(float(e.step), e.eval_loss)
                self._dirty.add("eval")
                self.last_eval = e
                self._log_lines.append(self._log_line(f"Step {e.step}: held-out loss {e.eval_loss:.4f}"))
            elif kind is ev.PreferenceMetrics:
                x, split = float(e.step), e.split
                for name, value in (("acc", e.reward_accuracy), ("margin", e.reward_margin),
                                    ("chosen", e.chosen_logp), ("rejected", e.rejected_logp)):
                    if value is not None and math.isfinite(value):
                        s[f"{name}_{split}"].append(x, value)
                        self._dirty.add(f"{name}_{split}")
                self.last_preference[split] = e
                if split == "eval":
                    margin = f", margin {e.reward_margin:+.3f}" if e.reward_margin is not None else ""
                    self._log_lines.append(self._log_line(
                        f"Step {e.step}: held-out reward accuracy {e.reward_accuracy:.2f}{margin}"))
            elif kind is ev.FitPlan:
                self.fit_plan = e
                if e.estimated_bytes:
                    self.estimated_bytes = e.estimated_bytes
                self._plan_dirty = True
                if e.reason == "out_of_memory":
                    self.banner.show_message(
                        "warn", f"Ran out of memory at step {e.step + 1}: the run goes on",
                        html.escape(f"Step {e.step + 1} was redone on the same examples with micro-batches of "
                                    f"{e.micro_batch_tokens:,} tokens; each update is the same as before. "
                                    "The next runs of this project start from this size."))
            elif kind is ev.Sample:
                self._sample_rounds.setdefault(e.step, []).append(e)
                self._samples_dirty = True
            elif kind is ev.Checkpoint:
                self._log_lines.append(self._log_line(f"Step {e.step}: checkpoint saved"))
            elif kind is ev.Log:
                self._log_lines.append(self._log_line(e.message, e.level))
            elif kind is ev.Finished:
                self.outcome = e
                self._progress_dirty = True
                if e.stopped_early:
                    self._log_lines.append(self._log_line(f"Stopped at step {e.steps}; the checkpoint is kept"))
                else:
                    self._log_lines.append(self._log_line(f"Finished after {e.steps} steps; adapter saved"))
            elif kind is ev.Failed:
                self.outcome = e
                self._progress_dirty = True
                self._log_lines.append(self._log_line(e.message, "error"))
                self.show_failure(e)

    def show_failure(self, failure: ev.Failed) -> None:
        body = html.escape(failure.message)
        if failure.suggestion:
            body += f"<br><b>What to do:</b> {html.escape(failure.suggestion)}"
        if failure.last_checkpoint:
            step = failure.last_checkpoint.rstrip("/").rsplit("step-", 1)[-1]
            body += (f"<br><b>Kept:</b> the checkpoint at step {html.escape(step)}; "
                     "Resume continues from there.")
        self.banner.show_message("bad", FAILURE_TITLES.get(failure.kind, "Training stopped"), body)
        self.failure_shown.emit(failure)

    @Slot()
    def redraw(self) -> None:
        """One timer tick: take what the queue holds and redraw what changed."""
        pending = self.queue.drain()
        if pending:
            self.ingest(pending)
        if not self.isVisible() and self.running:
            return  # another page is shown: keep the buffers, draw when shown
        drew = False
        if self._dirty:
            self._draw_curves()
            drew = True
        if self._progress_dirty:
            self._draw_progress()
            drew = True
        elif self.running and self._started_at is not None and self.progress_event is None:
            self.time_label.setText(f"Preparing\u2026 {clock(time.monotonic() - self._started_at)}")
        if self._log_lines:
            self._flush_log()
        if self._plan_dirty:
            self._draw_plan()
        if self._samples_dirty:
            self._draw_samples()
            drew = True
        self.redraw_count += 1
        if drew:
            self.redrawn.emit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.redraw()

    # -- drawing ------------------------------------------------------------------------

    def _draw_curves(self) -> None:
        s = self.series
        if (s["allocated"].n and not self._gpu_plots) or (s["util"].n and not self._util_placed):
            self._gpu_plots = True
            self._place_plots()
        if s["acc_train"].n + s["acc_eval"].n and not self._preference_plots:
            self._preference_plots = True
            self._place_plots()
        now = self.clock()
        slow_due = now - self._slow_drawn_at >= SLOW_REDRAW_S or not self.running
        touched = set()
        for name in list(self._dirty):
            if name in LOSS_CURVES or slow_due:
                self.curves[name].setData(s[name].x, s[name].y)
                self._dirty.discard(name)
                touched.add(self._plot_of[name])
        if slow_due:
            self._slow_drawn_at = now
        for widget in touched:
            self._fit_ranges(widget)
        self.last_drawn = touched
        if self.empty_hint.isVisible() and (s["loss"].n or s["eval"].n):
            self.empty_hint.hide()
        if self.vram_total and not self.total_line.isVisible():
            total = self.vram_total / GB
            self.total_line.setValue(total)
            self.total_line.show()
            self.memory_plot.getPlotItem().setYRange(0, total * 1.1, padding=0)
        if self.vram_total and self.estimated_bytes:
            self.estimate_line.setValue(self.estimated_bytes / GB)
            self.estimate_line.show()
        self._draw_tiles()

    def _draw_tiles(self) -> None:
        m, t = self.last_metrics, self.tiles
        if self.series["loss_smooth"].n:
            t["loss"].set_value(f"{self.series['loss_smooth'].last():.4f}")
        if self.last_eval is not None:
            t["eval"].set_value(f"{self.last_eval.eval_loss:.4f}")
        shown = self.last_preference.get("eval") or self.last_preference.get("train")
        if shown is not None:
            t["accuracy"].show()
            t["margin"].show()
            t["accuracy"].set_value(f"{shown.reward_accuracy:.0%}")
            t["margin"].set_value("\u2013" if shown.reward_margin is None else f"{shown.reward_margin:+.3f}")
        if m is None:
            return
        t["lr"].set_value(_si(m.lr))
        t["grad"].set_value(f"{m.grad_norm:.3g}")
        t["speed"].set_value(f"{m.tokens_per_s:,.0f}")
        if m.vram_total:
            t["memory"].show()
            t["memory"].set_value(f"{m.vram_allocated / GB:.1f} / {m.vram_total / GB:.0f} GB")
            tip = (f"Allocated {m.vram_allocated / GB:.2f} GB, reserved {m.vram_reserved / GB:.2f} GB; peak allocated "
                   f"{m.vram_peak / GB:.2f} GB")
            if self.peak_reserved:
                tip += f", peak reserved {self.peak_reserved / GB:.2f} GB"
            if self.estimated_bytes:
                tip += f" (estimated {self.estimated_bytes / GB:.2f} GB)"
            t["memory"].setToolTip(tip + f" of {m.vram_total / GB:.1f} GB")
        if m.gpu_util is not None:
            t["util"].show()
            t["util"].set_value(f"{m.gpu_util:.0f}%")

    def _fit_ranges(self, widget) -> None:
        """Axis ranges that change only when the data leaves them (or fills under half):
        re-laying out an axis is the costly part of a redraw."""
        names = self._curves_of[widget]
        xs = [self.series[n].x for n in names if self.series[n].n]
        ys = [self.series[n].y for n in names if self.series[n].n]
        if not xs:
            return
        item = widget.getPlotItem()
        total = self.progress_event.total_steps if self.progress_event is not None else 0
        x_hi = max(float(x[-1]) for x in xs)
        x_lo = min(float(x[0]) for x in xs)
        old_x = self._ranges.get((widget, "x"))
        if total and x_hi <= total:
            new_x = (0.0, float(total))
        elif old_x is None or x_hi > old_x[1] or x_lo < old_x[0]:
            new_x = (min(0.0, x_lo), max(10.0, x_hi * 1.25))
        else:
            new_x = old_x
        if new_x != old_x:
            item.setXRange(*new_x, padding=0.01)
            self._ranges[(widget, "x")] = new_x
        if widget is self.util_plot or (widget is self.memory_plot and self.vram_total):
            return
        lo = min(float(y.min()) for y in ys)
        hi = max(float(y.max()) for y in ys)
        old = self._ranges.get((widget, "y"))
        if old is None or lo < old[0] or hi > old[1] or (hi - lo) < 0.5 * (old[1] - old[0]):
            span = max(hi - lo, abs(hi) * 0.05, 1e-12)
            new = (lo - 0.1 * span, hi + 0.1 * span)
            item.setYRange(*new, padding=0)
            self._ranges[(widget, "y")] = new

    def _draw_progress(self) -> None:
        self._progress_dirty = False
        p = self.progress_event
        if p is not None:
            total = max(1, p.total_steps)
            self.progress.setRange(0, total)
            self.progress.setValue(min(p.step, total))
            self.progress.setFormat(f"Step {p.step:,} of {p.total_steps:,}  \u00b7  epoch {p.epoch:.2f}")
            eta = f"  \u00b7  about {clock(p.eta_s)} left" if self.running and self.outcome is None else ""
            self.time_label.setText(f"Elapsed {clock(p.elapsed_s)}{eta}")
        o = self.outcome
        if isinstance(o, ev.Finished) and not o.stopped_early and p is not None:
            self.progress.setValue(self.progress.maximum())

    def plan_text(self) -> str:
        """The plan line: how the run fits the device, and the measured peak beside the estimate."""
        p = self.fit_plan
        if p is None:
            return ""
        line = f"Plan: {p.text}"
        if self.peak_reserved:
            measured = f"measured peak {self.peak_reserved / GB:.1f} GB"
            if p.estimated_bytes:
                measured += f" (estimated {self.estimated_bytes / GB:.1f} GB)"
            elif self.estimated_bytes:  # a plan changed by running out of memory has no estimate of its own
                measured += f" (estimated {self.estimated_bytes / GB:.1f} GB for the first plan)"
            line += f"  \u00b7  {measured}"
        return line

    def _draw_plan(self) -> None:
        self._plan_dirty = False
        text = self.plan_text()
        self.plan_label.setText(text)
        self.plan_label.setVisible(bool(text))

    def _draw_samples(self) -> None:
        self._samples_dirty = False
        rounds = sorted(self._sample_rounds.items(), reverse=True)[:MAX_SAMPLE_ROUNDS]
        parts = []
        for step, samples in rounds:
            parts.append(f"<p style='margin:10px 0 4px 0; color:{style.MUTED}; font-weight:600'>Step {step}</p>")
            for smp in samples:
                prompt = html.escape(smp.prompt if len(smp.prompt) <= 220 else smp.prompt[:220] + "\u2026")
                answer = html.escape(smp.output) or f"<i style='color:{style.MUTED}'>(no answer)</i>"
                mark = ""
                if smp.reference is not None:
                    same = smp.output.strip() == smp.reference.strip()
                    colour = style.GOOD if same else style.MUTED
                    words = "\u2713 matches" if same else "expected"
                    mark = (f"<br><span style='color:{colour}'>{words}: "
                            f"{html.escape(smp.reference[:220])}</span>")
                parts.append(
                    f"<table width='100%' cellspacing='0' cellpadding='6' style='margin-bottom:4px; "
                    f"background:#f8f9fb'><tr><td><span style='color:{style.MUTED}'>{prompt}</span><br>"
                    f"<b>{answer}</b>{mark}</td></tr></table>")
        self.samples_view.setHtml("".join(parts))

    @staticmethod
    def _log_line(message: str, level: str = "info") -> str:
        stamp = time.strftime("%H:%M:%S")
        prefix = {"warning": "Warning: ", "error": "Error: "}.get(level, "")
        return f"{stamp}  {prefix}{message}"

    def _flush_log(self) -> None:
        lines, self._log_lines = self._log_lines, []
        self.log_view.appendPlainText("\n".join(lines))

    # -- for tests and the window -------------------------------------------------------

    def points(self, name: str) -> int:
        """How many points the curve ``name`` shows."""
        x, _ = self.curves[name].getOriginalDataset()
        return 0 if x is None else len(x)
