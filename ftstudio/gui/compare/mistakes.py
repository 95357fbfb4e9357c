"""The evaluation's mistakes: every held-out example a model answered wrongly,
the surest mistakes first (a model sure of a "wrong" answer often points at a
wrong label). A click opens the example on the Data page; "Send to review"
puts the chosen ones in the Label page's queue "Review: the model disagrees"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ftstudio.core.project import Project
from ftstudio.core.scores import ModelRow
from ftstudio.gui.page_header import section_layout
from ftstudio.gui.plain import plain_tip

COLUMNS = ["Prompt", "Expected", "Answer", "Confidence", "Model"]
PROMPT_WIDTH, ANSWER_WIDTH = 250, 200  # pixels; the user may widen them
PROMPT_CHARS = 140


def mistakes_of(rows: Sequence[ModelRow]) -> list[dict[str, Any]]:
    """The wrong answers of ``rows``' evaluations, surest first: dicts with example_id, reference, answer,
    confidence (None without label scores), model (key) and model_name."""
    out = []
    for row in rows:
        for p in row.results.get("predictions") or []:
            if p.get("correct") or "example_id" not in p:
                continue
            out.append(
                {
                    "example_id": int(p["example_id"]),
                    "reference": p.get("reference", ""),
                    "answer": p.get("answer", ""),
                    "confidence": p.get("confidence"),
                    "scores": p.get("scores") or {},
                    "model": row.key,
                    "model_name": row.name,
                }
            )
    out.sort(
        key=lambda m: (m["confidence"] is None, -(m["confidence"] or 0.0), m["model_name"], m["example_id"])
    )
    return out


class MistakesTable(QWidget):
    open_example = Signal(int)
    review_requested = Signal(list)  # the chosen mistakes (dicts of ``mistakes_of``)

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.mistakes: list[dict[str, Any]] = []
        layout, bar, self.title = section_layout(self, "Mistakes")
        self.open_button = QPushButton("Open on the Data page")
        self.open_button.setToolTip("Show the chosen example on the Data page (or double-click a row)")
        self.review_button = QPushButton("Send to review")
        self.review_button.setToolTip(
            "Put the chosen examples in the Label page's queue "
            "“Review: the model disagrees”, where an expert confirms or corrects "
            "their label"
        )
        bar.addWidget(self.open_button)
        bar.addWidget(self.review_button)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The prompt and a base model's answer (often a whole sentence) are cut short (their tooltips
        # hold them), so the expected label, the confidence and the model stay in view.
        for column, width in ((0, PROMPT_WIDTH), (2, ANSWER_WIDTH)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        self.table.setMinimumHeight(180)
        layout.addWidget(self.table, 1)
        self.status = QLabel("")
        self.status.setObjectName("Hint")
        layout.addWidget(self.status)
        self.table.cellDoubleClicked.connect(lambda row, _col: self._open_row(row))
        self.open_button.clicked.connect(self._open_current)
        self.review_button.clicked.connect(self._send_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def show_rows(self, rows: Sequence[ModelRow]) -> None:
        self.mistakes = mistakes_of(rows)
        prompts: dict[int, str] = {}
        ids = sorted({m["example_id"] for m in self.mistakes})
        if ids:
            for ex in self.project.get_examples(ids):
                prompts[ex.id] = " ".join(ex.prompt_text().split())
        self.table.setRowCount(len(self.mistakes))
        for r, m in enumerate(self.mistakes):
            prompt = prompts.get(m["example_id"], f"(example {m['example_id']} is no longer in the project)")
            conf = m["confidence"]
            cells = [
                prompt[:PROMPT_CHARS] + ("…" if len(prompt) > PROMPT_CHARS else ""),
                str(m["reference"]),
                str(m["answer"]) or "(nothing)",
                "—" if conf is None else f"{conf:.0%}",
                m["model_name"],
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    if m["scores"]:
                        item.setToolTip(
                            "\n".join(
                                f"{label}: {p:.0%}"
                                for label, p in sorted(m["scores"].items(), key=lambda kv: -kv[1])
                            )
                        )
                elif c == 0:
                    item.setToolTip(prompt)
                elif c in (2, 4):
                    item.setToolTip(plain_tip(text))
                self.table.setItem(r, c, item)
        n_models = len({m["model"] for m in self.mistakes})
        self.title.setText(
            f"Mistakes · {len(self.mistakes)} from {n_models} model{'s' if n_models != 1 else ''}"
            if self.mistakes
            else "Mistakes"
        )
        self.status.setText(
            "Surest first: the confidence is how likely the model found its own choice of "
            "label. Double-click a row to open the example."
            if self.mistakes
            else "No mistakes to show: evaluate a model with short answers (labels) first."
        )
        self._update_buttons()

    def selected(self) -> list[dict[str, Any]]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.mistakes[r] for r in rows if r < len(self.mistakes)]

    def _update_buttons(self) -> None:
        chosen = bool(self.table.selectionModel().selectedRows())
        self.open_button.setEnabled(chosen)
        self.review_button.setEnabled(chosen)

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self.mistakes):
            self.open_example.emit(self.mistakes[row]["example_id"])

    def _open_current(self) -> None:
        chosen = self.selected()
        if chosen:
            self.open_example.emit(chosen[0]["example_id"])

    def _send_selected(self) -> None:
        chosen = self.selected()
        if chosen:
            self.review_requested.emit(chosen)

    def set_sent(self, n: int) -> None:
        self.status.setText(
            f"Sent {n} example{'s' if n != 1 else ''} to the Label page's queue "
            "“Review: the model disagrees”."
        )
