"""Reading a file's raw records by its layout: JSONL, a JSON array or object, CSV/TSV, Parquet,
a folder saved by ``datasets``; each record with the line (or record number) it came from.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ftstudio.core.formats.problems import EVAL_SPLIT_NAMES, UTF8_ADVICE, _Problems, _Row
from ftstudio.core.formats.shapes import _shape_of_keys

if TYPE_CHECKING:
    pass

# -- reading raw records ----------------------------------------------------------------


def _read_text(path: Path, problems: _Problems) -> str | None:
    """The file's text, or None after adding a problem (empty, not UTF-8)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.add(
            f"cannot be read ({exc.strerror or exc}); check that the file exists and you may open it"
        )
        return None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        problems.add(f"is saved as UTF-16 text, not UTF-8; {UTF8_ADVICE}")
        return None
    try:
        text = raw.decode("utf-8-sig")  # -sig: Excel writes a byte-order mark in front
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex().upper()
        problems.add(
            f"is not UTF-8 text (byte 0x{byte} on this line cannot be read); {UTF8_ADVICE}", line=line
        )
        return None
    if not text.strip():
        problems.add("the file is empty; choose a file with examples in it")
        return None
    return text


def _jsonl_rows(text: str, problems: _Problems) -> Iterator[_Row]:
    record = 0
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        record += 1
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(
                f"this line is not valid JSON ({exc.msg}, column {exc.colno}); each line must be one "
                "complete JSON object: fix the line or delete it",
                line=number,
            )
            continue
        yield _Row(data, number, record)


def _json_array_rows(text: str, problems: _Problems) -> Iterator[_Row]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted_to = 1, 0
    record = 0

    def line_at(p: int) -> int:
        nonlocal line, counted_to
        line += text.count("\n", counted_to, p)
        counted_to = p
        return line

    ws = re.compile(r"\s*")

    def skip_space(at: int) -> int:
        return at + len(ws.match(text, at).group())  # type: ignore[union-attr]  # \s* always matches

    pos = skip_space(pos)
    if text.startswith("]", pos):
        return
    while True:
        record += 1
        try:
            data, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            problems.add(
                f"record {record} is not valid JSON ({exc.msg}, column {exc.colno}); the rest of the "
                "file cannot be read until this is fixed",
                line=exc.lineno,
            )
            return
        yield _Row(data, line_at(pos), record)
        pos = skip_space(end)
        if text.startswith(",", pos):
            pos = skip_space(pos + 1)
            continue
        if text.startswith("]", pos):
            rest = text[pos + 1 :].strip()
            if rest:
                problems.add(
                    "there is more text after the closing ']' of the list; remove it", line=line_at(pos)
                )
            return
        problems.add(
            "expected ',' or ']' after a record (a missing comma?); the rest of the file cannot be read "
            "until this is fixed",
            line=line_at(pos),
        )
        return


def _json_object_rows(data: dict) -> Iterator[_Row] | None:
    """A JSON file holding one object: one example, or a list of them under one key."""
    if _shape_of_keys(set(data)) != "table":
        return iter([_Row(data, 1, 1)])
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) == 1:
        return (_Row(x, None, i) for i, x in enumerate(data[lists[0]], start=1))
    return None


def _json_rows(text: str, problems: _Problems) -> tuple[str, Iterator[_Row]]:
    """('JSON' or 'JSONL', rows)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "JSON", _json_array_rows(text, problems)
    if "\n" in text.strip():
        # A pretty-printed single object spans many lines; one object per line is JSONL.
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            rows = _json_object_rows(whole)
            if rows is not None:
                return "JSON", rows
            keys = ", ".join(list(whole)[:8])
            problems.add(
                f"holds one JSON object (fields {keys}) rather than a list of examples; save one "
                "example per line (JSONL) or a list [...] of examples",
                line=1,
            )
            return "JSON", iter(())
    return "JSONL", _jsonl_rows(text, problems)


def _sniff_delimiter(text: str, path: Path) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    sample_lines = text[:65536].split("\n")
    if len(sample_lines) > 1:
        sample_lines = sample_lines[:-1] if len(text) > 65536 else sample_lines
    sample = "\n".join(sample_lines[:200])
    best, best_score = ",", (-1, -1)
    for delimiter in (",", ";", "\t", "|"):
        try:
            rows = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if r]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width)
        score = (consistent, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


DELIMITER_NAMES = {
    ",": "CSV (comma-separated)",
    ";": "CSV (semicolon-separated)",
    "\t": "TSV (tab-separated)",
    "|": "CSV (|-separated)",
}


def _csv_rows(text: str, delimiter: str, problems: _Problems, columns_out: list[str]) -> Iterator[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    last_line = 0
    record = 0
    try:
        for values in reader:
            start = last_line + 1
            last_line = reader.line_num
            if header is None:
                if not any(v.strip() for v in values):
                    continue
                header = _header_names(values)
                columns_out.extend(header)
                continue
            if not any(v.strip() for v in values):
                continue
            record += 1
            if len(values) != len(header):
                sep = {"\t": "a tab", ",": "a comma", ";": "a semicolon"}.get(delimiter, repr(delimiter))
                problems.add(
                    f"has {len(values)} values but the header has {len(header)} columns; a value that contains "
                    f"{sep} or a line break must be in double quotes",
                    line=start,
                )
                continue
            yield _Row(dict(zip(header, values)), start, record)
    except csv.Error as exc:
        problems.add(f"cannot be read as CSV ({exc}); check the quotes on this line", line=last_line + 1)
    if header is None:
        problems.add("the file is empty; choose a file with examples in it")
    elif record == 0 and problems.count == 0:
        problems.add("has a header line but no rows of examples under it", line=1)


def _header_names(values: list[str]) -> list[str]:
    names: list[str] = []
    for i, v in enumerate(values, start=1):
        name = v.strip() or f"column {i}"
        base, n = name, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    return names


def _parquet_rows(path: Path, problems: _Problems, columns_out: list[str]) -> Iterator[_Row]:
    import pyarrow.parquet as pq  # pyarrow comes with datasets

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        problems.add(
            f"cannot be read as Parquet ({exc}); check that it is a .parquet file, or choose another format"
        )
        return
    columns_out.extend(pf.schema_arrow.names)
    if pf.metadata.num_rows == 0:
        problems.add("the file has no rows; choose a file with examples in it")
        return
    record = 0
    for batch in pf.iter_batches(batch_size=2048):
        for data in batch.to_pylist():
            record += 1
            yield _Row(data, None, record)


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_dict.json").exists()
        or ((path / "dataset_info.json").exists() and (path / "state.json").exists())
    )


def _hf_rows(
    path: Path, problems: _Problems, columns_out: list[str], splits_out: list[str]
) -> Iterator[_Row]:
    if not _is_saved_dataset(path):
        problems.add(
            "is not a folder saved by the datasets library (no dataset_info.json and state.json, or "
            "dataset_dict.json); choose the folder given to save_to_disk(), or a file inside this one"
        )
        return
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        problems.add(f"cannot be read by the datasets library ({exc}); save it again with save_to_disk()")
        return
    parts = list(loaded.items()) if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    if not parts or all(len(ds) == 0 for _, ds in parts):
        problems.add("the dataset has no rows; choose one with examples in it")
        return
    for name, ds in parts:
        splits_out.append(name or "")
        for c in ds.column_names:
            if c not in columns_out:
                columns_out.append(c)
        class_labels = {c: f for c, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
        split = None
        if name is not None:
            split = "train" if name == "train" else "eval" if name.lower() in EVAL_SPLIT_NAMES else None
        where = f"{path} [{name}]" if name is not None else str(path)
        record = 0
        for batch in ds.data.to_batches(max_chunksize=2048):
            for data in batch.to_pylist():
                record += 1
                for c, feature in class_labels.items():
                    if isinstance(data.get(c), int) and 0 <= data[c] < feature.num_classes:
                        data[c] = feature.int2str(data[c])
                yield _Row(data, None, record, split=split, path=where)


def _layout_of(path: Path) -> str | None:
    """'json', 'csv', 'parquet', 'hf-dataset' or None."""
    if path.is_dir():
        return "hf-dataset" if _is_saved_dataset(path) else None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".csv", ".tsv", ".tab"):
        return "csv"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head.startswith(b"PAR1"):
        return "parquet"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"{", b"["):
        return "json"
    return None
