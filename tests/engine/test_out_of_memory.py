"""Running out of memory halves the micro-batch and goes on: the run ends with the same
steps, the same data order and the loss curve of a run that used the smaller micro-batch
from that step; a resume keeps the smaller size; a run that cannot go lower ends Failed
naming the plan it tried. The held-out loss, generation and preference tuning's passes
without gradients (reference, held-out, KTO's KL point) recover the same way.

The out-of-memory errors come from the engine's fault-injection point
(``engine.device.memory_fault``): each fault here stands for a GPU whose caching
allocator cannot find memory for a forward pass of more than so many tokens, from some
step on, and raises the real ``torch.OutOfMemoryError`` that torch raises then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import EvalMetrics, Failed, FitPlan, Log, StepMetrics, read_events
from ftstudio.core.examples import PreparedData
from ftstudio.engine import training
from ftstudio.engine.device import memory_fault
from ftstudio.engine.training import split_batch, train

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird"]


def data() -> PreparedData:
    def conv(i: int) -> list[dict]:
        return [
            {"role": "user", "content": f"Item {i}: " + " ".join(WORDS[: 1 + i % 7]) + "?"},
            {"role": "assistant", "content": " ".join(WORDS[i % 10 :: 3])},
        ]

    return PreparedData([conv(i) for i in range(24)], [conv(i) for i in range(100, 106)])


def cfg_for(model_dir: Path, **kw) -> TrainConfig:
    # auto_fit off: the micro-batch is the one set here, whatever this machine's memory.
    base = dict(
        model=str(model_dir),
        max_steps=6,
        batch_tokens=256,
        max_length=128,
        learning_rate=5e-3,
        lora_dropout=0.0,
        warmup_ratio=0.0,
        eval_every=3,
        samples=0,
        checkpoint_every=0,
        seed=5,
        auto_fit=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def device_holds(max_tokens: int, from_step: int = 0, where: str = "train", seen: list | None = None):
    """A fault: from optimiser step ``from_step`` (0-based) on, a ``where`` pass of more than
    ``max_tokens`` tokens does not fit the device."""

    def fault(pass_kind: str, step: int, tokens: int, rows: int) -> None:
        if seen is not None:
            seen.append((pass_kind, step, tokens, rows))
        if pass_kind == where and step >= from_step and tokens > max_tokens:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {tokens} tokens' activations"
            )

    return fault


def run(cfg: TrainConfig, run_dir: Path, fault=None, stop=lambda: False, resume: bool = False):
    events: list = []
    if fault is None:
        result = train(cfg, data(), events.append, stop, run_dir=run_dir, resume=resume)
    else:
        with memory_fault(fault):
            result = train(cfg, data(), events.append, stop, run_dir=run_dir, resume=resume)
    return result, events


def losses(events) -> list[float]:
    return [e.loss for e in events if isinstance(e, StepMetrics)]


def test_split_batch_keeps_order_and_never_cuts_an_example():
    lengths = [50, 60, 200, 10, 30, 40]
    assert split_batch([0, 1, 2, 3, 4, 5], lengths, 128) == [[0, 1], [2], [3, 4, 5]]
    assert split_batch([5, 3, 0], lengths, 1000) == [[5, 3, 0]]
    assert split_batch([2, 0], lengths, 16) == [[2], [0]]


def test_a_pass_without_gradients_halves_its_pieces_and_keeps_what_it_measured():
    from ftstudio.engine.device import fitting_pieces

    lengths = [30, 30, 30, 30, 50, 10]
    ran: list = []
    halvings: list = []

    def tokens(piece: list[int]) -> int:
        return sum(lengths[i] for i in piece)

    def fault(where: str, step: int, n: int, rows: int) -> None:
        # Stands for a device on which a pass of more than 60 tokens does not fit.
        if n > 60:
            raise torch.OutOfMemoryError("CUDA out of memory")

    with memory_fault(fault):
        done = list(
            fitting_pieces(
                [[0, 1], [2, 3, 4, 5]],
                lambda piece: ran.append(piece) or tokens(piece),
                "eval",
                tokens,
                cap=120,
                split=lambda g, cap: split_batch(g, lengths, cap),
                size=tokens,
                on_halved=lambda before, after, failed: halvings.append((before, after, failed)),
            )
        )
    # the first piece fitted and stays; the second failed at 150 tokens, so the cap went to 60
    # (half of 120) and it and nothing else was measured again in pieces of at most 60
    assert done == [([0, 1], 60), ([2, 3], 60), ([4, 5], 60)]
    assert halvings == [(120, 60, [2, 3, 4, 5])]

    class NoRoom(Exception):
        pass

    # an item that does not fit alone (70 tokens) raises what the caller says, once the
    # pieces before it are done
    big = [30, 70]
    done = []
    with memory_fault(fault), pytest.raises(NoRoom):
        for piece, _n in fitting_pieces(
            [[0, 1]],
            len,
            "eval",
            lambda piece: sum(big[i] for i in piece),
            cap=100,
            size=lambda piece: sum(big[i] for i in piece),
            split=lambda g, cap: split_batch(g, big, cap),
            cannot_fit=NoRoom,
        ):
            done.append(piece)
    assert done == [[0]]


def test_out_of_memory_halves_the_micro_batch_and_the_run_goes_on(tiny_model_dir, tmp_path):
    seen: list = []
    result, events = run(
        cfg_for(tiny_model_dir), tmp_path / "halved", device_holds(128, from_step=2, seen=seen)
    )
    assert result.status == "finished", result.failure
    assert result.steps == 6 and result.micro_batch_ceiling == 128

    # step 3 (index 2) failed in one pass of the whole batch, then ran again in smaller ones
    train_passes = [(s, t) for w, s, t, _r in seen if w == "train"]
    at_step_2 = [t for s, t in train_passes if s == 2]
    assert at_step_2[0] > 128 and all(t <= 128 for t in at_step_2[1:])
    whole = sum(t for s, t in train_passes if s == 1)  # step 2: one pass, the whole batch
    assert [t for s, t in train_passes if s == 1] == [whole]

    # the dashboard and the log are told once; the plan after it says the new size
    warnings = [e for e in events if isinstance(e, Log) and "Out of memory" in e.message]
    assert len(warnings) == 1 and "step 3" in warnings[0].message and "128" in warnings[0].message
    plans = [e for e in events if isinstance(e, FitPlan)]
    assert [(p.reason, p.micro_batch_tokens, p.step) for p in plans] == [
        ("plan", 256, 0),
        ("out_of_memory", 128, 2),
    ]
    assert plans[-1].micro_batches >= 2 and "128 tokens per micro-batch" in plans[-1].text

    # the same run with the smaller micro-batch from the start: same steps, same data, same curve
    reference, ref_events = run(cfg_for(tiny_model_dir, micro_batch_tokens=128), tmp_path / "small")
    assert reference.status == "finished" and reference.micro_batch_ceiling is None
    assert [e.tokens for e in events if isinstance(e, StepMetrics)] == [
        e.tokens for e in ref_events if isinstance(e, StepMetrics)
    ]
    assert losses(events) == pytest.approx(losses(ref_events), rel=1e-5)
    assert result.eval_loss == pytest.approx(reference.eval_loss, rel=1e-5)
    assert losses(events) != losses(ref_events)[:1] * 6  # the curve moves: the comparison says something

    # what the run folder keeps says it too (metrics.jsonl reads back the plan events)
    kept = [e for e in read_events(tmp_path / "halved" / "metrics.jsonl") if isinstance(e, FitPlan)]
    assert kept == plans


def test_a_resumed_run_keeps_the_smaller_micro_batch(tiny_model_dir, tmp_path):
    cfg = cfg_for(tiny_model_dir)
    straight, straight_events = run(cfg, tmp_path / "straight", device_holds(128, from_step=1))
    steps_done: list = []

    def stop_after_three() -> bool:
        return len(steps_done) >= 3

    def fault_and_count(where: str, step: int, tokens: int, rows: int) -> None:
        device_holds(128, from_step=1)(where, step, tokens, rows)
        if where == "train" and step not in steps_done:
            steps_done.append(step)

    first, first_events = run(cfg, tmp_path / "resumed", fault_and_count, stop=stop_after_three)
    assert first.status == "stopped" and first.steps == 3
    state = json.loads(
        next((tmp_path / "resumed" / "checkpoints").glob("step-3")).joinpath("state.json").read_text()
    )
    assert state["micro_batch_tokens"] == 128 and state["memory_halvings"] == 1
    # resumed with no fault at all: the checkpoint's micro-batch, not the whole batch again
    second, second_events = run(cfg, tmp_path / "resumed", resume=True)
    assert second.status == "finished" and second.micro_batch_ceiling == 128
    plans = [e for e in second_events if isinstance(e, FitPlan)]
    assert [(p.reason, p.micro_batch_tokens) for p in plans] == [("resume", 128)]
    assert losses(first_events) + losses(second_events) == pytest.approx(losses(straight_events), rel=1e-6)


def test_a_run_that_cannot_go_lower_fails_naming_the_plan(tiny_model_dir, tmp_path):
    # Not even one example fits: the micro-batch halves down to single examples, then the run ends.
    result, events = run(cfg_for(tiny_model_dir), tmp_path / "never", device_holds(0, from_step=1))
    assert result.status == "failed" and result.steps == 1
    failure = result.failure
    assert isinstance(failure, Failed) and failure.kind == "oom"
    assert "at step 2 with micro-batches of" in failure.message
    assert "already a single example" in failure.message and "checkpointing off" in failure.message
    assert "gradient checkpointing" in failure.suggestion and "QLoRA" in failure.suggestion
    assert [e for e in events if isinstance(e, Failed)] == [failure]


def test_the_number_of_halvings_is_bounded(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "MAX_MEMORY_HALVINGS", 1)
    result, events = run(cfg_for(tiny_model_dir), tmp_path / "bounded", device_holds(64, from_step=1))
    assert result.status == "failed" and result.failure.kind == "oom"
    assert "with micro-batches of 128 tokens" in result.failure.message
    assert "after halving the micro-batch once" in result.failure.message
    assert len([e for e in events if isinstance(e, Log) and "Out of memory" in e.message]) == 1


def test_held_out_loss_is_measured_again_in_smaller_pieces(tiny_model_dir, tmp_path):
    cfg = cfg_for(tiny_model_dir, max_steps=3, eval_every=2)
    plain, plain_events = run(cfg, tmp_path / "plain")
    seen: list = []
    recovered, events = run(cfg, tmp_path / "eval", device_holds(100, where="eval", seen=seen))
    assert recovered.status == "finished"
    assert max(t for w, _s, t, _r in seen if w == "eval") > 100  # it did run out once
    evals = [e.eval_loss for e in events if isinstance(e, EvalMetrics)]
    assert len(evals) == 2
    assert evals == pytest.approx([e.eval_loss for e in plain_events if isinstance(e, EvalMetrics)], rel=1e-6)
    assert losses(events) == losses(plain_events)  # training itself untouched
    warnings = [e.message for e in events if isinstance(e, Log) and "Out of memory" in e.message]
    assert len(warnings) == 1 and "held-out loss" in warnings[0]


def test_sample_answers_are_generated_again_in_smaller_batches(tiny_model_dir, tmp_path):
    cfg = cfg_for(tiny_model_dir, max_steps=2, eval_every=0, samples=4, sample_max_new_tokens=4)
    plain, plain_events = run(cfg, tmp_path / "plain")
    seen: list = []

    def two_rows_fit(where: str, step: int, tokens: int, rows: int) -> None:
        seen.append((where, rows))
        if where == "generate" and rows > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (KV cache)")

    recovered, events = run(cfg, tmp_path / "samples", two_rows_fit)
    assert recovered.status == "finished"
    assert [r for w, r in seen if w == "generate"] == [4, 2, 2]
    from ftstudio.core.events import Sample

    assert [e.output for e in events if isinstance(e, Sample)] == [
        e.output for e in plain_events if isinstance(e, Sample)
    ]


def test_the_fit_plan_is_applied_and_said_once(tiny_model_dir, tmp_path):
    cfg = cfg_for(tiny_model_dir, auto_fit=True, max_steps=1, eval_every=0)
    result, events = run(cfg, tmp_path / "planned")
    assert result.status == "finished"
    (plan,) = [e for e in events if isinstance(e, FitPlan)]
    # the tiny model fits this machine's memory many times over: the whole batch in one pass
    assert plan.reason == "plan" and plan.micro_batch_tokens == 256 and not plan.gradient_checkpointing
    assert plan.estimated_bytes > 0 and "fits" in plan.text and "to spare" in plan.text
    assert [e.message for e in events if isinstance(e, Log) and e.message.startswith("Plan:")] == [
        f"Plan: {plan.text}"
    ]

    # an earlier run of the project ran out of memory above 64 tokens: this one starts there
    events = []
    capped = train(
        cfg, data(), events.append, lambda: False, run_dir=tmp_path / "capped", micro_batch_ceiling=64
    )
    assert capped.status == "finished" and capped.micro_batch_ceiling is None
    (plan,) = [e for e in events if isinstance(e, FitPlan)]
    assert plan.micro_batch_tokens == 64 and "earlier run ran out of memory" in plan.text


def test_a_dpo_step_redone_after_out_of_memory_counts_its_pairs_once(tiny_model_dir, tmp_path):
    from ftstudio.core.events import PreferenceMetrics
    from tests.engine.test_preference_training import cfg_for as dpo_cfg
    from tests.engine.test_preference_training import pref_data

    # a pair is two segments of one row (up to 2 x max_length): two or three pairs per micro-batch
    cfg = dpo_cfg(
        tiny_model_dir,
        auto_fit=False,
        batch_tokens=512,
        micro_batch_tokens=256,
        samples=0,
        checkpoint_every=0,
        eval_every=0,
    )
    passes: list = []

    def second_pass_of_step_two(where: str, step: int, tokens: int, rows: int) -> None:
        # Stands for memory that runs out part-way through a step, once: the first
        # micro-batch's pairs were already counted when the second one fails.
        if where == "train" and step == 1:
            passes.append(tokens)
            if len(passes) == 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    events: list = []
    with memory_fault(second_pass_of_step_two):
        result = train(cfg, pref_data(), events.append, lambda: False, run_dir=tmp_path / "dpo")
    assert result.status == "finished" and result.micro_batch_ceiling == 128, result.failure
    assert len(passes) > 3  # two passes, then the whole step again in smaller ones
    reference: list = []
    train(
        dataclasses.replace(cfg, micro_batch_tokens=128),
        pref_data(),
        reference.append,
        lambda: False,
        run_dir=tmp_path / "dpo-small",
    )

    def windows(evs: list) -> list[PreferenceMetrics]:
        return [e for e in evs if isinstance(e, PreferenceMetrics)]

    # a redone step's pairs are counted once, and what they measure is the smaller micro-batch's
    assert [e.units for e in windows(events)] == [e.units for e in windows(reference)]
    assert [e.loss for e in windows(events)] == pytest.approx([e.loss for e in windows(reference)], rel=1e-5)
    assert [e.reward_margin for e in windows(events)] == pytest.approx(
        [e.reward_margin for e in windows(reference)], rel=1e-4, abs=1e-6
    )
    assert losses(events) == pytest.approx(losses(reference), rel=1e-5)


# -- preference tuning's passes without gradients -------------------------------------------


def preference_run(model_dir: Path, run_dir: Path, objective: str = "dpo", fault=None):
    from tests.engine.test_preference_training import cfg_for as pref_cfg
    from tests.engine.test_preference_training import pref_data

    # rows of up to 256 tokens hold several answers (each a few dozen tokens) in these passes
    cfg = pref_cfg(
        model_dir,
        objective=objective,
        auto_fit=False,
        batch_tokens=512,
        micro_batch_tokens=256,
        samples=0,
        checkpoint_every=0,
        eval_every=2,
    )
    events: list = []
    with memory_fault(fault) if fault is not None else contextlib.nullcontext():
        result = train(cfg, pref_data(), events.append, lambda: False, run_dir=run_dir)
    return result, events


def preference_figures(events: list) -> list[tuple]:
    from ftstudio.core.events import PreferenceMetrics

    return [
        (e.split, e.step, e.units, e.loss, e.reward_accuracy, e.reward_margin)
        for e in events
        if isinstance(e, PreferenceMetrics)
    ]


def assert_same_run(events: list, clean_events: list) -> None:
    assert losses(events) and len(losses(events)) == len(losses(clean_events))
    assert losses(events) == pytest.approx(losses(clean_events), rel=1e-5)
    got, want = preference_figures(events), preference_figures(clean_events)
    assert [f[:3] for f in got] == [f[:3] for f in want]  # the same windows and evaluations
    for g, w in zip(got, want):
        for a, b in zip(g[3:], w[3:]):  # a window with no rejected answer has no margin
            assert (a is None) == (b is None) and (a is None or a == pytest.approx(b, rel=1e-5, abs=1e-6))


def out_of_memory_warnings(events: list) -> list[str]:
    return [e.message for e in events if isinstance(e, Log) and "Out of memory" in e.message]


def test_dpo_reference_and_held_out_passes_go_on_in_smaller_rows(tiny_model_dir, tmp_path):
    clean, clean_events = preference_run(tiny_model_dir, tmp_path / "clean")
    assert clean.status == "finished", clean.failure
    seen: list = []

    def fault(where: str, step: int, tokens: int, rows: int) -> None:
        # Stands for a device on which a forward pass without gradients of more than 200
        # tokens does not fit before training (the reference pass), and of more than 64 in
        # the held-out passes (memory the optimiser state took since).
        seen.append((where, tokens))
        if (where == "reference" and tokens > 200) or (where == "eval" and tokens > 64):
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {tokens} tokens' activations"
            )

    result, events = preference_run(tiny_model_dir, tmp_path / "recovered", fault=fault)
    assert result.status == "finished", result.failure
    assert result.steps == clean.steps == 4
    assert max(t for w, t in seen if w == "reference") > 200  # it did run out in both passes
    assert max(t for w, t in seen if w == "eval") > 64
    assert_same_run(events, clean_events)
    # each pass says so once; the held-out passes after the first keep the smaller rows
    warnings = out_of_memory_warnings(events)
    assert len(warnings) == 2, warnings
    assert "reference log-probabilities" in warnings[0] and "held-out metrics at step 2" in warnings[1]
    assert result.micro_batch_ceiling is None  # training's micro-batch is not what ran out


def test_kto_step_reference_point_goes_on_in_smaller_rows(tiny_model_dir, tmp_path):
    clean_seen: list = []
    clean, clean_events = preference_run(
        tiny_model_dir,
        tmp_path / "clean",
        objective="kto",
        fault=lambda where, step, tokens, rows: clean_seen.append((where, step, tokens)),
    )
    assert clean.status == "finished", clean.failure
    seen: list = []
    failed: list = []

    def fault(where: str, step: int, tokens: int, rows: int) -> None:
        # Stands for a device on which, from the second step on, the forward pass of the
        # step's mismatched answers (KTO's KL point) does not fit above 100 tokens.
        seen.append((where, step, tokens))
        if where == "kl" and step >= 1 and tokens > 100:
            failed.append((step, tokens))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB")

    result, events = preference_run(tiny_model_dir, tmp_path / "recovered", objective="kto", fault=fault)
    assert result.status == "finished", result.failure
    assert result.steps == clean.steps == 4
    assert len(failed) == 1 and failed[0][0] == 1 and failed[0][1] > 100
    assert_same_run(events, clean_events)
    warnings = out_of_memory_warnings(events)
    assert len(warnings) == 1 and "reference point (KL) for step 2" in warnings[0], warnings

    # The training micro-batches are the clean run's: the step was not halved or redone for it.
    def passes(evs: list, kind: str) -> list:
        return [(s, t) for w, s, t in evs if w == kind]

    assert passes(seen, "train") == passes(clean_seen, "train")
    assert result.micro_batch_ceiling is None
    assert not [e for e in events if isinstance(e, FitPlan) and e.reason == "out_of_memory"]

    # Each step's mismatched answers went forward once (the failed row's again, nothing else).
    def kl_tokens(evs: list) -> dict[int, int]:
        out: dict[int, int] = {}
        for s, t in passes(evs, "kl"):
            out[s] = out.get(s, 0) + t
        return out

    expected = kl_tokens(clean_seen)
    expected[1] += failed[0][1]
    assert sorted(expected) == [0, 1, 2, 3] and kl_tokens(seen) == expected


@pytest.mark.parametrize(
    "where, words",
    [
        ("reference", "Computing the reference log-probabilities"),
        ("eval", "Measuring the held-out metrics at step 2"),
    ],
)
def test_a_preference_pass_that_cannot_fit_one_sequence_fails(tiny_model_dir, tmp_path, where, words):
    def fault(pass_kind: str, step: int, tokens: int, rows: int) -> None:
        # Stands for a device on which no forward pass of this kind fits at all.
        if pass_kind == where:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    result, events = preference_run(tiny_model_dir, tmp_path / where, fault=fault)
    assert result.status == "failed"
    failure = result.failure
    assert isinstance(failure, Failed) and failure.kind == "oom"
    assert failure.message.startswith(words) and "even one sequence" in failure.message, failure.message
    assert "QLoRA" in failure.suggestion
    assert [e for e in events if isinstance(e, Failed)] == [failure]
    assert result.steps == (0 if where == "reference" else 2)
    warnings = out_of_memory_warnings(events)
    assert warnings and all(words.lower() in w for w in warnings)  # halved down to single sequences first
