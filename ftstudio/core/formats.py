"""Reading example files into a project, and writing a project's examples out.

A file has a *layout* (JSONL, a JSON array, CSV/TSV, Parquet, a folder saved
by ``datasets``) and its records have a *shape*: OpenAI/TRL ``messages``,
Alpaca ``instruction/input/output``, ShareGPT ``conversations``, or a plain
table whose columns a column map turns into prompt, response, system and label.

``read_dataset`` never raises for what is inside the file: it reads every
record and collects every problem, each naming the file, the line (or record)
and what to do. ``import_dataset`` adds the examples only when there is no
problem at all, in one transaction, so a bad file leaves the project as it was.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ftstudio.core.examples import NewExample, check_conversation, split_system
from ftstudio.core.fileio import write_text_atomic

if TYPE_CHECKING:
    from ftstudio.core.project import Project

FORMATS = ("auto", "messages", "alpaca", "sharegpt", "csv", "parquet", "hf-dataset")
# JSON/JSONL whose records are plain fields ({"text": ..., "label": ...}): read
# like a table, with a column map. detect_format() may return it; read_dataset accepts it.
JSON_TABLE = "json-table"
UNKNOWN = "unknown"
MAPPABLE_FIELDS = ("prompt", "response", "system", "label")

MAX_LISTED_PROBLEMS = 100
PREVIEW_ROWS = 20
# A response column is taken as the label too when it looks like categories:
# few distinct short values (at most this many, and at most half the answers).
LABEL_MAX_DISTINCT = 20
LABEL_MAX_CHARS = 40

# Column names picked without a map, in order of preference (lower-cased).
AUTO_COLUMN_PAIRS = (
    ("prompt", "response"), ("prompt", "completion"), ("instruction", "output"),
    ("question", "answer"), ("text", "label"), ("text", "category"), ("text", "class"), ("sentence", "label"),
    ("input", "output"), ("query", "response"),
)
AUTO_SYSTEM_COLUMNS = ("system", "system_prompt")

SHAREGPT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
    "model": "assistant", "bing": "assistant",
    "system": "system",
    "function_call": "call", "tool_call": "call",
    "observation": "tool", "function_response": "tool", "tool": "tool", "tool_response": "tool",
}

SHAPE_NAMES = {
    "messages": "OpenAI messages form",
    "alpaca": "Alpaca form (instruction/input/output)",
    "sharegpt": "ShareGPT form (conversations)",
    "table": "table",
}
EVAL_SPLIT_NAMES = ("test", "validation", "valid", "eval", "evaluation", "dev", "held_out", "heldout")

UTF8_ADVICE = ("re-save it as UTF-8 (in Excel: File > Save As > 'CSV UTF-8'; "
               "in a text editor: Save with encoding UTF-8)")


# -- problems ---------------------------------------------------------------------------

# Fixes a problem can name. Each front end says them in terms of its own controls
# (FormatProblem.worded); CLI_FIXES are the command line's words.
FIX_FORMAT = "format"  # choose the file's format
FIX_COLUMNS = "columns"  # choose the prompt and response columns
FIX_PROMPT_COLUMN = "prompt_column"  # choose the prompt column
CLI_FIXES = {
    FIX_FORMAT: f"choose the format with --format ({', '.join(FORMATS[1:])})",
    FIX_COLUMNS: "choose columns with --map prompt=COLUMN --map response=COLUMN",
    FIX_PROMPT_COLUMN: "add --map prompt=COLUMN",
}


@dataclass(frozen=True)
class FormatProblem:
    """One thing wrong with a file. ``line`` is 1-based; ``record`` is the 1-based
    position of the record where lines do not apply (Parquet, datasets folders)
    or beside the line (JSON arrays). ``text`` says what is wrong; with a ``fix``
    (one of the FIX_ names) it holds "{fix}" where the words for the fix go."""

    path: str
    line: int | None
    text: str
    record: int | None = None
    fix: str | None = None

    def worded(self, fixes: dict[str, str]) -> str:
        """The problem with its fix said in ``fixes``' words."""
        return self.text.replace("{fix}", fixes[self.fix]) if self.fix else self.text

    @property
    def message(self) -> str:
        """The problem as the command line says it."""
        return self.worded(CLI_FIXES)

    def location(self) -> str:
        name = Path(self.path).name or self.path
        if self.line is not None and self.record is not None:
            return f"{name}, line {self.line} (record {self.record})"
        if self.line is not None:
            return f"{name}, line {self.line}"
        if self.record is not None:
            return f"{name}, record {self.record}"
        return name

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


class _Problems:
    """Collects problems, keeping the first MAX_LISTED_PROBLEMS and counting all."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.items: list[FormatProblem] = []
        self.count = 0

    def add(self, message: str, line: int | None = None, record: int | None = None, path: str | None = None,
            fix: str | None = None) -> None:
        self.count += 1
        if len(self.items) < MAX_LISTED_PROBLEMS:
            self.items.append(FormatProblem(path or self.path, line, message, record, fix))


class _RowError(Exception):
    """What is wrong with one record; the caller adds where it is."""


@dataclass
class DatasetPreview:
    path: Path
    format: str
    description: str
    columns: list[str] = field(default_factory=list)
    first_rows: list[dict] = field(default_factory=list)
    examples: list[NewExample] = field(default_factory=list)
    problems: list[FormatProblem] = field(default_factory=list)
    problem_count: int = 0
    needs_column_map: bool = False
    column_map: dict[str, str] = field(default_factory=dict)  # the map used (given or chosen by name)
    row_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0 and not self.needs_column_map


class ImportFailed(Exception):
    """Nothing was imported; ``problems`` lists the first ones, ``problem_count`` counts all."""

    LISTED_IN_MESSAGE = 20

    def __init__(self, problems: list[FormatProblem], problem_count: int, path: Path | str) -> None:
        self.problems = list(problems)
        self.problem_count = problem_count
        self.path = Path(path)
        super().__init__(self._text())

    def lines(self, fixes: dict[str, str]) -> list[str]:
        """What went wrong, a line each, with the fixes in ``fixes``' words."""
        n = self.problem_count
        head = f"{self.path}: {n} problem{'s' if n != 1 else ''} found"
        shown = self.problems[: self.LISTED_IN_MESSAGE]
        lines = [head, *(f"  {p.location()}: {p.worded(fixes)}" for p in shown)]
        if n > len(shown):
            lines.append(f"  ... and {n - len(shown)} more")
        return lines

    def _text(self) -> str:
        return "\n".join(self.lines(CLI_FIXES))

    def __str__(self) -> str:
        return self._text()


# -- column maps ------------------------------------------------------------------------

def parse_column_map(pairs: list[str]) -> dict[str, str]:
    """``["prompt=text", "response=category"]`` -> ``{"prompt": "text", "response": "category"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        fld, sep, column = pair.partition("=")
        fld, column = fld.strip(), column.strip()
        if not sep or not fld or not column:
            raise ValueError(f"--map {pair!r} needs the form FIELD=COLUMN, for example --map prompt=text")
        if fld not in MAPPABLE_FIELDS:
            raise ValueError(f"--map {pair!r}: unknown field {fld!r}; choose one of {', '.join(MAPPABLE_FIELDS)}")
        if fld in out:
            raise ValueError(f"--map {pair!r}: {fld} is already mapped to column {out[fld]!r}; map each field once")
        out[fld] = column
    return out


def _auto_column_map(columns: list[str]) -> dict[str, str]:
    by_lower: dict[str, str] = {}
    for c in columns:
        by_lower.setdefault(c.strip().lower(), c)
    chosen: dict[str, str] = {}
    for prompt, response in AUTO_COLUMN_PAIRS:
        if prompt in by_lower and response in by_lower:
            chosen = {"prompt": by_lower[prompt], "response": by_lower[response]}
            break
    if not chosen:
        return {}
    for name in AUTO_SYSTEM_COLUMNS:
        if name in by_lower:
            chosen["system"] = by_lower[name]
            break
    if "label" in by_lower and by_lower["label"] != chosen["response"]:
        chosen["label"] = by_lower["label"]
    return chosen


# -- reading raw records ----------------------------------------------------------------

@dataclass
class _Row:
    data: Any
    line: int | None
    record: int
    split: str | None = None
    path: str | None = None  # where problems in it are reported, when not the file itself


def _read_text(path: Path, problems: _Problems) -> str | None:
    """The file's text, or None after adding a problem (empty, not UTF-8)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.add(f"cannot be read ({exc.strerror or exc}); check that the file exists and you may open it")
        return None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        problems.add(f"is saved as UTF-16 text, not UTF-8; {UTF8_ADVICE}")
        return None
    try:
        text = raw.decode("utf-8-sig")  # -sig: Excel writes a byte-order mark in front
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start:exc.start + 1].hex().upper()
        problems.add(f"is not UTF-8 text (byte 0x{byte} on this line cannot be read); {UTF8_ADVICE}", line=line)
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
            problems.add(f"this line is not valid JSON ({exc.msg}, column {exc.colno}); each line must be one "
                         "complete JSON object: fix the line or delete it", line=number)
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
            problems.add(f"record {record} is not valid JSON ({exc.msg}, column {exc.colno}); the rest of the "
                         "file cannot be read until this is fixed", line=exc.lineno)
            return
        yield _Row(data, line_at(pos), record)
        pos = skip_space(end)
        if text.startswith(",", pos):
            pos = skip_space(pos + 1)
            continue
        if text.startswith("]", pos):
            rest = text[pos + 1:].strip()
            if rest:
                problems.add("there is more text after the closing ']' of the list; remove it", line=line_at(pos))
            return
        problems.add("expected ',' or ']' after a record (a missing comma?); the rest of the file cannot be read "
                     "until this is fixed", line=line_at(pos))
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
            problems.add(f"holds one JSON object (fields {keys}) rather than a list of examples; save one "
                         "example per line (JSONL) or a list [...] of examples", line=1)
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


DELIMITER_NAMES = {",": "CSV (comma-separated)", ";": "CSV (semicolon-separated)",
                   "\t": "TSV (tab-separated)", "|": "CSV (|-separated)"}


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
                    f"{sep} or a line break must be in double quotes", line=start)
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
        problems.add(f"cannot be read as Parquet ({exc}); check that it is a .parquet file, or choose another "
                     "format")
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


def _hf_rows(path: Path, problems: _Problems, columns_out: list[str], splits_out: list[str]) -> Iterator[_Row]:
    if not _is_saved_dataset(path):
        problems.add("is not a folder saved by the datasets library (no dataset_info.json and state.json, or "
                     "dataset_dict.json); choose the folder given to save_to_disk(), or a file inside this one")
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


# -- shapes: one record -> one example ---------------------------------------------------

def _shape_of_keys(keys: set[str]) -> str:
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    return "table"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _label(value: Any) -> str | None:
    text = _text(value).strip()
    return text or None


def _system_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _RowError(f"'{what}' is not text")
    return value or None


def _finish(messages: list[dict], system: str | None, label: str | None, source_line: int | None,
            split: str | None) -> NewExample:
    """Check the conversation and build the example; no assistant turn means unlabelled."""
    full = ([{"role": "system", "content": system}] if system else []) + messages
    problem = check_conversation(full, require_answer=False)
    if problem is not None:
        raise _RowError(problem)
    has_answer = any(m.get("role") == "assistant" for m in messages)
    return NewExample(
        messages=messages, system=system or None, label=label,
        status="labelled" if has_answer else "unlabelled", split=split, source_line=source_line,
    )


def _require_object(data: Any) -> dict:
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a piece of text", int: "a number", float: "a number",
                bool: "true/false"}.get(type(data), type(data).__name__)
        raise _RowError(f"is {kind}, not an object with fields")
    return data


def _from_messages(data: Any, line: int | None, split: str | None) -> NewExample:
    data = _require_object(data)
    if "messages" not in data:
        raise _RowError("has no 'messages' field; expected {\"messages\": [{\"role\": \"user\", \"content\": ...}, "
                        "{\"role\": \"assistant\", \"content\": ...}]}")
    raw = data["messages"]
    if not isinstance(raw, list) or not raw:
        raise _RowError("'messages' must be a non-empty list of {\"role\", \"content\"} objects")
    messages = []
    for i, m in enumerate(raw, start=1):
        if not isinstance(m, dict):
            raise _RowError(f"message {i} is not an object with 'role' and 'content'")
        # Parquet and datasets fill fields a message lacks with null: drop them.
        m = {k: v for k, v in m.items() if v is not None}
        if isinstance(m.get("content"), list):
            m["content"] = _text_parts(m["content"], i)
        messages.append(m)
    system, turns = split_system(messages)
    top_system = _system_text(data.get("system"), "system")
    if system is None:
        system = top_system
    return _finish(turns, system, _label(data.get("label")), line, split)


def _text_parts(parts: list, message_no: int) -> str:
    """OpenAI content parts [{"type": "text", "text": ...}] joined into one text."""
    texts = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, str):
            texts.append(part)
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise _RowError(f"message {message_no} has a part of type {kind!r}; only text can be trained on here")
    return "\n".join(texts)


def _from_alpaca(data: Any, line: int | None, split: str | None) -> NewExample:
    data = _require_object(data)
    for key in ("instruction", "output"):
        if key not in data:
            raise _RowError(f"has no '{key}' field; Alpaca records need 'instruction' and 'output' "
                            "('input' and 'system' are optional)")
    instruction, extra = _text(data.get("instruction")), _text(data.get("input"))
    if not instruction.strip() and not extra.strip():
        raise _RowError("the instruction is empty; write the instruction or delete the record")
    prompt = f"{instruction}\n\n{extra}" if instruction.strip() and extra.strip() else (instruction or extra)
    messages: list[dict] = []
    history = data.get("history") or []
    if not isinstance(history, list):
        raise _RowError("'history' must be a list of [question, answer] pairs")
    for i, pair in enumerate(history, start=1):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _RowError(f"history entry {i} is not a [question, answer] pair")
        messages += [{"role": "user", "content": _text(pair[0])}, {"role": "assistant", "content": _text(pair[1])}]
    messages.append({"role": "user", "content": prompt})
    output = _text(data.get("output"))
    if output.strip():
        messages.append({"role": "assistant", "content": output})
    return _finish(messages, _system_text(data.get("system"), "system"), _label(data.get("label")), line, split)


def _tool_call(value: str) -> list[dict] | None:
    """ShareGPT tool calls hold JSON like {"name": ..., "arguments": {...}}; TRL wants tool_calls."""
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return None
    calls = parsed if isinstance(parsed, list) else [parsed]
    out = []
    for call in calls:
        if not isinstance(call, dict) or "name" not in call:
            return None
        out.append({"type": "function",
                    "function": {"name": call["name"], "arguments": call.get("arguments", call.get("parameters", {}))}})
    return out


def _from_sharegpt(data: Any, line: int | None, split: str | None) -> NewExample:
    data = _require_object(data)
    if "conversations" not in data:
        raise _RowError("has no 'conversations' field; expected {\"conversations\": [{\"from\": \"human\", "
                        "\"value\": ...}, {\"from\": \"gpt\", \"value\": ...}]}")
    turns = data["conversations"]
    if not isinstance(turns, list) or not turns:
        raise _RowError("'conversations' must be a non-empty list of {\"from\", \"value\"} turns")
    system = _system_text(data.get("system"), "system")
    messages: list[dict] = []
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise _RowError(f"turn {i} is not an object with 'from' and 'value'")
        speaker = t.get("from", t.get("role"))
        value = t.get("value", t.get("content"))
        role = SHAREGPT_ROLES.get(str(speaker).lower()) if speaker is not None else None
        if role is None:
            raise _RowError(f"turn {i} comes from {speaker!r}, which is not a known speaker (expected human, gpt, "
                            "system, function_call or observation)")
        if value is not None and not isinstance(value, str):
            raise _RowError(f"turn {i} ({speaker}) has a 'value' that is not text")
        value = value or ""
        if role == "system":
            if messages:
                raise _RowError(f"turn {i} is a system turn, but a system turn may only come first")
            system = value or system
            continue
        if role == "call":
            calls = _tool_call(value)
            if calls is None:
                messages.append({"role": "assistant", "content": value})
            elif messages and messages[-1]["role"] == "assistant" and "tool_calls" not in messages[-1]:
                messages[-1]["tool_calls"] = calls  # "gpt: let me check" then the call: one assistant turn
            else:
                messages.append({"role": "assistant", "tool_calls": calls})
            continue
        messages.append({"role": role, "content": value})
    if not messages:
        raise _RowError("the conversation has only a system turn")
    return _finish(messages, system, _label(data.get("label")), line, split)


@dataclass
class _TableMap:
    columns: dict[str, str]
    label_from_response: bool = False


def _from_table(data: Any, cmap: _TableMap, line: int | None, split: str | None) -> NewExample:
    data = _require_object(data)
    missing = [c for c in cmap.columns.values() if c not in data]
    if missing:
        raise _RowError(f"has no field {missing[0]!r}; every record needs the mapped fields "
                        f"({', '.join(repr(c) for c in cmap.columns.values())})")
    prompt_col = cmap.columns["prompt"]
    prompt = _text(data[prompt_col])
    if not prompt.strip():
        raise _RowError(f"the prompt ({prompt_col!r}) is empty; fill it in or delete the row")
    messages = [{"role": "user", "content": prompt}]
    response = _text(data[cmap.columns["response"]]) if "response" in cmap.columns else ""
    if response.strip():
        messages.append({"role": "assistant", "content": response})
    system = _text(data[cmap.columns["system"]]) if "system" in cmap.columns else ""
    label = _label(data[cmap.columns["label"]]) if "label" in cmap.columns else None
    if cmap.label_from_response and label is None:
        label = _label(response)
    return _finish(messages, system or None, label, line, split)


def _looks_categorical(values: list[str]) -> bool:
    answered = [v.strip() for v in values if v and v.strip()]
    if len(answered) < 2:
        return False
    distinct = set(answered)
    return (len(distinct) <= min(LABEL_MAX_DISTINCT, max(2, len(answered) // 2))
            and all(len(v) <= LABEL_MAX_CHARS and "\n" not in v for v in distinct))


# -- preference data (read by core/preferences.py; here so example imports refuse it) ----------

TRL_PREFERENCE = "trl-preference"
SHAREGPT_RANKING = "sharegpt-ranking"
UNPAIRED = "unpaired"
FORM_NAMES = {
    TRL_PREFERENCE: "TRL preference form (prompt / chosen / rejected)",
    SHAREGPT_RANKING: "ranking form (conversations / chosen / rejected)",
    UNPAIRED: "unpaired form (answers labelled true / false)",
}


def form_of_keys(keys: set[str], labels: Iterable[Any] = ()) -> str | None:
    """Which preference form records with these fields are in, or None (not preference data).

    ``messages`` with a ``label`` counts as unpaired only when the labels are true/false: the
    project's own exports write category labels there.
    """
    if {"chosen", "rejected"} <= keys:
        return SHAREGPT_RANKING if "conversations" in keys or "instruction" in keys else TRL_PREFERENCE
    if "completion" in keys and "label" in keys:
        return UNPAIRED
    if "conversations" in keys and "kto_tag" in keys:
        return UNPAIRED
    if "messages" in keys and "label" in keys:
        values = [v for v in labels if v is not None]
        if values and all(isinstance(v, bool) for v in values):
            return UNPAIRED
    return None


def form_of_rows(rows: list[_Row]) -> str | None:
    """The preference form of the first records read from a file, or None."""
    keys: set[str] = set()
    labels: list[Any] = []
    for r in rows[:PREVIEW_ROWS]:
        if isinstance(r.data, dict):
            keys |= set(r.data)
            labels.append(r.data.get("label"))
    return form_of_keys(keys, labels)


# -- detection --------------------------------------------------------------------------

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

def read_dataset(path: Path | str, format: str = "auto", column_map: dict[str, str] | None = None,
                 system: str | None = None) -> DatasetPreview:
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
            problems.add(f"unknown field {bad[0]!r} in the column map; choose from {', '.join(MAPPABLE_FIELDS)}")
            return done("bad column map")

    layout = format if format in ("csv", "parquet", "hf-dataset") else _layout_of(path)
    if layout is None:
        what = "a folder" if path.is_dir() else "this file"
        problems.add(f"cannot tell the format of {what}; name it .jsonl, .json, .csv, .tsv or .parquet, or "
                     "{fix}", fix=FIX_FORMAT)
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
    preview.first_rows = [r.data if isinstance(r.data, dict) else {"value": r.data} for r in rows[:PREVIEW_ROWS]]
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
        problems.add("holds no JSON objects; each example must be an object such as "
                     "{\"messages\": [{\"role\": \"user\", \"content\": ...}, ...]}")
        return done(f"{layout_name}, {len(rows)} values that are not examples")

    if layout == "json" and format == "auto":
        preference_form = form_of_rows(rows)
        if preference_form is not None:
            # Read as examples, the rejected answers would be dropped or trained on as targets.
            problems.add(f"holds preference data ({FORM_NAMES[preference_form]}), not examples; import it as "
                         "preference pairs: 'ftstudio import' finds them by itself, and in the app use "
                         "Data > Preferences > Import")
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
            problems.add(f"is a table (columns {available}) and it is not clear which column is the prompt and "
                         "which the response; {fix}", fix=FIX_COLUMNS)
        elif "prompt" not in chosen:
            preview.needs_column_map = True
            problems.add(f"the column map has no prompt column; {{fix}} (columns: {available})",
                         fix=FIX_PROMPT_COLUMN)
        else:
            if columns:
                for fld, col in chosen.items():
                    if col not in columns:
                        problems.add(f"column {col!r} (mapped to {fld}) is not in the file; the columns are "
                                     f"{available}")
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


def import_dataset(project: Project, path: Path | str, format: str = "auto", column_map: dict[str, str] | None = None,
                   system: str | None = None, eval_fraction: float | None = None,
                   actor: str | None = None) -> DatasetPreview:
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
