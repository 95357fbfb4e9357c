"""The loop from blind rating to a preference-tuned run, with real widgets on the tiny model:
blind votes cast by key presses on the Compare page become pairs in the Data page's
Preferences view, the Train page trains Preference (DPO) from the SFT run they rated, and the
new run is offered on the Compare page, its Results tab set to show its win rate over that run."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from ftstudio.core import ratings
from ftstudio.core.examples import NewExample
from tests.conftest import make_lora_adapter

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

HELD_OUT = ["My card was charged twice.", "The app crashes on start.", "Where is my parcel?"]
TIMEOUT_MS = 240_000


@pytest.fixture
def loop_project(project, tiny_model_dir, tmp_path):
    project.add_examples(
        [
            NewExample(
                messages=[{"role": "user", "content": q}, {"role": "assistant", "content": "x"}], split="eval"
            )
            for q in HELD_OUT
        ]
        + [
            NewExample(
                messages=[
                    {"role": "user", "content": f"ticket {i}"},
                    {"role": "assistant", "content": "billing"},
                ],
                split="train",
            )
            for i in range(4)
        ],
        actor="fixture",
    )
    run_id = project.create_run(
        {"model": str(tiny_model_dir), "method": "lora", "objective": "sft"}, run_id="sft-1"
    )
    make_lora_adapter(tiny_model_dir, tmp_path / "sft-adapter", seed=1)
    shutil.copytree(tmp_path / "sft-adapter", project.run_dir(run_id) / "adapter")
    project.update_run(run_id, status="finished", steps=10)
    return project


def test_blind_votes_become_pairs_then_a_dpo_run_that_compare_offers(
    qtbot, context, loop_project, tiny_model_dir
):
    from ftstudio.engine.comparison import ComparisonEngine
    from ftstudio.gui.compare.page import ComparePage
    from ftstudio.gui.data.page import DataPage
    from ftstudio.gui.training.page import TrainPage

    project = loop_project
    engine = ComparisonEngine(str(tiny_model_dir), device="cpu")
    compare = ComparePage(context, engine=engine)
    qtbot.addWidget(compare)
    compare.resize(1280, 800)
    compare.selection.max_new_tokens.setValue(4)
    compare.selection.limit.setValue(len(HELD_OUT))
    sft_key = ratings.run_key("sft-1")
    assert {r.key for r in compare.selection.all_refs()} == {ratings.base_key(str(tiny_model_dir)), sft_key}

    # 1. Blind votes by key presses: the SFT run's answer twice, "both bad" once.
    compare.blind.rng.seed(3)
    assert compare.start_blind_round() == "started"
    qtbot.waitUntil(lambda: not compare.busy, timeout=TIMEOUT_MS)
    picks = 0
    while compare.blind.current is not None:
        shown = compare.blind.displayed_generation_ids()
        models = [g.model for g in ratings.get_generations(project, shown).values()]
        order = [ratings.get_generations(project, [g])[g].model for g in shown]
        if picks < 2:
            qtbot.keyClick(compare.blind, Qt.Key.Key_1 + order.index(sft_key))
            picks += 1
        else:
            qtbot.keyClick(compare.blind, Qt.Key.Key_B)
        assert sorted(models) == sorted(order)
    assert [v.verdict for v in ratings.votes(project)] == ["pick", "pick", "both_bad"]

    # 2. The Data page's Preferences view shows them as pairs (and two bad answers for KTO).
    data = DataPage(context)
    qtbot.addWidget(data)
    qtbot.mouseClick(data.preferences_view_button, Qt.MouseButton.LeftButton)
    assert data.current_view() == "preferences" and data.import_button.isHidden()
    view = data.preferences
    rows = view.rows()
    assert len(rows) == 4
    pairs = [r for r in rows if r["Chosen"] != "\u2014" and r["Rejected"] != "\u2014"]
    assert len(pairs) == 2 and all(r["Source"] == "vote by tester" for r in rows)
    assert {r["Prompt"] for r in pairs} <= set(HELD_OUT)
    # The votes were on held-out prompts and the pairs are for training: the check says so.
    assert all(r["Split"] == "train" for r in rows)
    assert "leakage" in {f.kind for f in view.run_checks()}
    # Swap one pair and undo it through the page.
    view.select_pair(int(pairs[0]["#"]))
    view.swap_selected()
    swapped = next(r for r in view.rows() if r["#"] == pairs[0]["#"])
    assert (swapped["Chosen"], swapped["Rejected"]) == (pairs[0]["Rejected"], pairs[0]["Chosen"])
    data.undo()
    assert [r["Chosen"] for r in view.rows()] == [r["Chosen"] for r in rows]

    # 3. The Train page: Preference (DPO), starting from the SFT run it offers.
    train = TrainPage(context)
    qtbot.addWidget(train)
    train.resize(1280, 800)
    train.show()
    qtbot.waitUntil(lambda: train.device_checked, timeout=60_000)
    form = train.form
    form.set_model(str(tiny_model_dir))
    objective = form.editor("objective")
    objective.setCurrentIndex(objective.findData("dpo"))
    assert form.editor("start_from").currentData() == str(project.run_dir("sft-1") / "adapter")
    assert objective.currentText() == "Preference (DPO)"
    note = form.rows["objective"].help.text()
    assert "pairs of a better and a worse answer" in note and "2 pairs to train on" in note
    assert "Starts from run sft-1" in note
    assert form.rows["beta"].editor.isVisibleTo(form) and not form.rows[
        "desirable_weight"
    ].editor.isVisibleTo(form)
    for name, value in dict(max_steps=2, batch_tokens=256, max_length=64, eval_every=0, samples=0).items():
        w = form.editor(name)
        w.setValue(value)
    assert train.problems() == [], train.problems()
    assert train.start()
    qtbot.waitUntil(lambda: not train.is_busy(), timeout=TIMEOUT_MS)
    run = project.get_run(train.run_id)
    assert run.status == "finished" and run.method == "dpo", run.message
    assert run.config["start_from"] == str(project.run_dir("sft-1") / "adapter")
    assert train.dashboard.tiles["accuracy"].isVisible()

    # 4. Compare offers the new run, and Results shows it against the run it started from.
    context.runs_changed.emit()
    keys = {r.key for r in compare.selection.all_refs()}
    assert ratings.run_key(run.id) in keys
    compare.results.refresh()
    row = compare.results.tuned_row(run.id)
    assert row is not None and row["Started from"] == "Run sft-1"
    assert row["Win rate over its start (95% CI)"] == "not rated against each other yet"

    train.shutdown()
    compare.shutdown()
    engine.close()
