"""Help > System check: ``ftstudio doctor`` in a window. The checks import torch and run
a matmul on the GPU, so they run on a worker thread; each line is OK, a note, a warning
or a problem, with its fix."""

from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ftstudio.core import doctor as d
from ftstudio.gui import style
from ftstudio.gui.workers import Job, Outcome

log = logging.getLogger("ftstudio.gui")

BADGE = {  # status: (word, text colour, background)
    d.OK: ("OK", style.GOOD, style.GOOD_SOFT),
    d.NOTE: ("Note", style.MUTED, "#eef0f3"),
    d.WARNING: ("Warning", style.WARN, style.WARN_SOFT),
    d.PROBLEM: ("Problem", style.BAD, style.BAD_SOFT),
}


def _run_checks(report: Callable[[Any], None], interrupted: Callable[[], bool]) -> d.Report:  # worker thread
    from ftstudio.engine.doctor import run_checks

    return run_checks(progress=report)


class SystemCheckDialog(QDialog):
    """``SystemCheckDialog(parent, run=True)``; ``report`` holds the last result."""

    def __init__(self, parent: QWidget | None = None, run: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle("System check \u2014 FT Studio")
        self.resize(860, 600)
        self.report: d.Report | None = None
        self._job: Job | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        title = QLabel("System check")
        title.setObjectName("PageTitle")
        layout.addWidget(title)
        self.summary = QLabel("Checking\u2026")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.rows = QWidget()
        self.grid = QGridLayout(self.rows)
        self.grid.setContentsMargins(0, 6, 0, 6)
        self.grid.setHorizontalSpacing(14)
        self.grid.setVerticalSpacing(10)
        self.grid.setColumnStretch(2, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.rows)
        scroll.setStyleSheet("QScrollArea { border: none; background: transparent; }")
        layout.addWidget(scroll, 1)
        buttons = QHBoxLayout()
        self.copy_button = QPushButton("Copy report")
        self.copy_button.setToolTip("Copies the report as text, to paste into a bug report or an e-mail")
        self.copy_button.clicked.connect(self.copy_report)
        self.again_button = QPushButton("Check again")
        self.again_button.clicked.connect(self.run_checks)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addWidget(self.copy_button)
        buttons.addStretch(1)
        buttons.addWidget(self.again_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.copy_button.setEnabled(False)
        if run:
            self.run_checks()

    def is_running(self) -> bool:
        return self._job is not None

    @Slot()
    def run_checks(self) -> None:
        if self._job is not None:
            return
        self.summary.setText("Checking\u2026 (PyTorch loads first: a few seconds)")
        self.again_button.setEnabled(False)
        self._job = Job(_run_checks, parent=self)
        self._job.progressed.connect(self._progressed)
        self._job.ended.connect(self._ended)
        self._job.start()

    @Slot(object)
    def _progressed(self, title: object) -> None:
        self.summary.setText(f"Checking\u2026 {title} done")

    @Slot(object)
    def _ended(self, outcome: Outcome) -> None:
        self._job = None
        self.again_button.setEnabled(True)
        if outcome.done and isinstance(outcome.value, d.Report):
            self.show_report(outcome.value)
        else:
            log.error("the system check failed: %s\n%s", outcome.value, outcome.trace)
            self.summary.setText(f"The system check itself failed: {outcome.value} (details in the log)")

    def show_report(self, report: d.Report) -> None:
        self.report = report
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for row, check in enumerate(report.checks):
            word, colour, background = BADGE[check.status]
            badge = QLabel(word)
            badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
            badge.setFixedWidth(72)
            badge.setStyleSheet(
                f"color: {colour}; background: {background}; border-radius: 4px; "
                "padding: 2px 0; font-weight: 600;"
            )
            name = QLabel(check.title)
            name.setStyleSheet("font-weight: 600;")
            text = check.detail
            if check.fix:
                text += f"<br><span style='color:{style.TEXT}'>\u2192 {check.fix}</span>"
            detail = QLabel(text if check.fix else check.detail)
            detail.setTextFormat(Qt.TextFormat.RichText if check.fix else Qt.TextFormat.PlainText)
            detail.setWordWrap(True)
            detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            detail.setObjectName("Hint")
            self.grid.addWidget(badge, row, 0, Qt.AlignmentFlag.AlignTop)
            self.grid.addWidget(name, row, 1, Qt.AlignmentFlag.AlignTop)
            self.grid.addWidget(detail, row, 2)
        self.grid.setRowStretch(len(report.checks), 1)
        blocking = report.blocking
        if blocking:
            names = ", ".join(c.title for c in blocking)
            self.summary.setText(
                f"<b style='color:{style.BAD}'>{len(blocking)} problem(s) block training:</b> "
                f"{names}. Each says what to do."
            )
        else:
            warnings = [c for c in report.checks if c.status == d.WARNING]
            extra = f" {len(warnings)} warning(s) below say what would work better." if warnings else ""
            self.summary.setText(f"<b style='color:{style.GOOD}'>Nothing blocks training.</b>{extra}")
        self.copy_button.setEnabled(True)

    @Slot()
    def copy_report(self) -> None:
        if self.report is not None:
            QGuiApplication.clipboard().setText(self.report.text())

    def closeEvent(self, event) -> None:  # the checks finish on their own in a few seconds
        if self._job is not None:
            self._job.wait()
        super().closeEvent(event)
