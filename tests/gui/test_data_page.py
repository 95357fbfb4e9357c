"""The Data page driven through its real widgets: editing with undo and redo,
add / duplicate / delete, filters, bulk moves, checks and the template preview.
Every change is checked in the project's database."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QApplication

from ftstudio.core.project import Project
from ftstudio.gui import style
from ftstudio.gui.data.page import NO_LABEL, DataPage
from ftstudio.gui.data.table_model import COL_ANSWER, COL_ID, COL_LABEL
from ftstudio.gui.main_window import MainWindow

pytestmark = pytest.mark.qt_log_ignore(r"does not support (propagateSizeHints|raise)\(\)")

# Waits end on a signal; the limit only catches a page that never gets there (a hang), it
# is not a speed check.
HANG_MS = 60_000
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def window(qtbot, settings, tmp_path, fill):
    """A main window on a project of 30 examples (every 5th held out), showing the Data page."""
    w = MainWindow(settings, detect_device=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.new_project(tmp_path / "data")
    fill(w.context.project, 30, eval_every=5)
    w.context.examples_changed.emit([])
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    yield w
    w.close()


@pytest.fixture
def page(window) -> DataPage:
    return window.data_page()


@pytest.fixture
def db(window):
    """A second connection to the project's database: what is really on disk."""
    other = Project.open(window.context.project.path)
    yield other
    other.close()


def click_row(qtbot, page: DataPage, row: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    page.table.scrollTo(page.model.index(row, 0))
    rect = page.table.visualRect(page.model.index(row, COL_ID))
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def test_table_shows_the_project(page):
    assert page.model.rowCount() == 30
    assert page.counts.text() == "30 examples  \u00b7  24 train  \u00b7  6 held out"
    assert page.table.isVisible()


def test_typing_in_a_turn_is_saved_and_undone_and_redone(qtbot, window, page, db):
    first = page.model.example_id(0)
    click_row(qtbot, page, 0)
    assert page.editor.example_id == first
    answer = page.editor.turn_editors()[1].text
    assert answer.toPlainText() == "billing"
    answer.setFocus()
    answer.moveCursor(answer.textCursor().MoveOperation.End)
    with qtbot.waitSignal(page.editor.saved, timeout=HANG_MS) as saved:
        qtbot.keyClicks(answer, " and refunds")
    assert saved.args == [first]
    assert db.get_example(first).messages[1]["content"] == "billing and refunds"
    assert page.editor.state.text() == "Saved"
    entry = db.journal(first)[0]
    assert entry["action"] == "update" and entry["actor"]

    qtbot.keyClick(answer, Qt.Key.Key_Z, CTRL)  # reaches the window's journal undo
    assert db.get_example(first).messages[1]["content"] == "billing"
    assert answer.toPlainText() == "billing"
    qtbot.keyClick(answer, Qt.Key.Key_Z, CTRL | SHIFT)
    assert db.get_example(first).messages[1]["content"] == "billing and refunds"
    assert answer.toPlainText() == "billing and refunds"
    # The table shows the saved text too.
    assert page.model.data(page.model.index(0, COL_ANSWER)) == "billing and refunds"


def test_undo_right_after_typing_takes_back_what_was_typed(qtbot, window, page, db):
    first = page.model.example_id(0)
    click_row(qtbot, page, 0)
    question = page.editor.turn_editors()[0].text
    question.setFocus()
    qtbot.keyClicks(question, "Urgent: ")
    assert page.editor.has_pending_edit()
    qtbot.keyClick(question, Qt.Key.Key_Z, CTRL)
    assert not page.editor.has_pending_edit()
    assert db.get_example(first).messages[0]["content"] == "question number 0"
    assert question.toPlainText() == "question number 0"
    window.redo()
    assert db.get_example(first).messages[0]["content"] == "Urgent: question number 0"


def test_turns_are_added_removed_and_reordered(qtbot, page, db):
    first = page.model.example_id(0)
    click_row(qtbot, page, 0)
    editor = page.editor
    qtbot.mouseClick(editor.add_turn_button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(editor.turn_editors()[2].text, "And when?")
    editor.save_now()
    messages = db.get_example(first).messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[2]["content"] == "And when?"
    assert editor.problem.isHidden()

    qtbot.mouseClick(editor.turn_editors()[2].up, Qt.MouseButton.LeftButton)
    editor.save_now()
    assert [m["content"] for m in db.get_example(first).messages] == ["question number 0", "And when?", "billing"]
    assert "left out of training" in editor.problem.text() and "roles out of order" in editor.problem.text()

    qtbot.mouseClick(editor.turn_editors()[1].remove, Qt.MouseButton.LeftButton)
    editor.save_now()
    assert [m["content"] for m in db.get_example(first).messages] == ["question number 0", "billing"]
    assert editor.problem.isHidden()

    editor.turn_editors()[1].role.setCurrentText("user")
    editor.save_now()
    assert db.get_example(first).messages[1]["role"] == "user"
    page.undo()
    assert db.get_example(first).messages[1]["role"] == "assistant"
    assert editor.turn_editors()[1].role.currentText() == "assistant"


def test_system_prompt_label_status_and_split_edits_are_saved(qtbot, page, db):
    first = page.model.example_id(0)
    click_row(qtbot, page, 0)
    editor = page.editor
    qtbot.keyClicks(editor.system, "You sort support tickets.")
    editor.label.selectAll()
    qtbot.keyClicks(editor.label, "refund")
    editor.status.setCurrentText("flagged")
    editor.split.setCurrentText("train")
    qtbot.waitUntil(lambda: db.get_example(first).label == "refund", timeout=HANG_MS)
    ex = db.get_example(first)
    assert (ex.system, ex.status, ex.split) == ("You sort support tickets.", "flagged", "train")
    assert page.model.data(page.model.index(0, COL_LABEL)) == "refund"
    qtbot.waitUntil(lambda: not page.summary_pending, timeout=HANG_MS)  # labels are read again off the GUI thread
    assert page.label_filter.findData("refund") >= 0


def test_add_duplicate_delete_and_undo(qtbot, page, db):
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    assert db.count_examples() == 31
    new_id = page.current_id()
    assert page.editor.example_id == new_id
    assert page.model.row_of(new_id) == 30
    qtbot.keyClicks(page.editor.turn_editors()[0].text, "A brand new question")
    page.flush_edits()
    assert db.get_example(new_id).messages[0]["content"] == "A brand new question"

    click_row(qtbot, page, 2)
    click_row(qtbot, page, 3, CTRL)
    chosen = page.selected_ids()
    assert len(chosen) == 2
    qtbot.mouseClick(page.duplicate_button, Qt.MouseButton.LeftButton)
    assert db.count_examples() == 33
    copies = page.selected_ids()
    assert len(copies) == 2 and not set(copies) & set(chosen)
    assert [db.get_example(c).messages for c in copies] == [db.get_example(c).messages for c in chosen]

    click_row(qtbot, page, 0)
    doomed = page.current_id()
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert db.count_examples() == 32
    assert page.model.row_of(doomed) is None
    assert page.current_id() == page.model.example_id(0)  # the next row is selected
    page.undo()
    assert db.count_examples() == 33
    assert page.model.row_of(doomed) == 0
    page.undo()  # the duplicates go
    assert db.count_examples() == 31
    page.redo()
    assert db.count_examples() == 33


def test_filters_by_text_split_status_label_and_problem(qtbot, page, db):
    with qtbot.waitSignal(page.filter_applied, timeout=HANG_MS):  # after the pause in typing
        qtbot.keyClicks(page.search, "number 2")  # 2, 20..29
    assert page.model.rowCount() == 11
    assert page.counts.text().endswith("11 shown")
    with qtbot.waitSignal(page.filter_applied, timeout=HANG_MS):
        page.search.clear()
    assert page.model.rowCount() == 30

    page.split_filter.setCurrentIndex(page.split_filter.findData("eval"))
    assert page.model.rowCount() == 6
    assert {db.get_example(i).split for i in page.model.example_ids()} == {"eval"}
    page.split_filter.setCurrentIndex(0)

    page.label_filter.setCurrentIndex(page.label_filter.findData("technical"))
    assert page.model.rowCount() == 10
    first = page.model.example_id(0)
    db.update_example(first, label=None, status="unlabelled")
    page.context.examples_changed.emit([first])
    assert page.model.rowCount() == 9
    page.label_filter.setCurrentIndex(page.label_filter.findData(NO_LABEL))
    assert page.model.example_ids() == [first]
    page.label_filter.setCurrentIndex(0)
    page.status_filter.setCurrentIndex(page.status_filter.findData("unlabelled"))
    assert page.model.example_ids() == [first]
    page.status_filter.setCurrentIndex(0)

    # Nothing matches: the table gives way to a line that says so.
    with qtbot.waitSignal(page.filter_applied, timeout=HANG_MS):
        qtbot.keyClicks(page.search, "no such words anywhere")
    assert page._table_stack.currentWidget() is page.no_match
    page.clear_filters()
    assert page.model.rowCount() == 30

    # "Has a problem" is offered once checks have run.
    assert not page.problem_filter.isEnabled()
    original = page.model.example_id(3)
    twin = db.duplicate_example(original)
    page.context.examples_changed.emit([twin])
    page.tabs.setCurrentWidget(page.checks)
    with qtbot.waitSignal(page.checks.report_ready, timeout=HANG_MS):
        qtbot.mouseClick(page.checks.run_button, Qt.MouseButton.LeftButton)
    assert page.problem_filter.isEnabled()
    page.problem_filter.setChecked(True)
    assert page.model.example_ids() == [original, twin]
    page.problem_filter.setChecked(False)
    assert page.model.rowCount() == 31


def test_bulk_move_to_eval_and_back(qtbot, page, db):
    click_row(qtbot, page, 1)
    click_row(qtbot, page, 4, SHIFT)  # rows 1..4
    ids = page.selected_ids()
    assert len(ids) == 4
    qtbot.mouseClick(page.to_eval_button, Qt.MouseButton.LeftButton)
    assert {db.get_example(i).split for i in ids} == {"eval"}
    qtbot.waitUntil(lambda: page.counts.text() == "30 examples  \u00b7  20 train  \u00b7  10 held out", timeout=HANG_MS)
    assert page.selected_ids() == ids
    qtbot.mouseClick(page.to_train_button, Qt.MouseButton.LeftButton)
    assert {db.get_example(i).split for i in ids} == {"train"}
    page.undo()
    assert {db.get_example(i).split for i in ids} == {"eval"}
    page.redo()
    # With the table filtered to train, moved rows leave it, and come back on undo.
    page.split_filter.setCurrentIndex(page.split_filter.findData("train"))
    page.select_ids(ids)
    assert page.selected_ids() == ids
    page.move_selected("eval")
    assert all(page.model.row_of(i) is None for i in ids)
    assert page.model.rowCount() == 20
    page.undo()
    assert all(page.model.row_of(i) is not None for i in ids)
    assert page.split_filter.currentData() == "train"


def test_checks_list_a_duplicate_and_a_click_selects_its_rows(qtbot, page, db):
    original = page.model.example_id(7)
    twin = db.duplicate_example(original)
    page.context.examples_changed.emit([twin])
    page.tabs.setCurrentWidget(page.checks)
    with qtbot.waitSignal(page.checks.report_ready, timeout=HANG_MS):
        qtbot.mouseClick(page.checks.run_button, Qt.MouseButton.LeftButton)
    tree = page.checks.findings
    titles = [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]
    assert "Exact duplicates (2)" in titles
    group = tree.topLevelItem(titles.index("Exact duplicates (2)"))
    group.setExpanded(True)
    finding = group.child(0)
    assert str(original) in finding.text(0) and str(twin) in finding.text(0)
    tree.scrollToItem(finding)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualItemRect(finding).center())
    assert sorted(page.selected_ids()) == sorted([original, twin])
    # The problem ids are marked in the table.
    row = page.model.row_of(twin)
    assert page.model.data(page.model.index(row, COL_ID), Qt.ItemDataRole.ForegroundRole).name() == \
        style.BAD.lower()


def test_histogram_counts_tokens_against_the_context_size(qtbot, page, bundled_dir):
    page.preview.set_model_dir(bundled_dir)
    page.tabs.setCurrentWidget(page.checks)
    page.checks.run_checks()
    qtbot.waitUntil(lambda: page.checks.report is not None and bool(page.checks.report.token_lengths)
                    and not page.checks.running, timeout=HANG_MS)
    assert len(page.checks.report.token_lengths) == 30
    assert "longer than the context size of 512" in page.checks.hist_note.text()
    assert page.checks._plot is not None and page.checks._plot.isVisible()
    page.checks.context_size.setValue(16)
    page.checks.context_size.editingFinished.emit()
    qtbot.waitUntil(lambda: not page.checks.running and page.checks.report.max_length == 16, timeout=HANG_MS)
    assert "30 longer than the context size of 16" in page.checks.hist_note.text()


def test_template_preview_highlights_the_tokens_that_carry_loss(qtbot, page, bundled_dir):
    page.preview.set_model_dir(bundled_dir)
    page.select_ids([page.model.example_id(1)])
    page.tabs.setCurrentWidget(page.preview)
    qtbot.waitUntil(lambda: page.preview.rendered is not None, timeout=HANG_MS)
    rendered = page.preview.rendered
    loss_text = "".join(t for t, loss, _special in rendered.pieces if loss)
    other_text = "".join(t for t, loss, _special in rendered.pieces if not loss)
    assert "technical" in loss_text
    assert "question number 1" in other_text and "question number 1" not in loss_text
    assert 0 < rendered.loss_count < rendered.token_count
    assert page.preview.count.text().startswith(f"{rendered.token_count:,} tokens; {rendered.loss_count:,} carry loss")
    html = page.preview.text.toHtml()
    assert style.LOSS_BG in html
    # An edit shows in the preview.
    page.editor.turn_editors()[1].text.setPlainText("technical, urgent")
    page.flush_edits()
    qtbot.waitUntil(lambda: "urgent" in "".join(t for t, loss, _s in page.preview.rendered.pieces if loss),
                    timeout=HANG_MS)


def test_import_through_the_window(qtbot, window, page, db, tickets_jsonl):
    wizard = window.import_data(tickets_jsonl)
    qtbot.waitUntil(lambda: wizard.preview is not None and not wizard.busy)
    with qtbot.waitSignal(wizard.imported, timeout=HANG_MS):
        wizard.accept()
    assert db.count_examples() == 36
    assert page.model.rowCount() == 36
    assert page.label_filter.findData("shipping") >= 0


def test_splitter_layout_is_kept(qtbot, window, settings, tmp_path):
    page = window.data_page()
    page.splitter.setSizes([500, 600])
    sizes = page.splitter.sizes()
    path = window.context.project.path
    window.close_project()
    window.open_project(path)
    assert window.data_page().splitter.sizes() == sizes


def test_selection_keeps_rows_through_model_changes(qtbot, page, db):
    sm = page.table.selectionModel()
    sm.select(page.model.index(5, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
              | QItemSelectionModel.SelectionFlag.Rows)
    keep = page.selected_ids()
    other = page.model.example_id(2)
    db.delete_examples([other])
    page.context.examples_changed.emit([other])
    assert page.selected_ids() == keep


def test_checks_run_again_after_a_change_while_shown(qtbot, page, db):
    checks = page.checks
    page.tabs.setCurrentWidget(checks)
    checks.run_checks()
    qtbot.waitUntil(lambda: checks.report is not None and not checks.running, timeout=HANG_MS)
    assert "No problems found" in checks.summary.text()
    twin = db.duplicate_example(page.model.example_id(0))
    page.context.examples_changed.emit([twin])  # as any edit does
    qtbot.waitUntil(lambda: twin in checks.report.problem_ids() and not checks.running, timeout=HANG_MS)
    # Not on screen: nothing runs until the panel is shown again.
    page.tabs.setCurrentWidget(page.editor)
    db.delete_examples([twin])
    page.context.examples_changed.emit([twin])
    assert not checks.running and not checks._again_timer.isActive()
    assert twin in checks.report.problem_ids()
    page.tabs.setCurrentWidget(checks)
    qtbot.waitUntil(lambda: twin not in checks.report.problem_ids() and not checks.running, timeout=HANG_MS)


def test_find_and_delete_keys(qtbot, window, page, db):
    qtbot.keyClick(window, Qt.Key.Key_F, CTRL)
    assert page.search.hasFocus()
    with qtbot.waitSignal(page.filter_applied, timeout=HANG_MS):
        qtbot.keyClicks(page.search, "number 7")
    assert page.model.rowCount() == 1
    click_row(qtbot, page, 0)
    doomed = page.current_id()
    # Delete while typing in the editor changes text only.
    page.editor.turn_editors()[0].text.setFocus()
    qtbot.keyClick(page.editor.turn_editors()[0].text, Qt.Key.Key_Delete)
    qtbot.keyClick(page.editor.turn_editors()[0].text, Qt.Key.Key_Backspace, CTRL)  # deletes a word there
    assert db.count_examples() == 30
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_Delete)
    assert db.count_examples() == 29
    with pytest.raises(KeyError):
        db.get_example(doomed)
    page.clear_filters()
    click_row(qtbot, page, 0)
    qtbot.keyClick(page.table, Qt.Key.Key_D, CTRL)  # Duplicate
    assert db.count_examples() == 30


@pytest.fixture
def tokenizer_only(tmp_path, bundled_dir):
    """A model folder holding only the bundled model's tokenizer files."""
    import shutil

    folder = tmp_path / "tokenizer-only"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (bundled_dir / name).exists():
            shutil.copy(bundled_dir / name, folder / name)
    return folder


def test_the_preview_follows_the_chosen_model(qtbot, page, bundled_dir, tokenizer_only, tmp_path):
    from ftstudio.gui.data.tokens import shared_tokenizer

    tokens = shared_tokenizer()
    page.select_ids([page.model.example_id(2)])
    page.tabs.setCurrentWidget(page.preview)
    # Two choices in quick succession: the last one wins, even while the first still loads.
    page.preview.set_model_dir(bundled_dir)
    page.preview.set_model_dir(tokenizer_only)
    qtbot.waitUntil(lambda: tokens.model_dir == str(tokenizer_only) and page.preview.rendered is not None
                    and not tokens.loading, timeout=HANG_MS)
    assert page.preview.model.currentText() == "tokenizer-only"
    assert tokens.chosen == str(tokenizer_only)
    # A folder without a tokenizer says so, in words.
    empty = tmp_path / "empty-model"
    empty.mkdir()
    page.preview.set_model_dir(empty)
    qtbot.waitUntil(lambda: bool(tokens.error), timeout=HANG_MS)
    assert page.preview.count.text().startswith("The tokenizer could not be loaded")
    assert tokens.tokenizer is None
    page.preview.set_model_dir(None)  # back to the bundled model
    qtbot.waitUntil(lambda: tokens.tokenizer is not None, timeout=HANG_MS)
    assert not tokens.error


def test_screenshot_views_of_the_data_page(qtbot, page, bundled_dir):
    from ftstudio.gui.data.import_wizard import ImportWizard

    page.preview.set_model_dir(None)
    states = page.screenshot_states()
    assert set(states) == {"template", "checks", "search", "import", "import-columns", "preferences"}
    assert states["template"]() is None and page.preview.rendered is not None
    states["checks"]()
    assert page.checks.report is not None and page.checks.report.token_lengths
    states["search"]()
    assert page.search.text() == "refund"
    wizard = states["import-columns"]()
    assert isinstance(wizard, ImportWizard) and wizard.preview.ok and len(wizard.preview.examples) == 4
    wizard.reject()
    states["preferences"]()
    assert page.current_view() == "preferences" and page.preferences.rows() and page.preferences.findings.text()
    page.screenshot_cleanup()
    assert page.current_view() == "examples"


def test_rows_below_the_screen_are_read_while_idle(qtbot, context, fill):
    from ftstudio.gui.data.table_model import PAGE_ROWS

    fill(context.project, 8 * PAGE_ROWS)
    page = DataPage(context)
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    qtbot.waitExposed(page)
    bar = page.table.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    top = page.table.rowAt(0)
    bottom = page.table.rowAt(page.table.viewport().height() - 1)
    ahead = min(page.model.rowCount() - 1, bottom + PAGE_ROWS)
    assert not page.model.is_cached(ahead)  # nothing painted there yet
    qtbot.waitUntil(lambda: page.model.is_cached(ahead) and page.model.is_cached(max(0, top - PAGE_ROWS)),
                    timeout=HANG_MS)
    reads = page.model.fetches
    page.table.viewport().repaint()
    bar.setValue(bar.value() + bar.pageStep())
    page.table.viewport().repaint()
    assert page.model.fetches == reads  # the next screen was already there
    page.shutdown()


def test_typing_then_choosing_another_example_saves_to_the_first(qtbot, page, db):
    first, second = page.model.example_id(0), page.model.example_id(1)
    click_row(qtbot, page, 0)
    box = page.editor.turn_editors()[0].text
    box.setFocus()
    qtbot.keyClicks(box, "Urgent! ")
    # Key clicks run no event loop, so the save timer cannot have fired: the click below
    # lands while the edit is still pending, however slow the machine.
    assert page.editor.has_pending_edit()
    assert db.get_example(first).messages[0]["content"] == "question number 0"
    click_row(qtbot, page, 1)
    assert page.editor.example_id == second
    assert db.get_example(first).messages[0]["content"] == "Urgent! question number 0"
    assert db.get_example(second).messages[0]["content"] == "question number 1"
    assert page.editor.turn_editors()[0].text.toPlainText() == "question number 1"


def test_checks_and_preview_follow_the_train_pages_choice(qtbot, page, tokenizer_only):
    from ftstudio.gui.data.tokens import TRAIN_CONFIG_SETTING, shared_tokenizer

    # What the Train page keeps in the project when its settings change.
    page.project.set_setting(TRAIN_CONFIG_SETTING, {"model": str(tokenizer_only), "max_length": 256})
    page.tabs.setCurrentWidget(page.checks)
    assert page.checks.context_size.value() == 256
    page.tabs.setCurrentWidget(page.preview)
    assert page.preview.model.currentText() == "Train page: tokenizer-only"
    qtbot.waitUntil(lambda: page.preview.rendered is not None and shared_tokenizer().model_dir == str(tokenizer_only),
                    timeout=HANG_MS)
    # A choice made here wins.
    page.preview.set_model_dir(None)
    page.project.set_setting(TRAIN_CONFIG_SETTING, {"model": str(tokenizer_only), "max_length": 1024})
    page.tabs.setCurrentWidget(page.checks)
    assert page.checks.context_size.value() == 1024
    page.tabs.setCurrentWidget(page.preview)
    assert page.preview.model.currentData() is None
    page.checks.context_size.setValue(300)
    page.checks.context_size.editingFinished.emit()
    page.project.set_setting(TRAIN_CONFIG_SETTING, {"max_length": 2048})
    page.tabs.setCurrentWidget(page.checks)
    assert page.checks.context_size.value() == 300


def test_the_preview_shows_the_end_of_turn_token_as_trained_when_the_template_moves_the_system_prompt(
        qtbot, page, tmp_path):
    """Mistral v0.3 writes the system prompt into the last user turn, so its masks come from
    the answers' offsets: the preview highlights each answer with its </s>, and nothing else."""
    from chat_templates.tokenizers import build_tokenizer

    build_tokenizer("mistral_v0_3").save_pretrained(tmp_path / "mistral")
    example_id = page.project.add_example(
        [{"role": "user", "content": "My card was charged twice"}, {"role": "assistant", "content": "billing"},
         {"role": "user", "content": "And the app crashes"}, {"role": "assistant", "content": "technical"}],
        system="Classify the ticket.", label="technical", actor="fixture")
    page.context.examples_changed.emit([])
    page.preview.set_model_dir(tmp_path / "mistral")
    page.tabs.setCurrentWidget(page.preview)
    page.select_ids([example_id])
    qtbot.waitUntil(lambda: page.preview.rendered is not None
                    and "technical" in "".join(t for t, _l, _s in page.preview.rendered.pieces), timeout=HANG_MS)
    pieces = page.preview.rendered.pieces
    runs, run = [], ""
    for text, loss, _special in pieces + [("", False, False)]:
        if loss:
            run += text
        elif run:
            runs.append(run)
            run = ""
    assert runs == [" billing</s>", " technical</s>"]
    eots = [(loss, special) for text, loss, special in pieces if text == "</s>"]
    assert eots == [(True, True), (True, True)]
    # highlighted, not greyed: the stop token shows as something the model learns to write
    assert f'<span style="background:{style.LOSS_BG}">&lt;/s&gt;</span>' in page.preview.rendered.to_html(
        style.LOSS_BG, style.SPECIAL_FG)


def test_checks_warn_when_the_template_gives_answers_no_end_of_turn_token(qtbot, page, tmp_path):
    from chat_templates.tokenizers import build_tokenizer

    build_tokenizer("no_end_of_turn").save_pretrained(tmp_path / "plain")
    page.preview.set_model_dir(tmp_path / "plain")
    page.tabs.setCurrentWidget(page.checks)
    page.checks.run_checks()
    qtbot.waitUntil(lambda: page.checks.report is not None and bool(page.checks.report.token_lengths)
                    and not page.checks.running, timeout=HANG_MS)
    found = page.checks.report.by_kind().get("no_end_of_turn", [])
    assert len(found) == 1 and len(found[0].example_ids) == 30
    titles = [page.checks.findings.topLevelItem(i).text(0) for i in range(page.checks.findings.topLevelItemCount())]
    assert any(t.startswith("Answers with no end-of-turn token") for t in titles)
    page.checks.grab().save(str(tmp_path / "checks.png"))
