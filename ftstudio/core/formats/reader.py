"""``read_dataset`` (every record, every problem), ``detect_format``, ``import_dataset`` and
``export_dataset``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio.core.examples import NewExample
from ftstudio.core.fileio import write_text_atomic
from ftstudio.core.formats.layouts import (
    DELIMITER_NAMES,
    _csv_rows,
    _hf_rows,
    _json_rows,
    _layout_of,
    _parquet_rows,
    _read_text,
    _sniff_delimiter,
)
from ftstudio.core.formats.problems import (
    DatasetPreview,
    FIX_COLUMNS,
    FIX_FORMAT,
    FIX_PROMPT_COLUMN,
    FORMATS,
    ImportFailed,
    JSON_TABLE,
    MAPPABLE_FIELDS,
    PREVIEW_ROWS,
    SHAPE_NAMES,
    UNKNOWN,
    _Problems,
    _Row,
    _RowError,
)
from ftstudio.core.formats.shapes import (
    FORM_NAMES,
    _TableMap,
    _auto_column_map,
    _from_alpaca,
    _from_messages,
    _from_sharegpt,
    _from_table,
    _looks_categorical,
    _shape_of_keys,
    _text,
    form_of_rows,
)

if TYPE_CHECKING:
    from ftstudio.core.project import Project

# -- detection --------------------------------------------------------------------------


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
    layout = _layout_of(path)
    if layout is None:
        return UNKNOWN
    if layout in ("csv", "parquet", "hf-dataset"):
        return layout
    problems = _Problems(path)
    text = _read_text(path, problems)
    if text is None:
        return UNKNOWN
    _, rows = _json_rows(text, problems)
    first = []
    for r in rows:
        first.append(r)
        if len(first) >= PREVIEW_ROWS:
            break
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
    """
    path = Path(path)
    problems = _Problems(path)
    preview = DatasetPreview(path=path, format=format, description="")

    def done(description: str) -> DatasetPreview:
        preview.description = description
        preview.problems = problems.items
        preview.problem_count = problems.count
        return preview

    if format not in FORMATS and format != JSON_TABLE:
        problems.add(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
        return done("unknown format")
    if not path.exists():
        problems.add("no such file or folder; check the path")
        return done("file not found")
    if column_map:
        bad = [k for k in column_map if k not in MAPPABLE_FIELDS]
        if bad:
            problems.add(
                f"unknown field {bad[0]!r} in the column map; choose from {', '.join(MAPPABLE_FIELDS)}"
            )
            return done("bad column map")

    layout = format if format in ("csv", "parquet", "hf-dataset") else _layout_of(path)
    if layout is None:
        what = "a folder" if path.is_dir() else "this file"
        problems.add(
            f"cannot tell the format of {what}; name it .jsonl, .json, .csv, .tsv or .parquet, or {{fix}}",
            fix=FIX_FORMAT,
        )
        return done("unknown format")

    columns: list[str] = []
    splits: list[str] = []
    if layout == "json":
        text = _read_text(path, problems)
        if text is None:
            return done("could not be read")
        layout_name, rows_iter = _json_rows(text, problems)
    elif layout == "csv":
        text = _read_text(path, problems)
        if text is None:
            return done("could not be read")
        delimiter = _sniff_delimiter(text, path)
        layout_name = DELIMITER_NAMES[delimiter]
        rows_iter = _csv_rows(text, delimiter, problems, columns)
    elif layout == "parquet":
        layout_name, rows_iter = "Parquet", _parquet_rows(path, problems, columns)
    else:
        layout_name, rows_iter = "datasets folder", _hf_rows(path, problems, columns, splits)

    rows = list(rows_iter)
    preview.row_count = len(rows)
    preview.first_rows = [
        r.data if isinstance(r.data, dict) else {"value": r.data} for r in rows[:PREVIEW_ROWS]
    ]
    if not columns:
        for r in rows[:PREVIEW_ROWS]:
            if isinstance(r.data, dict):
                columns += [k for k in r.data if k not in columns]
    preview.columns = columns
    if splits and any(splits):
        layout_name += f" (splits {', '.join(splits)})"

    if layout == "json" and not rows and problems.count == 0:
        problems.add("holds no examples; choose a file with examples in it")
        return done(f"{layout_name}, no rows")
    if rows and not any(isinstance(r.data, dict) for r in rows):
        problems.add(
            "holds no JSON objects; each example must be an object such as "
            '{"messages": [{"role": "user", "content": ...}, ...]}'
        )
        return done(f"{layout_name}, {len(rows)} values that are not examples")

    if layout == "json" and format == "auto":
        preference_form = form_of_rows(rows)
        if preference_form is not None:
            # Read as examples, the rejected answers would be dropped or trained on as targets.
            problems.add(
                f"holds preference data ({FORM_NAMES[preference_form]}), not examples; import it as "
                "preference pairs: 'ftstudio import' finds them by itself, and in the app use "
                "Data > Preferences > Import"
            )
            preview.format = preference_form
            return done(f"{layout_name}, {FORM_NAMES[preference_form]}, {len(rows)} rows")

    # Which shape: named by the format, forced to a table by a column map, else from the fields.
    if format in ("messages", "alpaca", "sharegpt"):
        shape = format
    elif column_map or format == JSON_TABLE:
        shape = "table"
    elif layout == "csv":
        shape = "alpaca" if {"instruction", "output"} <= set(columns) else "table"
    else:
        shape = _shape_of_rows(rows[:PREVIEW_ROWS]) if rows else ("table" if columns else "messages")
        if shape == "table" and columns and _shape_of_keys(set(columns)) != "table":
            shape = _shape_of_keys(set(columns))
    preview.format = {"json": JSON_TABLE if shape == "table" else shape}.get(layout, layout)
    if layout == "json" and format not in ("auto", JSON_TABLE):
        preview.format = format

    notes: list[str] = []
    table: _TableMap | None = None
    if shape == "table":
        chosen = dict(column_map) if column_map else _auto_column_map(columns)
        if column_map is None and chosen:
            picked = ", ".join(f"{col} \u2192 {fld}" for fld, col in chosen.items())
            notes.append(f"columns chosen by their names: {picked}")
        preview.column_map = chosen
        available = ", ".join(repr(c) for c in columns) or "none"
        if not chosen:
            preview.needs_column_map = True
            problems.add(
                f"is a table (columns {available}) and it is not clear which column is the prompt and "
                "which the response; {fix}",
                fix=FIX_COLUMNS,
            )
        elif "prompt" not in chosen:
            preview.needs_column_map = True
            problems.add(
                f"the column map has no prompt column; {{fix}} (columns: {available})", fix=FIX_PROMPT_COLUMN
            )
        else:
            if columns:
                for fld, col in chosen.items():
                    if col not in columns:
                        problems.add(
                            f"column {col!r} (mapped to {fld}) is not in the file; the columns are "
                            f"{available}"
                        )
                        preview.needs_column_map = True
        if preview.needs_column_map:
            return done(f"{layout_name}, table, {len(rows)} row{'s' if len(rows) != 1 else ''}")
        table = _TableMap(chosen)
        if "response" in chosen and "label" not in chosen:
            values = [_text(r.data.get(chosen["response"])) for r in rows if isinstance(r.data, dict)]
            if _looks_categorical(values):
                table.label_from_response = True
                n = len({v.strip() for v in values if v.strip()})
                notes.append(f"labels taken from the response column ({n} categories)")
        if "response" not in chosen:
            notes.append("no response column: examples are imported unlabelled, for labelling later")

    convert = {"messages": _from_messages, "alpaca": _from_alpaca, "sharegpt": _from_sharegpt}.get(shape)
    examples: list[NewExample] = []
    given_system = 0
    for r in rows:
        source = r.line if r.line is not None else r.record
        try:
            if table is not None:
                ex = _from_table(r.data, table, source, r.split)
            else:
                assert convert is not None  # every shape but "table" has a converter
                ex = convert(r.data, source, r.split)
        except _RowError as exc:
            record = r.record if r.line is None or layout_name == "JSON" else None
            problems.add(str(exc), line=r.line, record=record, path=r.path)
            continue
        if system and not ex.system:
            ex.system = system
            given_system += 1
        examples.append(ex)
    preview.examples = examples

    unlabelled = sum(1 for e in examples if e.status == "unlabelled")
    if unlabelled and not (table and "response" not in table.columns):
        notes.append(f"{unlabelled} without an answer (imported as unlabelled)")
    if system:
        notes.append(f"system prompt set on {given_system} example{'s' if given_system != 1 else ''}")
    held = sum(1 for e in examples if e.split == "eval")
    if held:
        notes.append(f"{held} kept in the evaluation split as in the file")
    description = f"{layout_name}, {SHAPE_NAMES[shape]}, {len(rows)} row{'s' if len(rows) != 1 else ''}"
    if notes:
        description += "; " + "; ".join(notes)
    return done(description)


def import_dataset(
    project: Project,
    path: Path | str,
    format: str = "auto",
    column_map: dict[str, str] | None = None,
    system: str | None = None,
    eval_fraction: float | None = None,
    actor: str | None = None,
) -> DatasetPreview:
    """Read ``path`` and add all its examples in one transaction, or raise ImportFailed and add none."""
    preview = read_dataset(path, format=format, column_map=column_map, system=system)
    if not preview.ok:
        raise ImportFailed(preview.problems, max(preview.problem_count, 1), path)
    project.add_examples(preview.examples, actor=actor, source=str(path), eval_fraction=eval_fraction)
    return preview


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
