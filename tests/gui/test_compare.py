"""The Compare page with the real bundled model and two LoRA adapters saved as
runs of the project.

One project, one page and one loaded model serve the whole file (module
scope): the side-by-side test generates the answers, the blind test rates
those same stored answers, so the model runs as little as possible.

- every column's answer equals plain PEFT's greedy answer (a freshly loaded
  base, ``PeftModel.from_pretrained``), and it streamed in as pieces;
- the blind order is random, and the order shown is what the vote records;
- the results table counts exactly the votes cast with key presses;
- evaluations are stored with their runs and match ``ftstudio evaluate``;
- the chat switches models mid-conversation;
- the page waits while training holds the device, and starts when it is free.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil

import pytest
from PySide6.QtCore import Qt

from ftstudio.core import ratings
from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.core.examples import NewExample
from ftstudio.core.project import Project

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one).
HANG_MS = 900_000

pytestmark = pytest.mark.slow

MAX_NEW = 8
COMPARED = 2  # prompts compared side by side and rated blind; evaluation takes all held-out ones
HELD_OUT = [
    ("My card was charged twice for one order.", "billing"),
    ("The app crashes when I open the settings.", "technical"),
    ("Where is the refund for my returned shoes?", "billing"),
]
SYSTEM = "Sort the support ticket into billing or technical. Answer with the category only."
JOB_TIMEOUT = 900_000  # only catches a hang: never a speed check


class PlainPeft:
    """Greedy answers from a freshly loaded base model (+ PeftModel.from_pretrained): nothing of ours."""

    def __init__(self, base_dir) -> None:
        from transformers import AutoTokenizer

        self.base_dir = base_dir
        self.tok = AutoTokenizer.from_pretrained(str(base_dir))
        self._cache: dict = {}
        self._models: dict = {}

    def answer(self, adapter_dir, messages, max_new_tokens: int = MAX_NEW) -> str:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        key = (str(adapter_dir), json.dumps(messages), max_new_tokens)
        if key not in self._cache:
            if str(adapter_dir) not in self._models:  # one fresh base per adapter
                model = AutoModelForCausalLM.from_pretrained(str(self.base_dir), dtype=torch.float32)
                if adapter_dir is not None:
                    model = PeftModel.from_pretrained(model, str(adapter_dir))
                self._models[str(adapter_dir)] = model.eval()
            model = self._models[str(adapter_dir)]
            ids = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
            with torch.no_grad():
                out = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"],
                                     do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=self.tok.pad_token_id)
            self._cache[key] = self.tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        return self._cache[key]


@pytest.fixture(scope="module")
def adapter_dirs(bundled_dir, tmp_path_factory, lora_adapter):
    root = tmp_path_factory.mktemp("adapters")
    targets = ["q_proj", "v_proj"]
    return [lora_adapter(bundled_dir, root / "one", seed=1, target_modules=targets, b_scale=0.3),
            lora_adapter(bundled_dir, root / "two", seed=2, target_modules=targets, b_scale=0.6)]


@pytest.fixture(scope="module")
def plain(bundled_dir):
    return PlainPeft(bundled_dir)


@pytest.fixture(scope="module")
def cproject(tmp_path_factory, adapter_dirs):
    """A project with three held-out tickets and two finished runs whose adapters are the two above."""
    project = Project.create(tmp_path_factory.mktemp("compare") / "tickets.ftstudio")
    project.add_examples([NewExample(messages=[{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                     system=SYSTEM, label=a, split="eval") for q, a in HELD_OUT]
                         + [NewExample(messages=[{"role": "user", "content": "I forgot my password."},
                                                 {"role": "assistant", "content": "technical"}],
                                       system=SYSTEM, label="technical", split="train")], actor="fixture")
    runs = []
    for i, folder in enumerate(adapter_dirs):
        run_id = project.create_run({"model": BUNDLED_MODEL, "method": "lora"}, run_id=f"run-{i + 1}")
        shutil.copytree(folder, project.run_dir(run_id) / "adapter")
        project.update_run(run_id, status="finished", steps=10, eval_loss=1.0 + i)
        runs.append(run_id)
    yield project
    project.close()


@pytest.fixture(scope="module")
def engine():
    from ftstudio.engine.comparison import ComparisonEngine

    e = ComparisonEngine(BUNDLED_MODEL, device="cpu")
    yield e
    e.close()


@pytest.fixture(scope="module")
def page(qapp, cproject, engine):
    from ftstudio.gui.compare.page import ComparePage
    from ftstudio.gui.context import ProjectContext

    ctx = ProjectContext(cproject, actor="Dr. Rivera")
    p = ComparePage(ctx, engine=engine)
    p.resize(1280, 800)
    p.selection.max_new_tokens.setValue(MAX_NEW)
    p.selection.temperature.setValue(0.0)
    p.selection.limit.setValue(COMPARED)
    yield p
    p.shutdown()
    p.deleteLater()
    ctx.deleteLater()


def _keys(page):
    return {ref.label: ref.key for ref in page.selection.all_refs()}


def _adapter_of(page, key):
    return next(r.adapter_dir for r in page.selection.all_refs() if r.key == key)


def test_side_by_side_columns_are_the_models_they_name(qtbot, page, cproject, plain):
    refs = page.selection.all_refs()
    assert refs[0].label == "Base (SmolLM2-135M-Instruct)"
    assert sorted(r.label for r in refs[1:]) == ["Run run-1", "Run run-2"]  # newest run first
    assert all(r.key for r in page.selection.checked_refs())
    assert len(page.selection.prompts()) == COMPARED

    pieces: dict[tuple[int, str], list[str]] = {}
    page.compare.piece_received.connect(lambda i, k, t: pieces.setdefault((i, k), []).append(t))
    with qtbot.waitSignal(page.job_finished, timeout=JOB_TIMEOUT) as finished:
        qtbot.mouseClick(page.compare.run_button, Qt.MouseButton.LeftButton)
        assert page.running_kind() == "compare"
        assert page.context.compute.holder == "Comparing models"
    assert finished.args == ["compare", "done"]
    assert page.context.compute.holder == ""

    tab = page.compare
    assert tab.column_keys()[0] == "reference"
    generator = page.engine.generator
    assert len(generator.adapters) == 2  # each adapter put on the one base model once
    for i, prompt in enumerate(tab.prompts):
        tab.show_prompt(i)
        assert tab.column("reference").text.toPlainText() == prompt.reference
        for ref in refs:
            expected = plain.answer(ref.adapter_dir, prompt.messages)
            assert tab.texts[i][ref.key] == expected, (i, ref.label)
            assert tab.column(ref.key).text.toPlainText() == expected
            # streamed as it was written: more than one piece, adding up to the answer
            assert len(pieces[(i, ref.key)]) > 1
            assert "".join(pieces[(i, ref.key)]).strip() == expected
            stored = ratings.get_generations(cproject, [tab.generation_ids[i][ref.key]])[tab.generation_ids[i][ref.key]]
            assert stored.output == expected and stored.model == ref.key and stored.example_id == prompt.example_id
            assert stored.settings == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": MAX_NEW, "seed": 0}
    # the adapters change what is written, so equality above tells the columns apart
    by_model = {ref.key: tuple(tab.texts[i][ref.key] for i in range(COMPARED)) for ref in refs}
    assert len(set(by_model.values())) == 3

    # word differences between any two columns
    keys = tab.column_keys()
    tab.diff_a.setCurrentIndex(keys.index(refs[0].key))
    tab.diff_b.setCurrentIndex(keys.index(refs[2].key))
    html = tab.diff_view.toHtml()
    assert "line-through" in html or tab.texts[tab.current][refs[0].key] == tab.texts[tab.current][refs[2].key]
    assert "of words in common" in tab.diff_score.text()


def test_blind_votes_with_keys_are_recorded_and_counted(qtbot, page, cproject):
    keys = _keys(page)
    base, one, two = keys["Base (SmolLM2-135M-Instruct)"], keys["Run run-1"], keys["Run run-2"]
    page.blind.rng.seed(7)
    page.blind.per_prompt.setValue(2)
    before = cproject.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert page.start_blind_round() == "started"
    if before:  # after the side-by-side test every answer is stored: nothing to generate
        assert not page.busy
        assert cproject.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == before
    qtbot.waitUntil(lambda: not page.busy, timeout=JOB_TIMEOUT)  # run on its own, the answers come first

    expected: dict[tuple[str, str], list[int]] = {}  # (a, b) sorted -> [a wins, ties, b wins, both bad]
    seen_orders, cast = [], []
    # which model to pick for each pair (a pick in every round but the "both bad" one)
    plan = {frozenset((base, one)): one, frozenset((one, two)): one, frozenset((base, two)): two}
    picked: list[str] = []
    rounds = 0
    while page.blind.current is not None:
        rounds += 1
        shown = page.blind.displayed_generation_ids()
        gens = ratings.get_generations(cproject, shown)
        models = [gens[g].model for g in shown]
        texts = page.blind.displayed_texts()
        assert texts == [gens[g].output or "(empty answer)" for g in shown]  # no names, outputs in shown order
        assert all(ratings.model_label(m) not in page.blind.prompt_text.text() for m in models)
        seen_orders.append(tuple(models))
        a, b = sorted(models)
        tally = expected.setdefault((a, b), [0, 0, 0, 0])
        what = plan[frozenset(models)]
        if rounds == 2:
            qtbot.keyClicks(page.blind.comment, "both wander off")
            qtbot.keyClick(page.blind, Qt.Key.Key_B)
            tally[1] += 1
            tally[3] += 1
            cast.append((shown, "both_bad", None))
        else:
            pos = models.index(what)
            qtbot.keyClick(page.blind, Qt.Key.Key_1 + pos)
            tally[0 if what == a else 2] += 1
            cast.append((shown, "pick", shown[pos]))
            picked.append(what)
    assert rounds == COMPARED

    stored = ratings.votes(cproject)
    assert [(v.shown, v.verdict, v.chosen) for v in stored] == cast  # the order on screen is on record
    assert {v.voter for v in stored} == {"Dr. Rivera"}
    assert [v.comment for v in stored] == [None, "both wander off"]
    # the screen shows the models the round chose (that the order is random is
    # test_blind_order_and_pair_choice_with_three_models)
    wanted = [tuple(w) for w in page._blind_round.wanted]
    assert sorted(map(sorted, seen_orders)) == sorted(map(sorted, wanted))

    # the results table says what the key presses said
    table = page.results
    for (a, b), (wins, ties, losses, both_bad) in expected.items():
        row = table.pair_row(a, b)
        if row is None:
            row = table.pair_row(b, a)
            wins, losses = losses, wins
        assert row is not None
        assert (row["A wins"], row["Tie"], row["B wins"], row["Both bad"]) == \
            (str(wins), str(ties), str(losses), str(both_bad))
    ranked = [table.ranking_table.item(r, 1).toolTip() for r in range(table.ranking_table.rowCount())]
    assert set(ranked) <= {base, one, two} and ranked
    assert len(picked) == 1 and ranked[0] == picked[0]  # the only model ever picked ranks first

    # export as TRL preference data
    out = cproject.path / "prefs.jsonl"
    n = table.export_to(out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert n == len(rows) == sum(1 for v in stored if v.verdict == "pick")
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert row["prompt"][0] == {"role": "system", "content": SYSTEM}
        assert row["chosen"][0]["role"] == "assistant"


def test_held_out_evaluation_is_stored_with_each_run_as_the_command_line_does(qtbot, page, cproject, capsys):
    with qtbot.waitSignal(page.job_finished, timeout=JOB_TIMEOUT) as finished:
        assert page.start_evaluation() == "started"
    assert finished.args == ["evaluate", "done"]
    stored = ratings.latest_evaluations(cproject)
    keys = _keys(page)
    # the base model twice: zero-shot and with the few-shot prompt (the one training example as its shot)
    few_shot = ratings.base_key(BUNDLED_MODEL) + ratings.FEW_SHOT_MARK + "1"
    assert set(stored) == set(keys.values()) | {few_shot}
    assert stored[few_shot].results["shot_ids"] == cproject.prepared_data().train_ids
    for label, key in keys.items():
        ev = stored[key]
        assert ev.run_id == ratings.run_id_of(key)
        r = ev.results
        assert r["examples"] == len(HELD_OUT)
        assert r["loss"] > 0 and r["perplexity"] == pytest.approx(math.exp(r["loss"]))
        assert r["exact_match"] is not None  # short answers from a small set of labels
        assert {k: v["n"] for k, v in r["per_label"].items()} == {"billing": 2, "technical": 1}
        assert sum(map(sum, r["confusion"]["matrix"])) == len(HELD_OUT)
        # label scores: a probability per label for every example, and their calibration
        assert r["labels"] == ["billing", "technical"]
        assert all(abs(sum(p["scores"].values()) - 1) < 1e-6 for p in r["predictions"])
        assert r["calibration"]["examples"] == len(HELD_OUT) and r["calibration"]["ece"] is not None
    view = page.evaluate.view
    assert view.summary.rowCount() == 4
    assert view.headline.text().startswith("The best adapter answers ")
    assert view.per_label.rowCount() == 2  # billing, technical: the confusion and the exact match per label
    assert view.per_label.horizontalHeaderItem(view.per_label.columnCount() - 1).text() == "Exact match"

    # `ftstudio evaluate` measures the same examples and gets the same numbers
    from ftstudio.cli import main

    run_key = keys["Run run-1"]
    assert main(["evaluate", str(cproject.path), "--run", "run-1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["loss"] == pytest.approx(stored[run_key].results["loss"], rel=1e-5)
    assert printed["exact_match"] == stored[run_key].results["exact_match"]
    assert printed["calibration"]["ece"] == pytest.approx(stored[run_key].results["calibration"]["ece"], abs=1e-6)
    assert main(["evaluate", str(cproject.path), "--run", "base", "--few-shot", "5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["few_shot"] == 1 and printed["exact_match"] == stored[few_shot].results["exact_match"]
    assert printed["calibration"]["accuracy"] == stored[few_shot].results["calibration"]["accuracy"]
    assert [e.run_id for e in ratings.evaluations(cproject, "run-1")][:2] == ["run-1", "run-1"]


def test_chat_switches_models_mid_conversation(qtbot, page, plain):
    chat = page.chat
    keys = _keys(page)
    order = [keys["Base (SmolLM2-135M-Instruct)"], keys["Run run-2"]]
    for turn, key in enumerate(order):
        chat.model_combo.setCurrentIndex([r.key for r in page.selection.all_refs()].index(key))
        chat.input.setPlainText("What is the capital of France?" if turn == 0 else "And of Italy?")
        with qtbot.waitSignal(page.job_finished, timeout=JOB_TIMEOUT) as finished:
            qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
        assert finished.args == ["chat", "done"]
    assert chat.models == order
    assert [m["role"] for m in chat.messages] == ["user", "assistant", "user", "assistant"]
    # each answer came from the model it names, given the whole conversation so far
    assert chat.messages[1]["content"] == plain.answer(None, chat.messages[:1])
    assert chat.messages[3]["content"] == plain.answer(_adapter_of(page, order[1]), chat.messages[:3])
    authors = [b.author.text() for b in chat.bubbles]
    assert authors == ["You", "Base (SmolLM2-135M-Instruct)", "You", "Run run-2"]


def test_waits_while_training_holds_the_device(qtbot, page, cproject):
    compute = page.context.compute
    page.selection.set_source("typed")
    page.selection.typed.setPlainText("Say hello.")
    page.selection.set_checked([_keys(page)["Base (SmolLM2-135M-Instruct)"]])
    page.selection.max_new_tokens.setValue(3)
    before = cproject.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    try:
        assert compute.try_acquire("Training")
        # asked while training runs: cancelled while waiting, nothing runs
        with qtbot.waitSignal(page.job_queued):
            assert page.start_comparison() == "queued"
        assert not page.banner.isHidden() and "Training" in page.banner.text.text()
        assert "Waiting for the device" in page.compare.status.text()
        assert not page.compare.run_button.isEnabled() and not page.chat.send_button.isEnabled()
        with qtbot.waitSignal(page.job_finished) as finished:
            qtbot.mouseClick(page.banner.cancel_button, Qt.MouseButton.LeftButton)
        assert finished.args == ["compare", "cancelled"]
        assert page.compare.run_button.isEnabled()

        # asked again: it waits, and starts by itself when training lets go
        assert page.start_comparison() == "queued"
        assert not page.running and compute.holder == "Training"
        assert cproject.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == before
        with qtbot.waitSignal(page.job_started, timeout=HANG_MS):
            compute.release("Training")
        assert compute.holder == "Comparing models"
        assert not compute.try_acquire("Training")  # and training cannot start while it runs
        with qtbot.waitSignal(page.job_finished, timeout=JOB_TIMEOUT) as finished:
            pass
        assert finished.args == ["compare", "done"]
        assert compute.holder == "" and page.banner.isHidden()
        assert cproject.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == before + 1
    finally:
        compute.release("Training")
        page.selection.set_source("heldout")
        page.selection.set_checked([r.key for r in page.selection.all_refs()])
        page.selection.max_new_tokens.setValue(MAX_NEW)


def test_stop_keeps_only_finished_answers(qtbot, page, cproject):
    page.selection.set_source("typed")
    page.selection.typed.setPlainText("Write a long story about a lighthouse keeper.")
    page.selection.set_checked([_keys(page)["Base (SmolLM2-135M-Instruct)"]])
    page.selection.max_new_tokens.setValue(200)
    before = cproject.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    try:
        with qtbot.waitSignal(page.compare.piece_received, timeout=JOB_TIMEOUT):
            assert page.start_comparison() == "started"
        with qtbot.waitSignal(page.job_finished, timeout=HANG_MS) as finished:
            qtbot.mouseClick(page.compare.stop_button, Qt.MouseButton.LeftButton)
        assert finished.args == ["compare", "stopped"]
        assert "Stopped after 0 of 1 answers" in page.compare.status.text()
        assert page.compare.texts[0]  # what was written so far stays on screen
        assert cproject.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == before  # but is not stored
        assert page.context.compute.holder == "" and page.compare.run_button.isEnabled()
    finally:
        page.selection.set_source("heldout")
        page.selection.set_checked([r.key for r in page.selection.all_refs()])
        page.selection.max_new_tokens.setValue(MAX_NEW)


def test_blind_order_and_pair_choice_with_three_models(qtbot, page, cproject):
    """Over many rounds with three models checked: every pair of them is chosen, each pair is
    shown in both orders, and with three answers a prompt every model takes every place.
    (The rng is seeded, so this is not left to chance; an order that never changes, or
    a choice that always takes the first models, fails it.)"""
    keys = sorted(_keys(page).values())
    settings = page.selection.sampling()
    for prompt in page.selection.prompts():  # stored answers: the rounds need no model
        for key in keys:
            if ratings.find_generation(cproject, key, prompt.messages, settings) is None:
                ratings.add_generation(cproject, key, prompt.messages, f"answer of {key}", settings)
    page.blind.rng.seed(11)

    def rounds(per_prompt: int, n: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
        page.blind.per_prompt.setValue(per_prompt)
        chosen, shown = [], []
        for _ in range(n):
            assert page.start_blind_round() == "started" and not page.busy
            chosen += [tuple(w) for w in page._blind_round.wanted]
            while page.blind.current is not None:
                gens = ratings.get_generations(cproject, page.blind.displayed_generation_ids())
                shown.append(tuple(gens[g].model for g in page.blind.displayed_generation_ids()))
                page.blind.skip()
        return chosen, shown

    chosen, shown = rounds(2, 15)
    assert {frozenset(c) for c in chosen} == {frozenset(p) for p in itertools.combinations(keys, 2)}
    assert set(shown) == set(itertools.permutations(keys, 2))  # every pair, in both orders

    chosen, shown = rounds(3, 20)
    assert all(sorted(c) == keys for c in chosen)
    for place in range(3):
        assert {order[place] for order in shown} == set(keys)
    assert len(set(shown)) >= 4  # of the six orders of three
