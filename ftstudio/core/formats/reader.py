"""``read_dataset`` (every record, every problem), ``detect_format``, ``import_dataset`` and
``export_dataset``.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ftstudio.core.examples import NewExample
from ftstudio.core.fileio import display_path, write_text_atomic
from ftstudio.core.formats.problems import (
    FIX_COLUMNS,
    FIX_FORMAT,
    FIX_PROMPT_COLUMN,
    FORMATS,
    JSON_TABLE,
    LABEL_MAX_CHARS,
    LABEL_MAX_DISTINCT,
    MAPPABLE_FIELDS,
    PREVIEW_ROWS,
    SHAPE_NAMES,
    UNKNOWN,
    DatasetPreview,
    FormatProblem,
    ImportFailed,
    ProgressReport,
    _Problems,
    _Row,
    _RowError,
)
from ftstudio.core.formats.layouts import (
    DELIMITER_NAMES,
    _csv_rows,
    _CountingReader,
    _file_problem,
    _hf_rows,
    _json_stream_rows,
    _layout_of,
    _open_text,
    _parquet_rows,
    _Progress,
    _sniff_delimiter,
)
from ftstudio.core.formats.shapes import (
    FORM_NAMES,
    _auto_column_map,
    _check_text,
    _from_alpaca,
    _from_messages,
    _from_sharegpt,
    _from_table,
    _label,
    _shape_of_keys,
    _TableMap,
    _text_or_empty,
    form_of_rows,
)

if TYPE_CHECKING:
    from ftstudio.core.project import Project


def _shape_of_rows(rows: list[_Row]) -> str:
    keys: set[str] = set()
    for r in rows:
        if isinstance(r.data, dict):
            keys |= set(r.data)
    return _shape_of_keys(keys)


def detect_format(path: Path | str) -> str:
    """The format ``read_dataset(path, "auto")`` would use: one of FORMATS[1:], JSON_TABLE
    (JSON records of plain fields) or UNKNOWN."""
    path = Path(path)
    if _file_problem(path, folder_ok=True) is not None:
        return UNKNOWN
    layout = _layout_of(path)
    if layout is None:
        return UNKNOWN
    if layout in ("csv", "parquet", "hf-dataset"):
        return layout
    problems = _Problems(path)
    fh = _open_text(path, problems)
    if fh is None:
        return UNKNOWN
    try:
        _, rows = _json_stream_rows(fh, path, problems)
        first = list(itertools.islice(rows, PREVIEW_ROWS))
    finally:
        fh.close()
    if not first:
        return UNKNOWN
    shape = _shape_of_rows(first)
    return JSON_TABLE if shape == "table" else shape


# -- reading ----------------------------------------------------------------------------


def read_dataset(
    path: Path | str,
    format: str = "auto",
    column_map: dict[str, str] | None = None,
    system: str | None = None,
    keep_examples: int | None = None,
    progress: ProgressReport | None = None,
) -> DatasetPreview:
    """Read every record of ``path`` into examples, collecting all problems (never raises for content).

    ``format="auto"`` finds the layout from the name or the first bytes and the
    shape from the fields. Tables without a map get one from well-known column
    names (prompt/response, instruction/output, question/answer, text/label...),
    said in the description; otherwise ``needs_column_map`` is set. When only
    prompt and response are mapped and the responses look like categories (at
    most 20 distinct short values, at most half as many as answers), the
    response also becomes the label. An example with no answer is imported
    with status "unlabelled". ``system`` fills in where an example has none.
    Each example's ``source_line`` is its 1-based line (JSONL, JSON arrays, CSV)
    or record number (Parquet, datasets folders, lists inside a JSON object).
    Splits named train/test/validation in a datasets folder are kept.

    The file is read as it goes: ``keep_examples`` caps how many examples the
    preview holds (None: all; ``example_count`` counts them all either way), and
    ``progress(done, total)`` is told how far the read has got.
    """
    reader = _Reader(Path(path), format, column_map, system, progress)
    kept: list[NewExample] = []
    for ex in reader.examples():
        if keep_examples is None or len(kept) < keep_examples:
            kept.append(ex)
    if reader.labels_from_response:
        for ex in kept:
            if ex.label is None:
                ex.label = _answer_label(ex)
    reader.preview.examples = kept
    return reader.preview


def _answer_label(ex: NewExample) -> str | None:
    return _label(next((m.get("content") for m in ex.messages if m.get("role") == "assistant"), None))


class _Reader:
    """One pass over a file: ``examples()`` yields each example as its record is read; when it
    ends, ``preview`` is complete (description, problems, counts). ``label_from_response``
    None decides from the responses (known only at the end: see ``labels_from_response``)."""

    def __init__(
        self,
        path: Path,
        format: str,
        column_map: dict[str, str] | None,
        system: str | None,
        progress: ProgressReport | None = None,
        label_from_response: bool | None = None,
    ) -> None:
        self.path, self.format, self.column_map, self.system = path, format, column_map, system
        self.report = progress
        self.label_from_response = label_from_response
        self.labels_from_response = False
        self.problems = _Problems(path)
        self.preview = DatasetPreview(path=path, format=format, description="")

    def _done(self, description: str) -> None:
        self.preview.description = description
        self.preview.problems = self.problems.items
        self.preview.problem_count = self.problems.count

    def _rows(
        self, layout: str, columns: list[str], splits: list[str], progress: _Progress
    ) -> tuple[str, Iterator[_Row], list[Any]]:
        """(layout name, rows, files to close)."""
        path, problems = self.path, self.problems
        if layout in ("json", "csv"):
            fh = _open_text(path, problems)
            if fh is None:
                return "", iter(()), []
            counted = io.BufferedReader(_CountingReader(fh, progress))
            if layout == "json":
                name, rows = _json_stream_rows(counted, path, problems)
                return name, rows, [counted, fh]
            start = fh.tell()  # past a byte-order mark
            sample = fh.read(65536)
            fh.seek(start)
            delimiter = _sniff_delimiter(sample.decode("utf-8-sig", errors="ignore"), path)
            return (
                DELIMITER_NAMES[delimiter],
                _csv_rows(counted, delimiter, problems, columns),
                [counted, fh],
            )
        if layout == "parquet":
            return "Parquet", _parquet_rows(path, problems, columns, progress), []
        return "datasets folder", _hf_rows(path, problems, columns, splits, progress), []

    def examples(self) -> Iterator[NewExample]:
        path, problems, fmt, column_map = self.path, self.problems, self.format, self.column_map
        if fmt not in FORMATS and fmt != JSON_TABLE:
            problems.add(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
            return self._done("unknown format")
        trouble = _file_problem(path, folder_ok=fmt in ("auto", "hf-dataset"))
        if trouble is not None:
            problems.add(trouble)
            return self._done("file not found" if "no such file" in trouble else "could not be read")
        if column_map:
            bad = [k for k in column_map if k not in MAPPABLE_FIELDS]
            if bad:
                problems.add(
                    f"unknown field {bad[0]!r} in the column map; choose from {', '.join(MAPPABLE_FIELDS)}"
                )
                return self._done("bad column map")

        layout = fmt if fmt in ("csv", "parquet", "hf-dataset") else _layout_of(path)
        if layout is None:
            what = "a folder" if path.is_dir() else "this file"
            problems.add(
                f"cannot tell the format of {what}; name it .jsonl, .json, .csv, .tsv or .parquet, or "
                "{fix}",
                fix=FIX_FORMAT,
            )
            return self._done("unknown format")

        columns: list[str] = []
        splits: list[str] = []
        try:
            size = os.path.getsize(path) if layout in ("json", "csv") else 1
        except OSError:
            size = 1
        progress = _Progress(self.report, size)
        layout_name, rows_iter, to_close = self._rows(layout, columns, splits, progress)
        try:
            yield from self._convert(layout, layout_name, rows_iter, columns, splits)
        finally:
            for fh in to_close:
                fh.close()
        progress.finish()

    def _convert(
        self, layout: str, layout_name: str, rows_iter: Iterator[_Row], columns: list[str], splits: list[str]
    ) -> Iterator[NewExample]:
        """The steps after the file is open: the head rows, what refuses the whole file, the shape,
        the table's column map, then every record converted, and the description."""
        if not layout_name:
            return self._done("could not be read")
        head = self._head(rows_iter, columns)
        if splits and any(splits):
            layout_name += f" (splits {', '.join(splits)})"
        refused = self._refusal(layout, layout_name, head, rows_iter)
        if refused is not None:
            return self._done(refused)
        shape = self._shape(layout, head, columns)
        notes: list[str] = []
        table: _TableMap | None = None
        if shape == "table":
            table = self._table_map(columns, notes)
            if table is None:  # the preview says which columns to map
                n = len(head) + sum(1 for _ in rows_iter)
                self.preview.row_count = n
                return self._done(f"{layout_name}, table, {n} row{'s' if n != 1 else ''}")
        tally = _Tally()
        yield from self._examples(layout_name, itertools.chain(head, rows_iter), shape, table, tally)
        self._describe(layout_name, shape, table, tally, notes)

    def _head(self, rows_iter: Iterator[_Row], columns: list[str]) -> list[_Row]:
        """The first rows (the preview's, and what the shape is told from); the columns seen in them
        when the layout named none."""
        head = list(itertools.islice(rows_iter, PREVIEW_ROWS))
        self.preview.first_rows = [r.data if isinstance(r.data, dict) else {"value": r.data} for r in head]
        if not columns:
            for r in head:
                if isinstance(r.data, dict):
                    columns += [k for k in r.data if k not in columns]
        self.preview.columns = columns
        return head

    def _refusal(
        self, layout: str, layout_name: str, head: list[_Row], rows_iter: Iterator[_Row]
    ) -> str | None:
        """The description of a file that holds no examples at all (its problem added), else None."""
        problems, preview = self.problems, self.preview
        if layout == "json" and not head and problems.count == 0:
            problems.add("holds no examples; choose a file with examples in it")
            return f"{layout_name}, no rows"
        if head and not any(isinstance(r.data, dict) for r in head):
            n = sum(1 for _ in rows_iter) + len(head)
            problems.add(
                "holds no JSON objects; each example must be an object such as "
                '{"messages": [{"role": "user", "content": ...}, ...]}'
            )
            preview.row_count = n
            return f"{layout_name}, {n} values that are not examples"
        if layout == "json" and self.format == "auto":
            preference_form = form_of_rows(head)
            if preference_form is not None:
                # Read as examples, the rejected answers would be dropped or trained on as targets.
                n = len(head) + sum(1 for _ in rows_iter)
                problems.add(
                    f"holds preference data ({FORM_NAMES[preference_form]}), not examples; import it as "
                    "preference pairs: 'ftstudio import' finds them by itself, and in the app use "
                    "Data > Preferences > Import"
                )
                preview.format = preference_form
                preview.row_count = n
                return f"{layout_name}, {FORM_NAMES[preference_form]}, {n} rows"
        return None

    def _shape(self, layout: str, head: list[_Row], columns: list[str]) -> str:
        """Which shape: named by the format, forced to a table by a column map, else from the fields;
        the preview's format follows from it."""
        fmt = self.format
        if fmt in ("messages", "alpaca", "sharegpt"):
            shape = fmt
        elif self.column_map or fmt == JSON_TABLE:
            shape = "table"
        elif layout == "csv":
            shape = "alpaca" if {"instruction", "output"} <= set(columns) else "table"
        else:
            shape = _shape_of_rows(head) if head else ("table" if columns else "messages")
            if shape == "table" and columns and _shape_of_keys(set(columns)) != "table":
                shape = _shape_of_keys(set(columns))
        self.preview.format = {"json": JSON_TABLE if shape == "table" else shape}.get(layout, layout)
        if layout == "json" and fmt not in ("auto", JSON_TABLE):
            self.preview.format = fmt
        return shape

    def _table_map(self, columns: list[str], notes: list[str]) -> _TableMap | None:
        """The table's column map (given, or chosen by the column names); None, with the problem
        added and ``needs_column_map`` set, when it does not name a prompt that is in the file."""
        problems, preview, column_map = self.problems, self.preview, self.column_map
        chosen = dict(column_map) if column_map else _auto_column_map(columns)
        if column_map is None and chosen:
            picked = ", ".join(f"{col} \u2192 {fld}" for fld, col in chosen.items())
            notes.append(f"columns chosen by their names: {picked}")
        preview.column_map = chosen
        available = ", ".join(repr(c) for c in columns) or "none"
        if not chosen:
            preview.needs_column_map = True
            problems.add(
                f"is a table (columns {available}) and it is not clear which column is the prompt "
                "and which the response; {fix}",
                fix=FIX_COLUMNS,
            )
        elif "prompt" not in chosen:
            preview.needs_column_map = True
            problems.add(
                f"the column map has no prompt column; {{fix}} (columns: {available})",
                fix=FIX_PROMPT_COLUMN,
            )
        elif columns:
            for fld, col in chosen.items():
                if col not in columns:
                    problems.add(
                        f"column {col!r} (mapped to {fld}) is not in the file; the columns are {available}"
                    )
                    preview.needs_column_map = True
        if preview.needs_column_map:
            return None
        if "response" not in chosen:
            notes.append("no response column: examples are imported unlabelled, for labelling later")
        return _TableMap(chosen, label_from_response=bool(self.label_from_response))

    def _examples(
        self, layout_name: str, rows: Iterator[_Row], shape: str, table: _TableMap | None, tally: _Tally
    ) -> Iterator[NewExample]:
        """Every record converted to an example, or its problem noted with its line or record."""
        problems, system = self.problems, self.system
        convert = {"messages": _from_messages, "alpaca": _from_alpaca, "sharegpt": _from_sharegpt}.get(shape)
        tally.watch_categories = (
            table is not None and "response" in table.columns and "label" not in table.columns
        )
        for r in rows:
            tally.rows += 1
            source = r.line if r.line is not None else r.record
            try:
                if table is not None:
                    if tally.watch_categories and isinstance(r.data, dict):
                        tally.categories.see(_text_or_empty(r.data.get(table.columns["response"])))
                    ex = _from_table(r.data, table, source, r.split)
                else:
                    assert convert is not None  # every shape but "table" has a converter
                    ex = convert(r.data, source, r.split)
                _check_text(ex)
            except _RowError as exc:
                record = r.record if r.line is None or layout_name == "JSON" else None
                problems.add(str(exc), line=r.line, record=record, path=r.path)
                continue
            except RecursionError:
                record = r.record if r.line is None or layout_name == "JSON" else None
                problems.add(
                    "is nested too deeply (more than about 1,000 levels of lists and objects); flatten it",
                    line=r.line,
                    record=record,
                    path=r.path,
                )
                continue
            if system and not ex.system:
                ex.system = system
                tally.given_system += 1
            tally.unlabelled += ex.status == "unlabelled"
            tally.held += ex.split == "eval"
            tally.examples += 1
            yield ex

    def _describe(
        self, layout_name: str, shape: str, table: _TableMap | None, tally: _Tally, notes: list[str]
    ) -> None:
        """Once every record is read: the counts, whether responses become labels, and the description."""
        preview = self.preview
        preview.row_count = tally.rows
        preview.example_count = tally.examples
        if tally.watch_categories and (
            self.label_from_response or (self.label_from_response is None and tally.categories.categorical())
        ):
            self.labels_from_response = True
            notes.append(
                f"labels taken from the response column ({len(tally.categories.distinct)} categories)"
            )
        if tally.unlabelled and not (table and "response" not in table.columns):
            notes.append(f"{tally.unlabelled} without an answer (imported as unlabelled)")
        if self.system:
            given = tally.given_system
            notes.append(f"system prompt set on {given} example{'s' if given != 1 else ''}")
        if tally.held:
            notes.append(f"{tally.held} kept in the evaluation split as in the file")
        rows = tally.rows
        description = f"{layout_name}, {SHAPE_NAMES[shape]}, {rows} row{'s' if rows != 1 else ''}"
        if notes:
            description += "; " + "; ".join(notes)
        self._done(description)


class _Categories:
    """Whether a response column looks like categories, seen one value at a time (few distinct
    short values: at most LABEL_MAX_DISTINCT, at most half as many as the answers)."""

    def __init__(self) -> None:
        self.distinct: set[str] = set()
        self.answered = 0
        self.too_long = False

    def see(self, value: str) -> None:
        value = value.strip()
        if not value:
            return
        self.answered += 1
        if len(self.distinct) <= LABEL_MAX_DISTINCT:
            self.distinct.add(value)
        if len(value) > LABEL_MAX_CHARS or "\n" in value:
            self.too_long = True

    def categorical(self) -> bool:
        return (
            self.answered >= 2
            and not self.too_long
            and len(self.distinct) <= min(LABEL_MAX_DISTINCT, max(2, self.answered // 2))
        )


@dataclass
class _Tally:
    """What the conversion counts as it goes, for the description at the end."""

    rows: int = 0
    examples: int = 0
    given_system: int = 0
    unlabelled: int = 0
    held: int = 0
    watch_categories: bool = False  # the responses may be categories (a table without a label column)
    categories: _Categories = field(default_factory=_Categories)


def import_dataset(
    project: Project,
    path: Path | str,
    format: str = "auto",
    column_map: dict[str, str] | None = None,
    system: str | None = None,
    eval_fraction: float | None = None,
    actor: str | None = None,
    progress: ProgressReport | None = None,
) -> DatasetPreview:
    """Read ``path`` and add all its examples in one transaction, or raise ImportFailed and add none.

    Two passes over the file, neither holding it in memory: the first checks every
    record and notes each example's label and split (what the held-out split needs);
    the second reads the examples again and inserts them as they come. ``progress``
    gets (done, total) over both passes together.
    """
    path = Path(path)
    first_pass, second_pass = _halves(progress)
    reader = _Reader(path, format, column_map, system, first_pass)
    keys: list[tuple[str | None, str | None, str | None]] = []
    first: list[NewExample] = []  # what the returned preview shows, like read_dataset's
    for ex in reader.examples():
        keys.append((ex.label, _answer_label(ex) if ex.label is None else None, ex.split))
        if len(first) < PREVIEW_ROWS:
            first.append(ex)
    preview = reader.preview
    if reader.labels_from_response:
        for ex in first:
            if ex.label is None:
                ex.label = _answer_label(ex)
    preview.examples = first
    if not preview.ok:
        raise ImportFailed(preview.problems, max(preview.problem_count, 1), path)
    by_response = reader.labels_from_response
    final_keys = [
        ((label if label is not None or not by_response else from_answer), split)
        for label, from_answer, split in keys
    ]
    again = _Reader(path, format, column_map, system, second_pass, label_from_response=by_response)
    try:
        project.add_examples(
            again.examples(),
            actor=actor,
            source=display_path(path),
            eval_fraction=eval_fraction,
            keys=final_keys,
        )
    except ValueError as exc:
        if "announced" not in str(exc):
            raise
        problems = again.preview.problems or [
            FormatProblem(str(path), None, f"changed while it was imported ({exc})")
        ]
        raise ImportFailed(problems, max(again.preview.problem_count, 1), path) from None
    preview.example_count = len(final_keys)
    return preview


def _halves(report: ProgressReport | None) -> tuple[ProgressReport | None, ProgressReport | None]:
    """Progress of two passes as one bar: the first half, then the second."""
    if report is None:
        return None, None

    def first(done: int, total: int) -> None:
        report(done, 2 * total)

    def second(done: int, total: int) -> None:
        report(total + done, 2 * total)

    return first, second


# -- writing ----------------------------------------------------------------------------


def export_dataset(project: Project, out_path: Path | str, split: str | None = None) -> int:
    """Write the project's live examples (or one split) as messages JSONL, system first; returns the count.

    Each line is {"messages": [...]}, plus "label" on every line when any
    exported example has a label (null where one has none). ``datasets`` reads
    that as a plain string column, and TRL's SFTTrainer (1.16) trains on such a
    file as it is, leaving the extra column alone.
    """
    from ftstudio.core.project import ExampleFilter

    examples = project.examples(ExampleFilter(split=split) if split else None)
    with_label = any(e.label is not None for e in examples)
    lines = []
    for e in examples:
        row: dict[str, Any] = {"messages": e.conversation()}
        if with_label:
            row["label"] = e.label
        lines.append(json.dumps(row, ensure_ascii=False))
    write_text_atomic(Path(out_path), "".join(line + "\n" for line in lines))
    return len(examples)
