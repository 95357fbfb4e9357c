"""Hostile and edge-case files for every importer, one named case per finding: each
refused file gets a message naming the file and the line, record or field, nothing of
it is imported, nothing hangs, and no traceback reaches the user; the valid edge cases
(byte-order mark, CRLF, emoji and right-to-left text, a 1 MB example, a 1 MB CSV field,
one-line {"data": [...]}) are imported."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest

from ftstudio import cli
from ftstudio.core.formats import ImportFailed, import_dataset, read_dataset

pytestmark = pytest.mark.timeout(120)  # a hang fails the test instead of the whole run

QA = {"messages": [{"role": "user", "content": "Which team?"}, {"role": "assistant", "content": "billing"}]}


def refused(project, path: Path, *words: str, **kwargs) -> str:
    """Import ``path``; it must be refused quickly with all of ``words`` in the message, adding nothing."""
    before = project.count_examples()
    started = time.monotonic()
    with pytest.raises(ImportFailed) as caught:
        import_dataset(project, path, **kwargs)
    assert time.monotonic() - started < 30
    text = str(caught.value)
    assert os.fsencode(path.name).decode("utf-8", "replace") in text
    for w in words:
        assert w in text, text
    assert project.count_examples() == before
    return text


def accepted(project, path: Path, n: int, **kwargs) -> None:
    before = project.count_examples()
    preview = import_dataset(project, path, **kwargs)
    assert preview.example_count == n
    assert project.count_examples() == before + n


def jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- JSON -------------------------------------------------------------------------------


def test_json_nested_ten_thousand_levels_deep(project, tmp_path):
    deep = "[" * 10_000 + "]" * 10_000
    line = '{"messages": [{"role": "user", "content": "q"}], "extra": ' + deep + "}"
    refused(project, jsonl(tmp_path / "deep.jsonl", [json.dumps(QA), line]), "line 2", "nested too deeply")
    (tmp_path / "deep.json").write_text("[" + json.dumps(QA) + ", " + line + "]", encoding="utf-8")
    refused(project, tmp_path / "deep.json", "record 2", "nested too deeply")
    (tmp_path / "deep_object.json").write_text("{\n" + '"a": ' + deep + "\n}", encoding="utf-8")
    refused(project, tmp_path / "deep_object.json", "nested too deeply")


def test_an_escaped_lone_surrogate(project, tmp_path):
    bad = '{"messages": [{"role": "user", "content": "broken \\ud800 here"}, {"role": "assistant", "content": "a"}]}'
    refused(project, jsonl(tmp_path / "surrogate.jsonl", [json.dumps(QA), bad]), "line 2", "lone surrogate")


def test_a_five_thousand_digit_number(project, tmp_path):
    line = '{"messages": [{"role": "user", "content": "q"}], "n": ' + "9" * 5000 + "}"
    refused(project, jsonl(tmp_path / "number.jsonl", [line]), "line 1", "number too long")


def test_a_nul_character_in_the_text(project, tmp_path):
    bad = json.dumps(
        {"messages": [{"role": "user", "content": "a\u0000b"}, {"role": "assistant", "content": "c"}]}
    )
    refused(project, jsonl(tmp_path / "nul.jsonl", [json.dumps(QA), bad]), "line 2", "NUL character")


def test_an_example_with_only_a_system_message(project, tmp_path):
    line = json.dumps({"messages": [{"role": "system", "content": "You are helpful."}]})
    refused(
        project, jsonl(tmp_path / "system.jsonl", [json.dumps(QA), line]), "line 2", "only a system message"
    )


def test_one_line_data_object_is_read_like_the_pretty_printed_one(project, tmp_path):
    rows = [{"text": f"ticket {i}", "label": ["billing", "shipping"][i % 2]} for i in range(6)]
    (tmp_path / "one_line.json").write_text(json.dumps({"data": rows}), encoding="utf-8")
    (tmp_path / "pretty.json").write_text(json.dumps({"data": rows}, indent=2), encoding="utf-8")
    one, pretty = read_dataset(tmp_path / "one_line.json"), read_dataset(tmp_path / "pretty.json")
    assert one.ok and pretty.ok and one.example_count == pretty.example_count == 6
    assert [e.messages for e in one.examples] == [e.messages for e in pretty.examples]
    accepted(project, tmp_path / "one_line.json", 6)


def test_a_json_list_is_read_one_record_at_a_time_with_its_lines(tmp_path):
    records = [QA] * 3 + [{"messages": "not a list"}]
    path = tmp_path / "list.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n", encoding="utf-8")
    preview = read_dataset(path)
    assert preview.problem_count == 1 and "line 5 (record 4)" in str(preview.problems[0])


# -- encodings, names, kinds of file ----------------------------------------------------


def test_utf32_is_named_as_utf32(project, tmp_path):
    path = tmp_path / "wide.jsonl"
    path.write_bytes((json.dumps(QA) + "\n").encode("utf-32"))
    refused(project, path, "UTF-32")
    path16 = tmp_path / "wide16.jsonl"
    path16.write_bytes((json.dumps(QA) + "\n").encode("utf-16"))
    refused(project, path16, "UTF-16")


def test_a_file_name_with_a_byte_that_is_not_utf8(project, tmp_path, capsys):
    name = os.fsdecode(b"tickets-\xff.jsonl")
    path = jsonl(tmp_path / name, [json.dumps(QA)])
    assert cli.main(["import", str(project.path), str(path)]) == 0
    assert "Imported 1 examples" in capsys.readouterr().out
    bad = jsonl(tmp_path / os.fsdecode(b"broken-\xfe.jsonl"), ["{not json"])
    assert cli.main(["import", str(project.path), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "broken-\ufffd.jsonl, line 1" in err and "Traceback" not in err


def test_a_system_prompt_with_a_byte_that_is_not_utf8(project, tmp_path, capsys):
    path = jsonl(tmp_path / "a.jsonl", [json.dumps(QA)])
    assert cli.main(["import", str(project.path), str(path), "--system", os.fsdecode(b"be kind \xff")]) == 1
    assert "--system holds bytes that are not UTF-8" in capsys.readouterr().err
    assert project.count_examples() == 0


def test_a_symlink_loop_is_called_a_loop(project, tmp_path):
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    refused(project, loop, "loop")
    dangling = tmp_path / "gone.jsonl"
    dangling.symlink_to(tmp_path / "nowhere.jsonl")
    refused(project, dangling, "symbolic link to", "does not exist")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_behind_a_data_file_name_is_refused_at_once(project, tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"{device} is not on this system")
    path = tmp_path / "data.jsonl"
    path.symlink_to(device)
    refused(project, path, "is a device")


def test_a_fifo_is_refused_at_once(project, tmp_path):
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    refused(project, path, "named pipe")


def test_a_folder_where_a_file_is_expected(project, tmp_path):
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    refused(project, folder, "is a folder", format="messages")


def test_a_three_gigabyte_sparse_file_is_refused_at_once(project, tmp_path):
    path = tmp_path / "sparse.jsonl"
    with open(path, "wb") as fh:
        fh.truncate(3 << 30)
    refused(project, path, "binary data")


def test_a_line_without_an_end_is_refused_without_reading_it_into_memory(project, tmp_path, monkeypatch):
    from ftstudio.core.formats import layouts

    monkeypatch.setattr(layouts, "MAX_RECORD_BYTES", 1 << 20)  # 1 MB stands for the 64 MB limit
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(QA) + "\n" + '{"messages": "' + "x" * (3 << 20), encoding="utf-8")
    refused(project, path, "line 2", "longer than 1 MB")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any folder")
def test_an_unreadable_datasets_folder(project, tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.Dataset.from_dict({"prompt": ["q"], "response": ["a"]}).save_to_disk(str(folder))
    folder.chmod(0)
    try:
        refused(project, folder, "permission denied")
    finally:
        folder.chmod(0o755)


# -- CSV --------------------------------------------------------------------------------


def test_csv_with_an_unbalanced_quote_names_its_line(project, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('prompt,response\nfirst,"billing\nsecond,shipping\nthird,account\n', encoding="utf-8")
    refused(project, path, "quote.csv, line 2", "double quote")
    closed_late = tmp_path / "closed_late.csv"
    closed_late.write_text(
        'prompt,response\nfirst,"billing\nsecond,shipping\nthird,"account"\n', encoding="utf-8"
    )
    refused(project, closed_late, "line 2", "double quote")


def test_a_csv_field_of_a_megabyte_is_accepted(project, tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "response"])
        w.writerow(["summarise", "word " * 200_000])
        w.writerow(["again", "short"])
    accepted(project, path, 2)
    longest = max(len(e.messages[-1]["content"]) for e in project.examples())
    assert longest == len("word " * 200_000)


def test_a_nul_byte_deep_in_a_csv(project, tmp_path):
    path = tmp_path / "nul.csv"
    rows = "".join(f"question {i},answer {i}\n" for i in range(400))
    path.write_text("prompt,response\n" + rows + "bad\x00row,x\n", encoding="utf-8")
    refused(project, path, "line 402", "NUL character")


# -- Parquet and datasets folders -------------------------------------------------------


def _parquet(path: Path, **columns) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_damaged_parquet_pages(project, tmp_path):
    import pyarrow as pa

    path = _parquet(
        tmp_path / "good.parquet",
        prompt=pa.array([f"question {i} " * 20 for i in range(3000)]),
        response=pa.array([f"answer {i}" for i in range(3000)]),
    )
    raw = bytearray(path.read_bytes())
    for at in range(200, len(raw) - 2000, 997):  # pages damaged; the footer still says where they are
        raw[at] ^= 0x5A
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(raw))
    refused(project, damaged, "damaged.parquet")


def test_parquet_text_that_is_not_utf8(project, tmp_path):
    import pyarrow as pa

    bad = pa.array([b"fine", b"\xff\xfe broken"], type=pa.binary()).view(pa.string())
    path = _parquet(tmp_path / "latin.parquet", prompt=bad, response=pa.array(["a", "b"]))
    refused(project, path, "latin.parquet", "not UTF-8")


def test_a_binary_parquet_column_is_refused_not_imported_as_bytes(project, tmp_path):
    import pyarrow as pa

    path = _parquet(
        tmp_path / "blob.parquet",
        prompt=pa.array(["q1", "q2"]),
        response=pa.array([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"], type=pa.binary()),
    )
    text = refused(project, path, "record 1", "column 'response' holds binary data")
    assert "b'" not in text
    utf8 = _parquet(
        tmp_path / "utf8.parquet",
        prompt=pa.array(["q1", "q2"]),
        response=pa.array(["r\u00e9ponse".encode(), b"two"], type=pa.binary()),
    )
    accepted(project, utf8, 2)
    assert {e.messages[-1]["content"] for e in project.examples()} >= {"r\u00e9ponse", "two"}


# -- valid edge cases -------------------------------------------------------------------


def test_valid_edge_cases_are_accepted(project, tmp_path):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (json.dumps(QA) + "\r\n").encode() * 2)
    accepted(project, bom, 2)
    bom_csv = tmp_path / "bom.csv"
    bom_csv.write_bytes(b"\xef\xbb\xbfprompt,response\r\nq,a\r\n")
    accepted(project, bom_csv, 1)
    world = {
        "messages": [
            {"role": "user", "content": "\u0645\u0631\u062d\u0628\u0627 \U0001f44b \u05e9\u05dc\u05d5\u05dd"},
            {"role": "assistant", "content": "\U0001f600 \u202eok"},
        ]
    }
    accepted(project, jsonl(tmp_path / "world.jsonl", [json.dumps(world, ensure_ascii=False)]), 1)
    big = {
        "messages": [{"role": "user", "content": "long " * 210_000}, {"role": "assistant", "content": "ok"}]
    }
    accepted(project, jsonl(tmp_path / "big.jsonl", [json.dumps(big)]), 1)
    (tmp_path / "big.json").write_text(json.dumps([big, QA]), encoding="utf-8")
    accepted(project, tmp_path / "big.json", 2)


# -- progress ---------------------------------------------------------------------------


def test_import_reports_progress_to_the_end(project, tmp_path):
    path = jsonl(tmp_path / "many.jsonl", [json.dumps(QA)] * 30_000)
    seen: list[tuple[int, int]] = []
    import_dataset(project, path, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) >= 3
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    assert seen[-1][0] == seen[-1][1]


def test_the_command_line_shows_a_progress_bar(project, tmp_path, capsys):
    path = jsonl(tmp_path / "many.jsonl", [json.dumps(QA)] * 20_000)
    assert cli.main(["import", str(project.path), str(path)]) == 0
    err = capsys.readouterr().err
    assert "Reading" in err and "Adding" in err and "100%" in err
