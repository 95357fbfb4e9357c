"""Held-out evaluation: loss, perplexity and, for short-answer tasks, exact
match of greedy answers against the references, overall and per label, with
the confusion of labels in the same table. ``EvaluationsView`` shows stored evaluations and is what
the Runs page embeds (``show_evaluations``)."""

from __future__ import annotations

import math
from typing import Any, Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSpinBox, QTableWidget,
    QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from ftstudio.core import ratings, review, scores
from ftstudio.core.prompting import DEFAULT_SHOTS, Shot, choose_shots, label_set_for
from ftstudio.core.project import Project
from ftstudio.gui import style
from ftstudio.gui.compare.calibration_plot import ReliabilityDiagram
from ftstudio.gui.compare.mistakes import MistakesTable

SUMMARY_COLUMNS = ["Model", "Examples", "Loss", "Perplexity", "Exact match", "Evaluated"]
EXACT_MATCH_CHOICES = [("Auto", None), ("Always", True), ("Never", False)]


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def per_label_rows(per_label: Any) -> list[tuple[str, int | None, int | None, float | None]]:
    """(label, examples, correct, accuracy) from the shapes an evaluation may store."""
    rows: list[tuple[str, int | None, int | None, float | None]] = []
    items: Iterable[tuple[Any, Any]]
    if isinstance(per_label, dict):
        items = per_label.items()
    elif isinstance(per_label, list):
        items = [(d.get("label"), d) for d in per_label if isinstance(d, dict)]
    else:
        return rows
    for label, value in items:
        if isinstance(value, dict):
            n = value.get("n", value.get("count", value.get("examples", value.get("total"))))
            correct = value.get("correct", value.get("matches"))
            acc = _num(value.get("accuracy", value.get("exact_match")))
            if acc is None and n and correct is not None:
                acc = correct / n
            if correct is None and acc is not None and n:
                correct = round(acc * n)
        else:
            n, correct, acc = None, None, _num(value)
        rows.append(("(no label)" if label in (None, "") else str(label), n, correct, acc))
    return rows


def confusion_matrix(confusion: Any) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """(reference labels, predicted labels, counts) from the shapes an evaluation may store."""
    counts: dict[tuple[str, str], int] = {}
    if isinstance(confusion, dict) and "matrix" in confusion:
        labels = [str(x) for x in confusion.get("labels", [])]
        predicted = [str(x) for x in confusion.get("predicted_labels", labels)]
        for i, row in enumerate(confusion["matrix"]):
            for j, c in enumerate(row):
                if c:
                    counts[(labels[i], predicted[j])] = int(c)
    elif isinstance(confusion, dict):
        for ref, row in confusion.items():
            if isinstance(row, dict):
                for pred, c in row.items():
                    if c:
                        counts[(str(ref), str(pred))] = int(c)
    elif isinstance(confusion, list):
        for entry in confusion:
            if isinstance(entry, dict):
                ref = entry.get("reference", entry.get("label"))
                pred = entry.get("predicted", entry.get("prediction"))
                c = entry.get("count", 1)
            else:
                ref, pred, c = entry
            counts[(str(ref), str(pred))] = counts.get((str(ref), str(pred)), 0) + int(c)
    refs = sorted({r for r, _p in counts})
    preds = sorted({p for _r, p in counts}, key=lambda p: (p not in refs, refs.index(p) if p in refs else 0, p))
    return refs, preds, counts


def _item(text: str, right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _fit_rows(table: QTableWidget, minimum: int = 3, maximum: int = 8) -> None:
    """As tall as its rows (``minimum`` to ``maximum`` of them; more scroll)."""
    rows = min(maximum, max(minimum, table.rowCount()))
    height = table.horizontalHeader().sizeHint().height() + rows * table.verticalHeader().defaultSectionSize()
    table.setFixedHeight(height + 2 * table.frameWidth() + 2)


def _table(columns: list[str], stretch: int = 0) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setAlternatingRowColors(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setShowGrid(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


class EvaluationsView(QWidget):
    """Stored evaluations: at the top, one sentence on whether fine-tuning beat prompting; then a row
    per model (the base model's zero-shot and few-shot prompts and each adapter: exact match with its
    95% interval, the share right per label, the accuracy of its most likely label and its expected
    calibration error), and below, in tabs: the selected model's confusion of labels, the reliability
    diagram of every model, and the mistakes.

    ``run_id`` shows that run's evaluations only (every one of them); ``latest_only`` the newest
    evaluation per model.
    """

    open_example = Signal(int)
    review_requested = Signal(list)

    def __init__(self, project: Project, run_id: str | None = None, latest_only: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.run_id = run_id
        self.latest_only = latest_only
        self.shown: list[ratings.StoredEvaluation] = []
        self.rows: list[scores.ModelRow] = []
        self.labels: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.headline = QLabel()
        self.headline.setObjectName("Headline")
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-size: 11pt; font-weight: 600;")
        layout.addWidget(self.headline)
        self.summary = _table(SUMMARY_COLUMNS)
        layout.addWidget(self.summary)
        self.empty = QLabel()
        self.empty.setObjectName("Hint")
        layout.addWidget(self.empty)
        self.details = QTabWidget()
        self.details.setDocumentMode(True)
        layout.addWidget(self.details, 1)

        per_label_page = QWidget()
        pl = QVBoxLayout(per_label_page)
        pl.setContentsMargins(0, 6, 0, 0)
        self.per_label_title = QLabel("Per label")
        self.per_label_title.setObjectName("SectionTitle")
        pl.addWidget(self.per_label_title)
        self.per_label_hint = QLabel("Rows: the reference label; columns: what the model answered (green: "
                                     "right, red: wrong); then how many examples carry the label and the "
                                     "share answered exactly.")
        self.per_label_hint.setObjectName("Hint")
        self.per_label_hint.setWordWrap(True)
        pl.addWidget(self.per_label_hint)
        self.per_label = QTableWidget()
        self.per_label.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_label.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.per_label.setShowGrid(False)
        self.per_label.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.per_label.horizontalHeader().setStretchLastSection(True)
        pl.addWidget(self.per_label)
        pl.addStretch(1)
        self.details.addTab(per_label_page, "Per label")

        calibration_page = QWidget()
        cl = QVBoxLayout(calibration_page)
        cl.setContentsMargins(0, 6, 0, 0)
        self.calibration_hint = QLabel(
            "Each model scores every label by how likely it finds it as the answer. The diagram puts the "
            "examples into bins by the probability of the most likely label and shows how often that label "
            "was right: on the diagonal the model is as sure as it is right; below it, surer than right. "
            "ECE: the average distance from the diagonal, weighted by the examples in each bin.")
        self.calibration_hint.setObjectName("Hint")
        self.calibration_hint.setWordWrap(True)
        cl.addWidget(self.calibration_hint)
        self.reliability = ReliabilityDiagram()
        cl.addWidget(self.reliability, 1)
        self.details.addTab(calibration_page, "Calibration")

        self.mistakes = MistakesTable(project)
        self.details.addTab(self.mistakes, "Mistakes")
        self.mistakes.open_example.connect(self.open_example)
        self.mistakes.review_requested.connect(self.review_requested)
        self.summary.itemSelectionChanged.connect(self._show_selected)
        self.refresh()

    def refresh(self) -> None:
        if self.latest_only:
            self.shown = list(ratings.latest_evaluations(self.project).values())
        else:
            self.shown = ratings.evaluations(self.project, self.run_id)
        # Every stored evaluation of one run is a row of its own; otherwise the newest of each model.
        self.rows = scores.model_rows(self.shown, newest_only=self.latest_only)
        self.labels = sorted({label for row in self.rows for label in row.per_label})
        columns = ["Model", "Examples", "Loss", "Exact match", "95% interval", *self.labels, "Label accuracy",
                   "ECE", "Evaluated"]
        self.summary.clear()
        self.summary.setColumnCount(len(columns))
        self.summary.setHorizontalHeaderLabels(columns)
        tips = {"Exact match": "Share of greedy answers equal to the reference",
                "95% interval": "Where the exact match of all such examples lies, 95% of the time (Wilson)",
                "Label accuracy": "Share of examples whose most likely label (by the label scores) is right",
                "ECE": "Expected calibration error of the label scores: 0 is perfectly calibrated"}
        for c, name in enumerate(columns):
            header = self.summary.horizontalHeaderItem(c)
            if header is None:  # made by the labels above: never
                continue
            if name in tips:
                header.setToolTip(tips[name])
            elif name in self.labels:
                header.setToolTip(f"Share of the examples labelled “{name}” answered exactly")
        self.summary.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            interval = (f"{row.interval[0]:.0%}–{row.interval[1]:.0%}" if row.interval else "—")
            cells = [
                _item(row.name),
                _item(str(row.examples), True),
                _item("—" if row.loss is None else f"{row.loss:.4f}", True),
                _item("—" if row.exact_match is None else f"{row.exact_match:.1%}", True),
                _item(interval, True),
                *[_item("—" if row.per_label.get(label) is None else f"{row.per_label[label]:.0%}", True)
                  for label in self.labels],
                _item("—" if row.label_accuracy is None else f"{row.label_accuracy:.1%}", True),
                _item("—" if row.ece is None else f"{row.ece:.3f}", True),
                _item(row.created_at[:19].replace("T", " ")),
            ]
            cells[0].setToolTip(row.key)
            for col, item in enumerate(cells):
                self.summary.setItem(r, col, item)
        # The model's name as wide as it is (with a column per label the table scrolls sideways instead).
        self.summary.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.summary.horizontalHeader().setStretchLastSection(True)
        _fit_rows(self.summary, maximum=8)
        self.summary.setFixedHeight(self.summary.maximumHeight()
                                    + self.summary.horizontalScrollBar().sizeHint().height())
        self.headline.setText(scores.headline(self.rows) if self.latest_only else "")
        self.headline.setVisible(self.latest_only and bool(self.rows))
        self.empty.setText("" if self.rows else "No evaluations yet.")
        self.empty.setVisible(not self.rows)
        self.reliability.show_rows(self.rows)
        self.mistakes.show_rows(self.rows)
        if self.rows:
            self.summary.selectRow(0)
        self._show_selected()

    def selected_row(self) -> scores.ModelRow | None:
        rows = self.summary.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.rows):
            return None
        return self.rows[rows[0].row()]

    def select(self, model_key: str) -> bool:
        """Show the evaluation of ``model_key`` below the list; False if it is not listed."""
        for r, row in enumerate(self.rows):
            if row.key == model_key:
                self.summary.selectRow(r)
                return True
        return False

    def _show_selected(self) -> None:
        ev = self.selected_row()
        results = ev.results if ev else {}
        name = ev.name if ev else ""
        self.per_label_title.setText(f"Per label · {name}" if ev else "Per label")
        per_label = {label: (n, correct, acc) for label, n, correct, acc in per_label_rows(results.get("per_label"))}
        refs, preds, counts = confusion_matrix(results.get("confusion"))
        labels = refs + sorted(set(per_label) - set(refs))
        columns = [*preds, "Examples", "Exact match"]
        table = self.per_label
        table.clear()
        table.setRowCount(len(labels))
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(columns)
        table.setVerticalHeaderLabels(labels)
        for j, pred in enumerate(preds):
            if (header := table.horizontalHeaderItem(j)) is not None:  # made by the labels above
                header.setToolTip(f"Answered “{pred}”")
        for i, ref in enumerate(labels):
            for j, pred in enumerate(preds):
                c = counts.get((ref, pred), 0)
                item = _item(str(c) if c else "", True)
                if c:
                    item.setBackground(QColor(style.GOOD_SOFT if ref == pred else style.BAD_SOFT))
                    item.setToolTip(f"{c} example{'s' if c != 1 else ''} labelled “{ref}” answered "
                                    f"“{pred}”")
                table.setItem(i, j, item)
            n, correct, acc = per_label.get(ref, (None, None, None))
            if n is None and refs:
                n = sum(counts.get((ref, p), 0) for p in preds)
            table.setItem(i, len(preds), _item("—" if n is None else str(n), True))
            acc_item = _item("—" if acc is None else f"{acc:.1%}", True)
            if correct is not None and n:
                acc_item.setToolTip(f"{correct} of {n} answered exactly")
            table.setItem(i, len(preds) + 1, acc_item)
        _fit_rows(table, maximum=12)
        # Room for a horizontal scroll bar, which many labels need.
        table.setFixedHeight(table.maximumHeight() + table.horizontalScrollBar().sizeHint().height())
        has_em = results.get("exact_match") is not None
        for w in (self.per_label_title, self.per_label_hint, self.per_label):
            w.setVisible(has_em or not ev)
        self.details.setVisible(bool(self.rows))


def show_evaluations(context_or_project, run_id: str | None = None, parent: QWidget | None = None) -> EvaluationsView:
    """A widget listing the stored evaluations of ``run_id`` (all when None), for the Runs page."""
    project = getattr(context_or_project, "project", context_or_project)
    return EvaluationsView(project, run_id=run_id, parent=parent)


class EvaluateTab(QWidget):
    run_requested = Signal()
    stop_requested = Signal()

    def __init__(self, context, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        bar = QHBoxLayout()
        self.run_button = QPushButton("Evaluate checked models")
        self.run_button.setProperty("primary", True)
        self.run_button.setToolTip("Measure each checked model on the chosen examples (held-out by default).")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.run_button.setMinimumWidth(self.run_button.sizeHint().width())
        bar.addWidget(self.run_button)
        bar.addWidget(self.stop_button)
        bar.addStretch(1)
        layout.addLayout(bar)
        # The settings on a line of their own: beside the buttons they do not fit the tab at 1280 wide.
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Exact match"))
        self.exact_match = QComboBox()
        for text, value in EXACT_MATCH_CHOICES:
            self.exact_match.addItem(text, value)
        self.exact_match.setToolTip("Compare greedy answers with the references word for word. Suits short "
                                    "answers such as labels. Auto: on when the references are a few words "
                                    "from a small set.")
        bar.addWidget(self.exact_match)
        bar.addWidget(QLabel("Few-shot"))
        self.few_shot = QSpinBox()
        self.few_shot.setRange(0, 50)
        self.few_shot.setValue(DEFAULT_SHOTS)
        self.few_shot.setSuffix(" examples")
        self.few_shot.setSpecialValueText("off")
        self.few_shot.setToolTip("Besides its zero-shot prompt (the project's system prompt), the base model is "
                                 "measured with this many training examples put in front as earlier turns, "
                                 "chosen with a seed and balanced across labels: would a prompt have done?")
        bar.addWidget(self.few_shot)
        bar.addWidget(QLabel("Context"))
        self.max_length = QSpinBox()
        self.max_length.setRange(16, 32768)
        self.max_length.setValue(512)
        self.max_length.setSuffix(" tokens")
        bar.addWidget(self.max_length)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.status = QLabel("Measures every example chosen on the left that has an answer (all held-out "
                             "examples by default; the prompt limit does not apply).")
        self.status.setObjectName("Hint")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.view = EvaluationsView(context.project, latest_only=True)
        layout.addWidget(self.view, 1)
        self.view.open_example.connect(context.open_example)
        self.view.review_requested.connect(self.send_to_review)
        self.run_button.clicked.connect(self.run_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        context.runs_changed.connect(self.view.refresh)

    def prompting(self, examples: list[Any]) -> tuple[list[Shot], list[str] | None]:
        """The few-shot prompt's examples (from the training split, never one being measured) and the
        label set to score, for evaluating ``examples``."""
        measured = {ex.id for ex in examples}
        data = self.context.project.prepared_data()
        train = [(i, c) for i, c in zip(data.train_ids, data.train) if i not in measured]
        shots = choose_shots([c for _i, c in train], self.few_shot.value(), example_ids=[i for i, _c in train])
        references = [ex.reference_answer() or "" for ex in examples]
        return shots, label_set_for(self.context.project, references)

    def send_to_review(self, mistakes: list[dict[str, Any]]) -> int:
        n = review.send_to_review(self.context.project, mistakes, self.context.actor)
        self.view.mistakes.set_sent(n)
        self.context.review_changed.emit()
        return n

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def set_status(self, text: str) -> None:
        self.status.setText(text)
