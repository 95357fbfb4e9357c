"""The examples of a project as a table that stays smooth at 100,000 rows.

The model holds only the ordered list of example ids that pass the filter.
Row contents are read from SQLite a page at a time when the view first asks
for them, and kept in a small least-recently-used cache keyed by id, so a
change to one example drops only that example's entry.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from ftstudio.core.project import ExampleFilter, Project
from ftstudio.gui import style

PAGE_ROWS = 256
CACHE_ROWS = 8192
SHORT_CHARS = 90
# Past this many inserted or removed rows one reset is cheaper than many row signals.
INCREMENTAL_LIMIT = 2000

COLUMNS = ("#", "split", "status", "label", "system", "first user turn", "answer", "turns", "updated")
COL_ID, COL_SPLIT, COL_STATUS, COL_LABEL, COL_SYSTEM, COL_PROMPT, COL_ANSWER, COL_TURNS, COL_UPDATED = range(9)

STATUS_COLOURS = {"flagged": style.WARN, "skipped": style.MUTED, "unlabelled": style.MUTED}


@dataclass(frozen=True)
class RowData:
    id: int
    split: str
    status: str
    label: str | None
    system: str
    prompt: str
    answer: str
    turns: int
    updated: str

    def cell(self, column: int) -> str:
        return (str(self.id), self.split, self.status, self.label or "", self.system, self.prompt,
                self.answer, str(self.turns), self.updated)[column]


def _short(text: object) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= SHORT_CHARS else text[: SHORT_CHARS - 1] + "\u2026"


def _when(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def _row(r) -> RowData:
    try:
        messages = json.loads(r["messages"])
    except ValueError:
        messages = []
    prompt = next((m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"), "")
    answer = next((m.get("content") for m in reversed(messages)
                   if isinstance(m, dict) and m.get("role") == "assistant"), "")
    return RowData(id=r["id"], split=r["split"], status=r["status"], label=r["label"], system=_short(r["system"]),
                   prompt=_short(prompt), answer=_short(answer), turns=len(messages), updated=_when(r["updated_at"]))


class ExamplesTableModel(QAbstractTableModel):
    def __init__(self, project: Project, parent=None) -> None:
        super().__init__(parent)
        self._project = project
        self._filter = ExampleFilter()
        self._ids: list[int] = project.example_ids(self._filter)
        self._cache: OrderedDict[int, RowData] = OrderedDict()
        self._problem_ids: frozenset[int] = frozenset()
        self.fetches = 0  # pages read from the database (the benchmark reports it)

    # -- what the view asks ---------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if orientation == Qt.Orientation.Vertical and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self._ids):
            return str(section + 1)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._ids) or index.column() >= len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.UserRole:
            return self._ids[index.row()]
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole,
                        Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.TextAlignmentRole):
            return None
        row = self.row_data(index.row())
        if row is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.cell(column)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column in (COL_ID, COL_TURNS):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == COL_ID and row.id in self._problem_ids:
                return QColor(style.BAD)
            if column == COL_STATUS and row.status in STATUS_COLOURS:
                return QColor(STATUS_COLOURS[row.status])
            if column == COL_SPLIT and row.split == "eval":
                return QColor(style.ACCENT)
            return None
        if column == COL_ID and row.id in self._problem_ids:
            return "The last check found a problem with this example (see Checks)"
        text = row.cell(column)
        return text if len(text) >= SHORT_CHARS - 1 else None

    # -- reading rows ---------------------------------------------------------------

    def row_data(self, row: int) -> RowData | None:
        example_id = self._ids[row]
        cached = self._cache.get(example_id)
        if cached is not None:
            self._cache.move_to_end(example_id)
            return cached
        self._fetch_page(row // PAGE_ROWS)
        return self._cache.get(example_id)

    def _fetch_page(self, page: int) -> None:
        wanted = [i for i in self._ids[page * PAGE_ROWS:(page + 1) * PAGE_ROWS] if i not in self._cache]
        if not wanted:
            return
        self.fetches += 1
        marks = ",".join("?" * len(wanted))
        for r in self._project.execute(
            f"SELECT id, messages, system, split, status, label, updated_at FROM examples WHERE id IN ({marks})",
            wanted,
        ):
            self._cache[r["id"]] = _row(r)
        while len(self._cache) > CACHE_ROWS:
            self._cache.popitem(last=False)

    # -- ids and rows ---------------------------------------------------------------

    def example_id(self, row: int) -> int:
        return self._ids[row]

    def example_ids(self) -> list[int]:
        return list(self._ids)

    def row_of(self, example_id: int) -> int | None:
        pos = bisect.bisect_left(self._ids, example_id)
        return pos if pos < len(self._ids) and self._ids[pos] == example_id else None

    @property
    def filter(self) -> ExampleFilter:
        return self._filter

    def set_filter(self, flt: ExampleFilter) -> None:
        self.beginResetModel()
        self._filter = flt
        self._ids = self._project.example_ids(flt)
        self._cache.clear()
        self.endResetModel()

    def set_problem_ids(self, ids: set[int] | frozenset[int]) -> None:
        self._problem_ids = frozenset(ids)
        if self._ids:
            self.dataChanged.emit(self.index(0, COL_ID), self.index(len(self._ids) - 1, COL_ID),
                                  [Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.ToolTipRole])

    def refresh(self, changed_ids: list[int] | None = None) -> None:
        """Bring the table up to date after a change to ``changed_ids`` (None or []: anything).

        Rows that appeared or went away (added, deleted, undone, or no longer
        matching the filter) are inserted or removed in place, so the view keeps
        its scroll position and selection.
        """
        if changed_ids:
            for i in changed_ids:
                self._cache.pop(i, None)
        else:
            self._cache.clear()
        new_ids = self._project.example_ids(self._filter)
        old_set, new_set = set(self._ids), set(new_ids)
        removed, added = old_set - new_set, new_set - old_set
        if len(removed) + len(added) > INCREMENTAL_LIMIT:
            self.beginResetModel()
            self._ids = new_ids
            self._cache.clear()
            self.endResetModel()
            return
        for start, end in reversed(_runs([self.row_of(i) for i in sorted(removed)])):
            self.beginRemoveRows(QModelIndex(), start, end)
            del self._ids[start:end + 1]
            self.endRemoveRows()
        for example_id in sorted(added):
            pos = bisect.bisect_left(self._ids, example_id)
            self.beginInsertRows(QModelIndex(), pos, pos)
            self._ids.insert(pos, example_id)
            self.endInsertRows()
        rows = sorted(r for r in (self.row_of(i) for i in (changed_ids or [])) if r is not None)
        if not changed_ids and self._ids:
            rows = [0, len(self._ids) - 1]
        for start, end in _runs(rows) if changed_ids else [(rows[0], rows[-1])] if rows else []:
            self.dataChanged.emit(self.index(start, 0), self.index(end, len(COLUMNS) - 1))


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    out: list[tuple[int, int]] = []
    for r in rows:
        if out and r == out[-1][1] + 1:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out
