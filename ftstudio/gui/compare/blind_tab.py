"""Blind rating for domain experts: two or more answers to one prompt, in a
random order, with no model names. The expert picks the better one, a tie,
or "both bad"; the vote (with the shown order) is saved at once and the next
prompt comes up.

Keys: 1..9 pick an answer, T tie, B both bad, S skip. Typing in the comment
box never votes: the line edit keeps its keys to itself."""

from __future__ import annotations

import random
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QScrollArea, QSpinBox, QTextBrowser,
    QVBoxLayout, QWidget,
)

from ftstudio.core import ratings
from ftstudio.gui import style


@dataclass
class BlindItem:
    """One prompt ready to rate: the stored generations, one per model."""

    prompt_index: int
    generation_ids: list[int]  # in model order; shuffled when shown


class BlindTab(QWidget):
    start_requested = Signal()
    stop_requested = Signal()
    voted = Signal(int)  # vote id

    def __init__(self, context, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.rng = random.Random()
        self.queue: list[BlindItem] = []
        self.current: BlindItem | None = None
        self.shown: list[int] = []  # generation ids in the order on screen
        self.total = 0
        self.votes_cast = 0
        self.generating = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(10)

        self.name_row = QWidget()
        nr = QHBoxLayout(self.name_row)
        nr.setContentsMargins(0, 0, 0, 0)
        nr.addWidget(QLabel("Your name (goes on each vote):"))
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. Dr. Rivera")
        self.name_edit.setMaximumWidth(260)
        nr.addWidget(self.name_edit)
        nr.addStretch(1)
        layout.addWidget(self.name_row)

        bar = QHBoxLayout()
        self.start_button = QPushButton("Start blind round")
        self.start_button.setProperty("primary", True)
        self.start_button.setToolTip("Answers from the checked models to the chosen prompts, shown without names.")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        bar.addWidget(self.start_button)
        bar.addWidget(self.stop_button)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Answers per prompt"))
        self.per_prompt = QSpinBox()
        self.per_prompt.setRange(2, 9)
        self.per_prompt.setValue(2)
        self.per_prompt.setToolTip("How many models' answers to put side by side (chosen at random per prompt).")
        bar.addWidget(self.per_prompt)
        self.status = QLabel("Check two or more models on the left, then start.")
        self.status.setObjectName("Hint")
        self.status.setWordWrap(True)
        bar.addWidget(self.status, 1)
        layout.addLayout(bar)

        self.message = QLabel()
        self.message.setObjectName("Problem")
        self.message.setWordWrap(True)
        self.message.hide()
        layout.addWidget(self.message)

        self.prompt_card = QFrame()
        self.prompt_card.setObjectName("Card")
        pl = QVBoxLayout(self.prompt_card)
        pl.setContentsMargins(14, 10, 14, 12)
        self.prompt_title = QLabel("Prompt")
        self.prompt_title.setObjectName("SectionTitle")
        self.prompt_text = QLabel()
        self.prompt_text.setWordWrap(True)
        self.prompt_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.prompt_text.font()
        font.setPointSize(style.FONT_POINT_SIZE + 2)
        self.prompt_text.setFont(font)
        pl.addWidget(self.prompt_title)
        pl.addWidget(self.prompt_text)
        layout.addWidget(self.prompt_card)

        self.answers_box = QWidget()
        self.answers_grid = QGridLayout(self.answers_box)
        self.answers_grid.setContentsMargins(0, 0, 0, 0)
        self.answers_grid.setHorizontalSpacing(12)
        layout.addWidget(self.answers_box, 1)
        self.answer_views: list[QWidget] = []  # each answer's title and text view
        self.pick_buttons: list[QPushButton] = []

        choice = QHBoxLayout()
        self.tie_button = QPushButton("T   About the same")
        self.both_bad_button = QPushButton("B   Both bad")
        self.skip_button = QPushButton("S   Skip")
        for b in (self.tie_button, self.both_bad_button, self.skip_button):
            b.setMinimumHeight(34)
        choice.addStretch(1)
        choice.addWidget(self.tie_button)
        choice.addWidget(self.both_bad_button)
        choice.addWidget(self.skip_button)
        choice.addStretch(1)
        layout.addLayout(choice)

        comment_row = QHBoxLayout()
        comment_row.addWidget(QLabel("Comment (optional):"))
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Why? Saved with your vote.")
        comment_row.addWidget(self.comment, 1)
        layout.addLayout(comment_row)

        self.start_button.clicked.connect(self.start_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.tie_button.clicked.connect(lambda: self.vote("tie"))
        self.both_bad_button.clicked.connect(lambda: self.vote("both_bad"))
        self.skip_button.clicked.connect(self.skip)
        self.name_edit.editingFinished.connect(self._name_entered)
        context.actor_changed.connect(self._on_actor_changed)
        self._on_actor_changed(context.actor)
        self._set_choice_enabled(False)
        self._show_empty("No answers to rate yet.")

    # -- the voter ----------------------------------------------------------------------

    def _on_actor_changed(self, name: str) -> None:
        self.name_row.setVisible(not name)
        if name and self.name_edit.text() != name:
            self.name_edit.setText(name)

    def _name_entered(self) -> None:
        name = self.name_edit.text().strip()
        if name:
            self.context.set_actor(name)

    def voter(self) -> str:
        return self.context.actor or self.name_edit.text().strip()

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # -- the round ----------------------------------------------------------------------

    def begin(self, total: int, prompt_texts: list[str]) -> None:
        self.queue.clear()
        self.current = None
        self.total = total
        self.votes_cast = 0
        self.prompt_texts = prompt_texts
        self.show_message("")
        self._show_empty("Preparing the first answers…")
        self._update_status()

    def set_generating(self, generating: bool) -> None:
        self.generating = generating
        self.start_button.setEnabled(not generating)
        self.stop_button.setEnabled(generating)
        if not generating and self.current is None and not self.queue:
            self._show_empty("All done: every prompt of this round has a vote or was skipped."
                             if self.total else "No answers to rate yet.")
        self._update_status()

    def add_item(self, item: BlindItem) -> None:
        self.queue.append(item)
        if self.current is None:
            self._next()
        self._update_status()

    def _next(self) -> None:
        self.comment.clear()
        if not self.queue:
            self.current = None
            self.shown = []
            self._show_empty("Preparing the next answers…" if self.generating else
                             "All done: every prompt of this round has a vote or was skipped.")
            self._update_status()
            return
        self.current = self.queue.pop(0)
        self.shown = list(self.current.generation_ids)
        self.rng.shuffle(self.shown)
        gens = ratings.get_generations(self.context.project, self.shown)
        self.prompt_title.setText("Prompt")
        self.prompt_text.setText(ratings.prompt_text(gens[self.shown[0]].prompt))
        self._build_answers([gens[g].output for g in self.shown])
        self._set_choice_enabled(True)
        self._update_status()
        self.setFocus()

    def _build_answers(self, outputs: list[str]) -> None:
        for w in self.answer_views + self.pick_buttons:
            w.setParent(None)
            w.deleteLater()
        self.answer_views, self.pick_buttons = [], []
        for n, text in enumerate(outputs):
            title = QLabel(f"Answer {n + 1}")
            title.setObjectName("SectionTitle")
            view = QTextBrowser()
            font = view.font()
            font.setPointSize(style.FONT_POINT_SIZE + 1)
            view.setFont(font)
            view.setPlainText(text if text.strip() else "(empty answer)")
            view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button = QPushButton(f"{n + 1}   Answer {n + 1} is better")
            button.setMinimumHeight(34)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _checked=False, n=n: self.vote("pick", n))
            self.answers_grid.addWidget(title, 0, n)
            self.answers_grid.addWidget(view, 1, n)
            self.answers_grid.addWidget(button, 2, n)
            self.answer_views.append(view)
            self.pick_buttons.append(button)
            self.answer_views.append(title)  # removed with the rest on the next prompt

    def _show_empty(self, text: str) -> None:
        self.prompt_title.setText("")
        self.prompt_text.setText(text)
        self._build_answers([])
        self._set_choice_enabled(False)

    def _set_choice_enabled(self, on: bool) -> None:
        for b in (self.tie_button, self.both_bad_button, self.skip_button, *self.pick_buttons):
            b.setEnabled(on)

    def _update_status(self) -> None:
        if not self.total:
            return
        rated = self.total - len(self.queue) - (1 if self.current else 0)
        waiting = "" if not self.generating else " · preparing more answers"
        voter = f"Voting as {self.voter()} · " if self.voter() else ""
        self.status.setText(f"{voter}{self.votes_cast} vote{'s' if self.votes_cast != 1 else ''} saved · "
                            f"{max(0, self.total - rated)} of {self.total} prompts left{waiting}")

    def displayed_generation_ids(self) -> list[int]:
        """The generation ids in the order the answers are on screen."""
        return list(self.shown)

    def displayed_texts(self) -> list[str]:
        return [v.toPlainText() for v in self.answer_views if isinstance(v, QTextBrowser)]

    # -- voting -------------------------------------------------------------------------

    def vote(self, verdict: str, pick: int | None = None) -> int | None:
        if self.current is None:
            return None
        voter = self.voter()
        if not voter:
            self.show_message("Type your name above first: it goes on every vote.")
            self.name_edit.setFocus()
            return None
        if not self.context.actor:
            self.context.set_actor(voter)
        chosen = self.shown[pick] if verdict == "pick" and pick is not None and pick < len(self.shown) else None
        if verdict == "pick" and chosen is None:
            return None
        vote_id = ratings.add_vote(self.context.project, self.shown, verdict, voter, chosen=chosen,
                                   comment=self.comment.text().strip() or None)
        self.votes_cast += 1
        self.show_message("")
        self.voted.emit(vote_id)
        self._next()
        return vote_id

    def skip(self) -> None:
        if self.current is not None:
            self._next()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        key = event.key()
        if self.current is not None and event.modifiers() in (Qt.KeyboardModifier.NoModifier,
                                                              Qt.KeyboardModifier.KeypadModifier):
            if Qt.Key.Key_1 <= key <= Qt.Key.Key_9 and key - Qt.Key.Key_1 < len(self.shown):
                self.vote("pick", key - Qt.Key.Key_1)
                return
            if key == Qt.Key.Key_T:
                self.vote("tie")
                return
            if key == Qt.Key.Key_B:
                self.vote("both_bad")
                return
            if key == Qt.Key.Key_S:
                self.skip()
                return
        super().keyPressEvent(event)


def scrolled(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(widget)
    return area
