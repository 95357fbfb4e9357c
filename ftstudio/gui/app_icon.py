"""FT Studio's icon (resources/icons: the SVG source and its PNG sizes) as a QIcon."""

from __future__ import annotations

from PySide6.QtGui import QIcon, QPixmap

from ftstudio.paths import resource

DESKTOP_ID = "org.ftstudio.FTStudio"  # the desktop entry's name, so Wayland docks match the window to it


def app_icon() -> QIcon:
    icon = QIcon()
    for png in sorted(resource("icons").glob("ftstudio-*.png")):
        icon.addFile(str(png))
    return icon


def app_pixmap(size: int) -> QPixmap:
    return app_icon().pixmap(size, size)
