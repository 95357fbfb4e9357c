"""For the installer tests: a Qt library set that lacks chosen libraries."""

from __future__ import annotations

import shutil
from pathlib import Path

import PySide6

QT = Path(PySide6.__file__).parent / "Qt"


def library_set(tmp_path: Path, leave_out: set[str]) -> Path:
    """A copy of PySide6's xcb plugin whose Qt library folder ($ORIGIN/../../lib, its RUNPATH)
    holds every Qt library except ``leave_out``; returns the plugin folder."""
    platforms = tmp_path / "Qt" / "plugins" / "platforms"
    lib = tmp_path / "Qt" / "lib"
    platforms.mkdir(parents=True)
    lib.mkdir()
    shutil.copy2(QT / "plugins" / "platforms" / "libqxcb.so", platforms / "libqxcb.so")
    for item in (QT / "lib").iterdir():
        if item.name not in leave_out and item.is_file():
            (lib / item.name).symlink_to(item)
    return platforms
