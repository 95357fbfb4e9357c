"""Preference tuning really changes what the bundled model says.

The synthetic task, built from the demo project: answers that give the
category followed by a fixed short reason are preferred to the bare
category. A short SFT run on the demo's tickets with their bare categories
makes the starting model (it answers with the bare category); DPO from that
run (pairs), and KTO from it (unpaired: a good answer for some prompts, a
bad one for others), must lift the held-out reward accuracy to at least 0.9
and make at least 80% of greedy held-out answers take the preferred form,
against under 20% before. Short rows (the tickets without the demo's system
prompt) and few steps keep it to a few minutes on 2 cores.
"""

from __future__ import annotations

import os
import time

import pytest

from ftstudio.core.config import BUNDLED_MODEL, preset
from ftstudio.core.demo import ensure_demo_project
from ftstudio.core.events import PreferenceMetrics
from ftstudio.core.examples import PreparedData
from ftstudio.core.preferences import PreferenceData

REASON = ", because of what the ticket asks"
HELD_OUT = 16
MAX_NEW_TOKENS = 12


def _prompt_and_category(conversation: list[dict]) -> tuple[list[dict], str]:
    """The ticket alone (the system prompt left off: shorter rows) and its category."""
    return [m for m in conversation[:-1] if m["role"] != "system"], str(conversation[-1]["content"])


def _prefers(answer: str) -> bool:
    return REASON.strip(", ") in answer


def _answers(generator, model: str, convs: list[list[dict]]) -> list[str]:
    from ftstudio.engine.inference import SamplingSettings

    greedy = SamplingSettings(max_new_tokens=MAX_NEW_TOKENS)
    return [generator.generate(_prompt_and_category(c)[0], model, greedy) for c in convs]


@pytest.fixture(scope="module")
def start(tmp_path_factory, bundled_dir):
    """(project, data, the SFT run's adapter, share of held-out answers in the preferred form, generator)."""
    from ftstudio.engine.inference import Generator
    from ftstudio.engine.training import train

    project = ensure_demo_project(tmp_path_factory.mktemp("pref") / "demo.ftstudio")
    data = project.prepared_data()
    plain = [[*_prompt_and_category(c)[0], c[-1]] for c in data.train]
    cfg = preset("quick", max_steps=16, samples=0, eval_every=0, checkpoint_every=0)
    run_id = project.create_run(cfg.to_dict())
    t0 = time.perf_counter()
    result = train(
        cfg, PreparedData(plain, []), lambda e: None, lambda: False, run_dir=project.run_dir(run_id)
    )
    assert result.status == "finished", result.failure
    generator = Generator(BUNDLED_MODEL)
    generator.add_adapter("sft", result.adapter_dir)
    t1 = time.perf_counter()
    before = _answers(generator, "sft", data.eval[:HELD_OUT])
    share = sum(map(_prefers, before)) / len(before)
    print(
        f"SFT {t1 - t0:.0f} s, answers {time.perf_counter() - t1:.0f} s; before: {before[:3]} ({share:.0%})"
    )
    return project, data, result.adapter_dir, share, generator


def _rows(convs: list[list[dict]], form: str) -> list[dict]:
    rows = []
    for i, c in enumerate(convs):
        prompt, category = _prompt_and_category(c)
        good, bad = category + REASON, category
        if form == "pairs":
            rows.append({"prompt": prompt, "chosen": good, "rejected": bad})
        else:  # unpaired: a good answer for even prompts, a bad one for odd ones
            rows.append(
                {"prompt": prompt, "chosen": good if i % 2 == 0 else None, "rejected": bad if i % 2 else None}
            )
    return rows


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FTSTUDIO_PREFERENCE_LEARNING") != "1",
    reason="the preference learning run (about 25 minutes on 2 cores) is not yet in CI's budget; "
    "run it with FTSTUDIO_PREFERENCE_LEARNING=1",
)
@pytest.mark.parametrize(("objective", "n_train"), [("dpo", 40), ("kto", 56)])
def test_preference_tuning_learns_the_preferred_form(start, objective, n_train):
    from ftstudio.engine.training import train

    project, data, sft_adapter, before, generator = start
    assert before < 0.2
    form = "pairs" if objective == "dpo" else "unpaired"
    prefs = PreferenceData(
        _rows(data.train[:n_train], form),
        _rows(data.eval[:HELD_OUT], "pairs"),
        list(range(n_train)),
        list(range(HELD_OUT)),
    )
    cfg = preset(
        "quick",
        objective=objective,
        start_from=str(sft_adapter),
        learning_rate=5e-4,
        beta=0.1,
        max_steps=10,
        batch_tokens=768,
        max_length=96,
        eval_every=0,
        samples=1,
        checkpoint_every=0,
    )
    run_id = project.create_run(cfg.to_dict())
    events = []
    t0 = time.perf_counter()
    result = train(cfg, prefs, events.append, lambda: False, run_dir=project.run_dir(run_id))
    assert result.status == "finished", result.failure
    held = [e for e in events if isinstance(e, PreferenceMetrics) and e.split == "eval"][-1]
    generator.add_adapter(run_id, result.adapter_dir)
    t1 = time.perf_counter()
    answers = _answers(generator, run_id, data.eval[:HELD_OUT])
    after = sum(map(_prefers, answers)) / len(answers)
    print(
        f"{objective}: trained {t1 - t0:.0f} s, answered {time.perf_counter() - t1:.0f} s; held-out reward "
        f"accuracy {held.reward_accuracy:.2f}, margin {held.reward_margin:.2f}; preferred form {before:.0%} "
        f"before, {after:.0%} after; e.g. {answers[:2]}"
    )
    assert held.reward_accuracy >= 0.9
    assert after >= 0.8
