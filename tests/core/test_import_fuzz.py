"""Property-based fuzzing of every importer (JSONL, JSON lists and objects, CSV/TSV,
Parquet, datasets folders; messages, Alpaca, ShareGPT and table shapes): whatever the
bytes or the structure, an import either adds every example or is refused with a
message naming the file and adds nothing; it never raises anything else.

The number of examples per property comes from the hypothesis profile: "ci" (the
default, a few seconds each) or "thorough" (FTSTUDIO_FUZZ=thorough, minutes)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftstudio.core.formats import ImportFailed, import_dataset
from ftstudio.core.project import Project

COMMON = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("ci", max_examples=30, **COMMON)
settings.register_profile("thorough", max_examples=1000, **COMMON)
settings.load_profile(os.environ.get("FTSTUDIO_FUZZ", "ci"))

pytestmark = pytest.mark.timeout(300)

KEYS = [
    "messages",
    "role",
    "content",
    "conversations",
    "from",
    "value",
    "instruction",
    "input",
    "output",
    "text",
    "label",
    "system",
    "prompt",
    "response",
    "history",
    "tool_calls",
    "user",
    "assistant",
    "human",
    "gpt",
    "data",
    "x",
]
# Text as hostile as JSON can carry: every code point (lone surrogates and NUL included).
hostile_text = st.text(alphabet=st.characters(codec=None), max_size=40) | st.sampled_from(
    ["", " ", "\u0000", "\ud800", "\u202e", "\r\n", "<b>x</b>", "\U0001f600", "9" * 5000]
)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | hostile_text
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | hostile_text, inner, max_size=4)
    ),
    max_leaves=20,
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool", "bot", ""]),
        "content": hostile_text | json_values,
    }
)
records = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(message, max_size=5) | json_values}),
    st.fixed_dictionaries(
        {
            "conversations": st.lists(
                st.fixed_dictionaries(
                    {
                        "from": st.sampled_from(["human", "gpt", "system", "alien"]),
                        "value": hostile_text | json_values,
                    }
                ),
                max_size=4,
            )
        }
    ),
    st.fixed_dictionaries({"instruction": hostile_text, "output": hostile_text | json_values}),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5),
    json_values,
)


@pytest.fixture(scope="module")
def fuzz_project(tmp_path_factory) -> Project:
    project = Project.create(tmp_path_factory.mktemp("fuzz") / "p.ftstudio")
    project.on_wait = lambda message: None
    yield project
    project.close()


def outcome(project: Project, path: Path, **kwargs: object) -> None:
    """The import's contract, whatever ``path`` holds."""
    before = project.count_examples()
    try:
        preview = import_dataset(project, path, **kwargs)
    except ImportFailed as exc:
        assert exc.problem_count >= 1
        shown = os.fsencode(path.name).decode("utf-8", "replace")
        assert shown in str(exc)
        assert all(shown in str(p) or "[" in str(p) for p in exc.problems)
        assert project.count_examples() == before
        return
    assert project.count_examples() == before + preview.example_count


def write(tmp_dir: Path, name: str, data: bytes) -> Path:
    path = tmp_dir / name
    path.write_bytes(data)
    return path


@given(
    data=st.binary(max_size=3000), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet", ""])
)
def test_any_bytes(fuzz_project, tmp_path_factory, data, suffix):
    outcome(fuzz_project, write(tmp_path_factory.mktemp("b"), f"bytes{suffix}", data))


@given(
    rows=st.lists(records, max_size=8),
    layout=st.sampled_from(["jsonl", "list", "object", "pretty"]),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_any_json_structure(fuzz_project, tmp_path_factory, rows, layout, crlf, bom):
    def dump(value: object, indent: int | None = None) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    try:
        if layout == "jsonl":
            text = "\n".join(dump(r) for r in rows)
        elif layout == "list":
            text = dump(rows)
        elif layout == "object":
            text = dump({"data": rows})
        else:
            text = dump(rows, indent=2)
        raw = text.replace("\n", "\r\n" if crlf else "\n").encode("utf-8", "surrogatepass")
    except (RecursionError, ValueError):  # json cannot write it either
        return
    outcome(
        fuzz_project,
        write(
            tmp_path_factory.mktemp("j"),
            "records.json" if layout != "jsonl" else "r.jsonl",
            (b"\xef\xbb\xbf" if bom else b"") + raw,
        ),
    )


@given(
    header=st.lists(st.sampled_from(KEYS) | hostile_text, min_size=1, max_size=4),
    body=st.lists(st.lists(hostile_text, max_size=5), max_size=8),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_NONE]),
)
def test_any_csv(fuzz_project, tmp_path_factory, header, body, delimiter, quoting):
    out = io.StringIO()
    try:
        writer = csv.writer(out, delimiter=delimiter, quoting=quoting, escapechar="\\")
        writer.writerow(header)
        writer.writerows(body)
    except csv.Error:
        return
    raw = out.getvalue().encode("utf-8", "surrogatepass")
    outcome(
        fuzz_project,
        write(tmp_path_factory.mktemp("c"), "table.csv" if delimiter != "\t" else "t.tsv", raw),
        column_map={"prompt": header[0], **({"response": header[1]} if len(header) > 1 else {})},
    )


parquet_column = st.one_of(
    st.lists(st.none() | st.text(max_size=20), min_size=1, max_size=6),
    st.lists(st.none() | st.binary(max_size=20), min_size=1, max_size=6),
    st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=6),
)


@given(prompt=parquet_column, response=parquet_column, damage=st.lists(st.integers(0, 10_000), max_size=4))
def test_any_parquet(fuzz_project, tmp_path_factory, prompt, response, damage):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = min(len(prompt), len(response))
    sink = io.BytesIO()
    pq.write_table(pa.table({"prompt": pa.array(prompt[:n]), "response": pa.array(response[:n])}), sink)
    raw = bytearray(sink.getvalue())
    for at in damage:
        raw[at % len(raw)] ^= 0xA5
    outcome(fuzz_project, write(tmp_path_factory.mktemp("p"), "table.parquet", bytes(raw)))


@settings(max_examples=max(5, settings().max_examples // 5))  # save_to_disk is the slow part
@given(
    text=st.lists(st.text(max_size=30), min_size=1, max_size=5),
    split=st.sampled_from(["train", "test", "odd"]),
)
def test_any_datasets_folder(fuzz_project, tmp_path_factory, text, split):
    import datasets

    folder = tmp_path_factory.mktemp("d") / "saved"
    part = datasets.Dataset.from_dict({"prompt": text, "response": list(reversed(text))})
    datasets.DatasetDict({split: part}).save_to_disk(str(folder))
    outcome(fuzz_project, folder)
