"""Starting the desktop app: the QApplication, the style, error hooks, the window.

Nothing here imports torch, transformers or peft: they load on worker
threads when a page first needs them, so the window shows in well under two
seconds.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

from ftstudio.gui.settings import APPLICATION, ORGANISATION, AppSettings
from ftstudio.gui.style import apply_style

log = logging.getLogger("ftstudio")


class ErrorBridge(QObject):
    """Carries unexpected errors from any thread to the window (signals queue across threads)."""

    error = Signal(str)


def _log_file() -> Path | None:
    try:
        from ftstudio.paths import cache_dir

        folder = cache_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / "ftstudio.log"
    except Exception:  # no writable cache: log to stderr only
        return None


def setup_logging() -> Path | None:
    path = _log_file()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path is not None:
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers)
    return path


def install_error_hooks(bridge: ErrorBridge) -> None:
    """Unexpected exceptions are logged and shown in the status bar; the app keeps running."""

    def report(exc_type, exc, tb, where: str) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("Unexpected error%s:\n%s", where, text)
        bridge.error.emit(f"Something went wrong: {exc_type.__name__}: {exc} (details in the log)")

    def excepthook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        report(exc_type, exc, tb, "")

    def thread_hook(args) -> None:
        if args.exc_type is SystemExit:
            return
        report(args.exc_type, args.exc_value, args.exc_traceback,
               f" in thread {args.thread.name if args.thread else '?'}")

    sys.excepthook = excepthook
    threading.excepthook = thread_hook


def application(argv: list[str]) -> QApplication:
    """The process's QApplication: the one already made (by the tests, say) or a new one on ``argv``."""
    existing = QApplication.instance()
    if existing is None:
        return QApplication(argv)
    # Only a QApplication is ever made here; a bare QCoreApplication could show no window.
    assert isinstance(existing, QApplication), f"a {type(existing).__name__} is running, not a QApplication"
    return existing


def run_app(project_path: str | None = None, argv: list[str] | None = None) -> int:
    """Open the app (on ``project_path``, else the last project, else the welcome screen); returns the exit code."""
    app = application(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationDisplayName("FT Studio")
    from ftstudio.gui.app_icon import DESKTOP_ID, app_icon

    app.setWindowIcon(app_icon())
    app.setDesktopFileName(DESKTOP_ID)
    apply_style(app)
    setup_logging()
    bridge = ErrorBridge()
    install_error_hooks(bridge)

    from ftstudio.gui.main_window import MainWindow

    settings = AppSettings()
    window = MainWindow(settings)
    bridge.error.connect(window.show_error)
    target = project_path or settings.last_project()
    if target and not window.open_project(target) and project_path is None:
        window.show_status(f"The last project ({target}) could not be opened")
    window.show()
    return app.exec()
