"""A representative state of the Compare page without running a model, for
the staged (quick) screenshots that tests take. Its answers, votes and
figures are made up: the pictures in docs/screenshots are real
(``python -m ftstudio.gui.screenshots`` runs the models for them).

``stage_sample_state(page, tab, sample_runs=0)`` stores sample answers for
the chosen models and prompts (only where none are stored yet), shows them
side by side, and for the other tabs starts a blind round, casts votes,
stores held-out evaluations or writes a chat exchange. With ``sample_runs``
(at most ``len(SAMPLE_RUNS)``) and no finished run with an adapter in the
project, it first adds that many finished runs with an (empty) adapter
folder, so that there are adapters to put beside the base model: nothing
loads them, since no model runs here.

It writes into the page's project: use it on a throwaway copy.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ftstudio.core import ratings
from ftstudio.core.config import preset
from ftstudio.engine.evaluation import OTHER, normalise_answer

TABS = ("compare", "blind", "results", "evaluate", "chat")
SAMPLE_PROMPTS = [
    "My card was charged twice for one order.",
    "The app crashes when I open the settings page.",
    "Where is the refund for the shoes I sent back?",
    "Thank you, the parcel arrived a day early!",
]
# (run id, preset, steps, train loss, held-out loss): two runs as the Train page would leave them.
SAMPLE_RUNS = [
    ("20250611-091502-3f2a", "quick", 34, 0.52, 0.41),
    ("20250611-104417-b81c", "balanced", 68, 0.16, 0.19),
]
SAMPLE_PROMPT_COUNT = {"compare": 4, "blind": 6, "results": 12, "evaluate": 4, "chat": 4}
BASE_LOSS = 2.87


def _sample_answer(n: int, is_base: bool, reference: str | None, prompt: str) -> str:
    if is_base:
        return (f"Thank you for reaching out. It sounds like this is about: \"{prompt[:60]}\". I would suggest "
                "contacting the support team with your order number so they can look into it for you.")
    if reference:
        return reference if n % 2 == 0 else f"{reference}."
    return "I am sorry to hear that. Could you send me your order number so I can check what happened?"


def add_sample_runs(page, n: int) -> list[str]:
    """Add up to ``n`` finished sample runs with an adapter folder, when the project has no such run yet."""
    project = page.project
    if n <= 0 or any((project.run_dir(r.id) / "adapter").is_dir() for r in project.runs()):
        return []
    added = []
    for run_id, preset_name, steps, train_loss, eval_loss in SAMPLE_RUNS[:n]:
        # started when its id says, so the runs list in a fixed order
        project.create_run(preset(preset_name).to_dict(), run_id=run_id, created_at=_started(run_id))
        project.update_run(run_id, status="finished", steps=steps, train_loss=train_loss, eval_loss=eval_loss)
        (project.run_dir(run_id) / "adapter").mkdir(parents=True, exist_ok=True)
        added.append(run_id)
    page.context.runs_changed.emit()
    page.selection.set_checked([ref.key for ref in page.selection.all_refs()])
    return added


def _started(run_id: str) -> str:
    """The time a run id of the form YYYYMMDD-HHMMSS-xxxx names, as the project stores times."""
    d, t = run_id.split("-")[:2]
    return f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}.000+00:00"


def _strength(key: str) -> int:
    """How good the sample answers of model ``key`` are: the base 0, then each sample run in turn."""
    run_id = ratings.run_id_of(key)
    ids = [r[0] for r in SAMPLE_RUNS]
    return 1 + ids.index(run_id) if run_id in ids else (0 if key.startswith(ratings.BASE_PREFIX) else 1)


def _cast_votes(page) -> None:
    """Vote through the blind round as an expert would: the better model mostly wins, close ones tie."""
    blind = page.blind
    n = 0
    while blind.current is not None:
        gens = ratings.get_generations(page.project, blind.shown)
        strengths = [_strength(gens[g].model) for g in blind.shown]
        best = max(range(len(strengths)), key=lambda i: strengths[i])
        if min(strengths) == 0 and n % 7 == 3:
            blind.vote("both_bad")
        elif min(strengths) > 0 and n % 3 == 1:
            blind.vote("tie")
        elif n % 9 == 5:  # now and then the other answer reads better to the expert
            blind.vote("pick", (best + 1) % len(strengths))
        else:
            blind.vote("pick", best)
        n += 1


def _predicted(strength: int, i: int, reference: str, labels: list[str]) -> str:
    """A sample greedy answer: the base model rarely says just the label, the runs mostly do."""
    if strength == 0:
        return reference if i % 5 == 0 else OTHER
    wrong = (i % 6 == 3) if strength == 1 else (i % 15 == 7)
    if not wrong:
        return reference
    return labels[(labels.index(reference) + 1) % len(labels)]


def store_sample_evaluations(page) -> int:
    """Store a held-out evaluation of each checked model, made from sample answers; returns how many."""
    examples = page.selection.evaluation_examples()
    if not examples:
        return 0
    references = [normalise_answer(ex.reference_answer() or "") for ex in examples]
    labels = sorted(set(references))
    stored = 0
    for ref in page.selection.checked_refs():
        strength = _strength(ref.key)
        pairs = [(r, _predicted(strength, i, r, labels)) for i, r in enumerate(references)]
        count, correct = Counter(r for r, _ in pairs), Counter(r for r, p in pairs if r == p)
        predicted = labels + ([OTHER] if any(p not in labels for _, p in pairs) else [])
        matrix = [[0] * len(predicted) for _ in labels]
        for r, p in pairs:
            matrix[labels.index(r)][predicted.index(p)] += 1
        run = next((r for r in SAMPLE_RUNS if r[0] == ratings.run_id_of(ref.key)), None)
        loss = run[4] if run else BASE_LOSS
        results: dict[str, Any] = {
            "model": None, "examples": len(examples), "loss": loss, "perplexity": math.exp(loss),
            "tokens": 2 * len(examples), "exact_match": sum(correct.values()) / len(pairs),
            "per_label": {label: {"n": count[label], "correct": correct[label],
                                  "accuracy": correct[label] / count[label]} for label in labels},
            "confusion": {"labels": labels, "predicted_labels": predicted, "matrix": matrix},
            "predictions": [],
        }
        ratings.store_evaluation(page.project, ratings.run_id_of(ref.key), ref.key, results)
        stored += 1
    page.evaluate.view.refresh()
    page.evaluate.view.select(max((ref.key for ref in page.selection.checked_refs()), key=_strength))
    page.evaluate.set_status(f"Evaluated {stored} model{'s' if stored != 1 else ''} on {len(examples)} examples; "
                             "stored with each run (the Runs page shows them).")
    return stored


def stage_sample_state(page, tab: str = "compare", sample_runs: int = 0) -> None:
    """Fill ``page`` (a ComparePage) as after a comparison and show ``tab`` (one of TABS)."""
    if tab not in TABS:
        raise ValueError(f"unknown tab {tab!r} (expected one of {', '.join(TABS)})")
    add_sample_runs(page, sample_runs)
    sel = page.selection
    sel.limit.setValue(SAMPLE_PROMPT_COUNT[tab])
    if not sel.prompts():
        sel.set_source("typed")
        sel.typed.setPlainText("\n\n".join(SAMPLE_PROMPTS))
    settings = sel.sampling()
    for i, prompt in enumerate(sel.prompts()):
        for n, ref in enumerate(sel.checked_refs()):
            if ratings.find_generation(page.project, ref.key, prompt.messages, settings) is None:
                text = _sample_answer(n + i, ref.is_base, prompt.reference, ratings.prompt_text(prompt.messages))
                ratings.add_generation(page.project, ref.key, prompt.messages, text, settings,
                                       example_id=prompt.example_id)
    page.show_saved_answers()
    if tab in ("evaluate", "results") and len(sel.checked_refs()) >= 1 \
            and not ratings.latest_evaluations(page.project):
        store_sample_evaluations(page)
    if tab in ("blind", "results") and len(sel.checked_refs()) >= 2:
        if not page.blind.voter():
            page.context.set_actor("Expert")
        page.blind.rng.seed(7)  # the same pictures each time
        page.start_blind_round()
        if tab == "results":
            _cast_votes(page)
    if tab == "chat":
        refs = sel.all_refs()
        if refs:
            ref = refs[-1]
            page.chat.model_combo.setCurrentIndex(len(refs) - 1)
            for prompt, label in zip(SAMPLE_PROMPTS[:2], ("billing", "technical")):
                page.chat.begin_turn(prompt, ref)
                page.chat.end_turn(ref, _sample_answer(0, ref.is_base, label, prompt))
    page.tabs.setCurrentWidget({"compare": page.compare, "blind": page.blind, "results": page.results,
                                "evaluate": page.evaluate, "chat": page.chat}[tab])
    page.results.refresh()
