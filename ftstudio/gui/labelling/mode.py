"""The labelling mode: one example at a time, the label set as big buttons,
Accept / Skip / Flag / Back, a queue to work through and the progress made.

Every action is committed to the project (annotation, example and journal in
one transaction) before the next example is shown; ``saved`` is emitted
after the commit, so whoever listens knows the label is on disk.

Keys (when the answer box does not have the focus): the labels' keys (1-9 by
default) choose a label (and accept it, when only a label is asked for);
Enter accepts, S skips, F flags for review, Backspace or Left goes back.
In the answer box: Ctrl+Enter accepts, Esc leaves the box. Ctrl+G asks the
model for a suggestion, Ctrl+U puts it into the answer box. Ctrl+Z undoes.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QComboBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar,
    QPushButton, QStackedWidget, QVBoxLayout, QWidget,
)

from ftstudio.core.labelling import (
    QUEUE_HINTS, QUEUE_TITLES, QUEUES, Labelling, LabellingError, Schema, SessionStats, item_of,
    prompt_messages,
)
from ftstudio.core.project import UndoConflict
from ftstudio.core.queue_cursor import QueueCursor
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.guide import GUIDE_LINE, connect_guide_link
from ftstudio.gui.labelling.assist import LabelAssist
from ftstudio.gui.labelling.example_card import ExampleCard
from ftstudio.gui.labelling.label_buttons import LabelButton, label_columns
from ftstudio.gui.labelling.suggestion_panel import SuggestionPanel


class _AnswerKeys(QObject):
    """Keys the answer box passes on: Ctrl+Enter accepts, Esc leaves it, Ctrl+G / Ctrl+U suggest."""

    def __init__(self, mode: "LabelMode") -> None:
        super().__init__(mode)
        self.mode = mode

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.KeyPress:
            key, mods = event.key(), event.modifiers()
            ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
            if ctrl and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.mode.accept()
                return True
            if key == Qt.Key.Key_Escape:
                self.mode.setFocus()
                return True
            if ctrl and key == Qt.Key.Key_G:
                self.mode.request_suggestion()
                return True
            if ctrl and key == Qt.Key.Key_U:
                self.mode.use_suggestion()
                return True
        return False


class _ReturnKey(QObject):
    """Return in a line edit does ``action`` and goes no further (QLineEdit passes it on to its parent)."""

    def __init__(self, parent: QObject, action) -> None:
        super().__init__(parent)
        self.action = action

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.action()
            return True
        return False


def _button(text: str, tip: str) -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tip)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    b.setMinimumHeight(38)
    return b


class LabelMode(QWidget):
    """``LabelMode(context, labelling)``: the focused labelling view of the Label page."""

    saved = Signal(int)  # an action on this example id is committed
    shown = Signal(int)  # this example is on screen now (-1: none left in the queue)
    setup_requested = Signal()

    def __init__(self, context: ProjectContext, labelling: Labelling, parent=None) -> None:
        super().__init__(parent)
        self.context = context
        self.lab = labelling
        self.schema: Schema = labelling.schema()
        self.queue_cursor = QueueCursor()
        self.current_id: int | None = None
        self.stats = SessionStats()
        self.chosen: str | None = None
        self._counted: list[int] = []  # examples labelled or flagged this session, for the pace
        self._emitting = False
        self._stale = False
        self._closed = False
        self._buttons: dict[str, LabelButton] = {}
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setObjectName("LabelMode")

        self.assist = LabelAssist(self)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(10)

        # Instructions for annotators.
        self.instructions = QLabel()
        self.instructions.setObjectName("Instructions")
        self.instructions.setWordWrap(True)
        self.instructions.setTextFormat(Qt.TextFormat.PlainText)
        self.instructions.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.instructions)

        # Who is labelling; asked once.
        self.name_row = QFrame()
        self.name_row.setObjectName("NameRow")
        name_layout = QHBoxLayout(self.name_row)
        name_layout.setContentsMargins(14, 10, 14, 10)
        self.name_prompt = QLabel("Your name goes on every label you make. Who is labelling?")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Your name")
        self.name_edit.setMaximumWidth(260)
        self.name_button = QPushButton("Start labelling")
        self.name_button.setProperty("primary", True)
        name_layout.addWidget(self.name_prompt)
        name_layout.addWidget(self.name_edit)
        name_layout.addWidget(self.name_button)
        name_layout.addStretch(1)
        outer.addWidget(self.name_row)
        self.name_edit.installEventFilter(_ReturnKey(self.name_edit, self._name_entered))
        self.name_button.clicked.connect(self._name_entered)

        # Queue, progress, pace, annotator.
        bar = QHBoxLayout()
        bar.setSpacing(10)
        self.queue_combo = QComboBox()
        self.queue_combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.queue_combo.setMinimumWidth(200)
        for q in QUEUES:
            self.queue_combo.addItem(QUEUE_TITLES[q], q)
            self.queue_combo.setItemData(self.queue_combo.count() - 1, QUEUE_HINTS[q], Qt.ItemDataRole.ToolTipRole)
        self.queue_combo.currentIndexChanged.connect(self._queue_chosen)
        bar.addWidget(self.queue_combo)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setFixedHeight(8)
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setStyleSheet(
            f"QProgressBar {{ background: #e4e7ec; border: none; border-radius: 4px; }}"
            f"QProgressBar::chunk {{ background: {style.ACCENT}; border-radius: 4px; }}")
        bar.addWidget(self.progress_bar)
        self.progress_label = QLabel()
        self.progress_label.setObjectName("ProgressText")
        bar.addWidget(self.progress_label)
        self.pace_label = QLabel()
        self.pace_label.setObjectName("Hint")
        bar.addWidget(self.pace_label)
        bar.addStretch(1)
        self.annotator_label = QLabel()
        self.annotator_label.setObjectName("Hint")
        bar.addWidget(self.annotator_label)
        self.change_name_button = QPushButton("Switch annotator")
        self.change_name_button.setProperty("flat", True)
        self.change_name_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.change_name_button.setToolTip("Label as someone else (F2)")
        self.change_name_button.clicked.connect(self.ask_name)
        bar.addWidget(self.change_name_button)
        outer.addLayout(bar)

        # The example (or a word on why there is none), and the answer box with suggestions.
        self.card = ExampleCard()
        self.meta, self.text = self.card.meta, self.card.text
        self.answer_box = SuggestionPanel(context)
        self.answer_box.message.connect(self.show_message)
        self.answer_edit = self.answer_box.answer_edit
        self.answer_edit.installEventFilter(_AnswerKeys(self))
        self.suggester = self.answer_box.suggester
        self.suggestion_frame, self.suggestion_text = self.answer_box.suggestion_frame, self.answer_box.suggestion_text
        self.card.body.addWidget(self.answer_box, 1)

        self.done = QLabel()
        self.done.setObjectName("Hint")
        self.done.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.done.setWordWrap(True)
        self.done.setTextFormat(Qt.TextFormat.RichText)
        self.done.linkActivated.connect(self._done_link)
        connect_guide_link(self.done)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.card)
        self.stack.addWidget(self.done)
        outer.addWidget(self.stack, 1)

        # Labels, then the actions.
        self.labels_box = QWidget()
        self.labels_grid = QGridLayout(self.labels_box)
        self.labels_grid.setContentsMargins(0, 0, 0, 0)
        self.labels_grid.setHorizontalSpacing(10)
        self.labels_grid.setVerticalSpacing(10)
        outer.addWidget(self.assist.line)
        outer.addWidget(self.labels_box)

        actions = QHBoxLayout()
        actions.setSpacing(10)
        self.back_button = _button("\u2190  Back", "The example before (Backspace or \u2190)")
        self.skip_button = _button("Skip  \u00b7  S", "Not now: to the back of the queue (S)")
        self.flag_button = _button("Flag for review  \u00b7  F", "Leave it out of training until someone "
                                   "reviews it (F)")
        self.accept_button = _button("Accept  \u00b7  Enter", "Save the label and go on (Enter; Ctrl+Enter "
                                     "in the answer box)")
        self.accept_button.setProperty("primary", True)
        for b in (self.back_button,):
            actions.addWidget(b)
        actions.addStretch(1)
        for b in (self.skip_button, self.flag_button, self.accept_button):
            b.setMinimumWidth(150)
            actions.addWidget(b)
        outer.addLayout(actions)
        self.back_button.clicked.connect(self.back)
        self.skip_button.clicked.connect(self.skip)
        self.flag_button.clicked.connect(self.flag)
        self.accept_button.clicked.connect(self.accept)

        self.message = QLabel()
        self.message.setObjectName("Message")
        self.message.setWordWrap(True)
        outer.addWidget(self.message)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(lambda: self.message.setText(""))

        self.keys_hint = QLabel()
        self.keys_hint.setObjectName("Hint")
        self.keys_hint.setWordWrap(True)
        outer.addWidget(self.keys_hint)

        self.setStyleSheet(
            f"QLabel#Instructions {{ background: {style.ACCENT_SOFT}; color: {style.TEXT}; border-radius: 8px;"
            f" padding: 10px 14px; font-size: {style.FONT_POINT_SIZE + 1}pt; }}"
            f"QFrame#NameRow {{ background: {style.WARN_SOFT}; border-radius: 8px; }}"
            f"QLabel#ProgressText {{ font-weight: 600; color: {style.TEXT}; }}"
            f"QTextBrowser#ExampleText {{ background: transparent; border: none; color: {style.TEXT}; }}"
            f"QFrame#Suggestion {{ background: #f6f7f9; border: 1px dashed {style.BORDER}; border-radius: 6px; }}"
            f"QLabel#Message {{ color: {style.BAD}; }}"
        )

        # Pages outside refresh us, and the counts refresh a moment after a burst of actions.
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(400)
        self._counts_timer.timeout.connect(self.refresh_queue_counts)
        context.examples_changed.connect(self._examples_changed)
        context.labels_changed.connect(self.reload_schema)
        context.actor_changed.connect(self._actor_changed)

        self.reload_schema()
        self._actor_changed(context.actor)

    @property
    def queue_name(self) -> str:
        return self.queue_cursor.name

    @property
    def queue_ids(self) -> list[int]:
        """The queue on screen, in its order (the cursor's)."""
        return self.queue_cursor.ids

    # -- who -------------------------------------------------------------------------------

    @property
    def annotator(self) -> str:
        return self.context.actor

    def ask_name(self) -> None:
        self.name_edit.setText(self.annotator)
        self.name_prompt.setText("Label as whom? Your name goes on every label you make."
                                 if self.annotator else
                                 "Your name goes on every label you make. Who is labelling?")
        self.name_row.show()
        self.name_edit.setFocus()
        self.name_edit.selectAll()

    @Slot()
    def _name_entered(self) -> None:
        name = self.name_edit.text().strip()
        if not name:
            self.show_message("Type your name first: it goes on every label you make.")
            return
        unchanged = name == self.annotator
        set_annotator = getattr(self.window(), "set_annotator", None)  # the main window's
        if callable(set_annotator):
            set_annotator(name)  # remembered for next time, and set on the project's context
        else:
            self.context.set_actor(name)
        if unchanged:  # no actor_changed comes: put the mode back as it was
            self._actor_changed(name)
        self.setFocus()

    @Slot(str)
    def _actor_changed(self, name: str) -> None:
        if self._closed:
            return
        self.name_row.setVisible(not name)
        self.annotator_label.setText(f"Labelling as <b>{html.escape(name)}</b>" if name else "")
        self.change_name_button.setVisible(bool(name))
        self.stats = SessionStats()
        self._counted.clear()
        self.queue_cursor.history.clear()
        self.load_queue(self.queue_name)
        if name:
            self.setFocus()

    # -- schema ------------------------------------------------------------------------------

    @Slot()
    def reload_schema(self) -> None:
        if self._closed:
            return
        self.schema = self.lab.schema()
        self.instructions.setText(self.schema.instructions)
        self.instructions.setVisible(bool(self.schema.instructions.strip()))
        for b in self._buttons.values():
            self.labels_grid.removeWidget(b)
            b.deleteLater()
        self._buttons.clear()
        if self.schema.uses_labels:
            columns = label_columns(len(self.schema.labels))
            for i, label in enumerate(self.schema.labels):
                b = LabelButton(label)
                b.clicked.connect(lambda _checked=False, name=label.name: self.choose(name))
                self.labels_grid.addWidget(b, i // columns, i % columns)
                self._buttons[label.name] = b
        self.answer_box.setVisible(self.schema.uses_answer)
        self.accept_button.setToolTip(
            "Save the chosen label and go on (Enter)" if self.schema.kind == "classification"
            else "Save the answer and go on (Enter, or Ctrl+Enter in the answer box)")
        keys = []
        if self.schema.uses_labels and self.schema.labels:
            shortcuts = [d.shortcut.upper() for d in self.schema.labels if d.shortcut]
            if shortcuts:
                digits = "".join(shortcuts)
                run = len(shortcuts) > 2 and digits.isdigit() and digits in "123456789"
                span = f"{shortcuts[0]}\u2013{shortcuts[-1]}" if run else " ".join(shortcuts)
                keys.append(f"{span} choose a label" + (" and go on" if self.schema.kind == "classification" else ""))
        keys += ["Enter accept", "S skip", "F flag", "\u232b back", "Ctrl+Z undo"]
        if self.schema.uses_answer:
            keys += ["in the answer: Ctrl+Enter accept, Esc leave", "Ctrl+G suggest", "Ctrl+U use it"]
        self.keys_hint.setText("Keys:  " + "   \u00b7   ".join(keys))
        if self.current_id is not None and not (self.schema.uses_labels and not self.schema.labels):
            self._show(self.current_id, keep_answer=True)
        else:
            self._show_next()  # labels may have just been set up

    # -- queue -------------------------------------------------------------------------------

    def load_queue(self, name: str, keep_current: bool = False) -> None:
        """Read the queue ``name`` afresh and show its first example (or keep the one on screen)."""
        index = QUEUES.index(name)
        if self.queue_combo.currentIndex() != index:
            self.queue_combo.blockSignals(True)
            self.queue_combo.setCurrentIndex(index)
            self.queue_combo.blockSignals(False)
        self._stale = False
        ids = self.lab.queue(name, self.annotator) if self.annotator else []
        current = self.current_id if keep_current else None
        exists = current is not None and current not in ids and self._exists(current)
        if self.queue_cursor.load(name, ids, keep=current, keep_exists=exists):
            assert current is not None
            self._show(current, keep_answer=True)
        else:
            self._show_next()
        self.refresh_progress()
        self.refresh_queue_counts()
        self.assist.queue_loaded()

    @Slot(int)
    def _queue_chosen(self, index: int) -> None:
        self.queue_cursor.history.clear()
        self.load_queue(QUEUES[index])
        self.setFocus()

    def _exists(self, example_id: int) -> bool:
        return self.context.project.example_exists(example_id)

    @Slot()
    def refresh_queue_counts(self) -> None:
        if not self.annotator or self._closed:
            return
        sizes = self.lab.queue_sizes(self.annotator)
        for i, q in enumerate(QUEUES):
            self.queue_combo.setItemText(i, f"{QUEUE_TITLES[q]}  ({sizes[q]:,})")

    def refresh_progress(self) -> None:
        if not self.annotator:
            self.progress_label.setText("")
            self.pace_label.setText("")
            return
        p = self.lab.progress(self.annotator)
        self.progress_label.setText(p.text)
        self.progress_bar.setMaximum(max(1, p.total))
        self.progress_bar.setValue(p.done)
        rate = self.stats.per_minute
        pace = f"{self.stats.count:,} this session"
        if rate is not None and self.stats.active_s >= 20:
            pace += f" \u00b7 {rate:.1f} per minute"
        self.pace_label.setText(pace if self.stats.count else "")

    # -- showing ------------------------------------------------------------------------------

    def _show_next(self) -> None:
        if self.schema.uses_labels and not self.schema.labels:
            self._show_done()  # nothing to label with: say how to set the labels up
            return
        while self.queue_cursor.current is not None:
            if self._show(self.queue_cursor.current):
                return
            self.queue_cursor.drop_current()  # deleted meanwhile
        self._show_done()

    def _show_done(self) -> None:
        self.current_id = None
        self.answer_box.set_example(None)
        self.chosen = None
        self._set_action_buttons(False)
        for b in self._buttons.values():
            b.setChecked(False)
        if not self.annotator:
            self.done.setText("<p style='font-size:13pt'>Enter your name above to start labelling.</p>"
                              f"<p>{GUIDE_LINE}</p>")
        elif self.schema.uses_labels and not self.schema.labels:
            found = self.lab.labels_in_data()
            what = "the label" if len(found) == 1 else f"the {len(found)} labels"
            extra = (f" or <a href='adopt'>use {what} found in your data</a>"
                     f" ({html.escape(', '.join(found[:6]))}{', …' if len(found) > 6 else ''})") if found else ""
            self.done.setText("<p style='font-size:13pt'>No labels to choose from yet.</p>"
                              f"<p><a href='setup'>Set up the label set</a>{extra}.</p><p>{GUIDE_LINE}</p>")
        elif self.context.project.count_examples() == 0:
            self.done.setText("<p style='font-size:13pt'>No examples yet.</p>"
                              "<p>Import examples on the Data page (Ctrl+I), then label them here.</p>"
                              f"<p>{GUIDE_LINE}</p>")
        else:
            title = QUEUE_TITLES[self.queue_name]
            self.done.setText(f"<p style='font-size:13pt'>Nothing left in \u201c{title}\u201d.</p>"
                              "<p>Choose another queue above, or <a href='todo'>go to the examples still to "
                              "label</a>.</p>" if self.queue_name != "todo" else
                              "<p style='font-size:13pt'>All done: you have labelled every example.</p>"
                              "<p>Look over <a href='mine'>what you labelled</a>, or review "
                              "<a href='disagreements'>disagreements</a>.</p>")
        self.stack.setCurrentWidget(self.done)
        self.labels_box.hide()
        for button in (self.skip_button, self.flag_button, self.accept_button):
            button.hide()
        self.shown.emit(-1)

    @Slot(str)
    def _done_link(self, link: str) -> None:
        if link == "setup":
            self.setup_requested.emit()
        elif link == "adopt":
            self.lab.adopt_data_labels(self.context.author)
            self.context.labels_changed.emit()
            self.load_queue(self.queue_name)
        elif link in QUEUES:
            self.load_queue(link)

    def _set_action_buttons(self, on: bool) -> None:
        for b in (self.skip_button, self.flag_button, self.accept_button, *self._buttons.values()):
            b.setEnabled(on)
        self.back_button.setEnabled(bool(self.queue_cursor.history) and bool(self.annotator))

    def _show(self, example_id: int, keep_answer: bool = False) -> bool:
        """Put ``example_id`` on screen; False if it is gone."""
        try:
            example = self.context.project.get_example(example_id)
        except KeyError:
            return False
        typed = self.answer_edit.toPlainText() if keep_answer and example_id == self.current_id else None
        self.current_id = example_id
        item = item_of(example, self.schema.template)
        mine = self.lab.annotation(example_id, self.annotator) if self.annotator else None

        others = None
        if self.queue_name in ("disagreements", "flagged"):
            others = [a for a in self.lab.annotations(example_id) if a.annotator != self.annotator
                      and a.status in ("labelled", "flagged")]
        # The label and the answer it has.
        if self.schema.uses_labels:
            self.chosen = (mine.label if mine is not None and mine.label else None) or example.label
            if self.chosen not in self._buttons:
                self.chosen = None if self.chosen is None or self.schema.kind == "classification" else self.chosen
        else:
            self.chosen = None
        # The model's prediction is pre-selected until the expert has labelled the example themselves (in
        # the review queue the label it has stays chosen: the expert confirms or corrects it).
        own = mine is not None and bool(mine.label)
        prediction = self.assist.on_show(example_id, has_label=own or (self.queue_name == "review"
                                                                       and self.chosen is not None))
        self.card.show_example(example, item, mine, self.schema.uses_labels, others, prediction)

        for name, b in self._buttons.items():
            b.setChecked(name == self.chosen)
        if self.schema.uses_answer:
            if typed is not None:
                answer = typed
            elif mine is not None and mine.answer:
                answer = mine.answer
            else:
                answer = item.answer or ""
            self.answer_box.set_example(example_id, prompt_messages(example, self.schema.template), answer)
        self._set_action_buttons(True)
        if self.stack.currentWidget() is not self.card:
            self.stack.setCurrentWidget(self.card)
            self.labels_box.show()
            for button in (self.skip_button, self.flag_button, self.accept_button):
                button.show()
        self.shown.emit(example_id)
        return True

    # -- actions ------------------------------------------------------------------------------

    def choose(self, label: str) -> None:
        """Pick ``label``: accepted at once when only a label is asked for, else chosen for Accept."""
        if self.current_id is None:
            return
        self.chosen = label
        for name, b in self._buttons.items():
            b.setChecked(name == label)
        if self.schema.kind == "classification":
            self.accept()

    def answer_text(self) -> str:
        return self.answer_edit.toPlainText()

    def accept(self) -> bool:
        if self.current_id is None:
            return False
        example_id = self.current_id
        try:
            self.lab.accept(example_id, self.annotator, label=self.chosen,
                            answer=self.answer_text() if self.schema.uses_answer else None,
                            resolve=self.queue_name == "disagreements")
        except LabellingError as exc:
            self.show_message(str(exc))
            return False
        self._done_with(example_id, "accept")
        return True

    def flag(self) -> bool:
        if self.current_id is None:
            return False
        example_id = self.current_id
        try:
            self.lab.flag(example_id, self.annotator, label=self.chosen,
                          answer=self.answer_text() if self.schema.uses_answer else None)
        except LabellingError as exc:
            self.show_message(str(exc))
            return False
        self._done_with(example_id, "flag")
        return True

    def skip(self) -> bool:
        if self.current_id is None:
            return False
        example_id = self.current_id
        try:
            self.lab.skip(example_id, self.annotator)
        except LabellingError as exc:
            self.show_message(str(exc))
            return False
        self._done_with(example_id, "skip")
        return True

    def _done_with(self, example_id: int, action: str) -> None:
        """After the commit: say so, then move on to the next example of the queue."""
        if action != "skip":
            self.stats.record()
            self._counted.append(example_id)
        self.saved.emit(example_id)
        self._emit_changed([example_id])
        self.message.setText("")
        still = self.lab.in_queue(self.queue_name, example_id, self.annotator)
        self.queue_cursor.done_with(example_id, action, still)
        self._show_next()
        self.refresh_progress()
        self._counts_timer.start()

    def back(self) -> None:
        previous = self.queue_cursor.back()
        if previous is None:
            self.show_message("Nothing to go back to yet.")
            return
        if not self._show(previous):
            self.back()

    def undo(self) -> None:
        self._history_step("undo")

    def redo(self) -> None:
        self._history_step("redo")

    def _history_step(self, which: str) -> None:
        try:
            result = getattr(self.lab, which)(self.annotator)  # only this annotator's own changes
        except UndoConflict as exc:
            self.show_message(str(exc))
            return
        if not result.ids and not result.schema_changed:
            self.show_message(f"Nothing of yours to {which}.")
            return
        if result.schema_changed:
            self.context.labels_changed.emit()  # reloads the schema here too
        self._emit_changed(result.ids)
        if which == "undo" and len(result.ids) == 1:
            example_id = result.ids[0]
            if self._counted and self._counted[-1] == example_id:
                self._counted.pop()
                self.stats.record(-1)
            # Back to the example whose label was taken back, to label it again.
            self.queue_cursor.undone(example_id, self.lab.in_queue(self.queue_name, example_id, self.annotator))
            if self._show(example_id):
                self.refresh_progress()
                self._counts_timer.start()
                self.show_message(f"Undone: example {example_id} is as it was before.", error=False)
                return
        self.load_queue(self.queue_name, keep_current=True)
        self.show_message(("Undone" if which == "undo" else "Redone") + f": {len(result.ids)} examples changed."
                          if result.ids else ("Undone" if which == "undo" else "Redone") + ".", error=False)

    def _emit_changed(self, ids: list[int]) -> None:
        self._emitting = True
        try:
            self.context.examples_changed.emit(list(ids))
        finally:
            self._emitting = False

    @Slot(list)
    def _examples_changed(self, ids: list) -> None:
        if self._emitting or self._closed:
            return
        if self.isVisible():
            self.load_queue(self.queue_name, keep_current=True)
        else:
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.load_queue(self.queue_name, keep_current=True)
        if not self.name_row.isVisible():
            self.setFocus()

    def show_message(self, text: str, error: bool = True) -> None:
        self.message.setStyleSheet("" if error else f"color: {style.MUTED};")
        self.message.setText(text)
        self._message_timer.start(6000)

    # -- keys ---------------------------------------------------------------------------------

    def handle_key(self, event: QKeyEvent) -> bool:
        """The mode's keys; True when the key did something here."""
        key, mods = event.key(), event.modifiers()
        if key == Qt.Key.Key_F2:
            self.ask_name()
            return True
        if not self.annotator:
            return False
        typing = QApplication.focusWidget()
        if isinstance(typing, (QLineEdit, QPlainTextEdit, QComboBox)) and self.isAncestorOf(typing):
            return False  # a key the text box let through (Return in a line edit): not an action
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
            return True
        if event.matches(QKeySequence.StandardKey.Redo):
            self.redo()
            return True
        if ctrl:
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.accept()
                return True
            if key == Qt.Key.Key_G:
                self.request_suggestion()
                return True
            if key == Qt.Key.Key_U:
                self.use_suggestion()
                return True
            return False
        if mods & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier):
            return False
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.accept()
            return True
        if key in (Qt.Key.Key_Backspace, Qt.Key.Key_Left):
            self.back()
            return True
        text = event.text().lower()
        if not text:
            return False
        if text == "s":
            self.skip()
            return True
        if text == "f":
            self.flag()
            return True
        if self.schema.uses_labels:
            label = self.schema.label_for_key(text)
            if label is not None:
                self.choose(label)
                return True
        if self.schema.uses_answer and text.isprintable() and self.current_id is not None:
            self.answer_edit.setFocus()  # typing goes into the answer
            self.answer_edit.keyPressEvent(event)
            return True
        return False

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.handle_key(event):
            super().keyPressEvent(event)

    # -- suggestions (the answer box's) ----------------------------------------------------

    def set_suggestion_base(self, spec: str) -> None:
        self.answer_box.set_suggestion_base(spec)

    def request_suggestion(self) -> str:
        if self.current_id is None or not self.schema.uses_answer:
            return "refused"
        return self.answer_box.request_suggestion()

    def use_suggestion(self) -> None:
        self.answer_box.use_suggestion()

    def shutdown(self) -> None:
        """Before the project closes: no timer may read it afterwards, no suggestion may still run."""
        self._closed = True
        self._counts_timer.stop()
        self._message_timer.stop()
        self.answer_box.shutdown()
        self.assist.shutdown()

