"""Reading example files into a project, and writing a project's examples out.

The package: ``problems`` (the formats' names and limits, problems with their fixes),
``layouts`` (raw records by file layout), ``shapes`` (records to examples, column maps,
preference forms) and ``reader`` (``read_dataset``, ``detect_format``, import and export).
Everything public is imported here, so callers import from ``ftstudio.core.formats``.

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

from ftstudio.core.formats.problems import (  # noqa: F401
    AUTO_COLUMN_PAIRS,
    AUTO_SYSTEM_COLUMNS,
    CLI_FIXES,
    DatasetPreview,
    EVAL_SPLIT_NAMES,
    FIX_COLUMNS,
    FIX_FORMAT,
    FIX_PROMPT_COLUMN,
    FORMATS,
    FormatProblem,
    ImportFailed,
    JSON_TABLE,
    LABEL_MAX_CHARS,
    LABEL_MAX_DISTINCT,
    MAPPABLE_FIELDS,
    MAX_LISTED_PROBLEMS,
    PREVIEW_ROWS,
    SHAPE_NAMES,
    SHAREGPT_ROLES,
    UNKNOWN,
    UTF8_ADVICE,
    _Problems,
)
from ftstudio.core.formats.layouts import (  # noqa: F401
    DELIMITER_NAMES,
    _json_rows,
    _layout_of,
    _read_text,
)
from ftstudio.core.formats.shapes import (  # noqa: F401
    FORM_NAMES,
    SHAREGPT_RANKING,
    TRL_PREFERENCE,
    UNPAIRED,
    alpaca_prompt,
    form_of_keys,
    form_of_rows,
    parse_column_map,
    sharegpt_turn,
)
from ftstudio.core.formats.reader import (  # noqa: F401
    detect_format,
    export_dataset,
    import_dataset,
    read_dataset,
)
