"""How far annotators agree: Cohen's kappa per pair, agreement per label,
and the disagreements waiting for a reviewer."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)

from ftstudio.core.agreement import AgreementReport, kappa_words
from ftstudio.core.labelling import Labelling
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.labelling.setup import _card, swatch


def _pct(x: float | None) -> str:
    return "\u2014" if x is None else f"{100 * x:.0f}%"


def _kappa(x: float | None) -> str:
    return "\u2014" if x is None else f"{x:.2f}"


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    t.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    t.setShowGrid(False)
    t.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
    t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for col in range(1, len(headers)):
        t.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
    return t


ROW_HEIGHT = 28
MAX_FITTED_ROWS = 10  # beyond this many rows the tables scroll


def _fit(tables: list[QTableWidget]) -> None:
    """Make ``tables`` as tall as the longest of them needs (3 to MAX_FITTED_ROWS rows), so a few rows
    do not sit in a tall empty box; more rows scroll."""
    rows = min(MAX_FITTED_ROWS, max([3] + [t.rowCount() for t in tables]))
    for t in tables:
        height = t.horizontalHeader().sizeHint().height() + rows * ROW_HEIGHT + 2 * t.frameWidth() + 2
        t.setFixedHeight(height)


def _cell(text: str, right: bool = True, muted: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if muted:
        item.setForeground(QBrush(QColor(style.MUTED)))
    return item


class AgreementPanel(QWidget):
    review_requested = Signal()  # open the disagreements queue

    def __init__(self, context: ProjectContext, labelling: Labelling, parent=None) -> None:
        super().__init__(parent)
        self.context = context
        self.lab = labelling
        self.report: AgreementReport | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 4, 4)
        layout.setSpacing(14)

        head_card, head = _card("Agreement between annotators")
        self.headline = QLabel()
        self.headline.setTextFormat(Qt.TextFormat.RichText)
        self.headline.setWordWrap(True)
        head.addWidget(self.headline)
        self.explain = QLabel(
            "Cohen's kappa compares how often two annotators chose the same label with how often they would "
            "by chance, given how often each uses each label: 1 is perfect agreement, 0 no better than chance. "
            "Per label: of the times either of two annotators chose it, the share the other chose it too.")
        self.explain.setObjectName("Hint")
        self.explain.setWordWrap(True)
        head.addWidget(self.explain)
        review_row = QHBoxLayout()
        self.disagreements = QLabel()
        review_row.addWidget(self.disagreements)
        review_row.addStretch(1)
        self.review_button = QPushButton("Review disagreements")
        self.review_button.setProperty("primary", True)
        self.review_button.clicked.connect(self.review_requested)
        review_row.addWidget(self.review_button)
        head.addLayout(review_row)
        layout.addWidget(head_card)

        tables = QHBoxLayout()
        tables.setSpacing(14)
        pairs_card, pairs = _card("Pairs of annotators")
        self.pairs = _table(["Annotators", "Both labelled", "Agree", "Cohen's kappa"])
        pairs.addWidget(self.pairs)
        labels_card, labels = _card("Per label")
        self.per_label = _table(["Label", "Chosen", "Agreement"])
        labels.addWidget(self.per_label)
        self.per_label_card = labels_card  # shown only when agreement is over labels
        tables.addWidget(pairs_card, 3)
        tables.addWidget(labels_card, 2)
        self.tables = QWidget()
        self.tables.setLayout(tables)
        tables.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tables)
        layout.addStretch(1)
        context.examples_changed.connect(self._changed)
        context.labels_changed.connect(self._changed)

    @Slot()
    def _changed(self, *_args) -> None:
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    @staticmethod
    def _overlap_words(report: AgreementReport) -> str:
        compared = report.examples_compared
        over = f"{compared:,} example{'s' if compared != 1 else ''}"
        if len(report.annotators) == 2:
            return f"The two annotators agree on {_pct(report.observed)} of the {over} they both labelled."
        return (f"Where two of the {len(report.annotators)} annotators labelled the same example, they agree "
                f"{_pct(report.observed)} of the time ({over} labelled by two or more).")

    def refresh(self) -> AgreementReport:
        report = self.report = self.lab.agreement()
        compared = report.examples_compared
        if len(report.annotators) < 2 or compared == 0:
            who = ", ".join(report.annotators) or "nobody yet"
            self.headline.setText(
                f"<p style='font-size:13pt'>Not enough overlap to compare yet.</p>"
                f"<p>Agreement needs examples labelled by two people or more. Labelled so far by: "
                f"{html.escape(who)}. Ask a second annotator to label some of the same examples "
                "(they appear in their \u201cTo label\u201d queue).</p>")
        elif report.field == "label":
            k = report.kappa
            colour = style.GOOD if (k or 0) > 0.6 else style.WARN if (k or 0) > 0.4 else style.BAD
            self.headline.setText(
                f"<p><span style='font-size:22pt; font-weight:600; color:{colour}'>{_kappa(k)}</span>"
                f"&nbsp;&nbsp;<span style='font-size:13pt'>Cohen's kappa \u00b7 {kappa_words(k)} agreement</span>"
                f"</p><p>{self._overlap_words(report)}</p>")
        else:
            self.headline.setText(
                f"<p><span style='font-size:22pt; font-weight:600'>{_pct(report.observed)}</span>"
                f"&nbsp;&nbsp;<span style='font-size:13pt'>of answers agree (same words, ignoring case and "
                f"spacing)</span></p><p>{compared:,} examples answered by two or more of "
                f"{len(report.annotators)} annotators. Kappa needs labels; written answers are compared "
                "word for word.</p>")
        n = report.disagreements
        self.disagreements.setText(f"<b>{n:,}</b> disagreement{'s' if n != 1 else ''} waiting for a decision"
                                   if n else "No disagreements waiting for a decision.")
        self.review_button.setEnabled(n > 0)

        self.pairs.setRowCount(len(report.pairs))
        for row, p in enumerate(report.pairs):
            self.pairs.setItem(row, 0, _cell(f"{p.a}  \u00b7  {p.b}", right=False))
            self.pairs.setItem(row, 1, _cell(f"{p.n:,}"))
            self.pairs.setItem(row, 2, _cell(_pct(p.observed)))
            self.pairs.setItem(row, 3, _cell(_kappa(p.kappa) if report.field == "label" else "\u2014",
                                             muted=p.kappa is None))
        defs = self.lab.labels()
        colours = {d.name: d.colour for d in defs}
        order = {d.name: i for i, d in enumerate(defs)}  # as in the label set; labels outside it last
        per_label = sorted(report.per_label.items(), key=lambda kv: (order.get(kv[0], len(order)), str(kv[0])))
        self.per_label.setRowCount(len(per_label))
        for row, (label, info) in enumerate(per_label):
            item = _cell(str(label), right=False)
            item.setIcon(swatch(colours.get(label, style.MUTED), 12))
            self.per_label.setItem(row, 0, item)
            self.per_label.setItem(row, 1, _cell(f"{info['choices']:,}"))
            self.per_label.setItem(row, 2, _cell(_pct(info["agreement"])))
        self.per_label_card.setVisible(report.field == "label")
        _fit([self.pairs, self.per_label] if report.field == "label" else [self.pairs])
        self.tables.setVisible(compared > 0)
        return report
