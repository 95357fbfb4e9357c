"""Reading a file's raw records by its layout: JSONL, a JSON array or object, CSV/TSV, Parquet,
a folder saved by ``datasets``; each record with the line (or record number) it came from.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import itertools
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from ftstudio.core.fileio import display_path
from ftstudio.core.formats.problems import (
    EVAL_SPLIT_NAMES,
    MAX_JSON_DOCUMENT,
    MAX_RECORD_BYTES,
    READ_CHUNK,
    UTF8_ADVICE,
    UTF8_BOM,
    ProgressReport,
    _Problems,
    _Row,
)
from ftstudio.core.formats.shapes import _shape_of_keys

if TYPE_CHECKING:
    pass

# -- reading raw records ----------------------------------------------------------------


class _Progress:
    """Reports how far a read has got: ``report(done, total)`` in bytes (rows for Parquet
    and datasets folders), at most every MB or every 2,000 rows."""

    def __init__(self, report: ProgressReport | None, total: int) -> None:
        self.report = report
        self.total = max(total, 1)
        self.done = 0
        self._told = -1

    def advance(self, n: int, step: int = 1 << 20) -> None:
        self.done += n
        if self.report is not None and self.done - self._told >= step:
            self._told = self.done
            self.report(min(self.done, self.total), self.total)

    def advance_to(self, done: int, step: int = 1 << 20) -> None:
        self.advance(done - self.done, step)

    def finish(self) -> None:
        if self.report is not None:
            self.report(self.total, self.total)


class _CountingReader(io.RawIOBase):
    """A binary file that tells ``progress`` how far into it reading has got."""

    def __init__(self, fh: BinaryIO, progress: _Progress) -> None:
        self.fh, self.progress = fh, progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def fileno(self) -> int:
        return self.fh.fileno()

    def readinto(self, buffer: Any) -> int:
        n = self.fh.readinto(buffer)  # type: ignore[attr-defined]
        self.progress.advance_to(self.fh.tell())
        return n or 0


def _file_problem(path: Path, folder_ok: bool) -> str | None:
    """Why ``path`` cannot be read as a data file (or a datasets folder), said at once and
    without opening it: a FIFO would wait forever and a device never ends."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link that leads back to itself (a loop); point it at the real file"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                return f"is a symbolic link to {display_path(os.readlink(path))}, which does not exist"
            return "no such file or folder; check the path"
        if exc.errno == errno.EACCES:
            return "cannot be read (permission denied); check that you may open it"
        return f"cannot be read ({exc.strerror or exc})"
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        if not folder_ok:
            return (
                "is a folder, not a file; choose a file inside it (or a folder saved by the datasets library)"
            )
        if not os.access(path, os.R_OK | os.X_OK):
            return "is a folder that cannot be read (permission denied); check that you may open it"
        return None
    if stat.S_ISFIFO(mode):
        return (
            "is a named pipe (FIFO), not a file: reading it would wait for a writer; save the data to a file"
        )
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file; choose a file with examples in it"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file; choose a file with examples in it"
    if not stat.S_ISREG(mode):
        return "is not a regular file; choose a file with examples in it"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied); check that you may open it"
    return None


def _text_problem(head: bytes) -> str | None:
    """Why a file whose first bytes are ``head`` is not UTF-8 text (UTF-16/32, binary), or None."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return f"is saved as UTF-32 text, not UTF-8; {UTF8_ADVICE}"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return f"is saved as UTF-16 text, not UTF-8; {UTF8_ADVICE}"
    if b"\x00" in head:
        if (
            len(head) >= 4
            and (head[1:2] == b"\x00" or head[0:1] == b"\x00")
            and head.count(b"\x00") * 3 < len(head) * 2
        ):
            return f"looks like UTF-16 text without a byte-order mark, not UTF-8; {UTF8_ADVICE}"
        return "holds binary data (NUL bytes), not text; choose a JSONL, JSON, CSV or Parquet file"
    return None


def _open_text(path: Path, problems: _Problems) -> BinaryIO | None:
    """The file opened for reading, past a UTF-8 byte-order mark (Excel writes one), or None
    after adding a problem (empty, UTF-16/32, binary)."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        problems.add(
            f"cannot be read ({exc.strerror or exc}); check that the file exists and you may open it"
        )
        return None
    head = fh.read(4096)
    problem = _text_problem(head)
    if problem is None and not head.strip(b" \t\r\n\xef\xbb\xbf"):
        problem = "the file is empty; choose a file with examples in it"
    if problem is not None:
        fh.close()
        problems.add(problem)
        return None
    fh.seek(3 if head.startswith(UTF8_BOM) else 0)
    return fh


def _parse_json(text: str) -> tuple[Any, str | None]:
    """(value, None), or (None, what is wrong) for text that is not JSON we can hold."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg}, column {exc.colno})"
    except RecursionError:
        return None, "is nested too deeply (more than about 1,000 levels of lists and objects); flatten it"
    except ValueError as exc:  # an integer of more than 4,300 digits
        return None, f"holds a number too long to read ({str(exc).split(';')[0]}); write it as text"


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    byte = raw[exc.start : exc.start + 1].hex().upper()
    return f"is not UTF-8 text (byte 0x{byte} on this line cannot be read); {UTF8_ADVICE}"


def _lines(fh: BinaryIO, problems: _Problems) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, read one at a time; a line over MAX_RECORD_BYTES is
    skipped with a problem; stops at the first byte that is not UTF-8."""
    number = 0
    while True:
        raw = fh.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            while True:  # the rest of the overlong line, in bounded pieces
                more = fh.readline(READ_CHUNK)
                if not more or more.endswith(b"\n"):
                    break
            problems.add(
                f"this line is longer than {MAX_RECORD_BYTES >> 20} MB; no example is that long: the "
                "file may be damaged, or its lines are not separated by line breaks",
                line=number,
            )
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.add(_not_utf8(raw, exc), line=number)
            return


def _jsonl_rows(lines: Iterator[tuple[int, str]], problems: _Problems, record: int = 0) -> Iterator[_Row]:
    for number, line in lines:
        line = line.strip()
        if not line:
            continue
        record += 1
        data, problem = _parse_json(line)
        if problem is not None:
            problems.add(
                f"this line {problem}; each line must be one complete JSON object: fix the line or delete it",
                line=number,
            )
            continue
        yield _Row(data, number, record)


class _JsonStream:
    """A JSON text read in chunks, decoded as it comes, with the line of any position."""

    def __init__(self, fh: BinaryIO, problems: _Problems) -> None:
        self.fh, self.problems = fh, problems
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.eof, self.failed = "", 0, False, False
        self.line, self.counted_to = 1, 0

    def fill(self, at_least: int = READ_CHUNK) -> bool:
        """Read more; False at the end of the file (or at a byte that is not UTF-8)."""
        if self.eof:
            return False
        if self.pos > READ_CHUNK:  # drop what was read, keeping the line count
            self.line_at(self.pos)
            self.buf = self.buf[self.pos :]
            self.counted_to -= self.pos
            self.pos = 0
        raw = self.fh.read(max(at_least, READ_CHUNK))
        try:
            self.buf += self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            self.problems.add(
                _not_utf8(raw, exc), line=self.line_at(len(self.buf)) + raw.count(b"\n", 0, exc.start)
            )
            self.eof = self.failed = True
            return False
        if not raw:
            self.eof = True
        return bool(raw)

    def line_at(self, p: int) -> int:
        self.line += self.buf.count("\n", self.counted_to, p)
        self.counted_to = p
        return self.line

    def skip_space(self) -> str:
        """The next character that is not white space ('' at the end)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def value(self, decoder: json.JSONDecoder) -> tuple[Any, str | None]:
        """The JSON value at the current position, reading on while it may be cut short."""
        while True:
            try:
                data, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > MAX_RECORD_BYTES:
                    return None, f"is not valid JSON, or larger than {MAX_RECORD_BYTES >> 20} MB"
                if self.fill(len(self.buf) - self.pos):
                    continue
                return None, f"is not valid JSON ({exc.msg}, line {self.line_at(exc.pos)})"
            except RecursionError:
                return (
                    None,
                    "is nested too deeply (more than about 1,000 levels of lists and objects); flatten it",
                )
            except ValueError as exc:
                return None, f"holds a number too long to read ({str(exc).split(';')[0]}); write it as text"
            if end >= len(self.buf) and self.fill():  # a number may go on in the next chunk
                continue
            self.pos = end
            return data, None


def _json_array_rows(fh: BinaryIO, problems: _Problems) -> Iterator[_Row]:
    """Elements of a top-level JSON array, read one at a time, each with the line it starts on."""
    stream = _JsonStream(fh, problems)
    decoder = json.JSONDecoder()
    if stream.skip_space() != "[":
        return
    stream.pos += 1
    record = 0
    if stream.skip_space() == "]":
        return
    while True:
        record += 1
        line = stream.line_at(stream.pos)
        data, problem = stream.value(decoder)
        if problem is not None:
            if not stream.failed:
                problems.add(
                    f"record {record} {problem}; the rest of the file cannot be read until this is fixed",
                    line=line,
                )
            return
        yield _Row(data, line, record)
        nxt = stream.skip_space()
        if nxt == ",":
            stream.pos += 1
            stream.skip_space()
            continue
        if nxt == "]":
            stream.pos += 1
            if stream.skip_space():
                problems.add(
                    "there is more text after the closing ']' of the list; remove it",
                    line=stream.line_at(stream.pos),
                )
            return
        if not stream.failed:
            problems.add(
                "expected ',' or ']' after a record (a missing comma?); the rest of the file cannot be "
                "read until this is fixed",
                line=stream.line_at(stream.pos),
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


def _json_document(fh: BinaryIO, path: Path, problems: _Problems) -> tuple[Any, str | None]:
    """The whole file as one JSON value (a single object can only be read whole)."""
    size = fh.seek(0, io.SEEK_END)
    if size > MAX_JSON_DOCUMENT:
        return None, (
            f"is one JSON object of {size / 2**30:.1f} GB; save the examples one per line (JSONL) "
            "or as a list [...] so they can be read one at a time"
        )
    fh.seek(0)
    raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, _not_utf8(raw, exc)
    return _parse_json(text)


def _json_stream_rows(fh: BinaryIO, path: Path, problems: _Problems) -> tuple[str, Iterator[_Row]]:
    """('JSON' or 'JSONL', rows): a list [...] and JSONL are read as they go; a file holding
    one object (one line or pretty-printed) is one example or a list of them under one key."""
    start = fh.tell()
    head = fh.read(4096).lstrip(b" \t\r\n")
    fh.seek(start)
    if head.startswith(b"["):
        return "JSON", _json_array_rows(fh, problems)
    lines = _lines(fh, problems)
    first: tuple[int, str] | None = next(((n, t) for n, t in lines if t.strip()), None)
    if first is None:
        return "JSONL", iter(())
    data, problem = _parse_json(first[1].strip())
    if problem is None:
        second = next(((n, t) for n, t in lines if t.strip()), None)
        if second is None and isinstance(data, dict) and _shape_of_keys(set(data)) == "table":
            # One object on one line: {"data": [...]} is read like its pretty-printed twin.
            rows = _json_object_rows(data)
            if rows is not None:
                return "JSON", rows
        head_rows = [_Row(data, first[0], 1)]
        rest = [second] if second is not None else []
        return "JSONL", itertools.chain(
            head_rows, _jsonl_rows(itertools.chain(rest, lines), problems, record=1)
        )
    if not first[1].lstrip().startswith("{"):
        fh.seek(start)
        return "JSONL", _jsonl_rows(_lines(fh, problems), problems)
    # The first line is not JSON by itself: a pretty-printed object spans many lines.
    whole, whole_problem = _json_document(fh, path, problems)
    if whole_problem is None and isinstance(whole, dict):
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
    if whole_problem is not None and (
        "nested too deeply" in whole_problem or "too long to read" in whole_problem
    ):
        problems.add(f"the file {whole_problem}", line=1)
        return "JSON", iter(())
    fh.seek(start)
    return "JSONL", _jsonl_rows(_lines(fh, problems), problems)


def _read_text(path: Path, problems: _Problems) -> str | None:
    """The whole file's text, for files read at once (preference data), or None after adding a
    problem: the same checks as a streamed read (FIFOs, devices, encodings, empty files)."""
    trouble = _file_problem(path, folder_ok=False)
    if trouble is not None:
        problems.add(trouble)
        return None
    fh = _open_text(path, problems)
    if fh is None:
        return None
    with fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.add(_not_utf8(raw, exc), line=raw.count(b"\n", 0, exc.start) + 1)
        return None
    if not text.strip():
        problems.add("the file is empty; choose a file with examples in it")
        return None
    return text


def _json_rows(text: str, problems: _Problems) -> tuple[str, Iterator[_Row]]:
    """('JSON' or 'JSONL', rows) of text already read (see ``_json_stream_rows``)."""
    return _json_stream_rows(io.BytesIO(text.encode("utf-8", "surrogatepass")), Path(problems.path), problems)


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


def _csv_rows(fh: BinaryIO, delimiter: str, problems: _Problems, columns_out: list[str]) -> Iterator[_Row]:
    """The rows of a CSV/TSV file under its header, read as they go. ``strict`` quoting: a quote
    that is never closed, or closed in the middle of a value, is a problem on its line instead
    of silently running the next rows together into one value."""
    csv.field_size_limit(MAX_RECORD_BYTES)  # a long answer is fine; the module's default is 128 KB
    # Lines decoded one by one: a byte that is not UTF-8 is reported on its own line.
    reader = csv.reader((text for _number, text in _lines(fh, problems)), delimiter=delimiter, strict=True)
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
        start = last_line + 1
        if "field larger than field limit" in str(exc):
            problems.add(
                f"holds a value longer than {MAX_RECORD_BYTES >> 20} MB; no example is that long: the file "
                "may be damaged or a quote is never closed",
                line=start,
            )
        elif "expected after" in str(exc) or "end of data" in str(exc):
            problems.add(
                f"a double quote opened on this line is not closed where its value ends (read up to line "
                f"{reader.line_num}), so the rows after it would run together into one value; close the "
                'quote, and write a quote inside a value as two ("")',
                line=start,
            )
        else:
            problems.add(f"cannot be read as CSV ({exc}); check the quotes on this line", line=start)
    if header is None:
        if problems.count == 0:
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


def _parquet_rows(
    path: Path, problems: _Problems, columns_out: list[str], progress: _Progress
) -> Iterator[_Row]:
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
    progress.total = max(pf.metadata.num_rows, 1)
    record = 0
    batches = pf.iter_batches(batch_size=2048)
    while True:
        try:
            batch = next(batches)
            rows = batch.to_pylist()
        except StopIteration:
            return
        except Exception as exc:  # damaged pages, or text that is not UTF-8: pyarrow says which
            problems.add(
                f"cannot be read after record {record:,} ({type(exc).__name__}: {exc}); the file is "
                "damaged or holds text that is not UTF-8: write it again",
                record=record + 1,
            )
            return
        for data in rows:
            record += 1
            yield _Row(data, None, record)
        progress.advance(len(rows), step=2000)


def _is_saved_dataset(path: Path) -> bool:
    try:
        return path.is_dir() and (
            (path / "dataset_dict.json").exists()
            or ((path / "dataset_info.json").exists() and (path / "state.json").exists())
        )
    except OSError:  # a folder that cannot be read
        return False


def _hf_rows(
    path: Path, problems: _Problems, columns_out: list[str], splits_out: list[str], progress: _Progress
) -> Iterator[_Row]:
    if not os.access(path, os.R_OK | os.X_OK):
        problems.add("is a folder that cannot be read (permission denied); check that you may open it")
        return
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
    progress.total = max(sum(len(ds) for _, ds in parts), 1)
    for name, ds in parts:
        splits_out.append(name or "")
        for c in ds.column_names:
            if c not in columns_out:
                columns_out.append(c)
        class_labels = {c: f for c, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
        split = None
        if name is not None:
            split = "train" if name == "train" else "eval" if name.lower() in EVAL_SPLIT_NAMES else None
        where = f"{display_path(path)} [{name}]" if name is not None else display_path(path)
        record = 0
        try:
            batches = iter(ds.data.to_batches(max_chunksize=2048))
            while True:
                try:
                    rows = next(batches).to_pylist()
                except StopIteration:
                    break
                for data in rows:
                    record += 1
                    for c, feature in class_labels.items():
                        if isinstance(data.get(c), int) and 0 <= data[c] < feature.num_classes:
                            data[c] = feature.int2str(data[c])
                    yield _Row(data, None, record, split=split, path=where)
                progress.advance(len(rows), step=2000)
        except Exception as exc:  # damaged Arrow files
            problems.add(
                f"cannot be read after record {record:,} ({type(exc).__name__}: {exc}); save it again "
                "with save_to_disk()",
                record=record + 1,
                path=where,
            )
            return


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
