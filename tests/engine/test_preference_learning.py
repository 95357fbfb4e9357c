"""Preference tuning really changes what the bundled model says.

The synthetic task, built from the demo project as an expert's blind votes
would build it: the bundled model, asked to triage a ticket, answers in its
own words ("I'm sorry for any confusion..."); the expert prefers an answer in
the form "Category: <the ticket's category>". DPO on such pairs (the base
model's own answer rejected), and KTO on unpaired answers (a good answer for
some prompts, the base model's own answer as a bad one for others), both from
the base model, must lift the held-out reward accuracy to at least 0.9 and
make at least 80% of greedy held-out answers take the preferred form, against
under 20% before.

What keeps it inside CI's budget (2 cores): the preferred form shows in the
first two generated tokens, so every answer is a few tokens long; both runs
start from the base model (no SFT run first); few, short pairs and few steps
at the Quick preset's learning rate; the answers are generated in batches.

``FTSTUDIO_PREFERENCE_SEED`` sets the runs' seed (default 0) to check that
the result does not hang on one lucky seed.
"""

from __future__ import annotations

import os
import time

import pytest

from ftstudio.core.config import BUNDLED_MODEL, preset
from ftstudio.core.demo import ensure_demo_project
from ftstudio.core.events import PreferenceMetrics
from ftstudio.core.preferences import PreferenceData

PREFERRED = "Category: "
TRAIN = 24  # training prompts: 24 pairs for DPO, 12 good and 12 bad answers for KTO
HELD_OUT = 12
MAX_NEW_TOKENS = 6  # the form shows in the first two tokens ("Category", ":")
SEED = int(os.environ.get("FTSTUDIO_PREFERENCE_SEED", "0"))


def _prefers(answer: str) -> bool:
    """The answer opens with "Category:" (in any case: the form, not the capital, is the point)."""
    return answer.lower().startswith(PREFERRED.strip().lower())


def _answers(generator, model: str | None, convs: list[list[dict]]) -> list[str]:
    """Greedy answers to each conversation's prompt (its answer left off), in batches."""
    from ftstudio.engine.batch_generation import Request, generate_batch
    from ftstudio.engine.inference import SamplingSettings

    requests = [Request(c[:-1], model) for c in convs]
    return [
        str(a) for a in generate_batch(generator, requests, SamplingSettings(max_new_tokens=MAX_NEW_TOKENS))
    ]


@pytest.fixture(scope="module")
def start(tmp_path_factory, bundled_dir):
    """(project, data, the base model's own answers to the training and held-out prompts, generator)."""
    from ftstudio.engine.inference import Generator

    project = ensure_demo_project(tmp_path_factory.mktemp("pref") / "demo.ftstudio")
    data = project.prepared_data()
    generator = Generator(BUNDLED_MODEL)
    t0 = time.perf_counter()
    own = _answers(generator, None, data.train[:TRAIN] + data.eval[:HELD_OUT])
    print(f"base answers {time.perf_counter() - t0:.0f} s; e.g. {own[TRAIN : TRAIN + 3]}")
    return project, data, (own[:TRAIN], own[TRAIN:]), generator


def _rows(convs: list[list[dict]], own: list[str], form: str) -> list[dict]:
    rows = []
    for i, (c, answer) in enumerate(zip(convs, own)):
        good = PREFERRED + str(c[-1]["content"])
        if form == "pairs":
            rows.append({"prompt": c[:-1], "chosen": good, "rejected": answer})
        else:  # unpaired: a good answer for even prompts, the model's own (bad) one for odd ones
            rows.append(
                {
                    "prompt": c[:-1],
                    "chosen": good if i % 2 == 0 else None,
                    "rejected": answer if i % 2 else None,
                }
            )
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dpo", "kto"])
def test_preference_tuning_learns_the_preferred_form(start, objective):
    from ftstudio.engine.training import train

    project, data, (own_train, own_held), generator = start
    held_out = data.eval[:HELD_OUT]
    before = sum(map(_prefers, own_held)) / len(own_held)
    assert before < 0.2, own_held
    prefs = PreferenceData(
        _rows(data.train[:TRAIN], own_train, "pairs" if objective == "dpo" else "unpaired"),
        _rows(held_out, own_held, "pairs"),
        list(range(TRAIN)),
        list(range(HELD_OUT)),
    )
    cfg = preset(
        "quick",
        objective=objective,
        beta=0.1,
        max_steps=8,
        batch_tokens=1024,
        max_length=128,
        eval_every=0,
        samples=1,
        sample_max_new_tokens=MAX_NEW_TOKENS,
        checkpoint_every=0,
        seed=SEED,
    )
    run_id = project.create_run(cfg.to_dict())
    events = []
    t0 = time.perf_counter()
    result = train(cfg, prefs, events.append, lambda: False, run_dir=project.run_dir(run_id))
    assert result.status == "finished", result.failure
    held = [e for e in events if isinstance(e, PreferenceMetrics) and e.split == "eval"][-1]
    assert held.units == (HELD_OUT if objective == "dpo" else 2 * HELD_OUT)
    generator.add_adapter(run_id, result.adapter_dir)
    t1 = time.perf_counter()
    answers = _answers(generator, run_id, held_out)
    after = sum(map(_prefers, answers)) / len(answers)
    print(
        f"{objective} (seed {SEED}): trained {t1 - t0:.0f} s, answered {time.perf_counter() - t1:.0f} s; "
        f"held-out reward accuracy {held.reward_accuracy:.2f}, margin {held.reward_margin:.2f}; preferred "
        f"form {before:.0%} before, {after:.0%} after; e.g. {answers[:3]}"
    )
    assert held.reward_accuracy >= 0.9
    assert after >= 0.8
