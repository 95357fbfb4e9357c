"""Answers side by side: one column per model, the reference beside them,
and a word-level difference view between any two columns.

Pieces arrive from the worker one token at a time; they are collected in a
buffer and shown on a short timer, so a fast model never floods the GUI."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSplitter, QStackedWidget, QTextBrowser,
    QToolButton, QVBoxLayout, QWidget,
)

from ftstudio.core import ratings
from ftstudio.engine.comparison import ModelRef, PromptItem
from ftstudio.gui import style
from ftstudio.gui.compare.diff import similarity, word_diff_html
from ftstudio.gui.guide import GUIDE_LINE, connect_guide_link

FLUSH_MS = 60
REFERENCE_KEY = "reference"


class ElidedLabel(QLabel):
    """One line of text, cut with "…" to the width it is given; the whole text in the tooltip.

    ``mode`` ElideMiddle suits names that differ at their end, such as run ids."""

    def __init__(self, text: str = "", parent=None, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight) -> None:
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._full = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        QLabel.setText(self, self.fontMetrics().elidedText(self._full, self._mode,
                                                           max(20, self.width())))


class AnswerColumn(QFrame):
    """A card with the model's name on top and its answer below."""

    def __init__(self, title: str, subtitle: str = "", reference: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 10)
        layout.setSpacing(4)
        self.title = ElidedLabel(title, mode=Qt.TextElideMode.ElideMiddle)
        self.title.setObjectName("SectionTitle")
        self.subtitle = ElidedLabel(subtitle)
        self.subtitle.setObjectName("Hint")
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        if reference:
            self.text.setStyleSheet(f"QTextBrowser {{ background: {style.WINDOW}; }}")
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addWidget(self.text, 1)

    def set_text(self, text: str) -> None:
        if self.text.toPlainText() != text:
            self.text.setPlainText(text)

    def append(self, text: str) -> None:
        cursor = self.text.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())


class CompareTab(QWidget):
    run_requested = Signal()
    stop_requested = Signal()
    piece_received = Signal(int, str, str)  # prompt index, model key, streamed text

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompts: list[PromptItem] = []
        self.refs: list[ModelRef] = []
        self.texts: list[dict[str, str]] = []
        self.finished: list[set[str]] = []
        self.generation_ids: list[dict[str, int]] = []
        self._pending: dict[tuple[int, str], list[str]] = {}
        self._columns: dict[str, AnswerColumn] = {}
        self._follow = True
        self.current = -1

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)

        bar = QHBoxLayout()
        self.run_button = QPushButton("Generate answers")
        self.run_button.setProperty("primary", True)
        self.run_button.setToolTip("Answer the chosen prompts with every checked model, one after another.")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.status = ElidedLabel("")
        self.status.setObjectName("Hint")
        bar.addWidget(self.run_button)
        bar.addWidget(self.stop_button)
        bar.addWidget(self.status, 1)
        self.prev_button = QToolButton()
        self.prev_button.setArrowType(Qt.ArrowType.LeftArrow)
        self.prev_button.setToolTip("Previous prompt (Alt+Left)")
        self.prev_button.setShortcut("Alt+Left")
        self.next_button = QToolButton()
        self.next_button.setArrowType(Qt.ArrowType.RightArrow)
        self.next_button.setToolTip("Next prompt (Alt+Right)")
        self.next_button.setShortcut("Alt+Right")
        for b in (self.prev_button, self.next_button):
            b.setFixedSize(30, 28)
        self.prompt_combo = QComboBox()
        self.prompt_combo.setMinimumWidth(220)
        self.prompt_combo.setMaximumWidth(240)
        bar.addWidget(self.prev_button)
        bar.addWidget(self.prompt_combo)
        bar.addWidget(self.next_button)
        layout.addLayout(bar)

        self.prompt_card = QFrame()
        self.prompt_card.setObjectName("Card")
        pc = QVBoxLayout(self.prompt_card)
        pc.setContentsMargins(12, 8, 12, 8)
        head = QHBoxLayout()
        self.prompt_title = QLabel("Prompt")
        self.prompt_title.setObjectName("SectionTitle")
        self.prompt_meta = QLabel()
        self.prompt_meta.setObjectName("Hint")
        head.addWidget(self.prompt_title)
        head.addStretch(1)
        head.addWidget(self.prompt_meta)
        pc.addLayout(head)
        self.prompt_label = QLabel()
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pc.addWidget(self.prompt_label)
        layout.addWidget(self.prompt_card)
        self.prompt_card.hide()

        self.vsplit = QSplitter(Qt.Orientation.Vertical)
        self.columns_split = QSplitter(Qt.Orientation.Horizontal)
        self.columns_split.setChildrenCollapsible(False)
        self.empty = QLabel("<p style='font-size:13pt'>No answers yet</p>"
                            "<p>Check the models and choose the prompts on the left, then press "
                            "<b>Generate answers</b>.<br>Each model gets a column; answers appear word by word "
                            "as they are written,<br>with the reference answer beside them when the example "
                            "has one.</p>"
                            f"<p>{GUIDE_LINE}</p>")
        connect_guide_link(self.empty)
        self.empty.setObjectName("Hint")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.columns_stack = QStackedWidget()
        self.columns_stack.addWidget(self.empty)
        self.columns_stack.addWidget(self.columns_split)
        self.vsplit.addWidget(self.columns_stack)

        diff_box = QFrame()
        diff_box.setObjectName("Card")
        dl = QVBoxLayout(diff_box)
        dl.setContentsMargins(10, 8, 10, 10)
        drow = QHBoxLayout()
        title = QLabel("Differences")
        title.setObjectName("SectionTitle")
        self.diff_a = QComboBox()
        self.diff_b = QComboBox()
        for combo in (self.diff_a, self.diff_b):
            combo.setMinimumContentsLength(24)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.diff_legend = QLabel(
            f'<span style="background:{style.BAD_SOFT}; color:{style.BAD}; text-decoration:line-through;">'
            f'&nbsp;only in the first&nbsp;</span>&nbsp;&nbsp;<span style="background:{style.GOOD_SOFT}; '
            f'color:{style.GOOD};">&nbsp;only in the second&nbsp;</span>')
        self.diff_score = QLabel()
        self.diff_score.setObjectName("Hint")
        drow.addWidget(title)
        drow.addSpacing(8)
        drow.addWidget(self.diff_a)
        drow.addWidget(QLabel("→"))
        drow.addWidget(self.diff_b)
        drow.addStretch(1)
        drow.addWidget(self.diff_score)
        dl.addLayout(drow)
        self.diff_view = QTextBrowser()
        dl.addWidget(self.diff_view, 1)
        legend_row = QHBoxLayout()
        legend_row.addStretch(1)
        legend_row.addWidget(self.diff_legend)
        dl.addLayout(legend_row)
        self.diff_box = diff_box
        diff_box.hide()
        self.vsplit.addWidget(diff_box)
        self.vsplit.setStretchFactor(0, 3)
        self.vsplit.setStretchFactor(1, 1)
        self.vsplit.setChildrenCollapsible(False)
        layout.addWidget(self.vsplit, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self._flush)

        self.run_button.clicked.connect(self.run_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.prev_button.clicked.connect(lambda: self._step(-1))
        self.next_button.clicked.connect(lambda: self._step(1))
        self.prompt_combo.activated.connect(self._on_prompt_chosen)
        self.diff_a.currentIndexChanged.connect(self._update_diff)
        self.diff_b.currentIndexChanged.connect(self._update_diff)
        self._update_nav()

    # -- a new comparison ---------------------------------------------------------------

    def start(self, refs: list[ModelRef], prompts: list[PromptItem]) -> None:
        self.refs, self.prompts = list(refs), list(prompts)
        self.texts = [{} for _ in prompts]
        self.finished = [set() for _ in prompts]
        self.generation_ids = [{} for _ in prompts]
        self._pending.clear()
        self._follow = True
        self.prompt_combo.clear()
        for i, p in enumerate(prompts):
            words = " ".join(ratings.prompt_text(p.messages).split())
            self.prompt_combo.addItem(f"{i + 1}. {words[:60]}{'…' if len(words) > 60 else ''}")
        self._build_columns()
        self.show_prompt(0)

    def _build_columns(self) -> None:
        for col in self._columns.values():
            col.setParent(None)
            col.deleteLater()
        self._columns.clear()
        has_reference = any(p.reference for p in self.prompts)
        if has_reference:
            self._columns[REFERENCE_KEY] = AnswerColumn("Reference answer", "from the example", reference=True)
        for ref in self.refs:
            subtitle = "base model" if ref.is_base else "adapter"
            self._columns[ref.key] = AnswerColumn(ref.label, subtitle)
        for col in self._columns.values():
            self.columns_split.addWidget(col)
        self.columns_split.setSizes([1000] * len(self._columns))
        self.columns_stack.setCurrentWidget(self.columns_split if self._columns else self.empty)
        if len(self._columns) >= 2 and self.diff_box.isHidden():
            total = sum(self.vsplit.sizes()) or 600
            self.vsplit.setSizes([total * 2 // 3, total - total * 2 // 3])  # the answers first
        self.diff_box.setVisible(len(self._columns) >= 2)
        self.prompt_card.setVisible(bool(self.prompts))
        for combo in (self.diff_a, self.diff_b):
            combo.blockSignals(True)
            combo.clear()
            for key, col in self._columns.items():
                combo.addItem(col.title.text(), key)
            combo.blockSignals(False)
        # Default: the first adapter against the base model (or the reference).
        self.diff_a.setCurrentIndex(1 if has_reference and len(self._columns) > 2 else 0)
        self.diff_b.setCurrentIndex(min(self.diff_a.currentIndex() + 1, len(self._columns) - 1))

    def column(self, key: str) -> AnswerColumn:
        return self._columns[key]

    def column_keys(self) -> list[str]:
        return list(self._columns)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if running:
            self._timer.start()
        else:
            self._timer.stop()
            self._flush()

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    # -- streaming ----------------------------------------------------------------------

    @Slot(int, str, str)
    def add_piece(self, index: int, key: str, text: str) -> None:
        self._pending.setdefault((index, key), []).append(text)
        self.piece_received.emit(index, key, text)
        # Batches write several prompts at once: stay on a prompt until all its answers are in.
        if self._follow and index != self.current and not self._writing(self.current):
            self._flush()
            self.show_prompt(index, user=False)

    def _writing(self, index: int) -> bool:
        """True while prompt ``index`` is being written: some column has begun and another has not finished."""
        if not 0 <= index < len(self.finished):
            return False
        begun = (bool(self.finished[index]) or any(self.texts[index].values())
                 or any(i == index for i, _k in self._pending))
        return begun and any(key not in self.finished[index] for key in self._columns)

    @Slot(int, str, str, int)
    def set_output(self, index: int, key: str, text: str, generation_id: int) -> None:
        """The whole answer: it replaces the streamed pieces, so the column shows exactly what was stored."""
        self._pending.pop((index, key), None)
        self.texts[index][key] = text
        self.finished[index].add(key)
        self.generation_ids[index][key] = generation_id
        if index == self.current:
            col = self._columns[key]
            col.set_text(text)
            col.subtitle.setText(self._subtitle(index, key))
            self._update_diff()

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        for (index, key), pieces in pending.items():
            text = "".join(pieces)
            self.texts[index][key] = self.texts[index].get(key, "") + text
            if index == self.current and key in self._columns:
                self._columns[key].append(text)
                self._columns[key].subtitle.setText(self._subtitle(index, key))
        self._update_diff()

    def _subtitle(self, index: int, key: str) -> str:
        ref = next((r for r in self.refs if r.key == key), None)
        kind = "base model" if ref is not None and ref.is_base else "adapter"
        if key in self.finished[index]:
            n = len(self.texts[index].get(key, "").split())
            return f"{kind} · done · {n} word{'s' if n != 1 else ''}"
        if key in self.texts[index]:
            return f"{kind} · writing…"
        return kind

    # -- navigation ---------------------------------------------------------------------

    def _step(self, delta: int) -> None:
        self._follow = False
        self.show_prompt(self.current + delta)

    def _on_prompt_chosen(self, index: int) -> None:
        self._follow = False
        self.show_prompt(index)

    def show_prompt(self, index: int, user: bool = True) -> None:
        if not self.prompts:
            self.current = -1
            self.prompt_label.setText("")
            self._update_nav()
            return
        self._flush()
        index = max(0, min(index, len(self.prompts) - 1))
        self.current = index
        prompt = self.prompts[index]
        self.prompt_title.setText(f"Prompt {index + 1} of {len(self.prompts)}")
        system = next((m.get("content") for m in prompt.messages if m.get("role") == "system"), None)
        meta = []
        if prompt.label:
            meta.append(f"label: {prompt.label}")
        if prompt.example_id is not None:
            meta.append(f"example #{prompt.example_id}")
        if system:
            meta.append("with a system prompt")
        self.prompt_meta.setText(" · ".join(meta))
        self.prompt_meta.setToolTip(system or "")
        self.prompt_label.setText(ratings.prompt_text(prompt.messages))
        for key, col in self._columns.items():
            if key == REFERENCE_KEY:
                col.set_text(prompt.reference or "")
            else:
                col.set_text(self.texts[index].get(key, ""))
                col.subtitle.setText(self._subtitle(index, key))
        self.prompt_combo.setCurrentIndex(index)
        self._update_nav()
        self._update_diff()

    def _update_nav(self) -> None:
        for w in (self.prev_button, self.prompt_combo, self.next_button):
            w.setVisible(bool(self.prompts))
        self.prev_button.setEnabled(self.current > 0)
        self.next_button.setEnabled(0 <= self.current < len(self.prompts) - 1)

    def column_text(self, key: str) -> str:
        if key == REFERENCE_KEY:
            return self.prompts[self.current].reference or "" if self.current >= 0 else ""
        return self.texts[self.current].get(key, "") if self.current >= 0 else ""

    def _update_diff(self) -> None:
        a, b = self.diff_a.currentData(), self.diff_b.currentData()
        if a is None or b is None or self.current < 0:
            self.diff_view.clear()
            self.diff_score.setText("")
            return
        ta, tb = self.column_text(a), self.column_text(b)
        self.diff_view.setHtml(f'<div style="line-height:140%">{word_diff_html(ta, tb)}</div>')
        self.diff_score.setText(f"{similarity(ta, tb):.0%} of words in common" if ta or tb else "")
