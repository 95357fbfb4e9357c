"""The headless command line: project creation, import with its failures,
export, and the train/evaluate/export round trip on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftstudio.cli import main
from ftstudio.core.project import Project


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _conv(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_new_creates_project_and_refuses_twice(tmp_path, capsys):
    target = tmp_path / "p.ftstudio"
    assert main(["new", str(target)]) == 0
    assert (target / "project.db").exists() and (target / "runs").is_dir()
    assert main(["new", str(target)]) == 1
    assert "already holds a project" in capsys.readouterr().err


def test_import_reports_count_and_split(tmp_path, capsys):
    target = tmp_path / "p"
    main(["new", str(target)])
    data = _write_jsonl(tmp_path / "d.jsonl", [_conv(f"question {i}", f"answer {i}") for i in range(40)])
    assert main(["import", str(target), str(data), "--eval-fraction", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "Imported 40 examples" in out and "10 held out" in out
    with Project.open(target) as p:
        assert p.count_examples() == 40


@pytest.mark.parametrize("content, needle", [
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [\n',
     "line 2"),
    ("", "empty"),
    ('{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}\n', "line 1"),
])
def test_import_bad_input_names_file_and_line_and_imports_nothing(tmp_path, capsys, content, needle):
    target = tmp_path / "p"
    main(["new", str(target)])
    good = "".join(json.dumps(_conv(f"q{i}", "a")) + "\n" for i in range(3))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good + content if needle != "empty" else "", encoding="utf-8")
    if needle == "line 2":
        needle = "line 5"  # three good lines come first
    elif needle == "line 1":
        needle = "line 4"
    assert main(["import", str(target), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and needle in err and "Traceback" not in err
    with Project.open(target) as p:
        assert p.count_examples() == 0


def test_import_wrong_encoding(tmp_path, capsys):
    target = tmp_path / "p"
    main(["new", str(target)])
    bad = tmp_path / "latin.csv"
    bad.write_bytes("text,category\ncaf\xe9 ferm\xe9,feedback\n".encode("latin-1"))
    assert main(["import", str(target), str(bad), "--map", "prompt=text", "--map", "response=category"]) == 1
    err = capsys.readouterr().err
    assert "latin.csv" in err and "UTF-8" in err


def test_import_missing_column(tmp_path, capsys):
    target = tmp_path / "p"
    main(["new", str(target)])
    csv = tmp_path / "t.csv"
    csv.write_text("text,category\nhello,greeting\n", encoding="utf-8")
    assert main(["import", str(target), str(csv), "--map", "prompt=text", "--map", "response=nope"]) == 1
    err = capsys.readouterr().err
    assert "t.csv" in err and "nope" in err


def test_export_dataset_roundtrip(tmp_path, capsys):
    target = tmp_path / "p"
    main(["new", str(target)])
    rows = [_conv(f"q{i}", f"a{i}") for i in range(5)]
    main(["import", str(target), str(_write_jsonl(tmp_path / "d.jsonl", rows))])
    out = tmp_path / "out.jsonl"
    assert main(["export", str(target), "--dataset", str(out)]) == 0
    import datasets

    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert sorted(r["messages"][0]["content"] for r in ds) == [f"q{i}" for i in range(5)]


def test_unknown_setting_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "p"
    main(["new", str(target)])
    main(["import", str(target), str(_write_jsonl(tmp_path / "d.jsonl", [_conv("q", "a")] * 2))])
    assert main(["train", str(target), "--set", "lerning_rate=1e-3"]) == 1
    assert "lerning_rate" in capsys.readouterr().err


@pytest.mark.slow
def test_train_evaluate_export_on_tiny_model(tmp_path, capsys, tiny_model_dir):
    target = tmp_path / "p"
    main(["new", str(target)])
    rows = [_conv(f"What is {i} plus {i}?", str(2 * i)) for i in range(24)]
    main(["import", str(target), str(_write_jsonl(tmp_path / "d.jsonl", rows)), "--eval-fraction", "0.25"])
    capsys.readouterr()
    assert main(["train", str(target), "--set", f"model={tiny_model_dir}", "--set", "max_steps=4",
                 "--set", "batch_tokens=256", "--set", "max_length=64", "--set", "eval_every=2",
                 "--set", "samples=1", "--set", "sample_max_new_tokens=4"]) == 0
    out = capsys.readouterr().out
    run_id = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Run id: "))
    run_dir = target / "runs" / run_id
    for name in ("config.yaml", "metrics.jsonl", "adapter/adapter_config.json", "adapter/adapter_model.safetensors"):
        assert (run_dir / name).exists(), name
    with Project.open(target) as p:
        run = p.get_run(run_id)
        assert run.status == "finished" and run.steps == 4 and run.train_loss is not None

    assert main(["evaluate", str(target), "--run", run_id, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["run"] == run_id and result["examples"] == 6 and result["loss"] > 0

    # the prompting baselines: zero-shot and a 3-shot prompt of the base model, each a row of the results
    assert main(["evaluate", str(target), "--run", "base", "--model", str(tiny_model_dir)]) == 0
    assert main(["evaluate", str(target), "--run", "base", "--model", str(tiny_model_dir), "--few-shot", "3"]) == 0
    table = capsys.readouterr().out
    assert f"Run {run_id}" in table and "zero-shot" in table and "3-shot prompt" in table
    assert main(["evaluate", str(target), "--run", run_id, "--few-shot", "3"]) == 1
    assert "--run base" in capsys.readouterr().err
    assert main(["evaluate", str(target), "--run", "base", "--model", str(tiny_model_dir), "--few-shot", "18",
                 "--max-length", "64"]) == 1
    assert "use fewer examples" in capsys.readouterr().err

    assert main(["export", str(target), "--run", run_id, "--merged", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "config.json").exists()
    assert main(["export", str(target), "--run", run_id, "--adapter", str(tmp_path / "adapter")]) == 0
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_demo_project_comes_with_its_label_schema(tmp_path):
    from ftstudio.core.demo import DEMO_LABELS, ensure_demo_project
    from ftstudio.core.labelling import PALETTE, Labelling

    project = ensure_demo_project(tmp_path / "demo.ftstudio")
    try:
        schema = Labelling(project).schema()
        assert schema.kind == "classification"
        assert [d.name for d in schema.labels] == list(DEMO_LABELS)
        assert set(DEMO_LABELS) == set(project.labels())  # the labels the tickets carry
        assert [d.shortcut for d in schema.labels] == ["1", "2", "3", "4", "5"]
        assert len({d.colour for d in schema.labels}) == 5 and all(d.colour in PALETTE for d in schema.labels)
        assert "billing" in schema.instructions.lower() and schema.template == "{input}"
        assert schema.label_for_key("3") == "account"
        assert Labelling(project).labels_in_data() == []  # nothing left to adopt
    finally:
        project.close()
    # Opening it again changes nothing, and a schema someone changed stays as they left it.
    with Project.open(tmp_path / "demo.ftstudio") as p:
        Labelling(p).set_label_shortcut("feedback", "9", "Dana")
    project = ensure_demo_project(tmp_path / "demo.ftstudio")
    try:
        assert [d.shortcut for d in Labelling(project).labels()] == ["1", "2", "3", "4", "9"]
        assert project.count_examples() == 300
    finally:
        project.close()


def test_download_says_in_words_when_the_hub_cannot_be_reached(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["download", "someone/not-downloaded-model"]) == 1
    err = capsys.readouterr().err
    assert "offline" in err and "Traceback" not in err
    assert main(["download", "./not-a-hub-id"]) == 1
    assert "not a Hugging Face hub id" in capsys.readouterr().err


def test_validate_with_a_model_that_is_not_there_says_so(tmp_path, capsys):
    target = tmp_path / "p"
    main(["new", str(target)])
    main(["import", str(target), str(_write_jsonl(tmp_path / "d.jsonl", [_conv("q", "a")] * 2))])
    capsys.readouterr()
    assert main(["validate", str(target), "--max-length", "64", "--model", str(tmp_path / "no-model")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_validate_warns_when_the_chat_template_gives_answers_no_end_of_turn_token(tmp_path, capsys):
    from chat_templates.tokenizers import build_tokenizer

    target = tmp_path / "p"
    main(["new", str(target)])
    main(["import", str(target), str(_write_jsonl(tmp_path / "d.jsonl", [_conv("q1", "a1"), _conv("q2", "a2")]))])
    for name in ("no_end_of_turn", "smollm2"):
        build_tokenizer(name).save_pretrained(tmp_path / name)  # a folder with only the tokenizer
    capsys.readouterr()

    assert main(["validate", str(target), "--model", str(tmp_path / "no_end_of_turn")]) == 0
    out = capsys.readouterr().out
    assert "Answers with no end-of-turn token: 2 examples" in out
    assert "does not learn to stop" in out
    assert main(["validate", str(target), "--model", str(tmp_path / "no_end_of_turn"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["no_end_of_turn"] == 1
    assert sorted(report["findings"][0]["example_ids"]) == sorted(int(k) for k in report["token_lengths"])

    assert main(["validate", str(target), "--model", str(tmp_path / "smollm2")]) == 0
    out = capsys.readouterr().out
    assert "end-of-turn" not in out and "Tokens per example" in out
    assert main(["validate", str(target)]) == 0  # no model given: no tokenizer loaded, and it says so
    assert "were not checked: give --model" in capsys.readouterr().out


def _pair(i: int) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"Ticket {i}: sort it"}],
        "chosen": [{"role": "assistant", "content": f"Billing, because of ticket {i}."}],
        "rejected": [{"role": "assistant", "content": "Billing"}],
    }


def test_preference_pairs_import_export_and_dpo_from_a_run(tmp_path, capsys, tiny_model_dir):
    target = tmp_path / "p"
    main(["new", str(target)])
    data = _write_jsonl(tmp_path / "d.jsonl", [_conv(f"question {i}", f"answer {i}") for i in range(12)])
    assert main(["import", str(target), str(data)]) == 0
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", [_pair(i) for i in range(10)])
    capsys.readouterr()
    assert main(["import", str(target), str(pairs)]) == 0  # found as preference data by its fields
    out = capsys.readouterr().out
    assert "TRL preference form" in out and "Imported 10 into the preference data" in out
    with Project.open(target) as p:
        assert p.count_examples() == 12  # not read as examples
    bad = _write_jsonl(
        tmp_path / "bad.jsonl", [_pair(0), {"prompt": "Q", "chosen": "same", "rejected": "same"}]
    )
    assert main(["import", str(target), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Nothing was imported" in err and "bad.jsonl, line 2" in err and "'rejected'" in err

    out_file = tmp_path / "out.jsonl"
    assert main(["export", str(target), "--preferences", str(out_file)]) == 0
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 10 and rows[0] == _pair(0)

    settings = [
        "--set",
        f"model={tiny_model_dir}",
        "--set",
        "max_steps=2",
        "--set",
        "batch_tokens=256",
        "--set",
        "max_length=64",
        "--set",
        "samples=0",
        "--set",
        "eval_every=0",
    ]
    assert main(["train", str(target), *settings, "--run-id", "sft"]) == 0
    capsys.readouterr()
    assert (
        main(["train", str(target), *settings, "--set", "method=dpo", "--from-run", "sft", "--run-id", "dpo"])
        == 0
    )
    out = capsys.readouterr().out
    assert "DPO (LORA)" in out and "runs/sft/adapter" in out
    with Project.open(target) as p:
        run = p.get_run("dpo")
        assert run.method == "dpo" and run.status == "finished"
        assert run.config["objective"] == "dpo" and run.config["method"] == "lora"
        assert run.config["start_from"] == str(p.run_dir("sft") / "adapter")
    assert main(["train", str(target), *settings, "--set", "method=kto", "--from-run", "nope"]) == 1
    assert "--from-run: no run 'nope'" in capsys.readouterr().err


def test_estimate_plans_a_popular_model_for_a_card_you_name(capsys):
    # Llama-3.1-8B is not downloaded: its shape comes from the shipped table
    code = main(["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--preset", "best",
                 "--set", "method=qlora", "--device-memory", "12"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "table of popular models, download about 16.1 GB" in out
    assert "QLoRA, rank 64, context 2,048 tokens, 8,192 tokens per optimiser step" in out
    assert "tokens per micro-batch \u00d7 " in out and ": fits 12 GB with " in out


def test_estimate_says_the_smallest_change_when_nothing_fits(capsys):
    code = main(["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--set", "method=lora",
                 "--device-memory", "12", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 2
    assert data["fits"] is False and data["suggestion"]["changes"] == {"method": "qlora"}
    assert data["suggestion"]["plan"]["fits"] is True
    assert data["memory"]["total"] > 12 * 2**30 >= data["suggestion"]["plan"]["memory"]["total"]
    assert data["model"]["source"] == "table" and data["model"]["download_bytes"] > 16e9


def test_estimate_refuses_bad_input_in_words(capsys):
    assert main(["estimate", "--model", "nobody/no-such-model"]) == 1
    err = capsys.readouterr().err
    assert "not in FT Studio's table of popular models" in err and "--fetch-config" in err
    assert main(["estimate", "--set", "lora_rank=0"]) == 1
    assert "lora_rank: must be between 1 and 1024" in capsys.readouterr().err
    assert main(["estimate", "--device-memory", "0"]) == 1
    assert "--device-memory must be a number of GB above 0" in capsys.readouterr().err


def test_estimate_on_a_project_says_how_long_it_takes(tmp_path, capsys):
    target = tmp_path / "p"
    main(["new", str(target)])
    data = _write_jsonl(tmp_path / "d.jsonl", [_conv(f"question {i}", f"answer {i}") for i in range(40)])
    main(["import", str(target), str(data)])
    capsys.readouterr()
    assert main(["estimate", str(target), "--preset", "quick", "--set", "device=cpu"]) == 0
    out = capsys.readouterr().out
    assert "Time:   about " in out and "on this CPU" in out and "for 36 training examples" in out
    assert "the CPU speed calibrated on the bundled model" in out  # no run measured yet
    assert main(["estimate", str(target), "--preset", "quick", "--set", "device=cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["time"]["basis"] == "calibrated"


def test_estimate_on_a_project_starts_from_the_micro_batch_an_out_of_memory_left(tmp_path, capsys):
    from ftstudio.core.runs import CEILINGS_SETTING

    target = tmp_path / "p"
    main(["new", str(target)])
    capsys.readouterr()
    args = ["estimate", str(target), "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--preset", "best",
            "--device-memory", "80", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["micro_batch_tokens"] == 8192
    with Project.open(target) as p:  # what a run of this model that ran out of memory leaves behind
        p.set_setting(CEILINGS_SETTING, {"Qwen/Qwen2.5-0.5B-Instruct|lora": 2048})
    assert main(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["micro_batch_tokens"] == 2048 and any("ran out of memory" in n for n in plan["notes"])
