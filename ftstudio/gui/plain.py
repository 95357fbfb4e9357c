"""Text that comes from data (label names, run messages, model paths, file names)
shown as plain text. Qt guesses: a tooltip or a QLabel whose text looks like it
starts with a tag is drawn as HTML, so a label named ``<b>x</b>`` would turn
bold and ``<img src=...>`` would load a picture. These helpers say "plain"."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt  # convertFromPlainText lives in QtGui's part of Qt
from PySide6.QtWidgets import QLabel


def plain_tip(text: str) -> str:
    """A tooltip that shows ``text`` literally (escaped into a paragraph of its own)."""
    return GuiQt.convertFromPlainText(text, Qt.WhiteSpaceMode.WhiteSpaceNormal)


def plain_label(text: str = "", parent=None) -> QLabel:
    """A QLabel that never interprets its text as HTML."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label
