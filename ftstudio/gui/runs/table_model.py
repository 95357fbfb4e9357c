"""The runs of a project as a table: status, model, method, date, losses, and
the newest stored evaluation of each run where there is one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.core.project import Project, Run
from ftstudio.gui import style
from ftstudio.gui.plain import plain_tip

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 2

COLUMNS = ["Run", "Status", "Model", "Method", "Started", "Steps", "Train loss", "Held-out loss",
           "Exact match", "Eval loss"]
EVAL_COLUMNS = (8, 9)
STATUS_WORDS = {"finished": "Finished", "stopped": "Stopped", "failed": "Failed", "running": "Running",
                "created": "Created", "interrupted": "Interrupted"}
STATUS_COLOURS = {"finished": style.GOOD, "stopped": style.WARN, "failed": style.BAD, "running": style.ACCENT,
                  "created": style.MUTED, "interrupted": style.WARN}


def model_name(spec: str) -> str:
    if spec == BUNDLED_MODEL or spec.startswith("bundled:"):
        return spec.split(":", 1)[1] if ":" in spec else spec
    if spec.startswith(("/", "~", ".")):
        return Path(spec).name or spec
    return spec


def local_time(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


@dataclass(frozen=True)
class RunRow:
    run: Run
    exact_match: float | None = None
    eval_loss: float | None = None  # from a stored evaluation (Compare page / ftstudio evaluate)


def load_rows(project: Project, running_ids: frozenset[str] = frozenset()) -> list[RunRow]:
    """Every run, newest first, with its newest stored evaluation."""
    evaluated: dict[str, dict] = {}
    try:
        from ftstudio.core.ratings import evaluations

        for e in evaluations(project):  # newest first
            if e.run_id and e.run_id not in evaluated:
                evaluated[e.run_id] = e.results
    except ImportError:  # a build without stored evaluations
        pass
    rows = []
    for run in project.runs():
        results = evaluated.get(run.id, {})
        em = results.get("exact_match")
        loss = results.get("loss")
        rows.append(RunRow(run, em if isinstance(em, (int, float)) else None,
                           loss if isinstance(loss, (int, float)) else None))
    return rows


def _loss(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


class RunsTableModel(QAbstractTableModel):
    def __init__(self, project: Project, parent=None) -> None:
        super().__init__(parent)
        self.project = project
        self.rows: list[RunRow] = []
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self.rows = load_rows(self.project)
        self.endResetModel()

    @property
    def has_evaluations(self) -> bool:
        return any(r.exact_match is not None or r.eval_loss is not None for r in self.rows)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {
                "Train loss": "Mean loss of the last training steps",
                "Held-out loss": "Loss on the held-out examples at the end of training (lower is better)",
                "Exact match": "Share of held-out answers exactly right (newest evaluation on the Compare page)",
                "Eval loss": "Held-out loss from the newest evaluation on the Compare page",
            }.get(COLUMNS[section])
        return None

    def run_id(self, row: int) -> str:
        return self.rows[row].run.id

    def row_of(self, run_id: str) -> int | None:
        for i, r in enumerate(self.rows):
            if r.run.id == run_id:
                return i
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        run, col = row.run, index.column()
        if role == RUN_ID_ROLE:
            return run.id
        if role == Qt.ItemDataRole.DisplayRole:
            return [
                run.id, STATUS_WORDS.get(run.status, run.status), model_name(run.model), run.method.upper(),
                local_time(run.created_at), f"{run.steps:,}" if run.steps else "", _loss(run.train_loss),
                _loss(run.eval_loss), "" if row.exact_match is None else f"{row.exact_match:.0%}",
                _loss(row.eval_loss),
            ][col]
        if role == SORT_ROLE:
            return [
                run.id, run.status, model_name(run.model), run.method, run.created_at, run.steps,
                _sortable(run.train_loss), _sortable(run.eval_loss), _sortable(row.exact_match),
                _sortable(row.eval_loss),
            ][col]
        if role == Qt.ItemDataRole.ForegroundRole and col == 1:
            return QColor(STATUS_COLOURS.get(run.status, style.TEXT))
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 1 and run.message:
                return plain_tip(run.message)
            if col == 0:
                return plain_tip(run.id)
            if col == 2:
                return plain_tip(run.model)
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 5:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def _sortable(value: float | None) -> float:
    return float("inf") if value is None else float(value)
