"""The label set as big buttons on the Label page: each label's key in a badge, its name, its colour."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QSizePolicy, QWidget

from ftstudio.core.labelling import LabelDef
from ftstudio.gui import style
from ftstudio.gui.plain import plain_label, plain_tip

LABEL_COLUMNS = 4  # the most label buttons in a row, beyond five labels


def label_columns(n: int) -> int:
    """Label buttons per row for ``n`` labels: up to five in one row, six in two rows of three, else four."""
    if n <= 5:
        return max(1, n)
    return 3 if n in (6, 9) else LABEL_COLUMNS


def soft(colour: str, amount: float = 0.86) -> str:
    """``colour`` mixed with white: the background of a chosen label."""
    c = QColor(colour)
    mix = [round(v + (255 - v) * amount) for v in (c.red(), c.green(), c.blue())]
    return "#{:02x}{:02x}{:02x}".format(*mix)


class LabelButton(QPushButton):
    """A big button for one label: its key in a badge, its name, a bar in its colour."""

    def __init__(self, label: LabelDef, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label_name = label.name
        self.setObjectName("LabelButton")
        self.setCheckable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setMinimumHeight(54)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            plain_tip(
                f"Press {label.shortcut.upper()} to choose '{label.name}'"
                if label.shortcut
                else f"Choose '{label.name}' (give it a key in Set up)"
            )
        )
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
