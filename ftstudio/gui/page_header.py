"""The top of every page: its title, a muted line beside it (counts, what is
chosen), and room on the right for the page's main buttons; and the same, smaller,
for a section inside a page: its title, and room on the right for its controls."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget


def page_layout(page: QWidget, title: str, margins: tuple[int, int, int, int] = (16, 12, 16, 8),
                spacing: int = 8, stretch_hint: bool = False) -> tuple[QVBoxLayout, QHBoxLayout, QLabel]:
    """The page's vertical layout with the header row added: (layout, header row, hint label).

    Buttons added to the header row after this call sit at the right; with
    ``stretch_hint`` the hint takes the free width instead.
    """
    layout = QVBoxLayout(page)
    layout.setContentsMargins(*margins)
    layout.setSpacing(spacing)
    head = QHBoxLayout()
    head.setSpacing(6)
    heading = QLabel(title)
    heading.setObjectName("PageTitle")
    head.addWidget(heading)
    head.addSpacing(10)
    hint = QLabel()
    hint.setObjectName("Hint")
    hint.setTextFormat(Qt.TextFormat.PlainText)  # hints name models and runs: the user's text
    head.addWidget(hint, 1 if stretch_hint else 0)
    if not stretch_hint:
        head.addStretch(1)
    layout.addLayout(head)
    return layout, head, hint


def section_layout(section: QWidget, title: str, margins: tuple[int, int, int, int] = (0, 0, 0, 0),
                   spacing: int = 6) -> tuple[QVBoxLayout, QHBoxLayout, QLabel]:
    """The section's vertical layout with its header row added: (layout, header row, title label).

    Widgets added to the header row after this call sit at the right, after the title.
    """
    layout = QVBoxLayout(section)
    layout.setContentsMargins(*margins)
    layout.setSpacing(spacing)
    head = QHBoxLayout()
    heading = QLabel(title)
    heading.setObjectName("SectionTitle")
    head.addWidget(heading)
    head.addStretch(1)
    layout.addLayout(head)
    return layout, head, heading
