"""Held-out evaluation: loss as training counts it, exact match only for
short-answer tasks, per-label counts and a confusion table that add up."""

from __future__ import annotations

import math

import pytest

from ftstudio.engine.evaluation import _confusion, evaluate, is_short_answer_task, normalise_answer
from ftstudio.engine.inference import Generator


def _conv(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def test_answers_are_compared_without_case_space_or_final_stop():
    assert normalise_answer("  Billing.") == normalise_answer("billing") == "billing"
    assert normalise_answer('"Shipping"') == "shipping"
    assert normalise_answer("Two  words!") == "two words"
    assert normalise_answer("technical") != normalise_answer("billing")


def test_short_answer_tasks_are_recognised():
    labels = ["billing", "shipping", "account"]
    classification = [_conv(f"ticket {i}", labels[i % 3]) for i in range(30)]
    assert is_short_answer_task(classification)
    essays = [_conv(f"q {i}", "a long answer that goes on for quite a few words indeed") for i in range(30)]
    assert not is_short_answer_task(essays)
    all_different = [_conv(f"q {i}", f"answer {i}") for i in range(30)]
    assert not is_short_answer_task(all_different)
    assert not is_short_answer_task([])


def test_confusion_table_counts_every_pair():
    table = _confusion([("a", "a"), ("a", "b"), ("b", "b"), ("b", "zzz")], ["a", "b"])
    assert table["labels"] == ["a", "b"]
    assert table["predicted_labels"] == ["a", "b", "(other)"]
    assert table["matrix"] == [[1, 1, 0], [0, 1, 1]]


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return Generator(str(tiny_model_dir), device="cpu")


def test_evaluate_reports_loss_and_exact_match_that_add_up(generator):
    labels = ["billing", "shipping", "account"]
    convs = [_conv(f"Ticket number {i}: please help", labels[i % 3]) for i in range(9)]
    result = evaluate(generator, convs, example_ids=list(range(100, 109)))
    assert result.examples == 9 and result.tokens > 0
    assert result.loss > 0 and result.perplexity == pytest.approx(math.exp(result.loss))
    assert len(result.predictions) == 9
    assert [p["example_id"] for p in result.predictions] == list(range(100, 109))
    correct = sum(p["correct"] for p in result.predictions)
    assert result.exact_match == pytest.approx(correct / 9)
    assert sum(v["n"] for v in result.per_label.values()) == 9
    assert set(result.per_label) == set(labels)
    assert sum(map(sum, result.confusion["matrix"])) == 9
    payload = result.to_dict()
    assert payload["exact_match"] == result.exact_match and payload["confusion"] == result.confusion


def test_loss_is_the_mean_over_answer_tokens(generator):
    convs = [_conv("Say hi", "hi"), _conv("Say a longer thing please", "a longer thing")]
    sums = generator.loss_sums(convs)
    result = evaluate(generator, convs, exact_match=False)
    assert result.exact_match is None and result.predictions == []
    assert result.tokens == sum(n for _s, n in sums)
    assert result.loss == pytest.approx(sum(s for s, _n in sums) / result.tokens)


def test_evaluation_reports_progress_over_both_passes_and_stops_between_examples(generator):
    labels = ["billing", "shipping"]
    convs = [_conv(f"Ticket {i}", labels[i % 2]) for i in range(6)]
    seen = []
    result = evaluate(generator, convs, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 12) for k in range(1, 13)] and result.exact_match is not None

    calls = []
    stopped = evaluate(generator, convs, progress=lambda done, total: calls.append(done),
                       should_stop=lambda: len(calls) >= 2)
    assert calls == [1, 2] and stopped.predictions == [] and stopped.exact_match is None


def test_answers_end_at_the_model_s_own_end_of_turn_tokens(generator):
    from ftstudio.engine.models import stop_token_ids

    config = generator.base.generation_config
    saved = config.eos_token_id
    try:
        config.eos_token_id = [7, generator.tokenizer.eos_token_id]
        assert stop_token_ids(generator.base, generator.tokenizer) == [7, generator.tokenizer.eos_token_id]
        config.eos_token_id = None
        assert stop_token_ids(generator.base, generator.tokenizer) == [generator.tokenizer.eos_token_id]
    finally:
        config.eos_token_id = saved
