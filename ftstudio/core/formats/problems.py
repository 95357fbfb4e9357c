"""The formats' names and limits, and how a file's problems are told: each with where it is
and, when a choice fixes it, the fix by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ftstudio.core.examples import NewExample
from ftstudio.core.fileio import display_path

if TYPE_CHECKING:
    pass

FORMATS = ("auto", "messages", "alpaca", "sharegpt", "csv", "parquet", "hf-dataset")
# JSON/JSONL whose records are plain fields ({"text": ..., "label": ...}): read
# like a table, with a column map. detect_format() may return it; read_dataset accepts it.
JSON_TABLE = "json-table"
UNKNOWN = "unknown"
MAPPABLE_FIELDS = ("prompt", "response", "system", "label")

MAX_LISTED_PROBLEMS = 100
# Files are read as they go, in pieces of READ_CHUNK. One record (a JSONL line, a CSV
# value, an element of a JSON list) may be up to MAX_RECORD_BYTES; a file holding one JSON
# object is read whole, up to MAX_JSON_DOCUMENT.
READ_CHUNK = 1 << 20
MAX_RECORD_BYTES = 64 << 20
MAX_JSON_DOCUMENT = 128 << 20
UTF8_BOM = b"\xef\xbb\xbf"
# Characters no training text holds: NUL (a damaged or binary file) and lone UTF-16
# surrogates (an escaped "\ud800" alone is not a character and cannot be stored).
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

ProgressReport = Callable[[int, int], None]
PREVIEW_ROWS = 20
# A response column is taken as the label too when it looks like categories:
# few distinct short values (at most this many, and at most half the answers).
LABEL_MAX_DISTINCT = 20
LABEL_MAX_CHARS = 40

# Column names picked without a map, in order of preference (lower-cased).
AUTO_COLUMN_PAIRS = (
    ("prompt", "response"),
    ("prompt", "completion"),
    ("instruction", "output"),
    ("question", "answer"),
    ("text", "label"),
    ("text", "category"),
    ("text", "class"),
    ("sentence", "label"),
    ("input", "output"),
    ("query", "response"),
)
AUTO_SYSTEM_COLUMNS = ("system", "system_prompt")

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "bing": "assistant",
    "system": "system",
    "function_call": "call",
    "tool_call": "call",
    "observation": "tool",
    "function_response": "tool",
    "tool": "tool",
    "tool_response": "tool",
}

SHAPE_NAMES = {
    "messages": "OpenAI messages form",
    "alpaca": "Alpaca form (instruction/input/output)",
    "sharegpt": "ShareGPT form (conversations)",
    "table": "table",
}
EVAL_SPLIT_NAMES = ("test", "validation", "valid", "eval", "evaluation", "dev", "held_out", "heldout")

UTF8_ADVICE = (
    "re-save it as UTF-8 (in Excel: File > Save As > 'CSV UTF-8'; in a text editor: Save with encoding UTF-8)"
)


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
        name = display_path(Path(self.path).name or self.path)
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

    def add(
        self,
        message: str,
        line: int | None = None,
        record: int | None = None,
        path: str | None = None,
        fix: str | None = None,
    ) -> None:
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
    example_count: int = 0  # all the file's examples (``examples`` may hold only the first ones)
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
        head = f"{display_path(self.path)}: {n} problem{'s' if n != 1 else ''} found"
        shown = self.problems[: self.LISTED_IN_MESSAGE]
        lines = [head, *(f"  {p.location()}: {p.worded(fixes)}" for p in shown)]
        if n > len(shown):
            lines.append(f"  ... and {n - len(shown)} more")
        return lines

    def _text(self) -> str:
        return "\n".join(self.lines(CLI_FIXES))

    def __str__(self) -> str:
        return self._text()


@dataclass
class _Row:
    data: Any
    line: int | None
    record: int
    split: str | None = None
    path: str | None = None  # where problems in it are reported, when not the file itself
