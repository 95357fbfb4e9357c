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
from PySide6.QtGui import QColor, QFont, QKeyEvent, QKeySequence, QTextOption
from PySide6.QtWidgets import (
    QApplication, QCheckBox, QComboBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar,
    QPushButton, QSizePolicy, QStackedWidget, QTextBrowser, QVBoxLayout, QWidget,
)

from ftstudio.core.labelling import (
    QUEUE_HINTS, QUEUE_TITLES, QUEUES, LabelDef, Labelling, LabellingError, Schema, SessionStats, item_of,
    prompt_messages,
)
from ftstudio.core.project import UndoConflict
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.labelling.assist import LabelAssist
from ftstudio.gui.labelling.suggest import Suggester, SuggestionModel, suggestion_models
from ftstudio.gui.guide import GUIDE_LINE, connect_guide_link
from ftstudio.gui.plain import plain_label, plain_tip

TEXT_POINT_SIZE = style.FONT_POINT_SIZE + 5
ANSWER_POINT_SIZE = style.FONT_POINT_SIZE + 3
LABEL_COLUMNS = 4  # the most label buttons in a row, beyond five labels


def label_columns(n: int) -> int:
    """Label buttons per row for ``n`` labels: up to five in one row, six in two rows of three, else four."""
    if n <= 5:
        return max(1, n)
    return 3 if n in (6, 9) else LABEL_COLUMNS
RENDER_LIMIT = 20_000  # characters of one example shown at once (the rest: "… n more characters")


def soft(colour: str, amount: float = 0.86) -> str:
    """``colour`` mixed with white: the background of a chosen label."""
    c = QColor(colour)
    mix = [round(v + (255 - v) * amount) for v in (c.red(), c.green(), c.blue())]
    return "#{:02x}{:02x}{:02x}".format(*mix)


class LabelButton(QPushButton):
    """A big button for one label: its key in a badge, its name, a bar in its colour."""

    def __init__(self, label: LabelDef, parent=None) -> None:
        super().__init__(parent)
        self.label_name = label.name
        self.setObjectName("LabelButton")
        self.setCheckable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setMinimumHeight(54)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(plain_tip(f"Press {label.shortcut.upper()} to choose '{label.name}'" if label.shortcut
                                  else f"Choose '{label.name}' (give it a key in Set up)"))
        row = QHBoxLayout(self)
        row.setContentsMargins(14, 6, 14, 6)
        row.setSpacing(12)
        self.key_badge = plain_label((label.shortcut or "").upper())
        self.key_badge.setObjectName("KeyBadge")
        self.key_badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.key_badge.setFixedSize(28, 28)
        self.key_badge.setVisible(bool(label.shortcut))
        self.name_label = plain_label(label.name)
        self.name_label.setObjectName("LabelName")
        for w in (self.key_badge, self.name_label):
            w.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            row.addWidget(w)
        row.addStretch(1)
        colour = label.colour
        self.setStyleSheet(
            f"QPushButton#LabelButton {{ background: {style.SURFACE}; border: 1px solid {style.BORDER};"
            f" border-radius: 8px; text-align: left; }}"
            f"QPushButton#LabelButton:hover {{ background: {soft(colour, 0.94)}; border-color: {soft(colour, 0.5)}; }}"
            f"QPushButton#LabelButton:checked {{ background: {soft(colour)}; border: 2px solid {colour}; }}"
            f"QPushButton#LabelButton:disabled {{ background: #f7f8fa; }}"
            f"QLabel#KeyBadge {{ background: {soft(colour, 0.8)}; color: {colour}; border-radius: 5px;"
            f" font-weight: 700; font-size: {style.FONT_POINT_SIZE + 1}pt; }}"
            f"QLabel#LabelName {{ color: {style.TEXT}; font-size: {style.FONT_POINT_SIZE + 3}pt; }}"
            f"QLabel#LabelName:disabled {{ color: #98a2b3; }}"
        )


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
        self.queue_name = "todo"
        self.queue_ids: list[int] = []
        self.pos = 0
        self.current_id: int | None = None
        self.history: list[int] = []
        self.stats = SessionStats()
        self.chosen: str | None = None
        self.suggestions: dict[int, str] = {}
        self._suggest_models: list[SuggestionModel] = []
        self._extra_bases: list[str] = []
        self._counted: list[int] = []  # examples labelled or flagged this session, for the pace
        self._emitting = False
        self._stale = False
        self._closed = False
        self._buttons: dict[str, LabelButton] = {}
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setObjectName("LabelMode")

        self.suggester = Suggester(context, self)
        self.suggester.loading.connect(self._suggest_loading)
        self.suggester.piece.connect(self._suggest_piece)
        self.suggester.finished.connect(self._suggest_finished)
        self.suggester.failed.connect(self._suggest_failed)
        self.suggester.refused.connect(self._suggest_refused)
        self.suggester.stopped.connect(self._suggest_stopped)
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

        # The example (or a word on why there is none).
        self.card = QFrame()
        self.card.setObjectName("Card")
        card = QVBoxLayout(self.card)
        card.setContentsMargins(22, 16, 22, 16)
        card.setSpacing(8)
        self.meta = QLabel()
        self.meta.setObjectName("Hint")
        self.meta.setTextFormat(Qt.TextFormat.RichText)
        card.addWidget(self.meta)
        self.text = QTextBrowser()
        self.text.setObjectName("ExampleText")
        self.text.setFrameShape(QFrame.Shape.NoFrame)
        self.text.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.text.setOpenLinks(False)
        self.text.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        font = QFont(self.text.font())
        font.setPointSize(TEXT_POINT_SIZE)
        self.text.setFont(font)
        self.text.document().setDefaultFont(font)
        self.text.document().setDocumentMargin(2)
        card.addWidget(self.text, 1)

        self.answer_box = QWidget()
        answer = QVBoxLayout(self.answer_box)
        answer.setContentsMargins(0, 4, 0, 0)
        answer.setSpacing(6)
        answer_head = QHBoxLayout()
        self.answer_title = QLabel("Answer")
        self.answer_title.setObjectName("SectionTitle")
        answer_head.addWidget(self.answer_title)
        answer_head.addStretch(1)
        self.model_combo = QComboBox()
        self.model_combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.model_combo.setToolTip("Which model suggests answers: the base model, or a trained adapter")
        self.model_combo.setMinimumWidth(220)
        answer_head.addWidget(QLabel("Suggestions from"))
        answer_head.addWidget(self.model_combo)
        self.auto_suggest = QCheckBox("For every example")
        self.auto_suggest.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.auto_suggest.setToolTip("Ask the model for a suggestion as soon as each example is shown")
        answer_head.addWidget(self.auto_suggest)
        self.suggest_button = _button("Suggest", "Ask the model for a starting point (Ctrl+G)")
        self.suggest_button.setMinimumHeight(30)
        answer_head.addWidget(self.suggest_button)
        answer.addLayout(answer_head)
        self.answer_edit = QPlainTextEdit()
        self.answer_edit.setObjectName("AnswerEdit")
        self.answer_edit.setPlaceholderText("Write the answer the model should give. Ctrl+Enter accepts it.")
        afont = QFont(self.answer_edit.font())
        afont.setPointSize(ANSWER_POINT_SIZE)
        self.answer_edit.setFont(afont)
        self.answer_edit.setMinimumHeight(90)
        self.answer_edit.installEventFilter(_AnswerKeys(self))
        answer.addWidget(self.answer_edit, 1)
        self.suggestion_frame = QFrame()
        self.suggestion_frame.setObjectName("Suggestion")
        sugg = QHBoxLayout(self.suggestion_frame)
        sugg.setContentsMargins(12, 8, 8, 8)
        self.suggestion_text = QLabel()
        self.suggestion_text.setWordWrap(True)
        self.suggestion_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.suggestion_text.setTextFormat(Qt.TextFormat.PlainText)
        sugg.addWidget(self.suggestion_text, 1)
        self.use_button = _button("Use this", "Put the suggestion into the answer box to accept or rewrite (Ctrl+U)")
        self.use_button.setMinimumHeight(30)
        sugg.addWidget(self.use_button, 0, Qt.AlignmentFlag.AlignTop)
        answer.addWidget(self.suggestion_frame)
        card.addWidget(self.answer_box, 1)
        self.suggest_button.clicked.connect(self.request_suggestion)
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        self.use_button.clicked.connect(self.use_suggestion)

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
        context.compute.changed.connect(self._compute_changed)
        context.runs_changed.connect(self._fill_models)  # a finished run's adapter can suggest too

        self.reload_schema()
        self._fill_models()
        self._actor_changed(context.actor)

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
        window = self.window()
        if callable(getattr(window, "set_annotator", None)):
            window.set_annotator(name)  # remembered for next time, and set on the project's context
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
        self.history.clear()
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
        self.queue_name = name
        index = QUEUES.index(name)
        if self.queue_combo.currentIndex() != index:
            self.queue_combo.blockSignals(True)
            self.queue_combo.setCurrentIndex(index)
            self.queue_combo.blockSignals(False)
        self._stale = False
        self.queue_ids = self.lab.queue(name, self.annotator) if self.annotator else []
        current = self.current_id if keep_current else None
        if current is not None and current in self.queue_ids:
            self.pos = self.queue_ids.index(current)
            self._show(current, keep_answer=True)
        elif current is not None and self._exists(current):
            self.pos = min(self.pos, len(self.queue_ids))
            self._show(current, keep_answer=True)
        else:
            self.pos = 0
            self._show_next()
        self.refresh_progress()
        self.refresh_queue_counts()
        self.assist.queue_loaded()

    @Slot(int)
    def _queue_chosen(self, index: int) -> None:
        self.history.clear()
        self.load_queue(QUEUES[index])
        self.setFocus()

    def _exists(self, example_id: int) -> bool:
        return self.context.project.execute("SELECT 1 FROM examples WHERE id = ? AND deleted = 0",
                                            (example_id,)).fetchone() is not None

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
        while self.pos < len(self.queue_ids):
            if self._show(self.queue_ids[self.pos]):
                return
            del self.queue_ids[self.pos]  # deleted meanwhile
        self._show_done()

    def _show_done(self) -> None:
        self.current_id = None
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
        for b in (self.skip_button, self.flag_button, self.accept_button):
            b.hide()
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
        self.back_button.setEnabled(bool(self.history) and bool(self.annotator))

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

        # What is known about it, in one muted line.
        bits = [f"Example {example_id}", example.split]
        if example.status == "flagged":
            bits.append(f"<span style='color:{style.WARN}'>flagged for review</span>")
        if mine is not None and mine.status in ("labelled", "flagged"):
            what = mine.label or "an answer"
            bits.append(f"you said <b>{html.escape(what)}</b>")
        elif example.label and self.schema.uses_labels:
            who = f" by {html.escape(example.annotator)}" if example.annotator else ""
            bits.append(f"labelled <b>{html.escape(example.label)}</b>{who}")
        if self.queue_name in ("disagreements", "flagged"):
            others = [a for a in self.lab.annotations(example_id) if a.annotator != self.annotator
                      and a.status in ("labelled", "flagged")]
            if others:
                bits.append(" \u00b7 ".join(
                    f"{html.escape(a.annotator)}: <b>{html.escape(a.label or (a.answer or '')[:40])}</b>"
                    + (" (flagged)" if a.status == "flagged" else "")
                    + (f" \u2014 \u201c{html.escape(a.comment)}\u201d" if a.comment else "")
                    for a in others))
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
        bits += self.assist.on_show(example_id, has_label=own or (self.queue_name == "review"
                                                                   and self.chosen is not None))
        self.meta.setText("  \u00b7  ".join(bits))

        # The text: system prompt and earlier turns small and muted, the input large.
        parts = []
        if item.system:
            parts.append(f"<p style='color:{style.MUTED}; font-size:{style.FONT_POINT_SIZE}pt'>"
                         f"<b>System</b>: {_para(item.system)}</p>")
        for m in item.context:
            parts.append(f"<p style='color:{style.MUTED}; font-size:{style.FONT_POINT_SIZE}pt'>"
                         f"<b>{html.escape(str(m.get('role', '')).capitalize())}</b>: "
                         f"{_para(str(m.get('content') or ''))}</p>")
        body = item.input if item.input.strip() else "(this example has no text)"
        parts.append(f"<p>{_para(body)}</p>")
        self.text.setHtml("".join(parts))

        for name, b in self._buttons.items():
            b.setChecked(name == self.chosen)
        if self.schema.uses_answer:
            if typed is not None:
                answer = typed
            elif mine is not None and mine.answer:
                answer = mine.answer
            else:
                answer = item.answer or ""
            if self.answer_edit.toPlainText() != answer:
                self.answer_edit.setPlainText(answer)
            self._show_suggestion()
        self._set_action_buttons(True)
        if self.stack.currentWidget() is not self.card:
            self.stack.setCurrentWidget(self.card)
            self.labels_box.show()
            for b in (self.skip_button, self.flag_button, self.accept_button):
                b.show()
        self.shown.emit(example_id)
        if self.schema.uses_answer and self.auto_suggest.isChecked() and example_id not in self.suggestions:
            QTimer.singleShot(0, self.request_suggestion)
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
        on_queue = self.pos < len(self.queue_ids) and self.queue_ids[self.pos] == example_id
        if on_queue:
            if not still:
                del self.queue_ids[self.pos]
            elif action == "skip" and self.queue_name == "todo":
                self.queue_ids.append(self.queue_ids.pop(self.pos))
            else:
                self.pos += 1
        elif example_id in self.queue_ids and not still:
            i = self.queue_ids.index(example_id)
            del self.queue_ids[i]
            if i < self.pos:
                self.pos -= 1
        self.history.append(example_id)
        if self.pos >= len(self.queue_ids) and self.queue_ids and self.queue_name == "todo":
            self.pos = 0  # skipped ones wait at the back: come round to them
        self._show_next()
        self.refresh_progress()
        self._counts_timer.start()

    def back(self) -> None:
        if not self.history:
            self.show_message("Nothing to go back to yet.")
            return
        previous = self.history.pop()
        if previous in self.queue_ids:
            self.pos = self.queue_ids.index(previous)
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
            if self.history and self.history[-1] == example_id:
                self.history.pop()
            if self.lab.in_queue(self.queue_name, example_id, self.annotator):
                if example_id in self.queue_ids:
                    self.queue_ids.remove(example_id)
                self.pos = min(self.pos, len(self.queue_ids))
                self.queue_ids.insert(self.pos, example_id)
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

    # -- suggestions ----------------------------------------------------------------------------

    @Slot()
    def _fill_models(self) -> None:
        if self._closed:
            return
        current = self.model_combo.currentData()
        self._suggest_models = suggestion_models(self.context, self._extra_bases)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for i, m in enumerate(self._suggest_models):
            self.model_combo.addItem(m.title, m.ref.key)
            self.model_combo.setItemData(i, plain_tip(m.base_spec if m.ref.is_base else str(m.ref.adapter_dir)),
                                         Qt.ItemDataRole.ToolTipRole)
        keys = [m.ref.key for m in self._suggest_models]
        if current in keys:
            self.model_combo.setCurrentIndex(keys.index(current))
        self.model_combo.blockSignals(False)

    @Slot(int)
    def _model_chosen(self, _index: int) -> None:
        """Suggestions belong to the model that made them: another model starts afresh."""
        self.suggestions.clear()
        self.suggester.cancel()
        if self.current_id is not None:
            self._show_suggestion()

    def set_suggestion_base(self, spec: str) -> None:
        """Offer ``spec`` (a model folder or hub id) as a base model for suggestions, and choose it."""
        if spec not in self._extra_bases:
            self._extra_bases.append(spec)
        self._fill_models()
        for i, m in enumerate(self._suggest_models):
            if m.base_spec == spec and m.ref.is_base:
                self.model_combo.setCurrentIndex(i)
                return

    def suggestion_model(self) -> SuggestionModel | None:
        i = self.model_combo.currentIndex()
        return self._suggest_models[i] if 0 <= i < len(self._suggest_models) else None

    def request_suggestion(self) -> str:
        if self.current_id is None or not self.schema.uses_answer:
            return "refused"
        model = self.suggestion_model()
        if model is None:
            return "refused"
        example = self.context.project.get_example(self.current_id)
        self.suggestions.pop(self.current_id, None)
        state = self.suggester.request(self.current_id, model, prompt_messages(example, self.schema.template))
        if state != "refused":
            self.suggestion_frame.show()
            self.suggestion_text.setText("Thinking\u2026")
            self.use_button.setEnabled(False)
        return state

    def use_suggestion(self) -> None:
        text = self.suggestions.get(self.current_id) if self.current_id is not None else None
        if not text:
            self.show_message("No suggestion for this example yet: ask for one with Suggest (Ctrl+G).")
            return
        self.answer_edit.setPlainText(text)
        self.answer_edit.setFocus()
        cursor = self.answer_edit.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.answer_edit.setTextCursor(cursor)

    def _show_suggestion(self) -> None:
        text = self.suggestions.get(self.current_id)
        if text is None and not (self.suggester.busy and self.suggester._running_id == self.current_id):
            self.suggestion_frame.hide()
            return
        self.suggestion_frame.show()
        if text is not None:
            self.suggestion_text.setText(f"Suggestion: {text}" if text else "The model suggested nothing.")
            self.use_button.setEnabled(bool(text))

    @Slot(int)
    def _suggest_loading(self, example_id: int) -> None:
        if example_id == self.current_id:
            self.suggestion_frame.show()
            self.suggestion_text.setText("Loading the model (the first time takes a while)\u2026")

    @Slot(int, str)
    def _suggest_piece(self, example_id: int, text: str) -> None:
        if example_id == self.current_id:
            self.suggestion_frame.show()
            shown = self.suggestion_text.text()
            if not shown.startswith("Suggestion: "):
                shown = "Suggestion: "
            self.suggestion_text.setText(shown + text)

    @Slot(int, str)
    def _suggest_finished(self, example_id: int, text: str) -> None:
        self.suggestions[example_id] = text
        if example_id == self.current_id:
            self._show_suggestion()

    @Slot(int, str)
    def _suggest_failed(self, example_id: int, message: str) -> None:
        if example_id == self.current_id:
            self.suggestion_frame.hide()
            self.show_message(message)

    @Slot(int)
    def _suggest_stopped(self, example_id: int) -> None:
        if example_id == self.current_id and not self.suggester.busy:
            self._show_suggestion()

    @Slot(int, str)
    def _suggest_refused(self, example_id: int, holder: str) -> None:
        self.show_message(f"The model is busy ({holder}), so it cannot suggest answers right now. "
                          "You can write the answer yourself; suggestions come back when it is done.")

    @Slot(str)
    def _compute_changed(self, holder: str) -> None:
        self.suggest_button.setEnabled(not holder or holder == self.suggester_holder)

    @property
    def suggester_holder(self) -> str:
        from ftstudio.gui.labelling.suggest import HOLDER

        return HOLDER

    def shutdown(self) -> None:
        """Before the project closes: no timer may read it afterwards, no suggestion may still run."""
        self._closed = True
        self._counts_timer.stop()
        self._message_timer.stop()
        self.suggester.shutdown()
        self.assist.shutdown()


def _para(text: str) -> str:
    if len(text) > RENDER_LIMIT:
        text = text[:RENDER_LIMIT] + f"\n\u2026 {len(text) - RENDER_LIMIT:,} more characters"
    return html.escape(text).replace("\n", "<br>")
