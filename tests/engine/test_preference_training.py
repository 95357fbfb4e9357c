"""DPO and KTO runs on the tiny model through the SFT engine: the same events, run folder,
checkpoints and resume; the preference metrics on train and held-out units; pairs packed as
segments of one row; a run that starts from an earlier run's adapter; and the failures."""

from __future__ import annotations

import pytest
import torch

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import (
    EvalMetrics,
    Failed,
    Finished,
    PreferenceMetrics,
    Sample,
    StepMetrics,
    read_events,
)
from ftstudio.core.preferences import PreferenceData
from ftstudio.engine.training import train

CATEGORIES = ["Billing", "Shipping", "Technical"]


def pref_data(n_train: int = 12, n_eval: int = 4, singles: bool = False) -> PreferenceData:
    def row(i):
        cat = CATEGORIES[i % 3]
        return {
            "prompt": [{"role": "user", "content": f"Ticket {i}: sort it"}],
            "chosen": f"{cat}, because of the ticket.",
            "rejected": cat,
        }

    train_rows = [row(i) for i in range(n_train)]
    if singles:  # a bad answer alone, as a 'both bad' vote gives it
        train_rows.append(
            {"prompt": [{"role": "user", "content": "Ticket x"}], "chosen": None, "rejected": "Huh"}
        )
    return PreferenceData(
        train_rows, [row(100 + i) for i in range(n_eval)], list(range(len(train_rows))), list(range(n_eval))
    )


def cfg_for(model_dir, **kw) -> TrainConfig:
    base = dict(
        model=str(model_dir),
        objective="dpo",
        max_steps=4,
        batch_tokens=256,
        max_length=64,
        learning_rate=1e-2,
        eval_every=2,
        samples=1,
        sample_max_new_tokens=3,
        checkpoint_every=2,
        lora_dropout=0.0,
        warmup_ratio=0.0,
        seed=5,
        beta=0.5,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_units_pack_both_answers_as_segments_of_one_row(bundled_dir):
    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.preference import collate_units, encode_units

    tok = load_tokenizer(bundled_dir)
    enc = encode_units(tok, pref_data().train, "dpo", 64)
    assert len(enc.examples) == 12
    unit = enc.examples[0]
    batch = collate_units(enc.examples, [0, 1])
    assert batch.segments == (
        len(unit.segments[0]),
        len(unit.segments[1]),
        *map(len, enc.examples[1].segments),
    )
    assert batch.input_ids.shape == (1, sum(batch.segments))  # no padding
    pos = batch.position_ids[0].tolist()
    assert [i for i, p in enumerate(pos) if p == 0] == [
        0,
        batch.segments[0],
        sum(batch.segments[:2]),
        sum(batch.segments[:3]),
    ]
    # Only answer tokens are targets, and each is the token after its position.
    assert len(batch.targets) == sum(sum(u.answer_tokens) for u in enc.examples[:2])
    ids = batch.input_ids[0]
    assert torch.equal(ids[batch.loss_positions + 1], batch.targets)
    first = tok.decode(batch.targets[batch.target_segment == 0])
    assert first.startswith("Billing, because") and tok.decode(
        batch.targets[batch.target_segment == 1]
    ).startswith("Billing")
    assert "Ticket 0" not in first  # prompt tokens carry no loss
    # KTO: one unit per answer, its second segment the previous answer after its own prompt.
    kto = encode_units(tok, pref_data(singles=True).train, "kto", 64)
    assert len(kto.examples) == 25 and [u.label for u in kto.examples[:2]] == [True, False]
    u = kto.examples[1]
    assert u.segments[1][: u.prompt_lens[1]] == u.segments[0][: u.prompt_lens[0]]
    assert tok.decode(u.segments[1][u.prompt_lens[1] :]).startswith("Billing, because")


@pytest.mark.parametrize("objective", ["dpo", "kto"])
def test_preference_run_reports_and_moves_the_rewards(tiny_model_dir, tmp_path, objective):
    events = []
    data = pref_data(singles=objective == "kto")
    result = train(
        cfg_for(tiny_model_dir, objective=objective),
        data,
        events.append,
        lambda: False,
        run_dir=tmp_path / "run",
    )
    assert result.status == "finished", result.failure
    train_m = [e for e in events if isinstance(e, PreferenceMetrics) and e.split == "train"]
    eval_m = [e for e in events if isinstance(e, PreferenceMetrics) and e.split == "eval"]
    assert [e.step for e in train_m] == [1, 2, 3, 4]
    assert [e.step for e in eval_m] == [2, 4]
    assert eval_m[-1].units == (4 if objective == "dpo" else 8)
    # Before any update the policy is the reference: every reward is zero.
    assert train_m[0].chosen_reward == pytest.approx(0.0, abs=1e-5)
    if objective == "dpo":
        assert train_m[0].loss == pytest.approx(0.6931, abs=1e-3)  # -log sigmoid(0)
    else:  # 1 - sigmoid(0) = 0.5 per answer, the good ones weighted 13 bad / 12 good
        assert 0.5 <= train_m[0].loss <= 0.5 * 13 / 12 + 1e-6
    assert eval_m[-1].reward_margin > 0 and eval_m[-1].loss < train_m[0].loss
    steps = [e for e in events if isinstance(e, StepMetrics)]
    assert [round(s.loss, 5) for s in steps] == [round(e.loss, 5) for e in train_m]
    assert [e.step for e in events if isinstance(e, EvalMetrics)] == [2, 4]
    assert any(isinstance(e, Sample) and e.reference == "Shipping, because of the ticket." for e in events)
    assert any(isinstance(e, Finished) for e in events)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
    on_disk = [e for e in read_events(tmp_path / "run" / "metrics.jsonl") if isinstance(e, PreferenceMetrics)]
    assert on_disk == train_m + eval_m or sorted(on_disk, key=lambda e: (e.step, e.split)) == sorted(
        train_m + eval_m, key=lambda e: (e.step, e.split)
    )


def test_a_stopped_dpo_run_resumes_to_the_same_weights(tiny_model_dir, tmp_path):
    from ftstudio.engine.training import weights_digest  # noqa: F401 - the digest the SFT resume test compares

    data = pref_data()
    whole = train(cfg_for(tiny_model_dir), data, lambda e: None, lambda: False, run_dir=tmp_path / "whole")
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    part = train(cfg_for(tiny_model_dir), data, lambda e: None, stop_after_two, run_dir=tmp_path / "part")
    assert part.status == "stopped" and part.steps == 2
    resumed = train(
        cfg_for(tiny_model_dir), data, lambda e: None, lambda: False, run_dir=tmp_path / "part", resume=True
    )
    assert resumed.status == "finished" and resumed.steps == 4
    from safetensors.torch import load_file

    a = load_file(str(whole.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(resumed.adapter_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_dpo_from_an_earlier_runs_adapter_starts_where_it_left_off(tiny_model_dir, tmp_path):
    from tests.conftest import make_lora_adapter

    start = make_lora_adapter(tiny_model_dir, tmp_path / "sft-adapter", seed=1, rank=8)
    events = []
    result = train(
        cfg_for(tiny_model_dir, start_from=str(start), lora_rank=4, max_steps=2),
        pref_data(),
        events.append,
        lambda: False,
        run_dir=tmp_path / "run",
    )
    assert result.status == "finished", result.failure
    first = next(e for e in events if isinstance(e, PreferenceMetrics))
    assert first.chosen_reward == pytest.approx(0.0, abs=1e-5)  # the reference is the starting adapter
    from safetensors.torch import load_file

    before = load_file(str(start / "adapter_model.safetensors"))
    after = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert before.keys() == after.keys()  # the starting adapter's rank and layers, trained further
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert any("DPO (LORA from the starting adapter)" in getattr(e, "message", "") for e in events)


def test_no_pairs_and_bad_settings_fail_in_words(tiny_model_dir, tmp_path):
    events = []
    empty = PreferenceData([], [], [], [])
    result = train(cfg_for(tiny_model_dir), empty, events.append, lambda: False, run_dir=tmp_path / "a")
    assert result.status == "failed" and result.failure.kind == "data"
    assert "no preference pairs" in result.failure.message and "Compare" in result.failure.suggestion
    only_singles = PreferenceData(
        [{"prompt": [{"role": "user", "content": "Q"}], "chosen": None, "rejected": "bad"}], [], [0], []
    )
    result = train(
        cfg_for(tiny_model_dir), only_singles, lambda e: None, lambda: False, run_dir=tmp_path / "b"
    )
    assert result.failure.kind == "data"  # DPO needs pairs; the single bad answer is for KTO
    result = train(
        cfg_for(tiny_model_dir, beta=0.0), pref_data(), lambda e: None, lambda: False, run_dir=tmp_path / "c"
    )
    assert result.failure.kind == "config" and "beta" in result.failure.message
    assert isinstance(result.failure, Failed)
