"""Batched greedy generation gives, for every prompt and every model, the answer
one-at-a-time generation gives: prompts of different lengths (left padding), the
base model and two adapters in one batch, batches smaller than the request list,
streamed pieces adding up to the answer, and a stop leaving unreached rows empty."""

from __future__ import annotations

import pytest

from ftstudio.engine.batch_generation import Request, generate_batch, left_pad
from ftstudio.engine.inference import Generator, SamplingSettings

SYSTEM = {"role": "system", "content": "Answer briefly."}
QUESTIONS = [
    "Where is my parcel?",
    "hi",
    "My card was charged twice for the same order last Tuesday and the bank says it is pending, what now?",
    "Password reset mail never arrives.",
    "Great shop, thanks!",
    "The app crashes when I open the basket on my phone, every single time since the update.",
]


def _prompts() -> list[list[dict]]:
    return [[SYSTEM, {"role": "user", "content": q}] for q in QUESTIONS]


@pytest.fixture(scope="module")
def generator(tiny_model_dir, tmp_path_factory, lora_adapter):
    root = tmp_path_factory.mktemp("batch-adapters")
    g = Generator(str(tiny_model_dir), device="cpu")
    g.add_adapter("a", lora_adapter(tiny_model_dir, root / "a", seed=1))
    g.add_adapter("b", lora_adapter(tiny_model_dir, root / "b", seed=2))
    return g


def test_left_pad_puts_padding_before_the_prompt():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids == [[5, 6, 7], [0, 0, 8]]
    assert mask == [[1, 1, 1], [0, 0, 1]]


def test_batched_answers_equal_one_at_a_time_for_every_model(generator):
    settings = SamplingSettings(max_new_tokens=14)
    requests = [Request(p, m) for m in (None, "a", "b") for p in _prompts()]
    alone = [generator.generate(r.messages, model=r.model, settings=settings) for r in requests]
    # the models and prompts really differ, so equality below says something
    assert len(set(alone)) >= len(QUESTIONS) + 2, alone
    lengths = {len(generator.prompt_ids(p)) for p in _prompts()}
    assert len(lengths) >= 4  # rows of a batch are padded differently

    pieces: dict[int, str] = {}
    finished: dict[int, str] = {}
    batched = generate_batch(
        generator,
        requests,
        settings,
        batch_size=5,  # batches mix models and end mid-list
        on_piece=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text),
        on_answer=lambda i, answer: finished.__setitem__(i, answer),
    )
    assert batched == alone
    assert finished == dict(enumerate(alone))
    for i, answer in enumerate(alone):
        assert pieces.get(i, "").strip() == answer, i


def test_one_model_batches_equal_one_at_a_time(generator):
    settings = SamplingSettings(max_new_tokens=10)
    requests = [Request(p, "a") for p in _prompts()]
    alone = [generator.generate(r.messages, model="a", settings=settings) for r in requests]
    assert generate_batch(generator, requests, settings, batch_size=4) == alone
    base = [Request(p) for p in _prompts()]
    assert generate_batch(generator, base, settings) == [
        generator.generate(r.messages, settings=settings) for r in base
    ]


def test_a_stop_leaves_the_rows_not_reached_empty(generator):
    settings = SamplingSettings(max_new_tokens=8)
    requests = [Request(p) for p in _prompts()]
    done: list[int] = []
    # Stops once the first batch has answered (the user pressing Stop between batches).
    out = generate_batch(
        generator,
        requests,
        settings,
        batch_size=2,
        on_answer=lambda i, _a: done.append(i),
        should_stop=lambda: len(done) >= 2,
    )
    assert sum(a is not None for a in out) == 2
    assert sorted(i for i, a in enumerate(out) if a is not None) == sorted(done)


def test_sampled_requests_keep_their_seed(generator):
    """Sampling is not batched: each answer is the one the same seed gives alone."""
    settings = SamplingSettings(temperature=1.0, top_p=0.95, max_new_tokens=8, seed=3)
    requests = [Request(p, m) for m in (None, "b") for p in _prompts()[:2]]
    alone = [generator.generate(r.messages, model=r.model, settings=settings) for r in requests]
    assert generate_batch(generator, requests, settings) == alone


def test_unknown_adapter_is_named(generator):
    with pytest.raises(KeyError, match="nope"):
        generate_batch(generator, [Request(_prompts()[0], "nope")])


def _rows_fit(limit: int, seen: list):
    """A fault at the engine's injection point: a generation batch of more than ``limit`` rows
    does not fit the device (its KV cache), and torch raises OutOfMemoryError as CUDA would."""
    import torch

    def fault(where: str, step: int, tokens: int, rows: int) -> None:
        if where == "generate":
            seen.append(rows)
            if rows > limit:
                raise torch.OutOfMemoryError("CUDA out of memory (KV cache)")

    return fault


def test_a_batch_that_runs_out_of_memory_is_answered_again_in_halves(generator):
    from ftstudio.engine.device import memory_fault

    settings = SamplingSettings(max_new_tokens=10)
    requests = [Request(p, m) for m in (None, "a") for p in _prompts()]
    plain_pieces: dict[int, str] = {}
    plain = generate_batch(
        generator,
        requests,
        settings,
        batch_size=8,
        on_piece=lambda i, text: plain_pieces.__setitem__(i, plain_pieces.get(i, "") + text),
    )
    assert any(answer.strip() for answer in plain)  # some rows say words, so a repeated piece would show
    seen: list = []
    pieces: dict[int, str] = {}
    finished: list[int] = []
    with memory_fault(_rows_fit(2, seen)):
        recovered = generate_batch(
            generator,
            requests,
            settings,
            batch_size=8,
            on_piece=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text),
            on_answer=lambda i, answer: finished.append(i),
        )
    assert recovered == plain
    # 8 rows failed, then 4, then every batch went at 2 rows (the first batch's rows included)
    assert seen[:2] == [8, 4] and set(seen[2:]) == {2} and sum(seen[2:]) == len(requests)
    # what the failed batches had streamed is not streamed twice
    assert pieces == plain_pieces
    assert sorted(finished) == list(range(len(requests)))


def test_one_prompt_that_does_not_fit_is_an_error(generator):
    import torch

    from ftstudio.engine.device import memory_fault

    with memory_fault(_rows_fit(0, [])), pytest.raises(torch.OutOfMemoryError):
        generate_batch(generator, [Request(p) for p in _prompts()[:3]], SamplingSettings(max_new_tokens=4))
