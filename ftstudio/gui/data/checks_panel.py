"""Checks before training: the validation report as a list of findings (a
click selects the examples in the table) and a histogram of token lengths
against the context size.

The checks run on a worker thread with their own database connection: first
without token counts (fast), then with them once the tokenizer is loaded.
pyqtgraph is imported when the histogram is first needed, not at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPushButton, QSpinBox, QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from ftstudio.core.project import Project
from ftstudio.core.validation import KIND_TITLES, KINDS, ValidationReport, validate_project
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.data.tokens import shared_tokenizer, token_counter, training_choice
from ftstudio.gui.workers import Job, JobSlot, Outcome

if TYPE_CHECKING:
    from pyqtgraph import PlotWidget

DEFAULT_CONTEXT = 512  # TrainConfig.max_length
RECHECK_DELAY_MS = 1500
HISTOGRAM_BINS = 40


class _Stop(Exception):
    pass


def _run_checks(project_path: str, tokenizer, max_length: int, report, interrupted) -> ValidationReport:
    project = Project.open(project_path)
    try:
        first = validate_project(project, max_length=max_length)
        if tokenizer is None:
            return first
        report(first)
        count = token_counter(tokenizer)

        def counted(messages):
            if interrupted():
                raise _Stop
            return count(messages)

        try:
            return validate_project(project, count_tokens=counted, max_length=max_length)
        except _Stop:
            return first
    finally:
        project.close()


class ChecksPanel(QWidget):
    """``select_examples`` asks the page to select these ids; ``report_ready`` carries each new report."""

    select_examples = Signal(list)
    report_ready = Signal(object)

    def __init__(self, context: ProjectContext, parent=None) -> None:
        super().__init__(parent)
        self._context = context
        self.report: ValidationReport | None = None
        self._slot = JobSlot(self)  # a request while checks run runs them again afterwards
        self._plot: PlotWidget | None = None  # made with the first histogram: pyqtgraph loads late
        self._size_set_here = False  # a size typed here wins over the Train page's
        self._checked_with: str | None | bool = False  # the model whose tokens the report counts; False: none
        self._tokens = shared_tokenizer()
        self._tokens.ready.connect(self._tokenizer_ready)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        top = QHBoxLayout()
        self.run_button = QPushButton("Run checks")
        self.run_button.setProperty("primary", True)
        self.run_button.clicked.connect(self.run_checks)
        top.addWidget(self.run_button)
        top.addSpacing(12)
        top.addWidget(QLabel("Context size"))
        self.context_size = QSpinBox()
        self.context_size.setRange(16, 131072)
        self.context_size.setSingleStep(128)
        self.context_size.setValue(DEFAULT_CONTEXT)
        self.context_size.setSuffix(" tokens")
        self.context_size.setToolTip("The longest example training keeps whole; follows the Train page's "
                                     "context size until changed here")
        self.context_size.editingFinished.connect(self._context_size_changed)
        top.addWidget(self.context_size)
        top.addStretch(1)
        layout.addLayout(top)
        self.summary = QLabel("Checks look for empty turns, duplicates, examples longer than the context, "
                              "the same prompt in training and evaluation, and label balance.")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("Hint")
        layout.addWidget(self.summary)

        self._split = QSplitter(Qt.Orientation.Vertical)
        self.findings = QTreeWidget()
        self.findings.setHeaderHidden(True)
        self.findings.setWordWrap(True)
        self.findings.setUniformRowHeights(False)
        self.findings.itemClicked.connect(self._clicked)
        self._split.addWidget(self.findings)
        self._hist_box = QWidget()
        self._hist_layout = QVBoxLayout(self._hist_box)
        self._hist_layout.setContentsMargins(0, 6, 0, 0)
        self.hist_title = QLabel("Tokens per example")
        self.hist_title.setObjectName("SectionTitle")
        self._hist_layout.addWidget(self.hist_title)
        self.hist_note = QLabel("Token counts appear when the tokenizer has loaded.")
        self.hist_note.setObjectName("Hint")
        self.hist_note.setWordWrap(True)
        self._hist_layout.addWidget(self.hist_note)
        self._split.addWidget(self._hist_box)
        self._split.setStretchFactor(0, 3)
        self._split.setStretchFactor(1, 2)
        layout.addWidget(self._split, 1)

        # After a change the findings may be out of date: check again a moment after the
        # last change while the panel is on screen, or when it is shown next.
        self._stale = False
        self._again_timer = QTimer(self)
        self._again_timer.setSingleShot(True)
        self._again_timer.setInterval(RECHECK_DELAY_MS)
        self._again_timer.timeout.connect(self._recheck)
        context.examples_changed.connect(self._examples_changed)

    # -- running --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._slot.busy

    @Slot()
    def run_checks(self) -> None:
        self._slot.request(self._checks_job)

    def _checks_job(self) -> Job:
        self._tokens.ensure_loaded()
        self.run_button.setEnabled(False)
        self.summary.setText("Checking\u2026")
        self._stale = False
        self._checked_with = self._tokens.chosen if self._tokens.tokenizer is not None else False
        job = Job(_run_checks, str(self._context.project.path), self._tokens.tokenizer,
                  self.context_size.value(), parent=self)
        job.progressed.connect(self._show)
        job.ended.connect(self._checks_ended)
        return job

    @Slot(object)
    def _checks_ended(self, outcome: Outcome) -> None:
        self.run_button.setEnabled(True)
        if outcome.done:
            self._show(outcome.value)
        elif outcome.failed:
            self.summary.setText(f"The checks could not run: {outcome.value}")

    @Slot()
    def _tokenizer_ready(self) -> None:
        # Count tokens (again) once the chosen model's tokenizer is there, also when
        # a check without it is still running.
        if self._checked_with != self._tokens.chosen and (self.report is not None or self._slot.busy):
            self.run_checks()

    @Slot()
    def _context_size_changed(self) -> None:
        _model, length = training_choice(self._context.project)
        self._size_set_here = self.context_size.value() != (length or DEFAULT_CONTEXT)
        if self.report is not None and self.report.max_length != self.context_size.value():
            self.run_checks()

    @Slot(list)
    def _examples_changed(self, _ids: list) -> None:
        if self.report is None:
            return
        self._stale = True
        if self.isVisible():
            self._again_timer.start()

    @Slot()
    def _recheck(self) -> None:
        if self._stale and self.isVisible():
            self.run_checks()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._size_set_here:  # follow the Train page's context size
            _model, length = training_choice(self._context.project)
            if length and length != self.context_size.value():
                self.context_size.setValue(length)
                self._stale = self._stale or self.report is not None
        if self._stale:
            self._again_timer.start(0)

    def shutdown(self) -> None:
        self._again_timer.stop()
        self._slot.stop()
        self._slot.wait()

    # -- showing --------------------------------------------------------------------

    @Slot(object)
    def _show(self, report: ValidationReport) -> None:
        self.report = report
        grouped = report.by_kind()
        train, held = report.split_counts.get("train", 0), report.split_counts.get("eval", 0)
        problems = len(report.problem_ids())
        head = (f"{report.example_count:,} examples: {train:,} for training, {held:,} held out. ")
        head += (f"{problems:,} with a problem." if problems else "No problems found.")
        if held == 0 and report.example_count:
            head += " Nothing is held out for evaluation: move some examples to eval."
        self.summary.setText(head)
        self.findings.clear()
        for kind in KINDS:
            found = grouped.get(kind)
            if not found:
                continue
            ids = sorted({i for f in found for i in f.example_ids})
            top = QTreeWidgetItem([f"{KIND_TITLES[kind]} ({len(ids):,})"])
            top.setData(0, Qt.ItemDataRole.UserRole, ids)
            top.setForeground(0, _brush(style.BAD if kind != "no_answer" else style.WARN))
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            for f in found[:500]:
                child = QTreeWidgetItem([f.message])
                child.setData(0, Qt.ItemDataRole.UserRole, list(f.example_ids))
                child.setToolTip(0, f.message)
                top.addChild(child)
            self.findings.addTopLevelItem(top)
        labels = QTreeWidgetItem(["Labels (training / held out)"])
        font = labels.font(0)
        font.setBold(True)
        labels.setFont(0, font)
        for label, counts in sorted(report.label_counts.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
            name = "(no label)" if label is None else label
            warn = label is not None and held and counts.get("eval", 0) == 0
            item = QTreeWidgetItem([f"{name}: {counts.get('train', 0):,} / {counts.get('eval', 0):,}"
                                    + ("   none held out" if warn else "")])
            if warn:
                item.setForeground(0, _brush(style.WARN))
            labels.addChild(item)
        if labels.childCount():
            self.findings.addTopLevelItem(labels)
            labels.setExpanded(True)
        self._show_lengths(report)
        self.report_ready.emit(report)

    def _show_lengths(self, report: ValidationReport) -> None:
        if not report.token_lengths:
            if self._tokens.error:
                self.hist_note.setText(f"No token counts: {self._tokens.error}")
            else:
                self.hist_note.setText("Counting tokens\u2026" if self._tokens.loading or self.running
                                       else "Token counts appear when the tokenizer has loaded.")
            return
        import numpy as np
        import pyqtgraph as pg

        lengths = np.fromiter(report.token_lengths.values(), dtype=np.int64)
        limit = report.max_length or self.context_size.value()
        over = int((lengths > limit).sum())
        self.hist_note.setText(f"Longest {lengths.max():,}, average {lengths.mean():,.0f} tokens; "
                               f"{over:,} longer than the context size of {limit:,}.")
        if self._plot is None:
            pg.setConfigOptions(antialias=True)
            self._plot = pg.PlotWidget(background=style.SURFACE)
            self._plot.setMinimumHeight(160)
            self._plot.setMenuEnabled(False)
            self._plot.setMouseEnabled(x=False, y=False)
            self._plot.hideButtons()
            self._plot.getPlotItem().setLabel("bottom", "tokens", color=style.MUTED)
            self._plot.getPlotItem().setLabel("left", "examples", color=style.MUTED)
            for axis in ("bottom", "left"):
                self._plot.getPlotItem().getAxis(axis).setTextPen(style.MUTED)
                self._plot.getPlotItem().getAxis(axis).setPen(style.BORDER)
            self._hist_layout.addWidget(self._plot, 1)
            self._plot.show()  # now, not on the next turn of the event loop
        top = max(int(lengths.max()), limit) * 1.05
        counts, edges = np.histogram(lengths, bins=HISTOGRAM_BINS, range=(0, top))
        plot = self._plot.getPlotItem()
        plot.clear()
        width = edges[1] - edges[0]
        centres = edges[:-1] + width / 2
        inside = centres <= limit
        for mask, colour in ((inside, style.ACCENT), (~inside, style.BAD)):
            if mask.any():
                plot.addItem(pg.BarGraphItem(x=centres[mask], height=counts[mask], width=width * 0.9,
                                             brush=colour, pen=None))
        line = pg.InfiniteLine(pos=limit, angle=90, pen=pg.mkPen(style.BAD, width=2, style=Qt.PenStyle.DashLine),
                               label=f"context {limit:,}", labelOpts={"position": 0.9, "color": style.BAD})
        plot.addItem(line)
        plot.setXRange(0, top, padding=0)

    @Slot(QTreeWidgetItem, int)
    def _clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        ids = item.data(0, Qt.ItemDataRole.UserRole)
        if ids:
            self.select_examples.emit(list(ids))


def _brush(colour: str):
    from PySide6.QtGui import QBrush, QColor

    return QBrush(QColor(colour))
