"""Held-out evaluation: loss, perplexity and, for short-answer tasks, exact
match of greedy answers against the references, overall and per label, with
the confusion of labels in the same table. ``EvaluationsView`` shows stored evaluations and is what
the Runs page embeds (``show_evaluations``)."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSpinBox, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from ftstudio.core import ratings
from ftstudio.core.project import Project
from ftstudio.gui import style

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
    rows = []
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
    """Stored evaluations: one row each, and for the selected one a table per label: how its
    answers spread over the labels (the confusion: rows the reference, columns the answer), how
    many examples and the share answered exactly.

    ``run_id`` shows that run's evaluations only; ``latest_only`` the newest
    evaluation per model.
    """

    def __init__(self, project: Project, run_id: str | None = None, latest_only: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.run_id = run_id
        self.latest_only = latest_only
        self.shown: list[ratings.StoredEvaluation] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.summary = _table(SUMMARY_COLUMNS)
        layout.addWidget(self.summary)
        self.per_label_title = QLabel("Per label")
        self.per_label_title.setObjectName("SectionTitle")
        layout.addWidget(self.per_label_title)
        self.per_label_hint = QLabel("Rows: the reference label; columns: what the model answered (green: "
                                     "right, red: wrong); then how many examples carry the label and the "
                                     "share answered exactly.")
        self.per_label_hint.setObjectName("Hint")
        self.per_label_hint.setWordWrap(True)
        layout.addWidget(self.per_label_hint)
        self.per_label = QTableWidget()
        self.per_label.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_label.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.per_label.setShowGrid(False)
        self.per_label.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.per_label.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.per_label)
        self.empty = QLabel()
        self.empty.setObjectName("Hint")
        layout.addWidget(self.empty)
        layout.addStretch(1)
        self.summary.itemSelectionChanged.connect(self._show_selected)
        self.refresh()

    def refresh(self) -> None:
        if self.latest_only:
            self.shown = sorted(ratings.latest_evaluations(self.project).values(), key=lambda e: e.key)
        else:
            self.shown = ratings.evaluations(self.project, self.run_id)
        self.summary.setRowCount(len(self.shown))
        for row, ev in enumerate(self.shown):
            r = ev.results
            loss, ppl, em = _num(r.get("loss")), _num(r.get("perplexity")), _num(r.get("exact_match"))
            cells = [
                _item(ratings.model_label(ev.key)),
                _item(str(r.get("examples", "—")), True),
                _item("—" if loss is None else f"{loss:.4f}", True),
                _item("—" if ppl is None else f"{ppl:.2f}", True),
                _item("—" if em is None else f"{em:.1%}", True),
                _item(ev.created_at[:19].replace("T", " ")),
            ]
            cells[0].setToolTip(ev.key)
            for col, item in enumerate(cells):
                self.summary.setItem(row, col, item)
        _fit_rows(self.summary, maximum=8)
        self.empty.setText("" if self.shown else "No evaluations yet.")
        self.empty.setVisible(not self.shown)
        if self.shown:
            self.summary.selectRow(0)
        self._show_selected()

    def selected(self) -> ratings.StoredEvaluation | None:
        rows = self.summary.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.shown):
            return None
        return self.shown[rows[0].row()]

    def select(self, model_key: str) -> bool:
        """Show the evaluation of ``model_key`` below the list; False if it is not listed."""
        for row, ev in enumerate(self.shown):
            if ev.key == model_key:
                self.summary.selectRow(row)
                return True
        return False

    def _show_selected(self) -> None:
        ev = self.selected()
        results = ev.results if ev else {}
        name = ratings.model_label(ev.key) if ev else ""
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
            table.horizontalHeaderItem(j).setToolTip(f"Answered “{pred}”")
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
        bar.addSpacing(12)
        bar.addWidget(QLabel("Exact match"))
        self.exact_match = QComboBox()
        for text, value in EXACT_MATCH_CHOICES:
            self.exact_match.addItem(text, value)
        self.exact_match.setToolTip("Compare greedy answers with the references word for word. Suits short "
                                    "answers such as labels. Auto: on when the references are a few words "
                                    "from a small set.")
        bar.addWidget(self.exact_match)
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
        self.run_button.clicked.connect(self.run_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        context.runs_changed.connect(self.view.refresh)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def set_status(self, text: str) -> None:
        self.status.setText(text)
