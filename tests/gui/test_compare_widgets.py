"""The Compare page's widgets over stored answers, no model needed: the blind
order is random and on record, every key votes what it says, the results
table counts the votes, adapter folders are checked before use, the prompt
choices, and the word differences."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PySide6.QtCore import Qt

from ftstudio.core import ratings
from ftstudio.core.ratings import wilson_interval
from ftstudio.gui.compare.blind_tab import BlindItem, BlindTab
from ftstudio.gui.compare.diff import similarity, word_diff_html, word_ops
from ftstudio.gui.compare.results_tab import ResultsTab

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one).
HANG_MS = 900_000

SETTINGS = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 16, "seed": 0}
MODELS = ["base:bundled:SmolLM2-135M-Instruct", "run:r1", "run:r2"]


def _stored(project, n_prompts: int, models=MODELS) -> list[BlindItem]:
    items = []
    for i in range(n_prompts):
        messages = [{"role": "user", "content": f"Question {i}?"}]
        ids = [ratings.add_generation(project, m, messages, f"answer {i} from {m}", SETTINGS) for m in models]
        items.append(BlindItem(i, ids))
    return items


@pytest.fixture
def blind(qtbot, context):
    tab = BlindTab(context)
    qtbot.addWidget(tab)
    tab.rng.seed(1)
    return tab


def test_blind_order_is_random_and_the_vote_records_it(qtbot, blind, project):
    items = _stored(project, 60, MODELS[:2])
    blind.begin(len(items), [])
    for item in items:
        blind.add_item(item)
    first = Counter()
    shown_at_vote = []
    while blind.current is not None:
        shown = blind.displayed_generation_ids()
        gens = ratings.get_generations(project, shown)
        assert blind.displayed_texts() == [gens[g].output for g in shown]
        assert "from" not in blind.prompt_text.text()
        first[gens[shown[0]].model] += 1
        shown_at_vote.append(shown)
        qtbot.keyClick(blind, Qt.Key.Key_T)
    # 60 fair coin flips: each model is shown first between 15 and 45 times (p of failing < 1e-4)
    assert 15 <= first[MODELS[0]] <= 45 and first[MODELS[0]] + first[MODELS[1]] == 60
    assert [v.shown for v in ratings.votes(project)] == shown_at_vote


def test_every_key_votes_what_it_says(qtbot, blind, project, context):
    items = _stored(project, 6)
    blind.begin(len(items), [])
    for item in items:
        blind.add_item(item)
    assert blind.status.text() == "Voting as tester · 0 votes saved · 6 of 6 prompts left"

    def shown_models():
        gens = ratings.get_generations(project, blind.displayed_generation_ids())
        return [gens[g].model for g in blind.displayed_generation_ids()]

    expected = []
    # 1, 2 and 3 pick the answer in that place
    for key, pos in ((Qt.Key.Key_1, 0), (Qt.Key.Key_3, 2), (Qt.Key.Key_2, 1)):
        shown = blind.displayed_generation_ids()
        qtbot.keyClick(blind, key)
        expected.append(("pick", shown[pos], shown))
    # typing in the comment never votes; T then saves the comment with a tie
    shown = blind.displayed_generation_ids()
    blind.comment.setFocus()
    qtbot.keyClicks(blind.comment, "1 T B all fine")
    assert len(ratings.votes(project)) == 3
    qtbot.keyClick(blind, Qt.Key.Key_T)
    expected.append(("tie", None, shown))
    # S skips without a vote, B is "both bad"
    qtbot.keyClick(blind, Qt.Key.Key_S)
    shown = blind.displayed_generation_ids()
    qtbot.keyClick(blind, Qt.Key.Key_B)
    expected.append(("both_bad", None, shown))
    assert blind.current is None and "All done" in blind.prompt_text.text()
    assert not blind.tie_button.isEnabled()

    stored = ratings.votes(project)
    assert [(v.verdict, v.chosen, v.shown) for v in stored] == expected
    assert [v.comment for v in stored] == [None, None, None, "1 T B all fine", None]
    assert {v.voter for v in stored} == {"tester"}


def test_a_vote_needs_the_voter_s_name(qtbot, project):
    from ftstudio.gui.context import ProjectContext

    ctx = ProjectContext(project, actor="")
    tab = BlindTab(ctx)
    qtbot.addWidget(tab)
    tab.begin(1, [])
    tab.add_item(_stored(project, 1)[0])
    assert not tab.name_row.isHidden()
    qtbot.keyClick(tab, Qt.Key.Key_1)
    assert ratings.votes(project) == [] and "name" in tab.message.text()
    qtbot.keyClicks(tab.name_edit, "Ana Souza")
    tab.name_edit.editingFinished.emit()
    assert ctx.actor == "Ana Souza" and tab.name_row.isHidden()
    qtbot.keyClick(tab, Qt.Key.Key_2)
    (vote,) = ratings.votes(project)
    assert vote.voter == "Ana Souza" and vote.chosen == vote.shown[1]


def test_results_table_counts_the_votes_cast_with_keys(qtbot, blind, project, context, tmp_path):
    results = ResultsTab(context)
    qtbot.addWidget(results)
    blind.voted.connect(lambda _vote: results.refresh())
    assert "No votes yet" in results.summary.text() and not results.export_button.isEnabled()
    items = _stored(project, 24, MODELS)
    blind.per_prompt.setValue(2)
    blind.begin(len(items), [])
    # two of three models per prompt, as the page does it
    pairs = [(0, 1), (0, 2), (1, 2)]
    for n, item in enumerate(items):
        a, b = pairs[n % 3]
        blind.add_item(BlindItem(item.prompt_index, [item.generation_ids[a], item.generation_ids[b]]))
    # the voter likes r2 best, then r1, then the base; every fourth vote is a tie, every seventh "both bad"
    preference = {MODELS[2]: 3, MODELS[1]: 2, MODELS[0]: 1}
    tally: dict[tuple[str, str], list[int]] = {}
    n = 0
    while blind.current is not None:
        n += 1
        gens = ratings.get_generations(project, blind.displayed_generation_ids())
        models = [gens[g].model for g in blind.displayed_generation_ids()]
        key = tuple(sorted(models))
        t = tally.setdefault(key, [0, 0, 0, 0])  # wins of key[0], ties, wins of key[1], both bad
        if n % 7 == 0:
            qtbot.keyClick(blind, Qt.Key.Key_B)
            t[1] += 1
            t[3] += 1
        elif n % 4 == 0:
            qtbot.keyClick(blind, Qt.Key.Key_T)
            t[1] += 1
        else:
            best = max(models, key=preference.get)
            qtbot.keyClick(blind, Qt.Key.Key_1 + models.index(best))
            t[0 if best == key[0] else 2] += 1
    assert results.summary.text() == "24 votes from 1 voter"
    ranked = [results.ranking_table.item(r, 1).toolTip() for r in range(3)]
    assert ranked == [MODELS[2], MODELS[1], MODELS[0]]
    for (a, b), (wa, ties, wb, bad) in tally.items():
        row = results.pair_row(a, b) or results.pair_row(b, a)
        if results.pair_row(a, b) is None:
            wa, wb = wb, wa
        assert (row["A wins"], row["Tie"], row["B wins"], row["Both bad"]) == (str(wa), str(ties), str(wb), str(bad))
        lo, hi = wilson_interval(wa, wa + wb)
        assert row["A win rate (95% CI)"] == f"{wa / (wa + wb):.0%}  ({lo:.0%}–{hi:.0%})"

    out = tmp_path / "prefs.jsonl"
    assert results.export_button.isEnabled()
    n_rows = results.export_to(out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert n_rows == len(rows) == sum(1 for v in ratings.votes(project) if v.verdict == "pick")
    assert "Wrote" in results.message.text()


def test_adapter_folders_are_checked_before_use(qtbot, context, tmp_path):
    from safetensors.torch import save_file
    import torch

    from ftstudio.gui.compare.page import ComparePage

    page = ComparePage(context)
    qtbot.addWidget(page)
    assert [r.label for r in page.selection.all_refs()] == ["Base (SmolLM2-135M-Instruct)"]
    bad = tmp_path / "not-an-adapter"
    bad.mkdir()
    page.add_adapter_folder(bad)
    qtbot.waitUntil(lambda: "adapter_config.json" in page.selection.model_message.text(), timeout=HANG_MS)
    assert "cannot be compared" in page.selection.model_message.text()
    assert len(page.selection.all_refs()) == 1

    good = tmp_path / "mine" / "adapter"
    good.mkdir(parents=True)
    (good / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                          "target_modules": ["q_proj"]}))
    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(2, 4)},
              str(good / "adapter_model.safetensors"))
    page.add_adapter_folder(good)
    qtbot.waitUntil(lambda: len(page.selection.all_refs()) == 2, timeout=HANG_MS)
    ref = page.selection.all_refs()[1]
    assert ref.label == "Adapter mine" and ref.adapter_dir == good.resolve()
    assert ref.key in [r.key for r in page.selection.checked_refs()]
    assert page.selection.model_message.isHidden()
    assert [page.chat.model_combo.itemText(i) for i in range(page.chat.model_combo.count())] == \
        ["Base (SmolLM2-135M-Instruct)", "Adapter mine"]
    page.shutdown()


def test_prompt_choices(qtbot, context, project, fill):
    from ftstudio.gui.compare.page import ComparePage

    fill(project, 12, eval_every=3)  # 4 held-out, labels billing / technical / account
    page = ComparePage(context)
    qtbot.addWidget(page)
    sel = page.selection
    assert len(sel.prompts()) == 4
    assert all(p.reference and p.example_id for p in sel.prompts())
    assert all(p.messages[-1]["role"] == "user" for p in sel.prompts())
    sel.limit.setValue(2)
    assert len(sel.prompts()) == 2 and len(sel.evaluation_examples()) == 4  # evaluation takes them all
    sel.set_source("matching")
    sel.filter_label.setCurrentIndex(sel.filter_label.findData("billing"))
    sel.limit.setValue(100)
    assert {p.label for p in sel.prompts()} == {"billing"} and len(sel.prompts()) == 4
    sel.filter_text.setText("number 3")
    assert [p.messages[-1]["content"] for p in sel.prompts()] == ["question number 3"]
    sel.set_source("typed")
    sel.typed.setPlainText("First prompt\nstill first\n\n\nSecond prompt\n")
    assert [p.messages for p in sel.prompts()] == [[{"role": "user", "content": "First prompt\nstill first"}],
                                                  [{"role": "user", "content": "Second prompt"}]]
    assert sel.prompt_count.text() == "2 typed prompts"
    assert page.start_evaluation() == "refused" and "examples with answers" in page.evaluate.status.text()
    sel.typed.setPlainText("")
    assert page.start_comparison() == "refused" and "Type a prompt" in page.compare.status.text()
    sel.set_checked([])
    assert page.start_blind_round() == "refused" and "two or more" in page.blind.message.text()
    assert not page.busy and context.compute.holder == ""
    page.shutdown()


def test_word_differences():
    assert word_ops("the cat sat", "the dog sat") == [("same", "the "), ("removed", "cat "), ("added", "dog "),
                                                      ("same", "sat")]
    # a whole answer replaced reads as one removed run and one added run
    assert [k for k, _ in word_ops("I am sorry for that", "Theft\nTheft\nTheft")] == ["removed", "added"]
    assert word_ops("a b", "a b c") == [("same", "a b "), ("added", "c")]
    # spacing alone is no difference
    assert all(kind == "same" for kind, _ in word_ops("a  b\nc", "a b c"))
    html = word_diff_html("pay <now>", "pay later")
    assert "&lt;now&gt;" in html and "line-through" in html
    assert similarity("a b c d", "a b c e") == pytest.approx(0.75)
    assert similarity("", "") == 1.0


def test_reopening_shows_the_answers_saved_for_this_choice(qtbot, context, project, fill):
    from ftstudio.gui.compare.page import ComparePage
    from ftstudio.gui.compare.selection import prompt_from_example

    fill(project, 6, eval_every=3)  # 2 held-out
    held_out = [prompt_from_example(ex) for ex in project.examples() if ex.split == "eval"]
    settings = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 128, "seed": 0}  # the panel's defaults
    base = ratings.base_key("bundled:SmolLM2-135M-Instruct")
    ratings.add_generation(project, base, held_out[1].messages, "saved words", settings,
                           example_id=held_out[1].example_id)
    ratings.add_generation(project, base, held_out[0].messages, "other settings", {**settings, "seed": 5})
    page = ComparePage(context)
    qtbot.addWidget(page)
    tab = page.compare
    assert tab.column_keys() == ["reference", base]
    assert tab.texts == [{}, {base: "saved words"}]
    tab.show_prompt(1)
    assert tab.column(base).text.toPlainText() == "saved words"
    assert tab.column("reference").text.toPlainText() == held_out[1].reference
    assert tab.status.text() == "Showing 1 saved answer"
    assert not page.busy and tab.run_button.isEnabled()
    page.shutdown()


@pytest.mark.parametrize("tab", ["compare", "results", "chat"])
def test_sample_state_for_screenshots(qtbot, context, tab, tmp_path):
    from ftstudio.gui.compare.page import ComparePage
    from ftstudio.gui.compare.sample import stage_sample_state

    (tmp_path / "a").mkdir()
    page = ComparePage(context)
    qtbot.addWidget(page)
    page.resize(1280, 800)
    stage_sample_state(page, tab)
    assert not page.busy and context.compute.holder == ""  # no model ran
    assert len(page.compare.column_keys()) == 1 and all(page.compare.texts)
    if tab == "results":
        assert page.results.ranking_table.rowCount() == 0  # one model: nothing to vote on
    if tab == "chat":
        assert [m["role"] for m in page.chat.messages] == ["user", "assistant"] * 2
    assert not page.grab().isNull()
    page.shutdown()


def test_sample_state_with_sample_runs_fills_every_tab(qtbot, context, project, fill):
    from ftstudio.gui.compare.page import ComparePage
    from ftstudio.gui.compare.sample import SAMPLE_PROMPT_COUNT, SAMPLE_RUNS, stage_sample_state

    fill(project, 30, eval_every=4)  # 8 held-out examples with three labels
    page = ComparePage(context)
    qtbot.addWidget(page)
    page.resize(1280, 800)
    runs = [ratings.run_key(r[0]) for r in SAMPLE_RUNS]
    base = ratings.base_key("bundled:SmolLM2-135M-Instruct")

    stage_sample_state(page, "compare", sample_runs=len(SAMPLE_RUNS))
    assert page.compare.column_keys() == ["reference", base, *reversed(runs)]  # the newest run first
    assert all(len(t) == 3 for t in page.compare.texts)  # every model answered every prompt
    assert page.tabs.currentWidget() is page.compare and page.compare.diff_box.isVisibleTo(page)

    stage_sample_state(page, "blind", sample_runs=len(SAMPLE_RUNS))
    assert len(project.runs()) == len(SAMPLE_RUNS)  # added once
    assert page.blind.current is not None and len(page.blind.displayed_texts()) == 2

    stage_sample_state(page, "results", sample_runs=len(SAMPLE_RUNS))
    assert page.blind.current is None and len(ratings.votes(project)) == min(SAMPLE_PROMPT_COUNT["results"], 8)
    ranking = [page.results.ranking_table.item(r, 1).text() for r in range(3)]
    assert ranking[0] == ratings.model_label(runs[-1]) and ranking[-1] == ratings.model_label(base)
    assert page.results.pair_table.rowCount() == 3

    stage_sample_state(page, "evaluate", sample_runs=len(SAMPLE_RUNS))
    view = page.evaluate.view
    assert view.summary.rowCount() == 3
    assert view.selected_row().key == runs[-1]  # the best run's table below
    table = view.per_label
    labels = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    assert labels == ["account", "billing", "technical"]
    columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert columns[-2:] == ["Examples", "Exact match"]
    assert sum(int(table.item(r, columns.index("Examples")).text()) for r in range(3)) == 8
    assert page.results.ranking_table.item(0, 4).text() != "—"  # exact match beside the votes

    stage_sample_state(page, "chat", sample_runs=len(SAMPLE_RUNS))
    assert page.chat.models == [runs[0]] * 2  # the last model in the list
    assert context.compute.holder == "" and not page.busy  # no model ran
    page.shutdown()
