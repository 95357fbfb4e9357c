"""File > Restore from backup: the project's automatic snapshots of project.db,
newest first, with when each was taken, its size and how many examples it holds."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftstudio.core.project import backup_example_count, list_backups


def backup_summary(path: Path) -> str:
    """'2026-12-01 18:15 · 1,204 examples · 3.2 MB' (or what could not be read)."""
    when = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
    size = f"{path.stat().st_size / 1e6:,.1f} MB"
    try:
        n = backup_example_count(path)
        count = f"{n:,} example{'s' if n != 1 else ''}"
    except sqlite3.Error:
        count = "cannot be read"
    return f"{when}  \u00b7  {count}  \u00b7  {size}"


class RestoreDialog(QDialog):
    """Choose one of the project's backups; ``chosen()`` is its path after Restore."""

    def __init__(self, project_dir: Path, parent: QWidget | None = None, damaged: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Restore from backup")
        self.resize(560, 360)
        layout = QVBoxLayout(self)
        intro = QLabel()
        intro.setTextFormat(Qt.TextFormat.PlainText)
        intro.setWordWrap(True)
        intro.setText(
            (damaged + "\n\n" if damaged else "")
            + "FT Studio keeps a snapshot of the project every 15 minutes while it changes. "
            "Restoring puts the chosen snapshot in place of the project's data; the current "
            "state is kept as a backup first, so this can be undone by restoring that one."
        )
        layout.addWidget(intro)
        self.list = QListWidget()
        for path in list_backups(project_dir):
            item = QListWidgetItem(backup_summary(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)
        layout.addWidget(self.list, 1)
        self.empty = QLabel(
            "No backups yet: the first one is taken a few minutes after the project is opened."
        )
        self.empty.setVisible(self.list.count() == 0)
        layout.addWidget(self.empty)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.restore_button = buttons.addButton("Restore", QDialogButtonBox.ButtonRole.AcceptRole)
        self.restore_button.setEnabled(self.list.count() > 0)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        layout.addWidget(buttons)

    def chosen(self) -> Path | None:
        item = self.list.currentItem()
        return Path(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None
