"""The validation report: each kind of finding on a project crafted to have it,
none on a clean project, label counts per split, token lengths, and the
near-duplicate search at 100,000 examples."""

from __future__ import annotations

import pytest

import json
import random

from ftstudio.core.examples import Example
from ftstudio.core.validation import (
    KINDS, Finding, TokenCount, ValidationReport, near_duplicate_groups, normalise, validate_examples,
    validate_project,
)

LONG_TEXT = ("The parcel left our warehouse on Monday morning and the tracking page has not changed since then, "
             "although the courier promised delivery within two working days to my home address in Leeds")


def qa(q: str, a: str | None) -> list[dict]:
    msgs = [{"role": "user", "content": q}]
    if a is not None:
        msgs.append({"role": "assistant", "content": a})
    return msgs


def words(conversation: list[dict]) -> int:
    """A stand-in token counter the way the engine supplies one: conversation -> count."""
    return sum(len(str(m.get("content") or "").split()) for m in conversation)


UNENDED_ANSWER = "Yes, over 20 euros."


def words_and_turn_ends(conversation: list[dict]) -> TokenCount:
    """As ``words``, and as the engine's counter reports a chat template that writes no
    end-of-turn token: here, after one particular answer (tests/engine covers the real templates)."""
    unended = tuple(i for i, m in enumerate(conversation)
                    if m.get("role") == "assistant" and m.get("content") == UNENDED_ANSWER)
    return TokenCount(words(conversation), unended)


def clean_project(project) -> dict[str, int]:
    ids = {
        "a": project.add_example(qa("How do I reset my password?", "Use the link on the login page."),
                                 label="account", split="train"),
        "b": project.add_example(qa("My card was charged twice for one order.", "We will refund the second charge."),
                                 label="billing", split="train"),
        "c": project.add_example(qa("The app crashes when I open settings.", "Please update to the latest version."),
                                 label="technical", split="eval"),
        "d": project.add_example(qa(LONG_TEXT, "Sorry about the delay; we have asked the courier."),
                                 system="Be polite.", label="shipping", split="train"),
    }
    return ids


def test_clean_project_has_no_findings(project):
    clean_project(project)
    report = validate_project(project, count_tokens=words, max_length=100)
    assert report.findings == []
    assert report.problem_ids() == set()
    assert "No problems found." in report.summary()
    assert report.label_counts == {"account": {"train": 1, "eval": 0}, "billing": {"train": 1, "eval": 0},
                                   "technical": {"train": 0, "eval": 1}, "shipping": {"train": 1, "eval": 0}}


def test_every_kind_is_found(project):
    base = clean_project(project)
    ids = {
        "empty": project.add_example(qa("Where is my invoice?", "   "), split="train"),
        "dup1": project.add_example(qa("Cancel my subscription please", "Done."), split="train"),
        "dup2": project.add_example(qa("Cancel my subscription please", "Done."), split="train"),
        # the long text with a different case, punctuation and one word changed
        "near": project.add_example(qa(LONG_TEXT.upper().replace("Leeds".upper(), "York") + "!!",
                                       "Sorry about the delay; we have asked the courier."),
                                    system="Be polite.", label="shipping", split="train"),
        "long": project.add_example(qa("word " * 150, "ok"), split="train"),
        "leak": project.add_example(qa("the APP crashes when I open settings", "Reinstall it."),
                                    label="technical", split="train"),
        "noanswer": project.add_example(qa("Is there a student discount?", None), status="unlabelled",
                                        split="train"),
        "badroles": project.add_example([{"role": "assistant", "content": "Hello!"},
                                         {"role": "user", "content": "Hi"}], split="train"),
        "unended": project.add_example(qa("Is shipping free?", UNENDED_ANSWER), split="train"),
    }
    report = validate_project(project, count_tokens=words_and_turn_ends, max_length=100)
    kinds = report.by_kind()
    assert set(kinds) == set(KINDS)

    def ids_of(kind: str) -> list[tuple[int, ...]]:
        return [f.example_ids for f in kinds[kind]]

    assert ids_of("empty_turn") == [(ids["empty"],)]
    assert "the assistant turn (turn 2) is empty" in kinds["empty_turn"][0].message
    assert ids_of("duplicate") == [(ids["dup1"], ids["dup2"])]
    assert (base["d"], ids["near"]) in ids_of("near_duplicate")
    assert ids_of("too_long") == [(ids["long"],)]
    assert kinds["too_long"][0].message.startswith(f"Example {ids['long']} is 151 tokens long, more than the "
                                                   "context size of 100")
    assert ids_of("leakage") == [tuple(sorted((base["c"], ids["leak"])))]
    assert ids_of("no_answer") == [(ids["noanswer"],)]
    assert ids_of("bad_roles") == [(ids["badroles"],)]
    assert "assistant turn before any user turn" in kinds["bad_roles"][0].message
    assert ids_of("no_end_of_turn") == [(ids["unended"],)]
    assert "no end-of-turn token, so a model trained on them does not learn to stop" in \
        kinds["no_end_of_turn"][0].message
    assert report.token_lengths[ids["unended"]] == 7
    assert "Answers with no end-of-turn token: 1 example" in report.summary()
    # the app-crash pair also asks the same thing with different answers
    assert (base["c"], ids["leak"]) in ids_of("near_duplicate")
    assert report.token_lengths[ids["long"]] == 151 and len(report.token_lengths) == project.count_examples()

    summary = report.summary()
    for title in ("Empty turns", "Exact duplicates", "Near-duplicates", "Longer than the context size",
                  "Same prompt in training and evaluation", "No answer yet", "Turns out of order"):
        assert title in summary
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"]["duplicate"] == 1 and data["max_length"] == 100
    assert {"label": None, "train": 7, "eval": 0} in data["label_counts"]
    assert report.problem_ids() >= {ids[k] for k in ids}


def test_messages_are_plain_words(project):
    a = project.add_example(qa("Hello there", "Hi"), split="train")
    b = project.add_example(qa("Hello there", "Hi"), split="eval")
    report = validate_project(project)
    dup = report.by_kind()["duplicate"][0]
    assert dup == Finding("duplicate", (a, b), f"Examples {a} and {b} are exact copies (same system prompt and "
                          "turns). Copies make the model over-learn them; keep one and delete the others.")
    leak = report.by_kind()["leakage"][0].message
    assert leak.startswith(f"The same prompt is in the training set (example {a}) and in the held-out evaluation "
                           f"set (example {b})")
    assert report.token_lengths == {} and report.max_length is None


def test_same_system_different_wording_is_not_a_near_duplicate(project):
    # Short distinct prompts sharing only a system prompt must not be linked.
    for i, q in enumerate(["Where is my parcel", "Refund my order", "App will not start", "Change my email"]):
        project.add_example(qa(q, "ok"), system="You are a long and identical system prompt " * 5,
                            split="train")
    assert "near_duplicate" not in validate_project(project).by_kind()


def test_unlabelled_examples_are_one_no_answer_finding(project):
    ids = [project.add_example(qa(f"prompt number {i}", None), status="unlabelled", split="train")
           for i in range(12)]
    (finding,) = validate_project(project).findings
    assert finding.kind == "no_answer" and finding.example_ids == tuple(ids)
    assert finding.message.startswith("12 examples (examples ")
    assert "and 4 more) have no answer yet" in finding.message


def test_token_counter_that_fails_on_one_example_is_skipped(project):
    good = project.add_example(qa("q", "a"), split="train")
    bad = project.add_example([{"role": "assistant", "content": "a"}], split="train")

    def strict(conversation):
        if conversation[0]["role"] != "user":
            raise ValueError("template needs a user turn first")
        return 3

    report = validate_project(project, count_tokens=strict, max_length=2)
    assert report.token_lengths == {good: 3}
    assert [f.example_ids for f in report.by_kind()["too_long"]] == [(good,)]
    assert [f.example_ids for f in report.by_kind()["bad_roles"]] == [(bad,)]


def test_normalise():
    assert normalise("  Hello,   WORLD!! (it's me)\n") == "hello world it s me"


def test_near_duplicate_groups_find_similar_and_only_similar():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(2000)]
    texts = [" ".join(rng.choices(vocab, k=60)) for _ in range(300)]
    one_word_changed = texts[10].split()
    one_word_changed[30] = "changed"
    texts.append(" ".join(one_word_changed))  # Jaccard (60 - 3) / (60 + 3) = 0.905
    half_changed = texts[20].split()
    half_changed[:30] = ["other"] * 30
    texts.append(" ".join(half_changed))  # about 0.45: not a near-duplicate
    groups = near_duplicate_groups(texts)
    assert sorted(sorted(g) for g in groups) == [[10, 300]]


def _synthetic(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    out: list[Example] = []
    for i in range(n):
        text = " ".join(rng.choices(vocab, k=rng.randint(50, 80)))
        if i % 1000 == 999:  # a copy of the one before with one word changed: Jaccard >= 48/54
            prev = out[-1].messages[0]["content"].split()
            prev[len(prev) // 2] = "changed"
            text = " ".join(prev)
        out.append(Example(id=i + 1, messages=qa(text, "yes"), system=None, split="train", status="labelled",
                           label=None, annotator=None, created_at="", updated_at=""))
    return out


@pytest.mark.slow
def test_near_duplicates_at_100000_examples():
    # Completes only if the search is not pairwise (5e9 comparisons would not finish);
    # benchmarks/near_duplicates.py measures the time.
    examples = _synthetic(100_000)
    report = validate_examples(examples)
    near = report.by_kind()["near_duplicate"]
    assert sorted(f.example_ids for f in near) == [(i, i + 1) for i in range(999, 100_000, 1000)]
    assert set(report.by_kind()) == {"near_duplicate"}


def test_report_dataclass_defaults():
    report = ValidationReport(findings=[], label_counts={})
    assert report.problem_ids() == set() and report.by_kind() == {}
    assert report.to_dict()["findings"] == []
