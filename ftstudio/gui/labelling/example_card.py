"""The example on the Label page: what is known about it in one muted line, then its text.

``meta_html`` and ``example_html`` make the card's rich text from the example,
the annotator's own annotation and (in the review queues) the others'; the
``ExampleCard`` shows them, with room below for the answer box.
"""

from __future__ import annotations

import html

from PySide6.QtGui import QFont, QTextOption
from PySide6.QtWidgets import QFrame, QLabel, QTextBrowser, QVBoxLayout, QWidget
from PySide6.QtCore import Qt

from ftstudio.core.examples import Example
from ftstudio.core.labelling import Annotation, LabelItem
from ftstudio.gui import style

TEXT_POINT_SIZE = style.FONT_POINT_SIZE + 5
RENDER_LIMIT = 20_000  # characters of one example shown at once (the rest: "… n more characters")


def _para(text: str) -> str:
    if len(text) > RENDER_LIMIT:
        text = text[:RENDER_LIMIT] + f"\n\u2026 {len(text) - RENDER_LIMIT:,} more characters"
    return html.escape(text).replace("\n", "<br>")


def meta_html(
    example: Example,
    mine: Annotation | None,
    uses_labels: bool,
    others: list[Annotation] | None = None,
    extra: list[str] | None = None,
) -> str:
    """The muted line above the text: id, split, flagged, who said what (``others``: the other
    annotators' annotations, shown in the review queues), then ``extra`` (the model's prediction)."""
    bits = [f"Example {example.id}", example.split]
    if example.status == "flagged":
        bits.append(f"<span style='color:{style.WARN}'>flagged for review</span>")
    if mine is not None and mine.status in ("labelled", "flagged"):
        what = mine.label or "an answer"
        bits.append(f"you said <b>{html.escape(what)}</b>")
    elif example.label and uses_labels:
        who = f" by {html.escape(example.annotator)}" if example.annotator else ""
        bits.append(f"labelled <b>{html.escape(example.label)}</b>{who}")
    if others:
        bits.append(
            " \u00b7 ".join(
                f"{html.escape(a.annotator)}: <b>{html.escape(a.label or (a.answer or '')[:40])}</b>"
                + (" (flagged)" if a.status == "flagged" else "")
                + (f" \u2014 \u201c{html.escape(a.comment)}\u201d" if a.comment else "")
                for a in others
            )
        )
    bits += extra or []
    return "  \u00b7  ".join(bits)


def example_html(item: LabelItem) -> str:
    """The text: the system prompt and earlier turns small and muted, the input large."""
    parts = []
    if item.system:
        parts.append(
            f"<p style='color:{style.MUTED}; font-size:{style.FONT_POINT_SIZE}pt'>"
            f"<b>System</b>: {_para(item.system)}</p>"
        )
    for m in item.context:
        parts.append(
            f"<p style='color:{style.MUTED}; font-size:{style.FONT_POINT_SIZE}pt'>"
            f"<b>{html.escape(str(m.get('role', '')).capitalize())}</b>: "
            f"{_para(str(m.get('content') or ''))}</p>"
        )
    body = item.input if item.input.strip() else "(this example has no text)"
    parts.append(f"<p>{_para(body)}</p>")
    return "".join(parts)


class ExampleCard(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(22, 16, 22, 16)
        self.body.setSpacing(8)
        self.meta = QLabel()
        self.meta.setObjectName("Hint")
        self.meta.setTextFormat(Qt.TextFormat.RichText)
        self.body.addWidget(self.meta)
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
        self.body.addWidget(self.text, 1)

    def show_example(
        self,
        example: Example,
        item: LabelItem,
        mine: Annotation | None,
        uses_labels: bool,
        others: list[Annotation] | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.meta.setText(meta_html(example, mine, uses_labels, others, extra))
        self.text.setHtml(example_html(item))
