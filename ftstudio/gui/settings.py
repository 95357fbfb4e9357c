"""What the app remembers between sessions: window state, recent projects,
the annotator's name. Project data never goes here; it lives in the project.

``FTSTUDIO_SETTINGS`` (a file path) sends everything to an INI file instead of
the platform's store, which is what tests and the benchmarks use.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANISATION = "FT Studio"
APPLICATION = "FT Studio"
SETTINGS_ENV = "FTSTUDIO_SETTINGS"
MAX_RECENT = 10


class AppSettings:
    def __init__(self, file: str | Path | None = None) -> None:
        file = file or os.environ.get(SETTINGS_ENV)
        if file:
            self._qs = QSettings(str(file), QSettings.Format.IniFormat)
        else:
            self._qs = QSettings(ORGANISATION, APPLICATION)

    @property
    def file_name(self) -> str:
        return self._qs.fileName()

    def sync(self) -> None:
        self._qs.sync()

    # -- recent projects ----------------------------------------------------------

    def recent_projects(self) -> list[str]:
        value = self._qs.value("recent/projects", [])
        if isinstance(value, str):  # QSettings gives a lone string for a one-item list
            value = [value]
        return [str(v) for v in value if v] if isinstance(value, list) else []

    def add_recent_project(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_projects() if p != path]
        self._qs.setValue("recent/projects", [path, *items][:MAX_RECENT])
        self._qs.setValue("recent/last", path)
        self._qs.sync()

    def remove_recent_project(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        self._qs.setValue("recent/projects", [p for p in self.recent_projects() if p != path])
        if self.last_project() == path:
            self._qs.remove("recent/last")
        self._qs.sync()

    def last_project(self) -> str | None:
        value = self._qs.value("recent/last")
        return str(value) if value else None

    def forget_last_project(self) -> None:
        """The user closed the project: open on the welcome screen next time."""
        self._qs.remove("recent/last")
        self._qs.sync()

    # -- who is working -----------------------------------------------------------

    def annotator(self) -> str:
        return str(self._qs.value("user/annotator", "") or "")

    def set_annotator(self, name: str) -> None:
        self._qs.setValue("user/annotator", name.strip())
        self._qs.sync()

    # -- window -------------------------------------------------------------------

    def window_geometry(self) -> QByteArray | None:
        value = self._qs.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def window_state(self) -> QByteArray | None:
        value = self._qs.value("window/state")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._qs.setValue("window/geometry", geometry)
        self._qs.setValue("window/state", state)
        self._qs.sync()

    def value(self, key: str, default=None):
        return self._qs.value(key, default)

    def set_value(self, key: str, value) -> None:
        self._qs.setValue(key, value)
