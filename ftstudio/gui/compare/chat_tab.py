"""Talk to the base model or any adapter, switching models mid-conversation.
Each assistant bubble says which model wrote it; answers stream in."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox, QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QScrollArea, QVBoxLayout, QWidget,
)

from ftstudio.engine.comparison import ModelRef
from ftstudio.gui import style

FLUSH_MS = 60


class Bubble(QFrame):
    def __init__(self, role: str, text: str, author: str, parent=None) -> None:
        super().__init__(parent)
        self.role = role
        user = role == "user"
        bg = style.ACCENT_SOFT if user else style.SURFACE
        self.setStyleSheet(f"Bubble {{ background: {bg}; border: 1px solid {style.BORDER}; border-radius: 10px; }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 8)
        layout.setSpacing(2)
        self.author = QLabel(author)
        self.author.setObjectName("Hint")
        self.text = QLabel(text)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.author)
        layout.addWidget(self.text)

    def append(self, text: str) -> None:
        self.set_text(self.text.text() + text)

    def set_text(self, text: str) -> None:
        self.text.setText(text)
        self.fit()

    def fit(self) -> None:
        """As wide as the longest line needs, up to the width the thread allows."""
        metrics = self.text.fontMetrics()
        lines = (self.text.text() or " ").split("\n") + [self.author.text()]
        wanted = max(metrics.horizontalAdvance(line) for line in lines) + 30
        self.setMinimumWidth(min(wanted, self.maximumWidth()))


class ChatTab(QWidget):
    send_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.messages: list[dict] = []
        self.bubbles: list[Bubble] = []
        self.models: list[str] = []  # the model key behind each assistant message, in order
        self._pending: list[str] = []
        self._writing: Bubble | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)

        self.thread_scroll = QScrollArea()
        self.thread_scroll.setWidgetResizable(True)
        self.thread_scroll.setStyleSheet(f"QScrollArea {{ background: {style.WINDOW}; border: 1px solid {style.BORDER}; "
                                  "border-radius: 6px; }")
        holder = QWidget()
        self.thread_layout = QVBoxLayout(holder)
        self.thread_layout.setContentsMargins(12, 12, 12, 12)
        self.thread_layout.setSpacing(8)
        self.empty = QLabel("Ask something. You can switch models between turns; each answer says who wrote it.")
        self.empty.setObjectName("Hint")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thread_layout.addWidget(self.empty)
        self.thread_layout.addStretch(1)
        self.thread_scroll.setWidget(holder)
        layout.addWidget(self.thread_scroll, 1)

        row = QHBoxLayout()
        row.addWidget(QLabel("Answer with"))
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(260)
        row.addWidget(self.model_combo)
        row.addStretch(1)
        self.new_button = QPushButton("New conversation")
        row.addWidget(self.new_button)
        layout.addLayout(row)

        input_row = QHBoxLayout()
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Type a message; Ctrl+Enter sends.")
        self.input.setMaximumHeight(90)
        self.send_button = QPushButton("Send")
        self.send_button.setProperty("primary", True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        input_row.addWidget(self.input, 1)
        input_row.addLayout(buttons)
        layout.addLayout(input_row)
        self.message = QLabel()
        self.message.setObjectName("Problem")
        self.message.setWordWrap(True)
        self.message.hide()
        layout.addWidget(self.message)

        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self._flush)
        self.send_button.clicked.connect(self.send_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.new_button.clicked.connect(self.clear)
        self.input.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if (obj is self.input and event.type() == QEvent.Type.KeyPress
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            if self.send_button.isEnabled():
                self.send_requested.emit()
            return True
        return super().eventFilter(obj, event)

    def set_models(self, refs: list[ModelRef]) -> None:
        current = self.model_combo.currentData()
        self.model_combo.clear()
        for ref in refs:
            self.model_combo.addItem(ref.label, ref)
        keys = [r.key for r in refs]
        if current is not None and current.key in keys:
            self.model_combo.setCurrentIndex(keys.index(current.key))

    def selected_ref(self) -> ModelRef | None:
        return self.model_combo.currentData()

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def clear(self) -> None:
        for b in self.bubbles:
            b.setParent(None)
            b.deleteLater()
        self.bubbles.clear()
        self.messages.clear()
        self.models.clear()
        self.empty.show()

    def _add_bubble(self, role: str, text: str, author: str) -> Bubble:
        self.empty.hide()
        bubble = Bubble(role, text, author)
        wrap = QHBoxLayout()
        bubble.setMaximumWidth(self._bubble_width())
        bubble.fit()
        if role == "user":
            wrap.addStretch(1)
            wrap.addWidget(bubble)
        else:
            wrap.addWidget(bubble)
            wrap.addStretch(1)
        self.thread_layout.insertLayout(self.thread_layout.count() - 1, wrap)
        self.bubbles.append(bubble)
        QTimer.singleShot(0, self.thread_scroll, self._scroll_down)  # dropped if the tab is gone by then
        return bubble

    def _bubble_width(self) -> int:
        return max(320, int(self.thread_scroll.viewport().width() * 0.78))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        for bubble in self.bubbles:
            bubble.setMaximumWidth(self._bubble_width())
            bubble.fit()

    def _scroll_down(self) -> None:
        bar = self.thread_scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    def begin_turn(self, text: str, ref: ModelRef) -> list[dict]:
        """Show the user's message and an empty answer bubble; returns the messages to answer."""
        self.messages.append({"role": "user", "content": text})
        self._add_bubble("user", text, "You")
        self._writing = self._add_bubble("assistant", "", f"{ref.label} · writing…")
        self._writing.setProperty("model_key", ref.key)
        self.input.clear()
        self._timer.start()
        return list(self.messages)

    def add_piece(self, text: str) -> None:
        self._pending.append(text)

    def _flush(self) -> None:
        if self._pending and self._writing is not None:
            self._writing.append("".join(self._pending))
            self._pending.clear()
            self._scroll_down()

    def end_turn(self, ref: ModelRef, text: str | None) -> None:
        """The answer is complete (``text``) or was stopped / failed (None: the turn is dropped)."""
        self._timer.stop()
        self._pending.clear()
        bubble, self._writing = self._writing, None
        if bubble is None:
            return
        if text is None:
            bubble.author.setText(f"{ref.label} · stopped")
            self.messages.pop()  # the question stays on screen but leaves the context
            return
        bubble.author.setText(ref.label)
        bubble.set_text(text)
        self.messages.append({"role": "assistant", "content": text})
        self.models.append(ref.key)

    def set_running(self, running: bool) -> None:
        self.send_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
