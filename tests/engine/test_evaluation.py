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


ADAPTER = "strong"  # the random tiny model alone answers only newlines; this adapter makes it say words


@pytest.fixture(scope="module")
def adapted(generator, tiny_model_dir, tmp_path_factory):
    from conftest import make_lora_adapter

    generator.add_adapter(ADAPTER, make_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"), seed=2))
    return generator


@pytest.fixture
def own_stop(adapted):
    """The adapted tiny model's greedy answer to PROMPT, cut where its generation config says a turn ends.

    The model's own greedy tokens are read with transformers directly; one of them (not
    the first) is made the model's end-of-turn token in its generation config, as chat
    models list theirs. Yields (the answer it must stop at, the answer without the stop)."""
    import torch

    from ftstudio.engine.tokenize import encode_prompt

    generator = adapted
    tok, config = generator.tokenizer, generator.base.generation_config
    prompt = torch.tensor([encode_prompt(tok, _conv(PROMPT, "")[:1])])
    with generator.use(ADAPTER) as net, torch.no_grad():
        out = net.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                      max_new_tokens=8, eos_token_id=None, pad_token_id=tok.pad_token_id)
    ids = out[0, prompt.shape[1]:].tolist()
    k = next(k for k in range(2, len(ids)) if ids[k] not in ids[:k] and tok.decode(ids[:k]).strip())
    saved = config.eos_token_id
    config.eos_token_id = [ids[k]]
    try:
        yield tok.decode(ids[:k], skip_special_tokens=True).strip(), tok.decode(ids, skip_special_tokens=True).strip()
    finally:
        config.eos_token_id = saved


PROMPT = "Ticket number 0: please help"


@pytest.mark.slow
def test_evaluate_reports_loss_and_exact_match_that_add_up(generator, own_stop):
    # Three labels; the first is what the model answers to PROMPT, so exactly the three
    # examples that ask PROMPT are right and the six others wrong.
    model_answer, _ = own_stop
    labels = [model_answer, "billing", "shipping"]
    convs = [_conv(PROMPT if i % 3 == 0 else f"Ticket number {i}: please help", labels[i % 3]) for i in range(9)]
    result = evaluate(generator, convs, example_ids=list(range(100, 109)), model=ADAPTER)
    assert result.examples == 9
    sums = generator.loss_sums(convs, model=ADAPTER)
    assert result.tokens == sum(n for _s, n in sums) > 0
    assert result.loss == pytest.approx(sum(s for s, _n in sums) / result.tokens)
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    assert [(p["example_id"], p["reference"]) for p in result.predictions] == \
        [(100 + i, labels[i % 3]) for i in range(9)]
    assert [p["correct"] for p in result.predictions] == [i % 3 == 0 for i in range(9)], result.predictions
    assert result.exact_match == pytest.approx(3 / 9)
    first = normalise_answer(model_answer)
    assert {k: (v["n"], v["correct"]) for k, v in result.per_label.items()} == \
        {first: (3, 3), "billing": (3, 0), "shipping": (3, 0)}
    rows = dict(zip(result.confusion["labels"], result.confusion["matrix"]))
    columns = result.confusion["predicted_labels"]
    assert rows[first][columns.index(first)] == 3
    assert rows["billing"][columns.index("billing")] == 0 and sum(rows["billing"]) == 3
    assert sum(rows["shipping"]) == 3 and sum(map(sum, rows.values())) == 9
    assert result.to_dict()["exact_match"] == pytest.approx(3 / 9)


def test_loss_is_the_mean_over_answer_tokens(generator):
    convs = [_conv("Say hi", "hi"), _conv("Say a longer thing please", "a longer thing")]
    sums = generator.loss_sums(convs)
    result = evaluate(generator, convs, exact_match=False)
    assert result.exact_match is None and result.predictions == []
    assert result.tokens == sum(n for _s, n in sums)
    assert result.loss == pytest.approx(sum(s for s, _n in sums) / result.tokens)


@pytest.mark.slow
def test_evaluation_reports_progress_over_both_passes_and_stops_between_examples(generator):
    labels = ["billing", "shipping"]
    convs = [_conv(f"Ticket {i}", labels[i % 2]) for i in range(6)]
    seen = []
    result = evaluate(generator, convs, progress=lambda done, total: seen.append((done, total)))
    # the loss, the label scores, the answers: 6 examples each
    assert seen == [(k, 18) for k in range(1, 19)] and result.exact_match is not None

    calls = []
    stopped = evaluate(generator, convs, progress=lambda done, total: calls.append(done),
                       should_stop=lambda: len(calls) >= 2)
    assert calls == [1, 2] and stopped.predictions == [] and stopped.exact_match is None


def test_answers_end_at_the_model_s_own_end_of_turn_tokens(generator, own_stop):
    from ftstudio.engine.inference import SamplingSettings

    stopped_answer, running_answer = own_stop
    settings = SamplingSettings(max_new_tokens=8)
    assert generator.generate(_conv(PROMPT, "")[:1], model=ADAPTER, settings=settings) == stopped_answer
    assert len(running_answer) > len(stopped_answer)  # without its end-of-turn token it would go on


def _plain_label_logp(model_dir, prompt, label) -> float:
    """log p(label's answer tokens | prompt) from an unpadded forward pass of plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    prompt_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template([*prompt, {"role": "assistant", "content": label}], tokenize=True,
                                   return_dict=True)["input_ids"]
    # the answer's tokens: the label and the end-of-turn token (not the template's newline after it)
    end = full.index(tok.convert_tokens_to_ids("<|im_end|>"), len(prompt_ids)) + 1
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([full[:end]])).logits[0].float(), -1)
    return float(sum(logp[t - 1, full[t]] for t in range(len(prompt_ids), end)))


def test_label_scores_are_the_softmax_of_each_label_s_likelihood(generator, tiny_model_dir):
    from ftstudio.engine.label_scores import score_labels, softmax

    labels = ["billing", "shipping", "account", "bill"]  # lengths differ; one label starts another
    prompts = [[{"role": "system", "content": "Triage."}, {"role": "user", "content": "Refund my order"}],
               [{"role": "user", "content": "Where is the parcel I ordered a long time ago?"}]]
    scored = score_labels(generator, prompts, labels)
    for prompt, probs in zip(prompts, scored):
        expected = softmax([_plain_label_logp(tiny_model_dir, prompt, label) for label in labels])
        assert probs == pytest.approx(expected, abs=1e-5)
        assert sum(probs) == pytest.approx(1.0)
    assert scored[0] != pytest.approx(scored[1], abs=1e-4)  # the prompt matters


def test_evaluation_scores_labels_and_reports_calibration(generator):
    from ftstudio.core.scores import calibration

    labels = ["billing", "shipping", "account"]
    convs = [_conv(f"Ticket number {i}: please help", labels[i % 3]) for i in range(9)]
    result = evaluate(generator, convs, labels=labels)
    assert result.labels == labels
    assert len(result.predictions) == 9
    confidences, right = [], []
    for p in result.predictions:
        assert set(p["scores"]) == set(labels) and sum(p["scores"].values()) == pytest.approx(1.0)
        assert p["confidence"] == max(p["scores"].values())
        assert p["scores"][p["scored_label"]] == p["confidence"]
        confidences.append(p["confidence"])
        right.append(p["scored_label"] == p["reference"])
    assert result.calibration == calibration(confidences, right).to_dict()
    low, high = result.exact_match_interval
    assert low <= result.exact_match <= high


def test_few_shot_puts_training_examples_in_the_prompt_and_checks_its_length(generator):
    from ftstudio.core.prompting import Shot
    from ftstudio.engine.evaluation import PromptTooLong

    labels = ["billing", "shipping"]
    convs = [_conv(f"Ticket {i}", labels[i % 2]) for i in range(4)]
    shots = [Shot(1, "My card was charged", "billing"), Shot(2, "Parcel lost", "shipping")]
    result = evaluate(generator, convs, shots=shots, labels=labels)
    assert result.few_shot == 2 and result.shot_ids == [1, 2]
    # the loss counts the final answer only: the same number of tokens as zero-shot
    assert result.tokens == evaluate(generator, convs, labels=[]).tokens
    with pytest.raises(PromptTooLong, match=r"use fewer examples \(\d fit\)"):
        evaluate(generator, convs, shots=shots * 20, max_length=200)


def test_exact_match_answers_survive_running_out_of_memory(adapted):
    import torch

    from ftstudio.engine.device import memory_fault

    labels = ["billing", "shipping", "refund"]
    convs = [_conv(f"Ticket number {i}: please help", labels[i % 3]) for i in range(6)]
    plain = evaluate(adapted, convs, model=ADAPTER, exact_match=True, labels=[])
    batches: list[int] = []

    def one_row_fits(where: str, step: int, tokens: int, rows: int) -> None:
        # stands for a card whose memory holds the KV cache of one answer at a time
        if where == "generate":
            batches.append(rows)
            if rows > 1:
                raise torch.OutOfMemoryError("CUDA out of memory (KV cache)")

    with memory_fault(one_row_fits):
        recovered = evaluate(adapted, convs, model=ADAPTER, exact_match=True, labels=[])
    assert batches[0] == 6 and batches[-6:] == [1] * 6
    assert [p["answer"] for p in recovered.predictions] == [p["answer"] for p in plain.predictions]
    assert recovered.exact_match == plain.exact_match and recovered.loss == plain.loss
