"""The Data page: the examples table beside the editor for one example, with
import, filters, bulk moves, checks and the chat-template preview."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QItemSelection, QItemSelectionModel, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QSplitter,
    QStackedWidget, QTableView, QTabWidget, QVBoxLayout, QWidget,
)

from ftstudio.core.examples import SPLITS, STATUSES, NewExample
from ftstudio.core.project import ExampleFilter, Project, UndoConflict
from ftstudio.gui.page_header import page_layout
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.data.checks_panel import ChecksPanel
from ftstudio.gui.data.conversation_editor import ConversationEditor
from ftstudio.gui.data.import_wizard import ImportWizard
from ftstudio.gui.data.preferences_view import PreferencesView
from ftstudio.gui.data.table_model import ExamplesTableModel
from ftstudio.gui.data.template_preview import TemplatePreview
from ftstudio.gui.workers import Job, Outcome
from ftstudio.gui.pages import Page
from ftstudio.gui.guide import GUIDE_LINE, connect_guide_link

ROW_HEIGHT = 26
COLUMN_WIDTHS = (48, 50, 80, 90, 280, 130, 220, 48, 130)  # in the order of table_model.COLUMNS
ALL = "__all__"
NO_LABEL = "__none__"


SUMMARY_DELAY_MS = 150


def _split_counts(project: Project) -> dict[str, int]:
    return project.split_counts()


def _summarise(project_path: str, report, interrupted) -> tuple[dict[str, int], list[str]]:
    """Worker thread, own connection: examples per split, and the labels in use."""
    project = Project.open(project_path)
    try:
        return _split_counts(project), project.labels()
    finally:
        project.close()


class DataPage(Page):
    """``DataPage(context, parent=None)``. Other parts of the app call ``undo``/``redo``,
    ``add_example``, ``duplicate_selected``, ``delete_selected``, ``open_import_wizard``,
    ``select_ids``, ``can_close`` and ``shutdown``."""

    wizard_opened = Signal(object)  # the ImportWizard, for tests and the window
    filter_applied = Signal()  # the table shows what the filters (after the typing pause) select

    def __init__(self, context: ProjectContext, parent=None) -> None:
        super().__init__(parent)
        self.context = context
        self.project = context.project
        self._problem_ids: frozenset[int] = frozenset()
        self._wizard: ImportWizard | None = None

        # Row 1: title, counts, actions.
        layout, head, self.counts = page_layout(self, "Data")
        self.import_button = self._button("Import\u2026", "Import a data file (Ctrl+I)", self.open_import_wizard)
        self.import_button.setProperty("primary", True)
        self.add_button = self._button("Add", "Write a new example (Ctrl+Shift+N)", self.add_example)
        self.duplicate_button = self._button("Duplicate", "Copy the selected examples (Ctrl+D)", self.duplicate_selected)
        self.delete_button = self._button("Delete", "Delete the selected examples (Delete in the table; Ctrl+Z brings them back)",
                                          self.delete_selected)
        self.to_train_button = self._button("Move to train", "Train on the selected examples",
                                            lambda: self.move_selected("train"))
        self.to_eval_button = self._button("Move to eval", "Hold the selected examples out for evaluation",
                                           lambda: self.move_selected("eval"))
        # Examples or preference pairs: the page shows one of the two.
        self.examples_view_button = QPushButton("Examples")
        self.preferences_view_button = QPushButton("Preferences")
        self.preferences_view_button.setToolTip("Pairs of a better and a worse answer (from blind votes or a file), "
                                                "for preference tuning (DPO/KTO) on the Train page")
        for i, b in enumerate((self.examples_view_button, self.preferences_view_button)):
            b.setCheckable(True)
            b.setAutoExclusive(True)
            b.setMinimumWidth(b.fontMetrics().horizontalAdvance(b.text()) + 44)  # room for the bold checked text
            radius = "border-top-left-radius: 5px; border-bottom-left-radius: 5px;" if i == 0 else \
                "border-top-right-radius: 5px; border-bottom-right-radius: 5px; margin-left: -1px;"
            b.setStyleSheet("QPushButton { border-radius: 0px; " + radius + " }"
                            "QPushButton:checked { background: #dbe8f6; color: #2f6fb2; border-color: #2f6fb2; "
                            "font-weight: 600; }")
            head.addWidget(b)
        self.examples_view_button.setChecked(True)
        head.addSpacing(10)
        self._example_actions = [self.import_button, self.add_button, self.duplicate_button, self.delete_button,
                                 self.to_train_button, self.to_eval_button]
        for b in (self.import_button, self.add_button, self.duplicate_button, self.delete_button):
            head.addWidget(b)
        head.addSpacing(10)
        head.addWidget(self.to_train_button)
        head.addWidget(self.to_eval_button)
        examples_view = QWidget()
        examples_layout = QVBoxLayout(examples_view)
        examples_layout.setContentsMargins(0, 0, 0, 0)

        # Row 2: filters.
        filters = QHBoxLayout()
        filters.setSpacing(6)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search text, system prompts and labels (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(260)
        filters.addWidget(self.search, 2)
        self.split_filter = self._combo([("All splits", ALL), *((s, s) for s in SPLITS)])
        self.status_filter = self._combo([("Any status", ALL), *((s, s) for s in STATUSES)])
        self.label_filter = self._combo([("Any label", ALL), ("(no label)", NO_LABEL)])
        for combo in (self.split_filter, self.status_filter, self.label_filter):
            combo.setMinimumWidth(120)
            filters.addWidget(combo)
        self.problem_filter = QCheckBox("Has a problem")
        self.problem_filter.setToolTip("Only examples the last check found a problem with (run the checks first)")
        self.problem_filter.setEnabled(False)
        filters.addWidget(self.problem_filter)
        filters.addStretch(1)
        examples_layout.addLayout(filters)

        # The table (or a hint while there is nothing) beside the tabs.
        self.model = ExamplesTableModel(self.project, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vh = self.table.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(ROW_HEIGHT)
        hh = self.table.horizontalHeader()
        hh.setHighlightSections(False)
        for column, width in enumerate(COLUMN_WIDTHS):
            hh.resizeSection(column, width)
        hh.setStretchLastSection(True)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        # Delete removes the selected examples only while the table has the focus (never while typing).
        delete_key = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table,
                               context=Qt.ShortcutContext.WidgetShortcut)
        delete_key.activated.connect(self.delete_selected)
        # After a scroll, read the rows around the screen while the GUI is idle.
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(0)
        self._prefetch_timer.timeout.connect(self._prefetch)
        # (Not straight to start(): valueChanged's int would become the timer's interval.)
        self.table.verticalScrollBar().valueChanged.connect(self._schedule_prefetch)

        self.empty = QLabel("<p style='font-size:13pt'>No examples yet</p>"
                            "<p>Import a file with <b>Import\u2026</b> (Ctrl+I) or by dropping it on the window,<br>"
                            "or write one with <b>Add</b>.</p>"
                            f"<p>{GUIDE_LINE}</p>")
        connect_guide_link(self.empty)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("Hint")
        self.no_match = QLabel("No example matches these filters.")
        self.no_match.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_match.setObjectName("Hint")
        self._table_stack = QStackedWidget()
        for w in (self.table, self.empty, self.no_match):
            self._table_stack.addWidget(w)

        self.editor = ConversationEditor(context)
        self.preview = TemplatePreview(context)
        self.checks = ChecksPanel(context)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.editor, "Example")
        self.tabs.addTab(self.preview, "Template")
        self.tabs.addTab(self.checks, "Checks")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self._table_stack)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([680, 400])
        self.splitter.setChildrenCollapsible(False)
        examples_layout.addWidget(self.splitter, 1)
        self.preferences = PreferencesView(context)
        self.views = QStackedWidget()
        self._examples_view = examples_view
        self.views.addWidget(examples_view)
        self.views.addWidget(self.preferences)
        layout.addWidget(self.views, 1)
        self.examples_view_button.toggled.connect(self._view_toggled)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(250)
        self._search_timer.timeout.connect(self.apply_filter)
        self.search.textChanged.connect(self._search_typed)
        for combo in (self.split_filter, self.status_filter, self.label_filter):
            combo.currentIndexChanged.connect(self.apply_filter)
        self.problem_filter.toggled.connect(self.apply_filter)
        self.checks.select_examples.connect(self.select_ids)
        self.checks.report_ready.connect(self._report_ready)
        context.examples_changed.connect(self._examples_changed)

        self._labels: list[str] = []
        self._split_counts: dict[str, int] = {}
        self._summary_job: Job | None = None
        self._summary_again = False
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(SUMMARY_DELAY_MS)
        self._summary_timer.timeout.connect(self._read_summary)
        self._refresh_labels()
        self._refresh_counts(_split_counts(self.project))
        self._show_table_or_hint()
        if self.model.rowCount():  # open on an example, not on an empty editor
            self.select_ids([self.model.example_id(0)])
        self._update_actions()

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        b = QPushButton(text)
        b.setToolTip(tip)
        b.clicked.connect(lambda _checked=False: slot())
        return b

    @staticmethod
    def _combo(items: list[tuple[str, str]]) -> QComboBox:
        combo = QComboBox()
        for text, data in items:
            combo.addItem(text, data)
        return combo

    @Slot(str)
    def _search_typed(self, _text: str) -> None:
        self._search_timer.start()

    @Slot(int)
    def _schedule_prefetch(self, _value: int) -> None:
        self._prefetch_timer.start(0)

    @Slot()
    def _prefetch(self) -> None:
        top = self.table.rowAt(0)
        if top < 0:
            return
        bottom = self.table.rowAt(self.table.viewport().height() - 1)
        # One page (64 rows) per idle turn, so a read never takes a frame's time.
        if self.model.prefetch(top, bottom if bottom >= 0 else self.model.rowCount() - 1, max_pages=1):
            self._prefetch_timer.start(0)  # more to read: another idle moment

    # -- selection ------------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.example_id(r) for r in rows]

    def current_id(self) -> int | None:
        index = self.table.currentIndex()
        if index.isValid() and self.table.selectionModel().isRowSelected(index.row()):
            return self.model.example_id(index.row())
        ids = self.selected_ids()
        return ids[0] if ids else None

    @Slot(list)
    def select_ids(self, ids: list[int]) -> None:
        """Select these examples (those that pass the filter) and show the first."""
        rows = [r for r in (self.model.row_of(i) for i in ids) if r is not None]
        if not rows and ids and (self.model.filter != ExampleFilter()):
            self.clear_filters()
            rows = [r for r in (self.model.row_of(i) for i in ids) if r is not None]
        selection = QItemSelection()
        last = self.model.columnCount() - 1
        for r in rows:
            selection.select(self.model.index(r, 0), self.model.index(r, last))
        sm = self.table.selectionModel()
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        if rows:
            sm.setCurrentIndex(self.model.index(rows[0], 0), QItemSelectionModel.SelectionFlag.NoUpdate)
            sm.select(selection, flags)
            self.table.scrollTo(self.model.index(rows[0], 0), QAbstractItemView.ScrollHint.PositionAtCenter)
        else:
            sm.clearSelection()

    @Slot()
    def _selection_changed(self, *_args) -> None:
        example_id = self.current_id()
        self.editor.set_example(example_id)
        self.preview.set_example(example_id)
        self._update_actions()

    def _update_actions(self) -> None:
        has = bool(self.table.selectionModel().hasSelection())
        for b in (self.duplicate_button, self.delete_button, self.to_train_button, self.to_eval_button):
            b.setEnabled(has)

    # -- filters --------------------------------------------------------------------

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def current_filter(self) -> ExampleFilter:
        label = self.label_filter.currentData()
        return ExampleFilter(
            text=self.search.text().strip(),
            split=None if self.split_filter.currentData() == ALL else self.split_filter.currentData(),
            status=None if self.status_filter.currentData() == ALL else self.status_filter.currentData(),
            label=None if label == ALL else ("" if label == NO_LABEL else label),
            ids=self._problem_ids if self.problem_filter.isChecked() else None,
        )

    @Slot()
    def apply_filter(self) -> None:
        self._search_timer.stop()
        keep = self.selected_ids()
        self.model.set_filter(self.current_filter())
        if keep:
            self.select_ids([i for i in keep if self.model.row_of(i) is not None])
        self._show_table_or_hint()
        self._refresh_counts()
        self._selection_changed()
        self.filter_applied.emit()

    def clear_filters(self) -> None:
        for w in (self.search, self.split_filter, self.status_filter, self.label_filter, self.problem_filter):
            w.blockSignals(True)
        self.search.clear()
        for combo in (self.split_filter, self.status_filter, self.label_filter):
            combo.setCurrentIndex(0)
        self.problem_filter.setChecked(False)
        for w in (self.search, self.split_filter, self.status_filter, self.label_filter, self.problem_filter):
            w.blockSignals(False)
        self.model.set_filter(ExampleFilter())
        self._show_table_or_hint()
        self._refresh_counts()

    def _show_table_or_hint(self) -> None:
        if self.model.rowCount():
            self._table_stack.setCurrentWidget(self.table)
        elif self.model.filter == ExampleFilter() and self.project.count_examples() == 0:
            self._table_stack.setCurrentWidget(self.empty)
        else:
            self._table_stack.setCurrentWidget(self.no_match)

    def _refresh_labels(self, labels: list[str] | None = None) -> None:
        labels = self.project.labels() if labels is None else labels
        self._labels = list(labels)
        current = self.label_filter.currentData()
        self.label_filter.blockSignals(True)
        while self.label_filter.count() > 2:
            self.label_filter.removeItem(2)
        for label in labels:
            self.label_filter.addItem(label, label)
        i = self.label_filter.findData(current)
        self.label_filter.setCurrentIndex(max(0, i))
        self.label_filter.blockSignals(False)
        self.editor.set_label_choices(labels)

    def _refresh_counts(self, counts: dict[str, int] | None = None) -> None:
        """The counts line: totals per split (kept from the last summary) and how many the filter shows."""
        if counts is not None:
            self._split_counts = dict(counts)
        counts = self._split_counts
        total = sum(counts.values())
        text = f"{total:,} example{'s' if total != 1 else ''}"
        if total:
            text += f"  \u00b7  {counts.get('train', 0):,} train  \u00b7  {counts.get('eval', 0):,} held out"
        shown = self.model.rowCount()
        if shown != total:
            text += f"  \u00b7  {shown:,} shown"
        self.counts.setText(text)

    # Totals and the label list read the whole table (tens of milliseconds at 100,000
    # examples): after a change they are read again on a worker thread, a moment later.

    @property
    def summary_pending(self) -> bool:
        """True while the counts and labels are being read again after a change."""
        return self._summary_timer.isActive() or self._summary_job is not None

    @Slot()
    def _read_summary(self) -> None:
        if self._summary_job is not None:
            self._summary_again = True  # read again, a moment after this read ends
            return
        self._summary_job = Job(_summarise, str(self.project.path), parent=self)
        self._summary_job.ended.connect(self._summary_ended)
        self._summary_job.start()

    @Slot(object)
    def _summary_ended(self, outcome: Outcome) -> None:
        self._summary_job = None
        if self._summary_again:
            self._summary_again = False
            self._summary_timer.start()
        if outcome.failed:
            self.context.status_message.emit(f"Could not count the examples: {outcome.value}")
            return
        counts, labels = outcome.value
        self._refresh_counts(counts)
        if labels != self._labels:
            self._refresh_labels(labels)
        self._show_table_or_hint()

    @Slot(list)
    def _examples_changed(self, ids: list) -> None:
        self.model.refresh(ids or None)
        if not ids:  # everything may have changed (an import): read it all now
            self._refresh_labels()
            self._refresh_counts(_split_counts(self.project))
            if not self.table.selectionModel().hasSelection() and self.model.rowCount():
                self.select_ids([self.model.example_id(0)])  # show an example, not an empty editor
        else:
            self._refresh_counts()
            self._summary_timer.start()
        self._show_table_or_hint()
        if self.current_id() != self.editor.example_id:
            self._selection_changed()
        self._update_actions()

    @Slot(object)
    def _report_ready(self, report) -> None:
        self._problem_ids = frozenset(report.problem_ids())
        self.model.set_problem_ids(self._problem_ids)
        self.problem_filter.setEnabled(True)
        if self.problem_filter.isChecked():
            self.apply_filter()

    # -- changes --------------------------------------------------------------------

    @property
    def actor(self) -> str:
        return self.context.author

    def flush_edits(self) -> None:
        self.editor.save_now()

    def add_example(self) -> int:
        self.flush_edits()
        new_id = self.project.add_example([{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
                                          actor=self.actor)
        if self.model.filter != ExampleFilter():
            self.clear_filters()
        self.context.examples_changed.emit([new_id])
        self.select_ids([new_id])
        self.tabs.setCurrentWidget(self.editor)
        turns = self.editor.turn_editors()
        if turns:
            turns[0].text.setFocus()
        self.context.status_message.emit(f"Added example {new_id}")
        return new_id

    def duplicate_selected(self) -> list[int]:
        self.flush_edits()
        ids = self.selected_ids()
        if not ids:
            return []
        # One add_examples call: one journal group, so one Ctrl+Z takes back all the copies.
        copies = [NewExample(messages=ex.messages, system=ex.system, label=ex.label, status=ex.status,
                             split=ex.split) for ex in self.project.get_examples(ids)]
        new = self.project.add_examples(copies, actor=self.actor)
        self.context.examples_changed.emit(new)
        self.select_ids(new)
        self.context.status_message.emit(f"Duplicated {len(new):,} example{'s' if len(new) != 1 else ''}")
        return new

    def delete_selected(self) -> int:
        self.flush_edits()
        ids = self.selected_ids()
        if not ids:
            return 0
        next_row = self.model.row_of(ids[-1])
        self.project.delete_examples(ids, actor=self.actor)
        self.context.examples_changed.emit(ids)
        if self.model.rowCount() and next_row is not None:
            row = min(next_row - len(ids) + 1, self.model.rowCount() - 1)
            self.select_ids([self.model.example_id(max(0, row))])
        self.context.status_message.emit(
            f"Deleted {len(ids):,} example{'s' if len(ids) != 1 else ''} (Ctrl+Z brings them back)")
        return len(ids)

    def move_selected(self, split: str) -> int:
        self.flush_edits()
        ids = self.selected_ids()
        if not ids:
            return 0
        self.project.move_to_split(ids, split, actor=self.actor)
        self.context.examples_changed.emit(ids)
        still = [i for i in ids if self.model.row_of(i) is not None]
        if still:
            self.select_ids(still)
        where = "training" if split == "train" else "the held-out evaluation split"
        self.context.status_message.emit(f"Moved {len(ids):,} example{'s' if len(ids) != 1 else ''} to {where}")
        return len(ids)

    def undo(self) -> list[int]:
        """Undo your latest change in the project's journal (typing included)."""
        return self._history("undo")

    def redo(self) -> list[int]:
        """Redo the change you undid last."""
        return self._history("redo")

    def _history(self, which: str) -> list[int]:
        self.flush_edits()
        could = self.project.can_undo(self.actor) if which == "undo" else self.project.can_redo(self.actor)
        try:
            ids: list[int] = getattr(self.project, which)(self.actor)
        except UndoConflict as exc:
            self.context.status_message.emit(str(exc))
            return []
        # Changes to preference pairs touch no example: the view reloads, the words say so.
        self.preferences.reload()
        done = "Undid" if which == "undo" else "Redid"
        self._after_history(ids, done if ids else (f"{done} a change to the preference pairs" if could
                                                   else f"Nothing of yours to {which}"))
        return ids

    def history(self, which: str) -> bool:
        self.undo() if which == "undo" else self.redo()
        return True

    def show_view(self, name: str) -> None:
        """'examples' or 'preferences'."""
        preferences = name == "preferences"
        if preferences:
            self.flush_edits()
            self.preferences.reload()  # votes cast since become pairs
        self.views.setCurrentWidget(self.preferences if preferences else self._examples_view)
        (self.preferences_view_button if preferences else self.examples_view_button).setChecked(True)
        for b in self._example_actions:
            b.setVisible(not preferences)

    def _view_toggled(self, examples: bool) -> None:
        self.show_view("examples" if examples else "preferences")

    def current_view(self) -> str:
        return "preferences" if self.views.currentWidget() is self.preferences else "examples"

    def _after_history(self, ids: list[int], verb: str) -> None:
        if not ids:
            self.context.status_message.emit(verb)
            return
        current = self.current_id()
        self.context.examples_changed.emit(ids)
        if current is None or self.model.row_of(current) is None or current not in ids:
            visible = [i for i in ids if self.model.row_of(i) is not None]
            if visible:
                self.select_ids(visible)
        n = len(ids)
        self.context.status_message.emit(f"{verb} a change to {n:,} example{'s' if n != 1 else ''}")

    # -- import ---------------------------------------------------------------------

    def open_import_wizard(self, path: str | Path | None = None) -> ImportWizard:
        """Open the import wizard (on ``path`` when given, already past the file step)."""
        if self._wizard is not None:  # one wizard at a time: a new file replaces the one shown
            wizard = self._wizard
            if path and wizard._importer is None:
                wizard.restart()
                wizard.file_page.path.setText(str(path))
                wizard.next()
            wizard.raise_()
            wizard.activateWindow()
            return wizard
        self.flush_edits()
        wizard = ImportWizard(self.context, path, self.window())
        wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        wizard.destroyed.connect(self._wizard_closed)
        self._wizard = wizard
        wizard.show()
        if path:
            wizard.next()
        self.wizard_opened.emit(wizard)
        return wizard

    @Slot()
    def _wizard_closed(self) -> None:
        self._wizard = None

    # -- pictures for the documentation ----------------------------------------------

    def screenshot_states(self) -> dict:
        """Views for ``python -m ftstudio.gui.screenshots``: {name: callable putting the page in it}."""
        from ftstudio.gui.workers import wait_for

        def first() -> None:
            self.clear_filters()
            if self.model.rowCount():
                self.select_ids([self.model.example_id(0)])

        def template():
            first()
            self.tabs.setCurrentWidget(self.preview)
            wait_for(lambda: self.preview.rendered is not None or bool(self.preview._tokens.error), 180)

        def checks():
            first()
            self.tabs.setCurrentWidget(self.checks)
            self.checks.run_checks()
            wait_for(lambda: not self.checks.running and self.checks.report is not None
                     and (bool(self.checks.report.token_lengths) or bool(self.checks._tokens.error)), 180)

        def search():
            self.tabs.setCurrentWidget(self.editor)
            self.search.setText("refund")
            self.apply_filter()
            if self.model.rowCount():
                self.select_ids([self.model.example_id(0)])

        def import_file():
            from ftstudio.paths import resource

            self.clear_filters()
            wizard = self.open_import_wizard(resource("demo", "support_tickets.jsonl"))
            wait_for(lambda: wizard.preview is not None and not wizard.busy, 60)
            return wizard

        def import_columns():
            import tempfile

            self.clear_filters()
            # a folder of its own: two screenshot runs at once (parallel tests) never share the file
            path = Path(tempfile.mkdtemp(prefix="ftstudio-screenshot-")) / "ftstudio-screenshot-tickets.csv"
            path.write_text("ticket,team,priority\n\"I was charged twice for order 1182\",billing,high\n"
                            "The app crashes when I open settings,technical,low\n"
                            "Cannot log in after changing my email,account,high\n"
                            "Parcel still not here after two weeks,shipping,medium\n", encoding="utf-8")
            wizard = self.open_import_wizard(path)
            wait_for(lambda: wizard.preview is not None and not wizard.busy, 60)
            wizard.preview_page.combos["prompt"].setCurrentText("ticket")
            wizard.preview_page.combos["response"].setCurrentText("team")
            wait_for(lambda: not wizard.busy and not wizard._debounce.isActive()
                     and wizard.preview is not None and wizard.preview.ok, 60)
            return wizard

        def preferences():
            # Staged pairs (the real pictures take the blind round's votes): the shape of the demo's answers,
            # the preferred one giving its reason.
            from ftstudio.core import preferences as prefs

            if not prefs.counts(self.project).total_pairs():
                new = []
                for ex in self.project.examples()[:12]:
                    answer = ex.reference_answer() or ""
                    new.append(prefs.NewPair(ex.conversation()[:-1], f"{answer}, because of what the ticket asks",
                                             answer, source="typed"))
                prefs.add_pairs(self.project, new, actor="screenshots")
            self.show_view("preferences")
            rows = self.preferences.rows()
            if rows:
                self.preferences.select_pair(int(rows[0]["#"]))
            self.preferences.run_checks()

        return {"template": template, "checks": checks, "search": search, "import": import_file,
                "import-columns": import_columns, "preferences": preferences}

    def screenshot_cleanup(self) -> None:
        self.show_view("examples")

    # -- layout ---------------------------------------------------------------------

    def save_state(self) -> dict:
        """What the window keeps between sessions: the splitter and the column widths."""
        return {"splitter": self.splitter.saveState(), "columns": self.table.horizontalHeader().saveState()}

    def restore_state(self, state) -> None:
        if not isinstance(state, dict):
            return
        if isinstance(state.get("splitter"), QByteArray):
            self.splitter.restoreState(state["splitter"])
        if isinstance(state.get("columns"), QByteArray):
            self.table.horizontalHeader().restoreState(state["columns"])

    # -- closing --------------------------------------------------------------------

    def shutdown(self) -> None:
        self.flush_edits()
        self._summary_timer.stop()
        if self._summary_job is not None:
            self._summary_job.wait()
        if self._wizard is not None:
            self._wizard.shutdown()
            self._wizard.close()
        self.checks.shutdown()
        self.preview.shutdown()
