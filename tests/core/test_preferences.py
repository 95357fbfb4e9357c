"""Preference pairs on a real project database: from votes without duplicates, the three file forms,
all-or-nothing imports with file/line/field errors, export that TRL's loader reads, undoable edits,
and the checks before training."""

from __future__ import annotations

import json

import pytest

from ftstudio.core import preferences as prefs
from ftstudio.core import ratings
from ftstudio.core.formats import ImportFailed, read_dataset
from ftstudio.core.project import Project

SETTINGS = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 16, "seed": 0}


def _prompt(i: int) -> list[dict]:
    return [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": f"Question {i}?"}]


def _outputs(project, i: int, models: list[str]) -> list[int]:
    return [ratings.add_generation(project, m, _prompt(i), f"answer of {m} to {i}", SETTINGS) for m in models]


@pytest.fixture
def project(tmp_path):
    p = Project.create(tmp_path / "p.ftstudio")
    yield p
    p.close()


def _write(path, rows) -> str:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return str(path)


def test_votes_give_pairs_once_and_both_bad_gives_undesirable_answers(project):
    base, one, two = _outputs(project, 0, ["base:m", "run:one", "run:two"])
    ratings.add_vote(project, [base, two, one], "pick", "ann", chosen=one)
    b1, o1 = _outputs(project, 1, ["base:m", "run:one"])
    ratings.add_vote(project, [o1, b1], "tie", "bob")
    b2, o2 = _outputs(project, 2, ["base:m", "run:one"])
    ratings.add_vote(project, [b2, o2], "both_bad", "bob")

    assert prefs.derive_from_votes(project) == 4
    assert prefs.derive_from_votes(project) == 0  # again: nothing new
    got = prefs.pairs(project)
    complete = [p for p in got if p.kind == "pair"]
    assert len(complete) == 2
    assert {p.chosen for p in complete} == {"answer of run:one to 0"}
    assert {p.rejected for p in complete} == {"answer of base:m to 0", "answer of run:two to 0"}
    assert all(p.source == "vote" and p.voter == "ann" and p.chosen_model == "run:one" for p in complete)
    assert {p.rejected_model for p in complete} == {"base:m", "run:two"}
    assert complete[0].prompt == _prompt(0)
    bad = [p for p in got if p.kind == "undesirable"]
    assert sorted(p.rejected for p in bad) == ["answer of base:m to 2", "answer of run:one to 2"]
    assert all(p.chosen is None and p.voter == "bob" for p in bad)
    # Pairs of one prompt sit on one side of the split.
    assert len({p.split for p in complete}) == 1

    # A deleted derived pair stays deleted when the votes are read again; a new vote adds only itself.
    prefs.delete_pairs(project, [complete[0].id], actor="ann")
    b3, o3 = _outputs(project, 3, ["base:m", "run:one"])
    ratings.add_vote(project, [b3, o3], "pick", "ann", chosen=b3)
    assert prefs.derive_from_votes(project) == 1
    assert len(prefs.pairs(project, prefs.PairFilter(kind="pair"))) == 2
    assert [p.voter for p in prefs.pairs(project, prefs.PairFilter(voter="bob"))] == ["bob", "bob"]
    assert prefs.voters(project) == ["ann", "bob"]


def test_edit_swap_delete_are_undone_through_the_journal(project):
    (pid,) = prefs.add_pairs(project, [prefs.NewPair(_prompt(0), "good", "bad", source="typed")], actor="ann")
    prefs.update_pairs(project, [pid], actor="ann", chosen="better")
    prefs.swap_pairs(project, [pid], actor="ann")
    p = prefs.get_pair(project, pid)
    assert (p.chosen, p.rejected) == ("bad", "better")
    prefs.delete_pairs(project, [pid], actor="ann")
    assert prefs.pairs(project) == []
    project.undo("ann")
    assert prefs.get_pair(project, pid).chosen == "bad"
    project.undo("ann")
    assert (prefs.get_pair(project, pid).chosen, prefs.get_pair(project, pid).rejected) == ("better", "bad")
    project.undo("ann")
    assert prefs.get_pair(project, pid).chosen == "good"
    project.undo("ann")  # the typed pair itself
    assert prefs.pairs(project) == []
    project.redo("ann")
    assert prefs.get_pair(project, pid).chosen == "good"


def test_trl_form_text_messages_and_shared_prefix(project, tmp_path):
    path = _write(
        tmp_path / "trl.jsonl",
        [
            {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
            {
                "prompt": [{"role": "user", "content": "Capital of France?"}],
                "chosen": [{"role": "assistant", "content": "Paris"}],
                "rejected": [{"role": "assistant", "content": "Lyon"}],
            },
            # answers with the prompt repeated in front
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
                "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}],
            },
            # no prompt: the two conversations share it
            {
                "chosen": [
                    {"role": "system", "content": "Be kind."},
                    {"role": "user", "content": "Help?"},
                    {"role": "assistant", "content": "Sure."},
                ],
                "rejected": [
                    {"role": "system", "content": "Be kind."},
                    {"role": "user", "content": "Help?"},
                    {"role": "assistant", "content": "No."},
                ],
            },
        ],
    )
    assert prefs.detect_form(path) == prefs.TRL_PREFERENCE
    preview = prefs.import_preferences(project, path)
    assert preview.form == prefs.TRL_PREFERENCE and preview.ok
    got = prefs.pairs(project)
    assert [(p.prompt_text(), p.chosen, p.rejected) for p in got] == [
        ("What is 2+2?", "4", "5"),
        ("Capital of France?", "Paris", "Lyon"),
        ("Hi", "Hello!", "Go away."),
        ("Help?", "Sure.", "No."),
    ]
    assert got[3].prompt[0] == {"role": "system", "content": "Be kind."}
    assert [p.line for p in got] == [1, 2, 3, 4] and got[0].source == "import" and got[0].file == path
    assert got[0].source_words() == "trl.jsonl, line 1"


def test_sharegpt_ranking_form_keeps_both_answers(project, tmp_path):
    path = _write(tmp_path / "rank.json", [])
    (tmp_path / "rank.json").write_text(
        json.dumps(
            [
                {
                    "conversations": [{"from": "human", "value": "Tell me a joke"}],
                    "chosen": {"from": "gpt", "value": "Why did the chicken..."},
                    "rejected": {"from": "gpt", "value": "No."},
                    "system": "You are funny.",
                },
                {"instruction": "Translate", "input": "chat", "chosen": "cat", "rejected": "dog"},
            ],
            indent=1,
        ),
        encoding="utf-8",
    )
    # Read as examples this file used to lose every answer; now it is refused there, with the way out.
    as_examples = read_dataset(path)
    assert not as_examples.ok and as_examples.examples == []
    assert "preference data" in str(as_examples.problems[0]) and "Preferences" in str(as_examples.problems[0])
    preview = prefs.import_preferences(project, path)
    assert preview.form == prefs.SHAREGPT_RANKING
    first, second = prefs.pairs(project)
    assert first.prompt == [
        {"role": "system", "content": "You are funny."},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert (first.chosen, first.rejected) == ("Why did the chicken...", "No.")
    assert (second.prompt_text(), second.chosen, second.rejected) == ("Translate\n\nchat", "cat", "dog")


def test_unpaired_forms_for_kto(project, tmp_path):
    path = _write(
        tmp_path / "kto.jsonl",
        [
            {"prompt": "Rate me", "completion": "Good answer", "label": True},
            {
                "prompt": [{"role": "user", "content": "Rate me"}],
                "completion": [{"role": "assistant", "content": "Bad answer"}],
                "label": False,
            },
        ],
    )
    msgs = _write(
        tmp_path / "msgs.jsonl",
        [
            {
                "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "wrong"}],
                "label": False,
            },
            {
                "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "right"}],
                "label": True,
            },
        ],
    )
    # Read as examples, the bad answers used to become training targets; now refused there.
    assert not read_dataset(msgs).ok and read_dataset(msgs).examples == []
    prefs.import_preferences(project, path)
    prefs.import_preferences(project, msgs)
    kinds = [(p.kind, p.chosen or p.rejected) for p in prefs.pairs(project)]
    assert kinds == [
        ("desirable", "Good answer"),
        ("undesirable", "Bad answer"),
        ("undesirable", "wrong"),
        ("desirable", "right"),
    ]
    c = prefs.counts(project)
    assert sum(c.desirable.values()) == 2 and sum(c.undesirable.values()) == 2 and c.total_pairs() == 0
    # The project's own example exports carry category labels: still examples, not preference data.
    plain = _write(
        tmp_path / "plain.jsonl",
        [
            {
                "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Billing"}],
                "label": "Billing",
            }
        ],
    )
    assert prefs.detect_form(plain) is None and read_dataset(plain).ok


@pytest.mark.parametrize(
    "record, field, words",
    [
        ({"chosen": "good", "rejected": "bad"}, "'prompt'", "missing"),
        ({"prompt": "", "chosen": "good", "rejected": "bad"}, "'prompt'", "empty"),
        ({"prompt": "Q", "chosen": "same", "rejected": "same"}, "'rejected'", "same as 'chosen'"),
        ({"prompt": "Q", "chosen": "good"}, "'rejected'", "missing"),
        (
            {"prompt": "Q", "chosen": [{"role": "user", "content": "x"}], "rejected": "bad"},
            "'chosen'",
            "assistant",
        ),
        ({"prompt": "Q", "completion": "A", "label": "yes"}, "'label'", "not true or false"),
        ({"prompt": "Q", "completion": "A", "label": 1}, "'label'", "not true or false"),
        ({"prompt": "Q", "completion": "", "label": True}, "'completion'", "empty"),
    ],
)
def test_bad_records_are_refused_with_file_line_and_field(project, tmp_path, record, field, words):
    good = (
        {"prompt": "Fine", "chosen": "yes", "rejected": "no"}
        if "chosen" in record or "prompt" not in record or "completion" not in record
        else {"prompt": "Fine", "completion": "yes", "label": True}
    )
    path = _write(tmp_path / "bad.jsonl", [good, good, record])
    with pytest.raises(ImportFailed) as info:
        prefs.import_preferences(project, path)
    text = str(info.value)
    assert "bad.jsonl, line 3" in text and field in text and words in text, text
    assert prefs.pairs(project) == []  # nothing half-imported


def test_not_json_lines_and_wrong_files_say_so(project, tmp_path):
    path = _write(tmp_path / "broken.jsonl", [{"prompt": "Q", "chosen": "a", "rejected": "b"}, "{not json"])
    with pytest.raises(ImportFailed) as info:
        prefs.import_preferences(project, path)
    assert "broken.jsonl, line 2" in str(info.value) and "not valid JSON" in str(info.value)
    csv = tmp_path / "pairs.csv"
    csv.write_text("prompt,chosen,rejected\nQ,a,b\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="JSON or JSONL"):
        prefs.import_preferences(project, csv)
    sft = _write(
        tmp_path / "sft.jsonl",
        [{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}],
    )
    with pytest.raises(ImportFailed, match="does not hold preference data"):
        prefs.import_preferences(project, sft)
    assert prefs.pairs(project) == []


def test_export_is_trl_form_and_reads_back_with_datasets_and_trl(project, tmp_path):
    import datasets
    from trl.data_utils import is_conversational, maybe_extract_prompt

    prefs.add_pairs(
        project,
        [prefs.NewPair(_prompt(i), f"good {i}", f"bad {i}", source="typed") for i in range(3)]
        + [prefs.NewPair(_prompt(9), None, "awful", source="typed")],
    )
    out = tmp_path / "out.jsonl"
    assert prefs.export_preferences(project, out) == 3
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert is_conversational(ds[0]) and maybe_extract_prompt(ds[0])["prompt"] == _prompt(0)
    assert ds[1]["chosen"] == [{"role": "assistant", "content": "good 1"}]
    # And back in: the same pairs.
    other = Project.create(tmp_path / "other.ftstudio")
    prefs.import_preferences(other, out)
    assert [(p.prompt, p.chosen, p.rejected) for p in prefs.pairs(other)] == [
        (_prompt(i), f"good {i}", f"bad {i}") for i in range(3)
    ]
    other.close()
    unpaired = tmp_path / "kto.jsonl"
    assert prefs.export_preferences(project, unpaired, unpaired=True) == 7
    rows = [json.loads(line) for line in unpaired.read_text().splitlines()]
    assert [r["label"] for r in rows] == [True, False] * 3 + [False]


def test_text_search_reads_prompt_and_both_answers_and_takes_wildcards_literally(project):
    def user(text: str) -> list[dict]:
        return [{"role": "user", "content": text}]

    ids = prefs.add_pairs(
        project,
        [
            prefs.NewPair(user("Discount?"), "save 100% now", "no", source="typed"),
            prefs.NewPair(user("Offers?"), "1000 ways", None, source="typed"),  # a good answer alone
            prefs.NewPair(user("What is a_b?"), "yes", "no", source="typed"),
            prefs.NewPair(user("Spelling?"), None, "axb", source="typed"),  # a bad answer alone
            prefs.NewPair(user("Where?"), "in C:\\data", "no", source="typed"),
        ],
    )

    def found(text: str, **kw) -> list[int]:
        return [p.id for p in prefs.pairs(project, prefs.PairFilter(text=text, **kw))]

    assert found("100%") == [ids[0]]  # "%" is no wildcard: "1000 ways" does not match
    assert found("a_b") == [ids[2]]  # nor is "_": "axb" does not match
    assert found("axb") == [ids[3]]  # the rejected answer, with no chosen one
    assert found("1000 ways") == [ids[1]]  # the chosen answer, with no rejected one
    assert found("C:\\data") == [ids[4]] and found("C:data") == []
    assert found("Offers") == [ids[1]]  # the prompt
    assert found("no", kind="pair") == [ids[0], ids[2], ids[4]]
    assert found("axb", kind="pair") == [] and found("axb", kind="undesirable") == [ids[3]]
    assert found("ways", kind="desirable") == [ids[1]]


def test_splits_follow_the_project_fraction_by_prompt(project):
    project.set_setting("eval_fraction", 0.25)
    new = [
        prefs.NewPair(_prompt(i), f"g{i}{k}", f"b{i}{k}", source="typed") for i in range(8) for k in range(2)
    ]
    prefs.add_pairs(project, new)
    got = prefs.pairs(project)
    by_prompt = {}
    for p in got:
        by_prompt.setdefault(p.prompt_text(), set()).add(p.split)
    assert all(len(s) == 1 for s in by_prompt.values())
    assert sum(1 for s in by_prompt.values() if s == {"eval"}) == 2
    # A later pair on a prompt already held out goes to the same side.
    held = next(k for k, s in by_prompt.items() if s == {"eval"})
    i = int(held.split()[1].rstrip("?"))
    (pid,) = prefs.add_pairs(project, [prefs.NewPair(_prompt(i), "x", "y", source="typed")])
    assert prefs.get_pair(project, pid).split == "eval"
    data = prefs.preference_data(project)
    assert len(data.train) == 12 and len(data.eval) == 5


def test_validation_finds_same_answers_empty_too_long_and_leakage(project):
    ids = prefs.add_pairs(
        project,
        [
            prefs.NewPair(_prompt(0), "same", "same ", source="typed", split="train"),
            prefs.NewPair(_prompt(1), "  ", "bad", source="typed", split="train"),
            prefs.NewPair(_prompt(2), "word " * 50, "short", source="typed", split="train"),
            prefs.NewPair(_prompt(3), "a", "b", source="typed", split="train"),
            prefs.NewPair(_prompt(3), "c", "d", source="typed", split="eval"),
            prefs.NewPair(_prompt(4), "e", "f", source="typed", split="train"),
        ],
    )
    project.add_example(
        [{"role": "user", "content": "Question 4?"}, {"role": "assistant", "content": "x"}], split="eval"
    )
    findings = {
        f.kind: f
        for f in prefs.validate_pairs(
            project,
            count_tokens=lambda msgs: sum(len(str(m["content"]).split()) for m in msgs),
            max_length=20,
        )
    }
    assert findings["same_answers"].pair_ids == (ids[0],)
    assert findings["empty_answer"].pair_ids == (ids[1],)
    assert findings["too_long"].pair_ids == (ids[2],)
    assert findings["leakage"].pair_ids == (ids[3], ids[4], ids[5])
    assert "#%d" % ids[0] in findings["same_answers"].message


def test_export_goes_through_the_stored_pairs(project, tmp_path):
    base, one = _outputs(project, 0, ["base:m", "run:one"])
    ratings.add_vote(project, [base, one], "pick", "ann", chosen=one)
    assert prefs.export_preferences(project, tmp_path / "a.jsonl") == 1
    assert len(prefs.pairs(project)) == 1
    assert prefs.export_preferences(project, tmp_path / "b.jsonl") == 1  # no duplicate


def test_method_dpo_sets_the_objective_and_settings_are_checked(tmp_path):
    from ftstudio.core.config import TrainConfig, validate

    cfg = TrainConfig().with_overrides(["method=dpo", "beta=0.2"])
    assert (cfg.objective, cfg.method, cfg.beta) == ("dpo", "lora", 0.2)
    assert TrainConfig().with_overrides(["method=qlora"]).objective == "sft"
    problems = {
        p.field: p.message
        for p in validate(TrainConfig(objective="ppo", start_from=str(tmp_path), beta=0.0, loss_type="hinge"))
    }
    assert set(problems) == {"objective", "start_from", "beta", "loss_type"}
    assert "no adapter" in problems["start_from"]
    (tmp_path / "adapter_config.json").write_text("{}")
    assert validate(TrainConfig(objective="kto", start_from=str(tmp_path))) == []


def test_training_sizes_count_what_each_objective_puts_through_the_model(project):
    prompt = [{"role": "user", "content": "Where is my parcel?"}]
    p = len(json.dumps(prompt, ensure_ascii=False))
    ids = prefs.add_pairs(
        project,
        [
            prefs.NewPair(prompt, "shipping", "no idea at all", split="train"),
            prefs.NewPair(prompt, "shipping, it is late", "no", split="train"),
            prefs.NewPair(prompt, None, "a bad one", split="train"),
            prefs.NewPair(prompt, "good", "bad", split="eval"),
        ],
        actor="tester",
    )
    dpo = prefs.training_sizes(project, "dpo")
    # complete pairs only: the prompt twice, the chosen and the rejected answer
    assert dpo["train"] == (
        2,
        4 * p + len("shipping") + len("no idea at all") + len("shipping, it is late") + 2,
    )
    assert dpo["eval"] == (1, 2 * p + len("good") + len("bad"))
    kto = prefs.training_sizes(project, "kto")
    # every rated answer (a pair gives two), each with its prompt
    answers = ["shipping", "no idea at all", "shipping, it is late", "no", "a bad one"]
    assert kto["train"] == (5, 5 * p + sum(map(len, answers)))
    prefs.delete_pairs(project, ids[:1], actor="tester")
    assert prefs.training_sizes(project, "dpo")["train"][0] == 1
