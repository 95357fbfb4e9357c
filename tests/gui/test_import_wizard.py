"""The import wizard on real files: what it detects, the first rows, the
column map for tables, the count and the problems with their lines, and an
import that lands whole or not at all."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from ftstudio.gui.data.import_wizard import NO_COLUMN, ImportWizard

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one).
HANG_MS = 900_000

pytestmark = pytest.mark.qt_log_ignore(r"does not support (propagateSizeHints|raise)\(\)")


@pytest.fixture
def open_wizard(qtbot, context):
    made = []

    def open_(path=None) -> ImportWizard:
        wizard = ImportWizard(context, path)
        qtbot.addWidget(wizard)
        wizard.show()
        made.append(wizard)
        if path is not None:
            wizard.next()
            wait_read(qtbot, wizard)
        return wizard

    yield open_
    for w in made:
        w.shutdown()


def wait_read(qtbot, wizard: ImportWizard) -> None:
    qtbot.waitUntil(lambda: not wizard.busy and not wizard._debounce.isActive()
                    and wizard.preview_page.description.text() != "Reading\u2026", timeout=HANG_MS)


def finish(wizard: ImportWizard):
    return wizard.button(QWizard.WizardButton.FinishButton)


def problems(wizard: ImportWizard) -> list[str]:
    return [wizard.preview_page.problems.item(i).text() for i in range(wizard.preview_page.problems.count())]


def table_cells(wizard: ImportWizard) -> tuple[list[str], list[list[str]]]:
    rows = wizard.preview_page.rows
    header = [rows.horizontalHeaderItem(c).text() for c in range(rows.columnCount())]
    cells = [[rows.item(r, c).text() for c in range(rows.columnCount())] for r in range(rows.rowCount())]
    return header, cells


def test_a_messages_file_is_shown_then_imported(qtbot, open_wizard, context, tickets_jsonl):
    project = context.project
    wizard = open_wizard()
    assert wizard.currentPage() is wizard.file_page
    assert not wizard.file_page.isComplete()
    qtbot.keyClicks(wizard.file_page.path, str(tickets_jsonl))
    assert wizard.file_page.isComplete()
    wizard.file_page.eval_fraction.setValue(50)
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    wait_read(qtbot, wizard)
    page = wizard.preview_page
    assert wizard.currentPage() is page
    assert "messages" in page.description.text().lower() and "6 rows" in page.description.text()
    header, cells = table_cells(wizard)
    assert header == ["messages", "label"]
    assert len(cells) == 6 and "My card was charged twice" in cells[0][0] and cells[0][1] == "billing"
    assert page.mapping.isHidden()
    assert page.count.text() == "6 examples will be imported."
    assert page.problems.isHidden()
    assert finish(wizard).isEnabled()
    assert project.count_examples() == 0  # nothing before the user commits

    with qtbot.waitSignal(wizard.imported, timeout=HANG_MS) as done:
        qtbot.mouseClick(finish(wizard), Qt.MouseButton.LeftButton)
    assert done.args == [6]
    examples = project.examples()
    assert len(examples) == 6
    assert examples[0].messages[0]["content"] == "My card was charged twice for one order."
    assert sorted({e.label for e in examples}) == ["account", "billing", "feedback", "shipping", "technical"]
    assert project.setting("eval_fraction") == 0.5
    assert [e.label for e in examples if e.split == "eval"] == ["billing"]  # half of each label, rounded
    assert not wizard.isVisible()


def test_a_csv_table_needs_its_columns_mapped(qtbot, open_wizard, context, tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_text("ticket,team,priority\n"
                    "\"Charged twice, please help\",billing,high\n"
                    "App crashes on start,technical,low\n"
                    "Cannot log in,account,high\n", encoding="utf-8")
    wizard = open_wizard(path)
    page = wizard.preview_page
    assert page.mapping.isVisible()
    header, cells = table_cells(wizard)
    assert header == ["ticket", "team", "priority"]
    assert cells[0] == ["Charged twice, please help", "billing", "high"]
    assert not finish(wizard).isEnabled()
    assert "problem" in page.count.text()
    assert any("which column is the prompt" in p for p in problems(wizard))
    assert not any("--map" in p for p in problems(wizard))  # the wizard speaks of its own controls
    assert [page.combos["prompt"].itemText(i) for i in range(page.combos["prompt"].count())] == \
        [NO_COLUMN, "ticket", "team", "priority"]

    page.combos["prompt"].setCurrentText("ticket")
    page.combos["response"].setCurrentText("team")
    wait_read(qtbot, wizard)
    assert page.count.text() == "3 examples will be imported."
    assert page.combos["prompt"].currentText() == "ticket"
    assert finish(wizard).isEnabled()
    with qtbot.waitSignal(wizard.imported, timeout=HANG_MS):
        finish(wizard).click()
    examples = context.project.examples()
    assert [e.messages for e in examples][0] == [{"role": "user", "content": "Charged twice, please help"},
                                                  {"role": "assistant", "content": "billing"}]


def test_a_parquet_table_maps_a_label_column(qtbot, open_wizard, context, tmp_path):
    path = tmp_path / "reviews.parquet"
    pq.write_table(pa.table({"body": ["Great phone", "Broke in a week", "Fine"],
                             "reply": ["Thanks!", "Sorry to hear that", "Thanks"],
                             "mood": ["good", "bad", "neutral"]}), path)
    wizard = open_wizard(path)
    page = wizard.preview_page
    assert "parquet" in page.description.text().lower()
    page.combos["prompt"].setCurrentText("body")
    page.combos["response"].setCurrentText("reply")
    page.combos["label"].setCurrentText("mood")
    wait_read(qtbot, wizard)
    assert page.count.text() == "3 examples will be imported."
    with qtbot.waitSignal(wizard.imported, timeout=HANG_MS):
        finish(wizard).click()
    assert [e.label for e in context.project.examples()] == ["good", "bad", "neutral"]


def test_problems_are_listed_with_their_lines_and_nothing_comes_in(qtbot, open_wizard, context, tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join([good, good, "{not json", good,
                               json.dumps({"messages": [{"role": "robot", "content": "beep"}]})]) + "\n",
                    encoding="utf-8")
    wizard = open_wizard(path)
    listed = problems(wizard)
    assert len(listed) == 2
    assert listed[0].startswith(f"{path.name}, line 3: this line is not valid JSON")
    assert listed[1].startswith(f"{path.name}, line 5: ") and "robot" in listed[1]
    assert "2 problems to fix first" in wizard.preview_page.count.text()
    assert not finish(wizard).isEnabled()
    wizard.accept()  # even forced, nothing is imported
    assert context.project.count_examples() == 0


def test_a_file_that_changes_before_import_imports_nothing(qtbot, open_wizard, context, tickets_jsonl):
    wizard = open_wizard(tickets_jsonl)
    assert finish(wizard).isEnabled()
    with open(tickets_jsonl, "a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    finish(wizard).click()
    qtbot.waitUntil(lambda: not wizard.busy, timeout=HANG_MS)
    assert wizard.preview_page.count.text() == "Nothing was imported."
    assert any("line 7" in p for p in problems(wizard))
    assert wizard.isVisible()
    assert context.project.count_examples() == 0


def test_an_unknown_file_says_what_to_do(qtbot, open_wizard, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n", encoding="utf-8")
    wizard = open_wizard(path)
    assert not finish(wizard).isEnabled()
    text = " ".join(problems(wizard))
    assert "cannot tell the format" in text and ".jsonl" in text
    assert "--format" not in text
    # Choosing the format on the first page reads it again.
    wizard.back()
    wizard.file_page.format.setCurrentIndex(wizard.file_page.format.findData("csv"))
    wizard.next()
    wait_read(qtbot, wizard)
    assert wizard.preview_page.mapping.isVisible()


def test_a_system_prompt_is_given_to_examples_without_one(qtbot, open_wizard, context, tickets_jsonl):
    wizard = open_wizard()
    wizard.file_page.path.setText(str(tickets_jsonl))
    wizard.file_page.system.setText("Sort the ticket into a team.")
    wizard.next()
    wait_read(qtbot, wizard)
    assert "system prompt set on 6 examples" in wizard.preview_page.description.text()
    with qtbot.waitSignal(wizard.imported, timeout=HANG_MS):
        finish(wizard).click()
    assert {e.system for e in context.project.examples()} == {"Sort the ticket into a team."}


def test_cancel_imports_nothing(qtbot, open_wizard, context, tickets_jsonl):
    wizard = open_wizard(tickets_jsonl)
    wizard.button(QWizard.WizardButton.CancelButton).click()
    assert not wizard.isVisible()
    assert context.project.count_examples() == 0


def test_a_big_file_shows_a_progress_bar_while_it_is_read_and_imported(qtbot, open_wizard, context, tmp_path):
    row = {"messages": [{"role": "user", "content": "Where is my parcel? " * 8},
                        {"role": "assistant", "content": "shipping"}]}
    path = tmp_path / "big.jsonl"
    path.write_text((json.dumps(row) + "\n") * 40_000, encoding="utf-8")  # about 9 MB
    wizard = ImportWizard(context, path)
    qtbot.addWidget(wizard)
    wizard.show()
    seen: list[int] = []
    wizard.preview_page.progress.valueChanged.connect(seen.append)
    wizard.next()
    wait_read(qtbot, wizard)
    assert seen and max(seen) == 1000 and not wizard.preview_page.progress.isVisible()
    assert wizard.preview_page.count.text() == "40,000 examples will be imported."
    assert len(wizard.preview.examples) <= 20  # the preview holds the first ones only
    seen.clear()
    with qtbot.waitSignal(wizard.imported, timeout=120_000) as done:
        finish(wizard).click()
    assert done.args == [40_000] and context.project.count_examples() == 40_000
    assert seen and max(seen) == 1000 and 500 in range(min(seen), max(seen) + 1)
    wizard.shutdown()
