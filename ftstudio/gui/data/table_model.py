"""The examples of a project as a table that stays smooth at 100,000 rows.

The model holds only the ordered list of example ids that pass the filter.
Row contents are read from SQLite a page at a time when the view first asks
for them, and kept in a small least-recently-used cache keyed by id, so a
change to one example drops only that example's entry.
"""

from __future__ import annotations

import bisect
import itertools
import json
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from ftstudio.core.project import ExampleFilter, Project
from ftstudio.gui import style

PAGE_ROWS = 64  # small pages: a read that does happen while painting stays a few milliseconds
CACHE_ROWS = 8192
SHORT_CHARS = 90
# Past this many inserted or removed rows one reset is cheaper than many row signals.
INCREMENTAL_LIMIT = 2000

# What tells examples apart first; the system prompt (often the same for all) further right.
COLUMNS = ("#", "split", "status", "label", "first user turn", "answer", "system", "turns", "updated")
COL_ID, COL_SPLIT, COL_STATUS, COL_LABEL, COL_PROMPT, COL_ANSWER, COL_SYSTEM, COL_TURNS, COL_UPDATED = range(9)

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
    cells: tuple[str, ...] = ()  # the display text of each column, made once

    def cell(self, column: int) -> str:
        return self.cells[column]


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
    system, prompt, answer, updated = _short(r["system"]), _short(prompt), _short(answer), _when(r["updated_at"])
    cells = (str(r["id"]), r["split"], r["status"], r["label"] or "", prompt, answer, system, str(len(messages)),
             updated)
    return RowData(id=r["id"], split=r["split"], status=r["status"], label=r["label"], system=system,
                   prompt=prompt, answer=answer, turns=len(messages), updated=updated, cells=cells)


# Roles as plain ints: data() runs for every painted cell, and int compares are the cheap ones.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_USER = int(Qt.ItemDataRole.UserRole.value)
_ANSWERED = frozenset({_DISPLAY, _TOOLTIP, _FOREGROUND, _ALIGN, _USER})
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
_NCOLS = len(COLUMNS)


class ExamplesTableModel(QAbstractTableModel):
    def __init__(self, project: Project, parent=None) -> None:
        super().__init__(parent)
        self._project = project
        self._filter = ExampleFilter()
        self._ids: list[int] = project.example_ids(self._filter)
        # id -> row; plain dict in fetch order, the oldest pages dropped first.
        self._cache: dict[int, RowData] = {}
        self._problem_ids: frozenset[int] = frozenset()
        self._colours = {key: QColor(c) for key, c in
                         {"bad": style.BAD, "eval": style.ACCENT, **STATUS_COLOURS}.items()}
        self.fetches = 0  # pages read from the database (the benchmark reports it)

    # -- what the view asks ---------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else _NCOLS

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return _LEFT
        if orientation == Qt.Orientation.Vertical and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self._ids):
            return str(section + 1)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY):
        if role not in _ANSWERED:
            return None
        r, column = index.row(), index.column()
        if not (0 <= r < len(self._ids) and 0 <= column < _NCOLS):
            return None
        example_id = self._ids[r]
        if role == _USER:
            return example_id
        row = self._cache.get(example_id)
        if row is None:
            row = self.row_data(r)
            if row is None:
                return None
        if role == _DISPLAY:
            return row.cells[column]
        if role == _ALIGN:
            return _RIGHT if column == COL_ID or column == COL_TURNS else None
        if role == _FOREGROUND:
            if column == COL_ID:
                return self._colours["bad"] if example_id in self._problem_ids else None
            if column == COL_STATUS:
                return self._colours.get(row.status) if row.status in STATUS_COLOURS else None
            if column == COL_SPLIT and row.split == "eval":
                return self._colours["eval"]
            return None
        if column == COL_ID and example_id in self._problem_ids:
            return "The last check found a problem with this example (see Checks)"
        text = row.cells[column]
        return text if len(text) >= SHORT_CHARS - 1 else None

    # -- reading rows ---------------------------------------------------------------

    def row_data(self, row: int) -> RowData | None:
        example_id = self._ids[row]
        cached = self._cache.get(example_id)
        if cached is not None:
            return cached
        self._fetch_page(row // PAGE_ROWS)
        return self._cache.get(example_id)

    def _fetch_page(self, page: int) -> None:
        chunk = self._ids[page * PAGE_ROWS:(page + 1) * PAGE_ROWS]
        wanted = {i for i in chunk if i not in self._cache}
        if not wanted:
            return
        self.fetches += 1
        for r in self._project.example_rows(wanted):
            if r["id"] in wanted:
                self._cache[r["id"]] = _row(r)
        excess = len(self._cache) - CACHE_ROWS
        if excess > 0:
            for key in list(itertools.islice(iter(self._cache), excess)):
                del self._cache[key]

    def is_cached(self, row: int) -> bool:
        """Whether row ``row`` can be painted without reading the database."""
        return 0 <= row < len(self._ids) and self._ids[row] in self._cache

    def prefetch(self, first_row: int, last_row: int, max_pages: int = 2) -> bool:
        """Read the pages around rows ``first_row..last_row`` that are not cached yet
        (at most ``max_pages`` of them); True when more are left to read.

        The page calls this when the GUI is idle after a scroll, so the next
        screen in either direction is already there when it is painted.
        """
        n = len(self._ids)
        if not n:
            return False
        lo = max(0, first_row - PAGE_ROWS) // PAGE_ROWS
        hi = min(n - 1, last_row + PAGE_ROWS) // PAGE_ROWS
        read = 0
        for page in range(lo, hi + 1):
            start, end = page * PAGE_ROWS, min(n, (page + 1) * PAGE_ROWS) - 1
            if self._ids[start] in self._cache and self._ids[end] in self._cache:
                continue
            if read == max_pages:
                return True
            self._fetch_page(page)
            read += 1
        return False

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
        matching = self._matching(changed_ids) if changed_ids and len(changed_ids) <= INCREMENTAL_LIMIT else None
        if changed_ids and matching is not None:
            # Only the changed examples can have come or gone: ask about them alone.
            present = {i for i in changed_ids if self.row_of(i) is not None}
            removed, added = present - matching, matching - present
            new_ids = None
        else:
            new_ids = self._project.example_ids(self._filter)
            old_set, new_set = set(self._ids), set(new_ids)
            removed, added = old_set - new_set, new_set - old_set
        if len(removed) + len(added) > INCREMENTAL_LIMIT:
            if new_ids is None:
                new_ids = self._project.example_ids(self._filter)
            self.beginResetModel()
            self._ids = new_ids
            self._cache.clear()
            self.endResetModel()
            return
        # Every removed id is in the table, so its row is where bisect finds it.
        for start, end in reversed(_runs([bisect.bisect_left(self._ids, i) for i in sorted(removed)])):
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


    def _matching(self, ids: list[int]) -> set[int] | None:
        """Which of ``ids`` pass the filter now (None when the project cannot say cheaply)."""
        return self._project.matching_ids(self._filter, ids)


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    out: list[tuple[int, int]] = []
    for r in rows:
        if out and r == out[-1][1] + 1:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out
