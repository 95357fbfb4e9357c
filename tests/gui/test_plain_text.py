"""Everything that comes from data is shown as plain text. A project is filled with
markup in every field a user (or an imported file) can write: project name, examples,
system prompts, labels, annotators, comments, instructions, run messages, model names,
generated answers and votes. Then every page is opened and every widget checked: a
label, tooltip or text view that drew the markup as HTML would show the word without
its tags."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QLabel, QTabWidget, QTextEdit, QWidget

from ftstudio.core import ratings
from ftstudio.core.labelling import Labelling
from ftstudio.core.project import Project
from ftstudio.gui.main_window import PAGES, MainWindow, Placeholder

pytestmark = pytest.mark.qt_log_ignore(r"does not support (propagateSizeHints|raise)\(\)")

WORD = "zqxj"
MARKUP = f"<b>{WORD}</b>"


def marked(what: str) -> str:
    return f"{MARKUP} {what} <img src='x'>"


def _fill(project: Project) -> None:
    project.set_setting("name", marked("project"))
    labelling = Labelling(project)
    labelling.set_kind("classification")
    labelling.add_label(marked("label"), marked("annotator"), shortcut="1")
    labelling.set_instructions(marked("instructions"))
    ids = [
        project.add_example(
            [
                {"role": "user", "content": marked(f"question {i}")},
                {"role": "assistant", "content": marked(f"answer {i}")},
            ],
            system=marked("system"),
            label=marked("label"),
            split="eval" if i % 2 else "train",
            actor=marked("annotator"),
        )
        for i in range(4)
    ]
    labelling.accept(ids[0], marked("annotator"), label=marked("label"))
    run_id = project.create_run({"model": marked("model"), "method": "lora"})
    project.finish_run(run_id, status="failed", steps=3, message=marked("run message"))
    g1 = ratings.add_generation(
        project, "base", [{"role": "user", "content": marked("prompt")}], marked("output one"), {}
    )
    g2 = ratings.add_generation(
        project,
        ratings.run_key(run_id),
        [{"role": "user", "content": marked("prompt")}],
        marked("output two"),
        {},
    )
    ratings.add_vote(project, [g1, g2], "pick", marked("voter"), chosen=g1, comment=marked("comment"))


def _columns(model) -> int:
    try:
        return model.columnCount(QModelIndex())
    except TypeError:  # list models hide columnCount: one column
        return 1


def _drawn_as_html(widget: QWidget) -> list[str]:
    """Where ``widget`` shows our markup interpreted as HTML."""
    found = []
    name = f"{type(widget).__name__}({widget.objectName() or '?'})"
    tip = widget.toolTip()
    if WORD in tip and GuiQt.mightBeRichText(tip) and MARKUP in tip:
        found.append(f"{name} tooltip: {tip[:80]!r}")
    if isinstance(widget, QLabel):
        text = widget.text()
        rich = widget.textFormat() == Qt.TextFormat.RichText or (
            widget.textFormat() == Qt.TextFormat.AutoText and GuiQt.mightBeRichText(text)
        )
        if rich and MARKUP in text:
            found.append(f"{name} text: {text[:80]!r}")
    if isinstance(widget, QTextEdit):
        shown = widget.toPlainText()
        if WORD in shown and MARKUP not in shown:
            found.append(f"{name} document: {shown[:80]!r}")
    if isinstance(widget, QAbstractItemView) and widget.model() is not None:
        model = widget.model()
        for row in range(min(model.rowCount(), 30)):
            for col in range(_columns(model)):
                tip = model.data(model.index(row, col), Qt.ItemDataRole.ToolTipRole)
                if isinstance(tip, str) and MARKUP in tip and GuiQt.mightBeRichText(tip):
                    found.append(f"{name} row {row} column {col} tooltip: {tip[:80]!r}")
    return found


def test_markup_in_every_user_field_is_shown_literally(qtbot, settings, tmp_path):
    project = Project.create(tmp_path / "p.ftstudio")
    _fill(project)
    project.close()
    window = MainWindow(settings, detect_device=False)
    qtbot.addWidget(window)
    window.show()
    assert window.open_project(tmp_path / "p.ftstudio")
    window.set_annotator(marked("annotator"))
    problems: list[str] = []
    for page_name in PAGES:
        window.show_page(page_name)
        page = window.page(page_name)
        assert not isinstance(page, Placeholder), f"the {page_name} page could not be built"
        # Select the first row of every list so detail views fill in.
        for view in page.findChildren(QAbstractItemView):
            if view.model() is not None and view.model().rowCount() and view.isVisibleTo(window):
                view.setCurrentIndex(view.model().index(0, 0))
                if view.selectionModel() is not None:
                    view.selectRow(0) if hasattr(view, "selectRow") else None
        QApplication.processEvents()
        tabs = [(t, i) for t in page.findChildren(QTabWidget) for i in range(t.count())] or [(None, 0)]
        for tab_widget, index in tabs:  # every tab of the page in turn (some fill in only when shown)
            if tab_widget is not None:
                tab_widget.setCurrentIndex(index)
                QApplication.processEvents()
            for widget in [window, *window.findChildren(QWidget)]:
                problems += [f"{page_name}: {p}" for p in _drawn_as_html(widget)]
    window.close()
    assert not problems, "user text drawn as HTML:\n" + "\n".join(sorted(set(problems)))
    # The check itself can fail: a QLabel left to guess draws the markup.
    probe = QLabel(marked("probe"))
    assert _drawn_as_html(probe)
