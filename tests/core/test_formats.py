"""Dataset import and export: every format read back to the exact messages,
auto-detection, column maps, every kind of bad input (named by file and line,
nothing imported), and export read back by the datasets library."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ftstudio.core.formats import (
    JSON_TABLE, MAX_LISTED_PROBLEMS, UNKNOWN, FormatProblem, ImportFailed, detect_format,
    export_dataset, import_dataset, parse_column_map, read_dataset,
)

SYSTEM = "Answer briefly."


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def conv(q: str, a: str, system: str | None = None) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


def qa(q: str, a: str) -> list[dict]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def failed_import(project, path, **kw) -> ImportFailed:
    with pytest.raises(ImportFailed) as info:
        import_dataset(project, path, **kw)
    assert project.count_examples() == 0
    return info.value


# -- round trips ------------------------------------------------------------------------

def test_messages_jsonl_round_trip(tmp_path):
    tool_call = {"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}
    rows = [
        {**conv("Bonjour, ça va ?", "Oui\u2028merci", SYSTEM), "label": "greeting"},
        {"messages": [{"role": "user", "content": "Weather in Oslo?"},
                      {"role": "assistant", "tool_calls": [tool_call]},
                      {"role": "tool", "content": "4 °C"},
                      {"role": "assistant", "content": "4 degrees."}]},
    ]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    (tmp_path / "data.jsonl").write_text(path.read_text(encoding="utf-8").replace("\n", "\n\n", 1), encoding="utf-8")
    preview = read_dataset(path)
    assert preview.ok, preview.problems
    assert preview.format == "messages"
    assert preview.description == "JSONL, OpenAI messages form, 2 rows"
    first, second = preview.examples
    assert first.messages == qa("Bonjour, ça va ?", "Oui\u2028merci")
    assert first.system == SYSTEM and first.label == "greeting" and first.source_line == 1
    assert second.messages == rows[1]["messages"] and second.system is None and second.label is None
    assert second.source_line == 3  # a blank line came before it
    assert preview.columns == ["messages", "label"]
    assert preview.first_rows[0] == rows[0]


def test_messages_json_array_round_trip_with_lines(tmp_path):
    rows = [conv("one", "1"), conv("two", "2", SYSTEM)]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    preview = read_dataset(path)
    assert preview.ok and preview.format == "messages"
    assert preview.description.startswith("JSON, OpenAI messages form, 2 rows")
    assert [e.messages for e in preview.examples] == [qa("one", "1"), qa("two", "2")]
    assert preview.examples[1].system == SYSTEM
    text_lines = path.read_text().split("\n")
    assert text_lines[preview.examples[1].source_line - 1].strip() == "{"
    assert preview.examples[0].source_line == 2


def test_alpaca_round_trip(tmp_path):
    rows = [
        {"instruction": "Translate to French", "input": "cat", "output": "chat", "label": "fr"},
        {"instruction": "Say hi", "input": "", "output": "hi", "system": "Be kind."},
        {"instruction": "Pending", "input": "", "output": ""},
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert detect_format(path) == "alpaca"
    preview = read_dataset(path)
    assert preview.ok, preview.problems
    a, b, c = preview.examples
    assert a.messages == qa("Translate to French\n\ncat", "chat") and a.label == "fr"
    assert b.messages == qa("Say hi", "hi") and b.system == "Be kind."
    assert c.messages == [{"role": "user", "content": "Pending"}] and c.status == "unlabelled"
    assert "1 without an answer (imported as unlabelled)" in preview.description


def test_sharegpt_round_trip_with_tool_calls(tmp_path):
    rows = [
        {"conversations": [{"from": "system", "value": SYSTEM}, {"from": "human", "value": "hi"},
                           {"from": "gpt", "value": "hello"}, {"from": "human", "value": "bye"},
                           {"from": "gpt", "value": "ciao"}], "label": "chat"},
        {"conversations": [{"from": "human", "value": "Weather in Oslo?"},
                           {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
                           {"from": "observation", "value": "4 °C"},
                           {"from": "gpt", "value": "4 degrees."}]},
    ]
    path = write_jsonl(tmp_path / "sg.jsonl", rows)
    assert detect_format(path) == "sharegpt"
    preview = read_dataset(path)
    assert preview.ok, preview.problems
    assert preview.description == "JSONL, ShareGPT form (conversations), 2 rows"
    a, b = preview.examples
    assert a.system == SYSTEM and a.label == "chat"
    assert a.messages == qa("hi", "hello") + qa("bye", "ciao")
    assert b.messages == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "4 °C"},
        {"role": "assistant", "content": "4 degrees."},
    ]


def test_excel_csv_with_bom_semicolons_and_quoted_newlines(tmp_path):
    path = tmp_path / "excel.csv"
    text = 'Text;Category;Notes\r\n"line one\r\nline two";billing;x\r\nwhere is it;shipping;\r\nrefund?;billing;\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert detect_format(path) == "csv"
    preview = read_dataset(path, column_map={"prompt": "Text", "response": "Category"})
    assert preview.ok, preview.problems
    assert preview.columns == ["Text", "Category", "Notes"]
    assert [e.messages for e in preview.examples] == [
        qa("line one\r\nline two", "billing"), qa("where is it", "shipping"), qa("refund?", "billing")]
    assert [e.source_line for e in preview.examples] == [2, 4, 5]
    # Few distinct short answers: the response doubles as the label, and the description says so.
    assert [e.label for e in preview.examples] == ["billing", "shipping", "billing"]
    assert "CSV (semicolon-separated)" in preview.description
    assert "labels taken from the response column (2 categories)" in preview.description


def test_tsv_with_full_map(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("q\ta\tsys\tcat\nWhat is 2+2?\tFour, of course.\tBe exact.\tmath\n", encoding="utf-8")
    preview = read_dataset(path, column_map={"prompt": "q", "response": "a", "system": "sys", "label": "cat"})
    assert preview.ok, preview.problems
    (ex,) = preview.examples
    assert ex.messages == qa("What is 2+2?", "Four, of course.") and ex.system == "Be exact." and ex.label == "math"
    assert preview.description.startswith("TSV (tab-separated), table, 1 row")


def test_csv_columns_chosen_by_name(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhat colour is the sky?,Blue on a clear day\n", encoding="utf-8")
    preview = read_dataset(path)
    assert preview.ok and preview.column_map == {"prompt": "question", "response": "answer"}
    assert "columns chosen by their names: question \u2192 prompt, answer \u2192 response" in preview.description
    assert preview.examples[0].messages == qa("What colour is the sky?", "Blue on a clear day")


def test_csv_without_known_columns_needs_a_map(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("body,kind\nhello,greeting\n", encoding="utf-8")
    preview = read_dataset(path)
    assert preview.needs_column_map and not preview.ok
    assert preview.columns == ["body", "kind"] and preview.first_rows == [{"body": "hello", "kind": "greeting"}]
    assert "--map prompt=COLUMN --map response=COLUMN" in str(preview.problems[0])


def test_prompt_only_map_imports_unlabelled(project, tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text("text\nfirst ticket\nsecond ticket\n", encoding="utf-8")
    preview = import_dataset(project, path, column_map={"prompt": "text"})
    assert [e.status for e in preview.examples] == ["unlabelled", "unlabelled"]
    stored = project.examples()
    assert [e.messages for e in stored] == [[{"role": "user", "content": "first ticket"}],
                                            [{"role": "user", "content": "second ticket"}]]
    assert {e.status for e in stored} == {"unlabelled"}


def test_flat_jsonl_reads_as_a_table(tmp_path):
    path = write_jsonl(tmp_path / "flat.jsonl", [{"body": "hi", "kind": "greeting"}, {"body": "yo", "kind": "x"}])
    assert detect_format(path) == JSON_TABLE
    assert read_dataset(path).needs_column_map
    preview = read_dataset(path, column_map={"prompt": "body", "response": "kind"})
    assert preview.ok and [e.messages for e in preview.examples] == [qa("hi", "greeting"), qa("yo", "x")]


def test_parquet_messages_and_table(tmp_path):
    import datasets  # a required dependency: missing, this fails instead of skipping
    rows = [conv("q1", "a1", SYSTEM) | {"label": "x"}, conv("q2", "a2") | {"label": None}]
    path = tmp_path / "m.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    assert detect_format(path) == "parquet"
    preview = read_dataset(path)
    assert preview.ok, preview.problems
    assert preview.description == "Parquet, OpenAI messages form, 2 rows"
    assert [e.messages for e in preview.examples] == [qa("q1", "a1"), qa("q2", "a2")]
    assert [e.system for e in preview.examples] == [SYSTEM, None]
    assert [e.label for e in preview.examples] == ["x", None]
    assert [e.source_line for e in preview.examples] == [1, 2]

    table = tmp_path / "t.parquet"
    datasets.Dataset.from_list([{"text": "hello", "label": "greeting"}, {"text": "", "label": "x"}]).to_parquet(str(table))
    bad = read_dataset(table)
    assert bad.problem_count == 1
    assert str(bad.problems[0]).startswith("t.parquet, record 2: the prompt ('text') is empty")


def test_save_to_disk_folder_keeps_splits_and_class_names(tmp_path):
    import datasets  # a required dependency: missing, this fails instead of skipping
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["great", "awful", "fine"], "label": [1, 0, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"text": ["superb"], "label": [1]}, features=features),
    })
    folder = tmp_path / "saved"
    dd.save_to_disk(str(folder))
    assert detect_format(folder) == "hf-dataset"
    preview = read_dataset(folder)
    assert preview.ok, preview.problems
    assert preview.format == "hf-dataset"
    assert preview.description.startswith("datasets folder (splits train, test), table, 4 rows")
    assert [(e.messages, e.label, e.split) for e in preview.examples] == [
        (qa("great", "positive"), "positive", "train"), (qa("awful", "negative"), "negative", "train"),
        (qa("fine", "positive"), "positive", "train"), (qa("superb", "positive"), "positive", "eval")]

    single = tmp_path / "single"
    datasets.Dataset.from_list([conv("a", "b")]).save_to_disk(str(single))
    one = read_dataset(single)
    assert one.ok and one.format == "hf-dataset" and one.examples[0].messages == qa("a", "b")


@pytest.mark.parametrize("name, content, expected", [
    ("a.jsonl", json.dumps(conv("q", "a")) + "\n", "messages"),
    ("a.json", json.dumps([{"instruction": "i", "output": "o"}]), "alpaca"),
    ("a.txt", json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})
     + "\n", "sharegpt"),
    ("a.csv", "prompt,response\nq,a\n", "csv"),
    ("a.tsv", "prompt\tresponse\nq\ta\n", "csv"),
    ("a.dat", "just some words\n", UNKNOWN),
])
def test_detect_format(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert detect_format(path) == expected
    # what was detected is what reading the file uses: the one example comes out of it whole
    preview = read_dataset(path)
    if expected == UNKNOWN:
        assert not preview.ok and preview.problems[0].path.endswith(name)
        assert "cannot tell the format" in preview.problems[0].message
    else:
        assert preview.ok and len(preview.examples) == 1
        assert read_dataset(path, format=expected).examples == preview.examples
        assert preview.examples[0].messages[0]["role"] == "user"


def test_system_prompt_fills_only_missing_ones(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [conv("q", "a", "Own prompt."), conv("q2", "a2")])
    preview = read_dataset(path, system="Default prompt.")
    assert [e.system for e in preview.examples] == ["Own prompt.", "Default prompt."]
    assert "system prompt set on 1 example" in preview.description


def test_import_is_one_undoable_step(project, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [conv(f"q{i}", f"a{i}") for i in range(20)])
    preview = import_dataset(project, path, eval_fraction=0.25, actor="ana")
    assert len(preview.examples) == project.count_examples() == 20
    counts = project.label_counts()[None]
    assert counts == {"train": 15, "eval": 5}
    assert {e["actor"] for e in project.journal()} == {"ana"}
    assert project.undo() == []  # undo goes by who made the change: ana imported, not this user
    project.undo("ana")
    assert project.count_examples() == 0


# -- bad input --------------------------------------------------------------------------

def test_malformed_json_line_and_bad_roles_all_collected(project, tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [json.dumps(conv("ok", "fine")), '{"messages": [', json.dumps(conv("ok2", "fine")),
             json.dumps({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}),
             json.dumps({"text": "no messages"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    exc = failed_import(project, path)
    assert exc.problem_count == 3
    text = str(exc)
    assert "data.jsonl, line 2: this line is not valid JSON" in text
    assert "data.jsonl, line 4: message 1 is an assistant turn before any user turn (roles out of order)" in text
    assert "data.jsonl, line 5: has no 'messages' field" in text
    assert exc.problems[0] == FormatProblem(str(path), 2, exc.problems[0].message)


def test_missing_field_names_the_record(project, tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}], indent=1), encoding="utf-8")
    exc = failed_import(project, path)
    assert "alpaca.json, line 6 (record 2): has no 'output' field" in str(exc)


def test_missing_column_lists_the_columns(project, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,category\nhello,greeting\n", encoding="utf-8")
    exc = failed_import(project, path, column_map={"prompt": "text", "response": "nope"})
    assert "t.csv: column 'nope' (mapped to response) is not in the file; the columns are 'text', 'category'" in str(exc)


@pytest.mark.parametrize("name, content", [("empty.jsonl", b""), ("blank.jsonl", b"\n  \n"),
                                           ("empty.csv", b""), ("empty.json", b"[]")])
def test_empty_file(project, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    exc = failed_import(project, path)
    assert name in str(exc) and ("empty" in str(exc) or "no examples" in str(exc))


def test_header_only_csv(project, tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("prompt,response\n", encoding="utf-8")
    assert "h.csv, line 1: has a header line but no rows" in str(failed_import(project, path))


def test_wrong_encoding_says_utf8(project, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,category\ncafé fermé,feedback\n".encode("latin-1"))
    exc = failed_import(project, path, column_map={"prompt": "text", "response": "category"})
    assert "latin.csv, line 2: is not UTF-8 text (byte 0xE9" in str(exc)
    assert "re-save it as UTF-8" in str(exc)
    utf16 = tmp_path / "u16.tsv"
    utf16.write_bytes("prompt\tresponse\nq\ta\n".encode("utf-16"))
    assert "u16.tsv: is saved as UTF-16 text, not UTF-8; re-save it as UTF-8" in str(failed_import(project, utf16))


def test_unknown_format(project, tmp_path):
    path = tmp_path / "notes.dat"
    path.write_text("some words\n", encoding="utf-8")
    assert "notes.dat: cannot tell the format of this file" in str(failed_import(project, path))
    good = write_jsonl(tmp_path / "d.jsonl", [conv("q", "a")])
    assert "d.jsonl: unknown format 'xml'; choose one of auto, messages" in str(
        failed_import(project, good, format="xml"))
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "folder: cannot tell the format of a folder" in str(failed_import(project, folder))
    assert "is not a folder saved by the datasets library" in str(failed_import(project, folder, format="hf-dataset"))


def test_csv_row_with_wrong_number_of_values_and_empty_prompt(project, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("prompt,response\nok,fine\nhello, world,greeting\n,orphan\n", encoding="utf-8")
    exc = failed_import(project, path)
    assert exc.problem_count == 2
    assert "r.csv, line 3: has 3 values but the header has 2 columns" in str(exc)
    assert "r.csv, line 4: the prompt ('prompt') is empty; fill it in or delete the row" in str(exc)


def test_problems_are_capped_but_counted(project, tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("not json\n" * 150 + json.dumps(conv("q", "a")) + "\n", encoding="utf-8")
    exc = failed_import(project, path)
    assert exc.problem_count == 150 and len(exc.problems) == MAX_LISTED_PROBLEMS
    assert exc.problems[-1].line == MAX_LISTED_PROBLEMS
    assert str(exc).splitlines()[0] == f"{path}: 150 problems found"
    assert str(exc).splitlines()[-1].strip() == f"... and {150 - ImportFailed.LISTED_IN_MESSAGE} more"


def test_unknown_sharegpt_speaker(project, tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [{"from": "robot", "value": "x"}]}])
    assert "s.jsonl, line 1: turn 1 comes from 'robot', which is not a known speaker" in str(
        failed_import(project, path))


def test_parse_column_map():
    assert parse_column_map(["prompt=text", " response = category "]) == {"prompt": "text", "response": "category"}
    assert parse_column_map([]) == {}
    with pytest.raises(ValueError, match="needs the form FIELD=COLUMN"):
        parse_column_map(["prompt"])
    with pytest.raises(ValueError, match="unknown field 'answer'; choose one of prompt, response, system, label"):
        parse_column_map(["answer=x"])
    with pytest.raises(ValueError, match="already mapped"):
        parse_column_map(["prompt=a", "prompt=b"])


# -- export -----------------------------------------------------------------------------

def test_export_reads_back_with_datasets(project, tmp_path):
    import datasets  # a required dependency: missing, this fails instead of skipping
    tool_conv = [{"role": "user", "content": "Weather?"},
                 {"role": "assistant", "tool_calls": [{"type": "function",
                                                       "function": {"name": "weather", "arguments": "{}"}}]},
                 {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}]
    project.add_example(qa("q1", "a1"), system=SYSTEM, label="x", split="train")
    project.add_example(qa("q2", "a2"), split="eval")
    project.add_example(tool_conv, split="train")
    out = tmp_path / "out" / "export.jsonl"
    assert export_dataset(project, out) == 3
    assert not [p for p in out.parent.iterdir() if p.name != "export.jsonl"]  # no temporary left behind
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds["label"] == ["x", None, None]

    def clean(messages):  # arrow fills fields a message lacks with null
        return [{k: v for k, v in m.items() if v is not None} for m in messages]

    got = [clean(m) for m in ds["messages"]]
    assert got[0] == [{"role": "system", "content": SYSTEM}] + qa("q1", "a1")
    assert got[1] == qa("q2", "a2")
    assert got[2] == tool_conv

    # And it imports again as the same examples.
    again = read_dataset(out)
    assert again.ok and [e.messages for e in again.examples] == [qa("q1", "a1"), qa("q2", "a2"), tool_conv]

    assert export_dataset(project, tmp_path / "eval.jsonl", split="eval") == 1
    rows = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert rows == [{"messages": qa("q2", "a2")}]  # no example in this split has a label


def test_export_without_labels_has_no_label_field(project, tmp_path):
    project.add_example(qa("q", "a"))
    export_dataset(project, tmp_path / "o.jsonl")
    assert json.loads((tmp_path / "o.jsonl").read_text()) == {"messages": qa("q", "a")}


def test_openai_text_parts_are_joined(tmp_path):
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "text", "text": "hi"}]},
                        {"role": "assistant", "content": "ok"}]}
    assert read_dataset(write_jsonl(tmp_path / "p.jsonl", [row])).examples[0].messages == qa("Look:\nhi", "ok")
    row["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": "x"}})
    preview = read_dataset(write_jsonl(tmp_path / "p.jsonl", [row]))
    assert str(preview.problems[0]) == "p.jsonl, line 1: message 1 has a part of type 'image_url'; only text can be trained on here"


def test_json_values_that_are_not_objects(project, tmp_path):
    path = tmp_path / "words.json"
    path.write_text('["a", "b"]', encoding="utf-8")
    assert "words.json: holds no JSON objects" in str(failed_import(project, path))


def test_import_is_all_or_nothing_when_the_database_write_fails_part_way(project, tmp_path, monkeypatch, capsys):
    from ftstudio.cli import main
    from ftstudio.core.project import Project, ProjectError

    path = write_jsonl(tmp_path / "d.jsonl", [conv(f"q{i}", f"a{i}") for i in range(100)])
    real_journal = Project._journal
    written = []

    def journal_then_fail(self, c, *args):
        # Fault injection in the write: the 60th example's journal entry fails as a full
        # disk would, after 59 examples and their entries went into the transaction.
        if len(written) == 59:
            raise sqlite3.OperationalError("database or disk is full")
        real_journal(self, c, *args)
        written.append(args)

    monkeypatch.setattr(Project, "_journal", journal_then_fail)
    with pytest.raises(ProjectError, match="The disk is full.*Nothing of this change was saved"):
        import_dataset(project, path, eval_fraction=0.5, actor="ana")
    assert len(written) == 59  # the failure came part-way through
    with Project.open(project.path) as other:  # what is on disk, through another connection
        assert other.count_examples() == 0 and other.journal() == []
        assert other.setting("eval_fraction") == 0.1  # the import's split setting went back too
    assert project.count_examples() == 0

    written.clear()
    assert main(["import", str(project.path), str(path)]) == 1
    err = capsys.readouterr().err
    assert "Nothing was imported" in err and "The disk is full" in err and "Traceback" not in err
    monkeypatch.undo()
    with Project.open(project.path) as other:
        assert other.count_examples() == 0
    import_dataset(project, path)  # the same file imports whole once the disk has room
    assert project.count_examples() == 100
