"""The editor for one example: system prompt, turns, label, status, split.

Edits are saved as they are typed, a moment after the last keystroke, as one
journal entry each; so nothing typed is lost and Ctrl+Z steps back through
what was saved. The text boxes leave Ctrl+Z to the window for that reason.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QKeyCombination, QObject, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox, QCompleter, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
    QScrollArea, QSizePolicy, QVBoxLayout, QWidget,
)

from ftstudio.core.examples import ROLES, SPLITS, STATUSES, Example, check_conversation
from ftstudio.gui.context import ProjectContext

SAVE_DELAY_MS = 400
TURN_ROLES = tuple(r for r in ROLES if r != "system")
ROLE_PLACEHOLDERS = {"user": "What the user writes", "assistant": "The answer the model should learn to give",
                     "tool": "What the tool gave back"}
# Redo as Ctrl+Shift+Z too, where the platform's StandardKey.Redo is another key.
CTRL_SHIFT_Z = QKeyCombination(Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
                               Qt.Key.Key_Z).toCombined()


class _LeaveUndoToWindow(QObject):
    """Lets Ctrl+Z / Ctrl+Shift+Z reach the window's journal undo instead of the text box."""

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and (
                event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo)
                or event.keyCombination().toCombined() == CTRL_SHIFT_Z):
            event.ignore()
            return True
        return False


class GrowingTextEdit(QPlainTextEdit):
    """A text box as tall as its text (within limits), so turns read like a chat."""

    def __init__(self, min_lines: int = 2, max_lines: int = 14, parent=None) -> None:
        super().__init__(parent)
        self._min_lines, self._max_lines = min_lines, max_lines
        self.setUndoRedoEnabled(False)
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def _fit(self, *_args) -> None:
        line = self.fontMetrics().lineSpacing()
        lines = max(self._min_lines, min(self._max_lines, int(self.document().size().height())))
        margins = self.contentsMargins()
        chrome = int(2 * self.document().documentMargin()) + margins.top() + margins.bottom() + 4
        self.setFixedHeight(lines * line + chrome)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():  # lines wrap anew at a new width
            self._fit()

    def sizeHint(self) -> QSize:
        return QSize(300, self.height())


class TurnEditor(QFrame):
    changed = Signal()
    remove_requested = Signal(object)
    move_requested = Signal(object, int)

    def __init__(self, message: dict, undo_filter: QObject, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("TurnCard")
        self._extra = {k: v for k, v in message.items() if k not in ("role", "content")}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        head = QHBoxLayout()
        head.setSpacing(4)
        self.role = QComboBox()
        self.role.addItems(TURN_ROLES)
        role = str(message.get("role") or "user")
        if role not in TURN_ROLES:
            self.role.addItem(role)
        self.role.setCurrentText(role)
        self.role.currentTextChanged.connect(self.changed)
        head.addWidget(self.role)
        head.addStretch(1)
        self.up = self._button("\u2191", "Move this turn up", lambda: self.move_requested.emit(self, -1))
        self.down = self._button("\u2193", "Move this turn down", lambda: self.move_requested.emit(self, 1))
        self.remove = self._button("\u2715", "Remove this turn", lambda: self.remove_requested.emit(self))
        for b in (self.up, self.down, self.remove):
            head.addWidget(b)
        layout.addLayout(head)
        self.text = GrowingTextEdit()
        self.text.setPlainText(str(message.get("content") or ""))
        self._set_placeholder(self.role.currentText())
        self.role.currentTextChanged.connect(self._set_placeholder)
        self.text.installEventFilter(undo_filter)
        self.text.textChanged.connect(self.changed)
        layout.addWidget(self.text)

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        b = QPushButton(text)
        b.setProperty("flat", True)
        b.setToolTip(tip)
        b.setFixedWidth(28)
        b.clicked.connect(slot)
        return b

    @Slot(str)
    def _set_placeholder(self, role: str) -> None:
        self.text.setPlaceholderText(ROLE_PLACEHOLDERS.get(role, ""))

    def message(self) -> dict:
        return {"role": self.role.currentText(), "content": self.text.toPlainText(), **self._extra}


class ConversationEditor(QWidget):
    """Edits the example set with ``set_example``; saves through the project's journal."""

    saved = Signal(int)  # example id, after each save

    def __init__(self, context: ProjectContext, parent=None) -> None:
        super().__init__(parent)
        self._context = context
        self._example: Example | None = None
        self._loading = False
        self._undo_filter = _LeaveUndoToWindow(self)
        self._turns: list[TurnEditor] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self._empty = QLabel("Select an example in the table to edit it, or press Add to write a new one.")
        self._empty.setObjectName("Hint")
        self._empty.setWordWrap(True)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(self._empty)

        self._body = QWidget()
        body = QVBoxLayout(self._body)
        body.setContentsMargins(12, 10, 12, 10)
        body.setSpacing(8)
        head = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("SectionTitle")
        head.addWidget(self.title)
        head.addStretch(1)
        self.state = QLabel()
        self.state.setTextFormat(Qt.TextFormat.PlainText)  # the annotator's name comes from data
        self.state.setObjectName("Hint")
        head.addWidget(self.state)
        body.addLayout(head)

        form = QFormLayout()
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(6)
        meta = QHBoxLayout()
        self.split = QComboBox()
        self.split.addItems(SPLITS)
        self.split.setToolTip("train: the model learns from it; eval: held out to measure it")
        self.status = QComboBox()
        self.status.addItems(STATUSES)
        meta.setSpacing(6)
        meta.addWidget(QLabel("Split"))
        meta.addWidget(self.split)
        meta.addSpacing(14)
        meta.addWidget(QLabel("Status"))
        meta.addWidget(self.status)
        meta.addStretch(1)
        self.label = QLineEdit()
        self.label.setPlaceholderText("no label")
        self.label.installEventFilter(self._undo_filter)
        self.system = GrowingTextEdit(min_lines=2, max_lines=8)
        self.system.setPlaceholderText("No system prompt")
        self.system.installEventFilter(self._undo_filter)
        form.addRow(meta)
        form.addRow("Label", self.label)
        form.addRow("System", self.system)
        body.addLayout(form)

        turns_title = QLabel("Turns")
        turns_title.setObjectName("SectionTitle")
        body.addWidget(turns_title)
        self._turns_box = QVBoxLayout()
        self._turns_box.setSpacing(6)
        body.addLayout(self._turns_box)
        add_row = QHBoxLayout()
        self.add_turn_button = QPushButton("Add turn")
        self.add_turn_button.clicked.connect(self.add_turn)
        add_row.addWidget(self.add_turn_button)
        add_row.addStretch(1)
        body.addLayout(add_row)
        self.problem = QLabel()
        self.problem.setObjectName("Problem")
        self.problem.setWordWrap(True)
        body.addWidget(self.problem)
        body.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._body)
        self._scroll = scroll
        outer.addWidget(scroll)
        scroll.hide()

        self.split.currentTextChanged.connect(self._edited)
        self.status.currentTextChanged.connect(self._edited)
        self.label.textEdited.connect(self._edited)
        self.system.textChanged.connect(self._edited)
        context.examples_changed.connect(self._examples_changed)

    # -- which example --------------------------------------------------------------

    @property
    def example_id(self) -> int | None:
        return None if self._example is None else self._example.id

    def set_example(self, example_id: int | None) -> None:
        if self.example_id == example_id and example_id is not None:
            return
        self.save_now()
        self._load(example_id)

    def set_label_choices(self, labels: list[str]) -> None:
        completer = QCompleter(labels, self.label)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.label.setCompleter(completer)

    def _load(self, example_id: int | None) -> None:
        try:
            self._example = None if example_id is None else self._context.project.get_example(example_id)
        except KeyError:  # deleted meanwhile
            self._example = None
        ex = self._example
        self._scroll.setVisible(ex is not None)
        self._empty.setVisible(ex is None)
        if ex is None:
            return
        self._loading = True
        try:
            self.title.setText(f"Example {ex.id}")
            self.state.setText(f"by {ex.annotator}" if ex.annotator else "")
            self.split.setCurrentText(ex.split)
            self.status.setCurrentText(ex.status)
            if self.label.text() != (ex.label or ""):
                self.label.setText(ex.label or "")
            if self.system.toPlainText() != (ex.system or ""):
                self.system.setPlainText(ex.system or "")
            self._set_turns(ex.messages)
        finally:
            self._loading = False
        self._show_problem()

    def _set_turns(self, messages: list[dict]) -> None:
        if len(messages) == len(self._turns):
            for turn, m in zip(self._turns, messages):
                if turn.message() != m:
                    turn.role.setCurrentText(str(m.get("role") or "user"))
                    turn._extra = {k: v for k, v in m.items() if k not in ("role", "content")}
                    if turn.text.toPlainText() != str(m.get("content") or ""):
                        turn.text.setPlainText(str(m.get("content") or ""))
            self._update_turn_buttons()
            return
        for turn in self._turns:
            self._turns_box.removeWidget(turn)
            turn.deleteLater()
        self._turns = []
        for m in messages:
            self._append_turn(m)
        self._update_turn_buttons()

    def _append_turn(self, message: dict) -> TurnEditor:
        turn = TurnEditor(message, self._undo_filter)
        turn.changed.connect(self._edited)
        turn.remove_requested.connect(self._remove_turn)
        turn.move_requested.connect(self._move_turn)
        self._turns.append(turn)
        self._turns_box.addWidget(turn)
        return turn

    def _update_turn_buttons(self) -> None:
        for i, turn in enumerate(self._turns):
            turn.up.setEnabled(i > 0)
            turn.down.setEnabled(i < len(self._turns) - 1)

    # -- editing --------------------------------------------------------------------

    def turn_editors(self) -> list[TurnEditor]:
        return list(self._turns)

    def messages(self) -> list[dict]:
        return [t.message() for t in self._turns]

    @Slot()
    def add_turn(self) -> None:
        if self._example is None:
            return
        last = self._turns[-1].role.currentText() if self._turns else "assistant"
        turn = self._append_turn({"role": "assistant" if last == "user" else "user", "content": ""})
        self._update_turn_buttons()
        self._edited()
        turn.text.setFocus()

    @Slot(object)
    def _remove_turn(self, turn: TurnEditor) -> None:
        self._turns.remove(turn)
        self._turns_box.removeWidget(turn)
        turn.deleteLater()
        self._update_turn_buttons()
        self._edited()

    @Slot(object, int)
    def _move_turn(self, turn: TurnEditor, step: int) -> None:
        i = self._turns.index(turn)
        j = i + step
        if not 0 <= j < len(self._turns):
            return
        self._turns[i], self._turns[j] = self._turns[j], self._turns[i]
        self._turns_box.removeWidget(turn)
        self._turns_box.insertWidget(j, turn)
        self._update_turn_buttons()
        self._edited()

    @Slot()
    def _edited(self, *_args) -> None:
        if self._loading or self._example is None:
            return
        self.state.setText("Saving\u2026")
        self._timer.start()

    def has_pending_edit(self) -> bool:
        return self._timer.isActive()

    def _changes(self) -> dict:
        ex = self._example
        if ex is None:
            return {}
        label = self.label.text().strip() or None
        wanted = {"messages": self.messages(), "system": self.system.toPlainText() or None,
                  "split": self.split.currentText(), "status": self.status.currentText(), "label": label}
        current = {"messages": ex.messages, "system": ex.system, "split": ex.split, "status": ex.status,
                   "label": ex.label}
        return {k: v for k, v in wanted.items() if v != current[k]}

    @Slot()
    def save_now(self) -> None:
        """Write pending edits now (before undo, switching examples, closing)."""
        self._timer.stop()
        changes = self._changes()
        if not changes or self._example is None:
            if self._example is not None and self.state.text().startswith("Saving"):
                self.state.setText("Saved")
            return
        example_id = self._example.id
        actor = self._context.author
        self._context.project.update_example(example_id, actor=actor, **changes)
        self._example = self._context.project.get_example(example_id)
        self.state.setText("Saved")
        self._show_problem()
        self._loading = True  # our own change: the fields already show it
        try:
            self._context.examples_changed.emit([example_id])
        finally:
            self._loading = False
        self.saved.emit(example_id)

    def _show_problem(self) -> None:
        ex = self._example
        wrong = check_conversation(ex.conversation(), require_answer=False) if ex else None
        self.problem.setText(f"This example is left out of training: {wrong}." if wrong else "")
        self.problem.setVisible(bool(wrong))

    @Slot(list)
    def _examples_changed(self, ids: list) -> None:
        if self._loading or self._example is None:
            return
        if not ids or self._example.id in ids:
            self._timer.stop()
            self._load(self._example.id)
