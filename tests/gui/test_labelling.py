"""The Label page driven from the keyboard, as an annotator would, with the
database checked after each step; a real labelling process killed mid-way;
the model's suggestion flow with the tiny model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from ftstudio.core.examples import NewExample
from ftstudio.core.labelling import Labelling
from ftstudio.core.project import Project
from ftstudio.gui.labelling.page import LabellingPage

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one).
HANG_MS = 900_000

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

TEXTS = [
    "My card was charged twice for one order.",
    "The app crashes when I open settings.",
    "I cannot log in after changing my email.",
    "My parcel has not arrived after two weeks.",
    "Where is the refund for my returned shoes?",
    "The password reset link does not work.",
]
LABELS = ("billing", "technical", "account")


def _unlabelled(project, texts=TEXTS) -> list[int]:
    return project.add_examples([NewExample(messages=[{"role": "user", "content": t}], status="unlabelled",
                                            split="train") for t in texts], actor="import")


def _setup(project, kind="classification") -> Labelling:
    lab = Labelling(project)
    lab.set_kind(kind)
    if kind != "free_text":
        for name in LABELS:
            lab.add_label(name, "lead")
    return lab


@pytest.fixture
def make_page(qtbot, context):
    pages = []

    def make() -> LabellingPage:
        page = LabellingPage(context)
        qtbot.addWidget(page)
        page.resize(1104, 740)
        page.show()
        qtbot.waitExposed(page)
        pages.append(page)
        return page

    yield make
    for p in pages:
        p.shutdown()


def _annotation(project, example_id, annotator):
    row = project.execute("SELECT * FROM annotations WHERE example_id = ? AND annotator = ?",
                          (example_id, annotator)).fetchone()
    return dict(row) if row else None


def _fresh(project) -> sqlite3.Connection:
    """A second connection: sees only what was committed."""
    conn = sqlite3.connect(project.db_path)
    conn.row_factory = sqlite3.Row
    return conn


def test_label_by_keyboard_alone_with_undo_flag_back_and_a_second_annotator(qtbot, context, make_page):
    project = context.project
    ids = _unlabelled(project)
    lab = _setup(project)
    lab.set_overlap(0)  # the second annotator's queue then goes by id alone
    page = make_page()
    mode = page.mode
    assert page.tabs.currentIndex() == 0
    assert mode.current_id == ids[0]
    assert "Example" in mode.meta.text() and TEXTS[0] in mode.text.toPlainText()
    assert [b.name_label.text() for b in mode._buttons.values()] == list(LABELS)
    assert mode.progress_label.text() == "0 of 6, 0 flagged"
    db = _fresh(project)

    with qtbot.waitSignal(page.saved) as saved:
        qtbot.keyClick(page, Qt.Key.Key_1)
    assert saved.args == [ids[0]]
    # Committed before the page moved on: another connection sees it.
    row = db.execute("SELECT label, status, annotator FROM examples WHERE id = ?", (ids[0],)).fetchone()
    assert tuple(row) == ("billing", "labelled", "tester")
    assert mode.current_id == ids[1]

    qtbot.keyClick(page, Qt.Key.Key_2)  # technical
    qtbot.keyClick(page, "f")  # flag ids[2]
    qtbot.keyClick(page, "s")  # skip ids[3]
    qtbot.keyClick(page, Qt.Key.Key_3)  # ids[4]: account
    assert mode.current_id == ids[5]
    assert _annotation(project, ids[2], "tester")["status"] == "flagged"
    assert project.get_example(ids[2]).status == "flagged"
    assert _annotation(project, ids[3], "tester")["status"] == "skipped"
    assert project.get_example(ids[4]).label == "account"
    assert mode.progress_label.text() == "4 of 6, 1 flagged"

    # Ctrl+Z takes the last label back and shows that example again.
    qtbot.keyClick(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert mode.current_id == ids[4]
    assert project.get_example(ids[4]).status == "unlabelled" and _annotation(project, ids[4], "tester") is None
    assert db.execute("SELECT label FROM examples WHERE id = ?", (ids[4],)).fetchone()[0] is None
    qtbot.keyClick(page, Qt.Key.Key_1)  # billing this time
    assert project.get_example(ids[4]).label == "billing"
    assert mode.current_id == ids[5]

    # Back (Backspace) to ids[4], relabel it, and go on to where we were.
    qtbot.keyClick(page, Qt.Key.Key_Backspace)
    assert mode.current_id == ids[4]
    assert mode._buttons["billing"].isChecked()
    qtbot.keyClick(page, Qt.Key.Key_2)
    assert project.get_example(ids[4]).label == "technical"
    assert mode.current_id == ids[5]
    qtbot.keyClick(page, Qt.Key.Key_Return)  # nothing chosen yet: Enter asks for a label
    assert "Choose a label" in mode.message.text() and mode.current_id == ids[5]
    qtbot.keyClick(page, Qt.Key.Key_2)
    # The skipped one comes round again at the end.
    assert mode.current_id == ids[3]
    qtbot.keyClick(page, Qt.Key.Key_3)
    assert mode.current_id is None and mode.stack.currentWidget() is mode.done
    assert "All done" in mode.done.text()
    assert mode.progress_label.text() == "6 of 6, 1 flagged"
    labels = {r["example_id"]: (r["label"], r["status"]) for r in db.execute(
        "SELECT example_id, label, status FROM annotations WHERE annotator = 'tester'")}
    assert labels == {ids[0]: ("billing", "labelled"), ids[1]: ("technical", "labelled"),
                      ids[2]: (None, "flagged"), ids[3]: ("account", "labelled"),
                      ids[4]: ("technical", "labelled"), ids[5]: ("technical", "labelled")}

    # A second annotator, switched to from the keyboard (F2, type the name, Enter).
    qtbot.keyClick(page, Qt.Key.Key_F2)
    assert mode.name_row.isVisible()
    mode.name_edit.clear()
    qtbot.keyClicks(mode.name_edit, "ben")
    qtbot.keyClick(mode.name_edit, Qt.Key.Key_Return)
    assert context.actor == "ben" and not mode.name_row.isVisible()
    assert "ben" in mode.annotator_label.text()
    assert mode.progress_label.text() == "0 of 6, 1 flagged"
    assert mode.current_id == ids[0]  # ben's own queue
    assert "labelled <b>billing</b> by tester" in mode.meta.text()
    qtbot.keyClick(page, Qt.Key.Key_2)  # ben: technical, where tester said billing
    qtbot.keyClick(page, Qt.Key.Key_2)  # ben agrees on ids[1]
    assert _annotation(project, ids[0], "ben")["label"] == "technical"
    assert _annotation(project, ids[0], "tester")["label"] == "billing"
    assert lab.disagreement_ids() == [ids[0]]
    report = lab.agreement()
    assert report.pairs[0].n == 2 and report.pairs[0].agreed == 1

    # The disagreements queue shows who said what; ben decides.
    page.review_disagreements()
    assert mode.queue_name == "disagreements" and mode.current_id == ids[0]
    assert "tester: <b>billing</b>" in mode.meta.text()
    qtbot.keyClick(page, Qt.Key.Key_1)
    assert lab.disagreement_ids() == [] and lab.review(ids[0])["reviewer"] == "ben"
    assert project.get_example(ids[0]).label == "billing"
    assert mode.current_id is None


def test_name_is_asked_once_before_labelling(qtbot, context, make_page):
    context.set_actor("")
    ids = _unlabelled(context.project, TEXTS[:2])
    _setup(context.project)
    page = make_page()
    mode = page.mode
    assert mode.name_row.isVisible() and mode.current_id is None
    qtbot.keyClick(page, Qt.Key.Key_1)  # no name yet: nothing is labelled
    assert context.project.execute("SELECT COUNT(*) FROM annotations").fetchone()[0] == 0
    qtbot.keyClicks(mode.name_edit, "ana")
    qtbot.keyClick(mode.name_edit, Qt.Key.Key_Return)
    assert context.actor == "ana" and mode.current_id == ids[0]
    qtbot.keyClick(page, Qt.Key.Key_3)
    assert _annotation(context.project, ids[0], "ana")["label"] == "account"
    assert context.project.get_example(ids[0]).annotator == "ana"


def test_rename_in_set_up_updates_examples_and_buttons_and_undoes(qtbot, context, make_page):
    project = context.project
    ids = _unlabelled(project, TEXTS[:3])
    _setup(project)
    page = make_page()
    qtbot.keyClick(page, Qt.Key.Key_1)
    qtbot.keyClick(page, Qt.Key.Key_1)
    page.tabs.setCurrentIndex(1)
    setup = page.setup
    assert [setup.table.item(r, 1).text() for r in range(setup.table.rowCount())] == list(LABELS)
    assert setup.table.item(0, 3).text() == "2"
    setup.rename("billing", "payments")
    assert "on 2 examples" in setup.labels_message.text()
    assert [project.get_example(i).label for i in ids[:2]] == ["payments", "payments"]
    assert project.get_example(ids[0]).messages[-1]["content"] == "payments"
    assert "payments" in page.mode._buttons
    page.undo()
    assert [project.get_example(i).label for i in ids[:2]] == ["billing", "billing"]
    assert "billing" in page.mode._buttons and "payments" not in page.mode._buttons
    assert setup.table.item(0, 1).text() == "billing"
    # A key that is taken is refused in words, and nothing changes.
    setup.table.item(0, 2).setText("2")
    assert "already picks 'technical'" in setup.labels_message.text()
    assert Labelling(project).labels()[0].shortcut == "1"
    # Add, move, colour.
    setup.new_label.setText("shipping")
    qtbot.keyClick(setup.new_label, Qt.Key.Key_Return)
    assert [b for b in page.mode._buttons] == [*LABELS, "shipping"]
    setup.table.selectRow(3)
    setup.move_selected(-1)
    assert [d.name for d in Labelling(project).labels()] == ["billing", "technical", "shipping", "account"]
    setup.set_colour("shipping", "#0e7490")
    assert Labelling(project).labels()[2].colour == "#0e7490"


def test_instructions_template_and_preview(qtbot, context, make_page):
    project = context.project
    ids = _unlabelled(project, TEXTS[:2])
    lab = _setup(project)
    page = make_page()
    page.tabs.setCurrentIndex(1)
    setup = page.setup
    setup.instructions.setPlainText("Choose the team that answers the ticket.")
    qtbot.waitUntil(lambda: lab.instructions() == "Choose the team that answers the ticket.", timeout=HANG_MS)
    page.tabs.setCurrentIndex(0)
    assert page.mode.instructions.isVisible()
    assert page.mode.instructions.text() == "Choose the team that answers the ticket."
    qtbot.keyClick(page, Qt.Key.Key_2)  # labelled with the plain template
    page.tabs.setCurrentIndex(1)
    setup.template.setPlainText("Classify this ticket:")
    assert "must contain {input}" in setup.template_problem.text()
    assert not setup.apply_template_button.isEnabled()
    setup.template.setPlainText("Classify this ticket: {input}")
    # The preview shows the example on screen in the mode, then any other one.
    preview = setup.preview.toPlainText()
    assert f"Classify this ticket: {TEXTS[1]}" in preview and "(the label chosen)" in preview
    qtbot.mouseClick(setup.other_example, Qt.MouseButton.LeftButton)
    preview = setup.preview.toPlainText()
    assert f"Classify this ticket: {TEXTS[0]}" in preview and "technical" in preview
    assert setup.apply_template() == 1
    assert project.get_example(ids[0]).messages == [
        {"role": "user", "content": f"Classify this ticket: {TEXTS[0]}"}, {"role": "assistant", "content": "technical"}]
    page.tabs.setCurrentIndex(0)
    qtbot.keyClick(page, Qt.Key.Key_1)
    assert project.get_example(ids[1]).messages[0]["content"] == f"Classify this ticket: {TEXTS[1]}"
    # The mode shows the input without the template around it.
    qtbot.keyClick(page, Qt.Key.Key_Backspace)
    assert page.mode.text.toPlainText().strip() == TEXTS[1]


def test_agreement_tab_shows_kappa_and_sends_to_review(qtbot, context, make_page):
    project = context.project
    ids = _unlabelled(project, [f"ticket {i}" for i in range(4)])
    lab = _setup(project)
    # ana and ben: agree on 0, 1; differ on 2, 3. p_o = 0.5, p_e = (2*1 + 1*2 + 1*1)/16 = 5/16;
    # kappa = (0.5 - 0.3125) / 0.6875 = 0.2727...
    for i, (a, b) in zip(ids, [("billing", "billing"), ("technical", "technical"),
                               ("billing", "account"), ("account", "technical")]):
        lab.accept(i, "ana", label=a)
        lab.accept(i, "ben", label=b)
    page = make_page()
    page.tabs.setCurrentIndex(2)
    panel = page.agreement
    assert "0.27" in panel.headline.text() and "fair" in panel.headline.text()
    assert panel.pairs.item(0, 0).text() == "ana  \u00b7  ben"
    assert panel.pairs.item(0, 2).text() == "50%"
    assert "2</b> disagreements" in panel.disagreements.text()
    qtbot.mouseClick(panel.review_button, Qt.MouseButton.LeftButton)
    assert page.tabs.currentIndex() == 0 and page.mode.queue_name == "disagreements"
    assert page.mode.current_id == ids[2]


def test_free_text_suggestion_flow_with_the_tiny_model(qtbot, context, make_page, tiny_model_dir):
    project = context.project
    ids = _unlabelled(project, ["Say hello in French.", "Say goodbye in French."])
    _setup(project, "free_text")
    page = make_page()
    mode = page.mode
    assert mode.answer_box.isVisible() and not mode._buttons
    mode.set_suggestion_base(str(tiny_model_dir))
    mode.suggester.max_new_tokens = 6
    mode.suggester.temperature = 1.0  # the tiny model's greedy answer is only line breaks; sampled, it has words

    # While training holds the device, a suggestion is refused in words.
    assert context.compute.try_acquire("Training run 42")
    qtbot.keyClick(page, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
    assert "busy (Training run 42)" in mode.message.text() and not mode.suggester.busy
    context.compute.release("Training run 42")

    with qtbot.waitSignal(mode.suggester.finished, timeout=HANG_MS) as done:
        qtbot.keyClick(page, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
        assert context.compute.holder.startswith("Suggesting")
    example_id, suggestion = done.args
    assert example_id == ids[0] and suggestion
    qtbot.waitUntil(lambda: context.compute.holder == "", timeout=HANG_MS)
    assert mode.suggestion_text.text() == f"Suggestion: {suggestion}"
    qtbot.keyClick(page, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    assert mode.answer_edit.toPlainText() == suggestion and mode.answer_edit.hasFocus()
    qtbot.keyClicks(mode.answer_edit, " Bonjour")
    with qtbot.waitSignal(page.saved):
        qtbot.keyClick(mode.answer_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    expected = (suggestion + " Bonjour").strip()
    assert _annotation(project, ids[0], "tester")["answer"] == expected
    assert project.get_example(ids[0]).messages[-1] == {"role": "assistant", "content": expected}
    assert mode.current_id == ids[1] and mode.answer_edit.toPlainText() == ""
    # Typing on the page goes into the answer box (and the keys after it go there by focus).
    mode.setFocus()
    qtbot.keyClick(page, "A")
    assert mode.answer_edit.hasFocus()
    qtbot.keyClicks(mode.answer_edit, "u revoir")
    assert mode.answer_edit.toPlainText() == "Au revoir"
    qtbot.keyClick(mode.answer_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert project.get_example(ids[1]).messages[-1]["content"] == "Au revoir"


def test_the_window_opens_the_label_page_and_its_undo(qtbot, settings, tmp_path):
    from ftstudio.gui.main_window import MainWindow

    project = Project.create(tmp_path / "w.ftstudio")
    ids = _unlabelled(project, TEXTS[:2])
    _setup(project)
    project.close()
    settings.set_annotator("ana")
    w = MainWindow(settings, detect_device=False)
    qtbot.addWidget(w)
    w.show()
    assert w.open_project(tmp_path / "w.ftstudio")
    w.show_page("Label")
    page = w.page("Label")
    assert isinstance(page, LabellingPage) and page.mode.current_id == ids[0]
    qtbot.keyClick(page, Qt.Key.Key_2)
    assert w.context.project.get_example(ids[0]).label == "technical"
    w.undo()  # Edit > Undo reaches the page
    assert w.context.project.get_example(ids[0]).label is None and page.mode.current_id == ids[0]
    # Switching the annotator on the page is remembered for next time.
    page.mode.ask_name()
    page.mode.name_edit.setText("ben")
    qtbot.keyClick(page.mode.name_edit, Qt.Key.Key_Return)
    assert settings.annotator() == "ben" and w.context.actor == "ben"
    w.close()


def test_ctrl_z_takes_back_only_your_own_labels_and_works_after_reopening(qtbot, settings, tmp_path):
    from ftstudio.gui.main_window import MainWindow

    folder = tmp_path / "two.ftstudio"
    project = Project.create(folder)
    ids = _unlabelled(project, TEXTS[:3])
    _setup(project)
    project.close()

    def open_window(annotator: str) -> tuple[MainWindow, LabellingPage]:
        settings.set_annotator(annotator)
        w = MainWindow(settings, detect_device=False)
        qtbot.addWidget(w)
        w.show()
        assert w.open_project(folder)
        w.show_page("Label")
        return w, w.page("Label")

    def label(w, page, key) -> int:
        shown = page.mode.current_id
        qtbot.keyClick(page, key)
        return shown

    def ctrl_z(page) -> None:
        qtbot.keyClick(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)

    w, page = open_window("ana")
    anas = label(w, page, Qt.Key.Key_1)
    w.set_annotator("ben")
    bens = label(w, page, Qt.Key.Key_2)
    assert anas != bens
    labels = lambda: {i: w.context.project.get_example(i).label for i in ids}  # noqa: E731
    assert labels()[anas] == "billing" and labels()[bens] == "technical"
    ctrl_z(page)  # ben's Ctrl+Z: ben's label goes, ana's stays
    assert labels()[bens] is None and labels()[anas] == "billing"
    assert Labelling(w.context.project).annotation(anas, "ana") is not None
    ctrl_z(page)
    assert labels()[anas] == "billing"
    assert "Nothing of yours to undo" in page.mode.message.text()
    # ben labels again; ana takes back ben's label only through the action named for it
    bens = label(w, page, Qt.Key.Key_3)
    w.set_annotator("ana")
    assert w.undo_someone_elses_change(confirm=False) == [bens]
    assert labels()[bens] is None and labels()[anas] == "billing"
    assert "Undid ben's change to 1 example" in w.statusBar().currentMessage()
    w.close()

    # Closed and opened again: ana's Ctrl+Z still takes back ana's label, and redo brings it back.
    w, page = open_window("ana")
    ctrl_z(page)
    assert labels()[anas] is None
    qtbot.keyClick(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert labels()[anas] == "billing"
    w.close()


def test_killing_a_labelling_process_loses_no_confirmed_label(tmp_path):
    """A real process runs the real page offscreen and labels by key presses, printing each
    id after the page confirms it; it is SIGKILLed mid-way, and every confirmed label must be
    in the database."""
    folder = tmp_path / "kill.ftstudio"
    project = Project.create(folder)
    _unlabelled(project, [f"ticket number {i}: something happened" for i in range(3000)])
    _setup(project)
    project.close()

    helper = Path(__file__).with_name("labelling_kill_helper.py")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, str(helper), str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    confirmed: dict[int, str] = {}
    try:
        assert proc.stdout.readline().strip() == "READY"
        while len(confirmed) < 60:
            line = proc.stdout.readline()
            assert line, "the labelling process ended before it was killed"
            assert line.startswith("CONFIRMED "), line
            _, example_id, label = line.split()
            confirmed[int(example_id)] = label
        os.kill(proc.pid, signal.SIGKILL)
        # Lines already written before the kill were confirmed too.
        for line in proc.stdout:
            if line.startswith("CONFIRMED "):
                _, example_id, label = line.split()
                confirmed[int(example_id)] = label
        proc.wait(30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(confirmed) >= 60

    with Project.open(folder) as p:
        assert p.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = ["billing", "technical", "account"]
        for n, (example_id, label) in enumerate(sorted(confirmed.items())):
            assert label == keys[n % 3]
            ex = p.get_example(example_id)
            assert (ex.label, ex.status, ex.annotator) == (label, "labelled", "killtest")
            ann = p.execute("SELECT label, status FROM annotations WHERE example_id = ? AND annotator = 'killtest'",
                            (example_id,)).fetchone()
            assert tuple(ann) == (label, "labelled")
        # At most the one being labelled at the kill is in the database without its confirmation.
        n_saved = p.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
        assert len(confirmed) <= n_saved <= len(confirmed) + 1


def test_sample_state_for_screenshots_on_the_demo(qtbot, tmp_path, qapp):
    """The views ``python -m ftstudio.gui.screenshots`` takes of this page, on a copy of the demo: the
    mode with the demo's five labels on keys 1-5, the set-up, the agreement of three annotators;
    afterwards the sample tickets are gone again."""
    from ftstudio.core.demo import DEMO_LABELS, ensure_demo_project
    from ftstudio.gui.context import ProjectContext
    from ftstudio.gui.labelling.sample import NEW_TICKETS, SAMPLE_TEMPLATE

    project = ensure_demo_project(tmp_path / "demo.ftstudio")
    context = ProjectContext(project)
    page = LabellingPage(context)
    qtbot.addWidget(page)
    page.resize(1104, 740)
    page.show()
    qtbot.waitExposed(page)
    assert page.tabs.currentIndex() == 0  # the demo's label set is there: straight to labelling
    views = page.screenshot_states()
    assert list(views) == ["label", "label-setup", "label-agreement"]

    views["label"]()
    mode = page.mode
    total = 300 + len(NEW_TICKETS)
    assert context.actor == "Dana" and mode.name_row.isHidden()
    assert mode.progress_label.text() == f"48 of {total}, 2 flagged"
    assert mode.current_id is not None and NEW_TICKETS[0] in mode.text.toPlainText()
    assert [b.name_label.text() for b in mode._buttons.values()] == list(DEMO_LABELS)
    assert [b.key_badge.text() for b in mode._buttons.values()] == ["1", "2", "3", "4", "5"]
    assert {mode.labels_grid.getItemPosition(mode.labels_grid.indexOf(b))[0] for b in mode._buttons.values()} == {0}
    assert mode.instructions.isVisible() and "Billing" in mode.instructions.text()

    views["label-setup"]()
    assert page.tabs.currentIndex() == 1
    assert page.setup.apply_template_button.isEnabled()  # typed, not applied
    assert SAMPLE_TEMPLATE.split("\n")[0] in page.setup.preview.toPlainText()
    assert page.labelling.template() == "{input}"

    views["label-agreement"]()
    report = page.agreement.report
    assert page.tabs.currentIndex() == 2
    assert report.annotators == ["Dana", "Lee", "Sam"] and len(report.pairs) == 3
    assert 0.6 < report.kappa < 1 and report.disagreements > 0
    assert page.agreement.pairs.rowCount() == 3
    assert [page.agreement.per_label.item(r, 0).text() for r in range(5)] == list(DEMO_LABELS)

    page.screenshot_cleanup()
    assert project.count_examples() == 300 and context.actor == ""
    assert page.setup.template.toPlainText() == "{input}"
    # Each example kept the label it came with: the last annotator on each gave that one.
    from ftstudio.core.demo import DEMO_DATA
    from ftstudio.paths import resource

    with open(resource("demo", DEMO_DATA), encoding="utf-8") as fh:
        assert [e.label for e in project.examples()] == [json.loads(line)["label"] for line in fh]
    page.shutdown()
    project.close()
