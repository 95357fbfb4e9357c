"""The Label page's answer box: the answer being written, and the model's suggestion for it.

``SuggestionPanel`` holds the answer editor, the choice of model ("Suggestions
from"), Suggest / Use this and the suggestion shown under the answer. The
suggestions themselves come from a ``Suggester`` (one at a time, on a worker);
each belongs to the example it was asked for and to the model that made it.
The Label mode tells the panel which example is on screen (``set_example``).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.labelling.suggest import HOLDER, Suggester, SuggestionModel, suggestion_models
from ftstudio.gui.page_header import section_layout
from ftstudio.gui.plain import plain_tip

ANSWER_POINT_SIZE = style.FONT_POINT_SIZE + 3


def _button(text: str, tip: str) -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tip)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    b.setMinimumHeight(30)
    return b


class SuggestionPanel(QWidget):
    message = Signal(str)  # something to tell the annotator (an error, in words)

    def __init__(self, context: ProjectContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.suggestions: dict[int, str] = {}  # example id -> the current model's suggestion
        self._models: list[SuggestionModel] = []
        self._extra_bases: list[str] = []
        self._example: tuple[int, list[dict[str, Any]]] | None = None  # on screen: id, prompt messages
        self._closed = False

        self.suggester = Suggester(context, self)
        self.suggester.loading.connect(self._loading)
        self.suggester.piece.connect(self._piece)
        self.suggester.finished.connect(self._finished)
        self.suggester.failed.connect(self._failed)
        self.suggester.refused.connect(self._refused)
        self.suggester.stopped.connect(self._stopped)

        answer, head, self.answer_title = section_layout(self, "Answer", margins=(0, 4, 0, 0))
        self.model_combo = QComboBox()
        self.model_combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.model_combo.setToolTip("Which model suggests answers: the base model, or a trained adapter")
        self.model_combo.setMinimumWidth(220)
        head.addWidget(QLabel("Suggestions from"))
        head.addWidget(self.model_combo)
        self.auto_suggest = QCheckBox("For every example")
        self.auto_suggest.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.auto_suggest.setToolTip("Ask the model for a suggestion as soon as each example is shown")
        head.addWidget(self.auto_suggest)
        self.suggest_button = _button("Suggest", "Ask the model for a starting point (Ctrl+G)")
        head.addWidget(self.suggest_button)
        self.answer_edit = QPlainTextEdit()
        self.answer_edit.setObjectName("AnswerEdit")
        self.answer_edit.setPlaceholderText("Write the answer the model should give. Ctrl+Enter accepts it.")
        font = QFont(self.answer_edit.font())
        font.setPointSize(ANSWER_POINT_SIZE)
        self.answer_edit.setFont(font)
        self.answer_edit.setMinimumHeight(90)
        answer.addWidget(self.answer_edit, 1)
        self.suggestion_frame = QFrame()
        self.suggestion_frame.setObjectName("Suggestion")
        row = QHBoxLayout(self.suggestion_frame)
        row.setContentsMargins(12, 8, 8, 8)
        self.suggestion_text = QLabel()
        self.suggestion_text.setWordWrap(True)
        self.suggestion_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.suggestion_text.setTextFormat(Qt.TextFormat.PlainText)
        row.addWidget(self.suggestion_text, 1)
        self.use_button = _button(
            "Use this", "Put the suggestion into the answer box to accept or rewrite (Ctrl+U)"
        )
        row.addWidget(self.use_button, 0, Qt.AlignmentFlag.AlignTop)
        answer.addWidget(self.suggestion_frame)
        self.suggest_button.clicked.connect(self.request_suggestion)
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        self.use_button.clicked.connect(self.use_suggestion)

        context.compute.changed.connect(self._compute_changed)
        context.runs_changed.connect(self.fill_models)  # a finished run's adapter can suggest too
        self.fill_models()

    # -- the example on screen ---------------------------------------------------------------

    @property
    def current_id(self) -> int | None:
        return self._example[0] if self._example is not None else None

    def set_example(
        self, example_id: int | None, prompt: list[dict[str, Any]] | None = None, answer: str | None = None
    ) -> None:
        """``example_id`` is on screen (None: none is), asking with ``prompt``, answered ``answer``."""
        self._example = (example_id, prompt or []) if example_id is not None else None
        if answer is not None and self.answer_edit.toPlainText() != answer:
            self.answer_edit.setPlainText(answer)
        if example_id is None:
            return
        self._show_suggestion()
        if self.auto_suggest.isChecked() and example_id not in self.suggestions:
            QTimer.singleShot(0, self.request_suggestion)

    # -- models ------------------------------------------------------------------------------

    @Slot()
    def fill_models(self) -> None:
        if self._closed:
            return
        current = self.model_combo.currentData()
        self._models = suggestion_models(self.context, self._extra_bases)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for i, m in enumerate(self._models):
            self.model_combo.addItem(m.title, m.ref.key)
            self.model_combo.setItemData(
                i,
                plain_tip(m.base_spec if m.ref.is_base else str(m.ref.adapter_dir)),
                Qt.ItemDataRole.ToolTipRole,
            )
        keys = [m.ref.key for m in self._models]
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
        self.fill_models()
        for i, m in enumerate(self._models):
            if m.base_spec == spec and m.ref.is_base:
                self.model_combo.setCurrentIndex(i)
                return

    def suggestion_model(self) -> SuggestionModel | None:
        i = self.model_combo.currentIndex()
        return self._models[i] if 0 <= i < len(self._models) else None

    # -- suggestions -------------------------------------------------------------------------

    def request_suggestion(self) -> str:
        model = self.suggestion_model()
        if self._example is None or model is None:
            return "refused"
        example_id, prompt = self._example
        self.suggestions.pop(example_id, None)
        state = self.suggester.request(example_id, model, prompt)
        if state != "refused":
            self.suggestion_frame.show()
            self.suggestion_text.setText("Thinking\u2026")
            self.use_button.setEnabled(False)
        return state

    def use_suggestion(self) -> None:
        text = self.suggestions.get(self.current_id) if self.current_id is not None else None
        if not text:
            self.message.emit("No suggestion for this example yet: ask for one with Suggest (Ctrl+G).")
            return
        self.answer_edit.setPlainText(text)
        self.answer_edit.setFocus()
        cursor = self.answer_edit.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.answer_edit.setTextCursor(cursor)

    def _show_suggestion(self) -> None:
        example_id = self.current_id
        text = self.suggestions.get(example_id) if example_id is not None else None
        if text is None and not (self.suggester.busy and self.suggester.running_for == example_id):
            self.suggestion_frame.hide()
            return
        self.suggestion_frame.show()
        if text is not None:
            self.suggestion_text.setText(f"Suggestion: {text}" if text else "The model suggested nothing.")
            self.use_button.setEnabled(bool(text))

    @Slot(int)
    def _loading(self, example_id: int) -> None:
        if example_id == self.current_id:
            self.suggestion_frame.show()
            self.suggestion_text.setText("Loading the model (the first time takes a while)\u2026")

    @Slot(int, str)
    def _piece(self, example_id: int, text: str) -> None:
        if example_id == self.current_id:
            self.suggestion_frame.show()
            shown = self.suggestion_text.text()
            if not shown.startswith("Suggestion: "):
                shown = "Suggestion: "
            self.suggestion_text.setText(shown + text)

    @Slot(int, str)
    def _finished(self, example_id: int, text: str) -> None:
        self.suggestions[example_id] = text
        if example_id == self.current_id:
            self._show_suggestion()

    @Slot(int, str)
    def _failed(self, example_id: int, message: str) -> None:
        if example_id == self.current_id:
            self.suggestion_frame.hide()
            self.message.emit(message)

    @Slot(int)
    def _stopped(self, example_id: int) -> None:
        if example_id == self.current_id and not self.suggester.busy:
            self._show_suggestion()

    @Slot(int, str)
    def _refused(self, example_id: int, holder: str) -> None:
        self.message.emit(
            f"The model is busy ({holder}), so it cannot suggest answers right now. "
            "You can write the answer yourself; suggestions come back when it is done."
        )

    @Slot(str)
    def _compute_changed(self, holder: str) -> None:
        self.suggest_button.setEnabled(not holder or holder == HOLDER)

    def shutdown(self) -> None:
        self._closed = True
        self.suggester.shutdown()
