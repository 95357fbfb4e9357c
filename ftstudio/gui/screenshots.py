"""Pictures of every page, for the documentation and for looking at what was built.

    python -m ftstudio.gui.screenshots [OUT_DIR]        (default: docs/screenshots/)

Opens the main window at 1280 x 800 under the offscreen platform, on a fresh
copy of the demo project in a temporary folder (the user's own projects and
settings are not touched), and saves one PNG per page: data.png, label.png,
train.png, runs.png, compare.png, and the pages' other views beside them.
A page not in this build is skipped with a note.

A page can offer more views with an optional ``screenshot_states()`` method
returning ``{name: callable}``: each callable puts the page in that state
(it may wait for work to finish with :func:`wait_for`), and the window is
saved as ``<page>-<name>.png`` (a name that already starts with ``<page>-``
is used as it is). A view named like the page itself (``"label"`` on the
Label page) is its most telling picture: it is saved as ``<page>.png`` in
place of the page as it opens. A callable that returns a widget (a dialog
it opened, say) has that widget saved instead of the window.

Views may add sample data to the (throwaway) project; a page's optional
``screenshot_cleanup()`` runs after its views, to take back what would
change the pages pictured after it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

WIDTH, HEIGHT = 1280, 800
SETTLE_MS = 400
DEFAULT_OUT = Path("docs") / "screenshots"


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """Run the event loop until ``predicate()`` is true (or the time is up); True if it became true."""
    from PySide6.QtCore import QDeadlineTimer, QEventLoop
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            return False
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, QDeadlineTimer(50))
        time.sleep(0.01)  # let worker threads run
    return True


def settle(ms: int | None = None) -> None:
    """Let timers, layouts and paints catch up (for ``SETTLE_MS`` unless told)."""
    ms = SETTLE_MS if ms is None else ms
    end = time.monotonic() + ms / 1000
    wait_for(lambda: time.monotonic() > end, ms / 1000 + 1)


def _quiet_offscreen_notes() -> None:
    """The offscreen platform says what a window system would do that it cannot; that is no news here."""
    from PySide6.QtCore import qInstallMessageHandler

    previous = None

    def handler(mode, context, message) -> None:
        if "This plugin does not support" in message:  # propagateSizeHints(), raise(): no window system here
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            sys.stderr.write(message + "\n")

    previous = qInstallMessageHandler(handler)


def file_stem(page: str, state: str) -> str:
    """The file name (without .png) of view ``state`` of page ``page``."""
    if state == page or state.startswith(page + "-"):
        return state
    return f"{page}-{state}"


def _save(widget, path: Path) -> None:
    settle()
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"  {path}")


def take(out_dir: Path, pages: Iterable[str] | None = None) -> list[Path]:
    """Save the pictures into ``out_dir`` (of the ``pages`` named, else of every page); returns the
    files written."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="ftstudio-shots-") as tmp:
        from ftstudio.gui.settings import SETTINGS_ENV

        os.environ[SETTINGS_ENV] = str(Path(tmp) / "settings.ini")
        from PySide6.QtWidgets import QApplication

        from ftstudio.cli import ensure_demo_project
        from ftstudio.gui.main_window import PAGES, MainWindow, load_page_class
        from ftstudio.gui.settings import APPLICATION, ORGANISATION, AppSettings
        from ftstudio.gui.style import apply_style

        app = QApplication.instance() or QApplication(sys.argv[:1])
        _quiet_offscreen_notes()
        app.setApplicationName(APPLICATION)
        app.setOrganizationName(ORGANISATION)
        apply_style(app)
        demo = ensure_demo_project(Path(tmp) / "demo.ftstudio")
        demo_path = demo.path
        demo.close()

        window = MainWindow(AppSettings(), detect_device=True)
        window.resize(WIDTH, HEIGHT)
        window.show()
        if not window.open_project(demo_path):
            raise RuntimeError(f"the demo project could not be opened: {window.statusBar().currentMessage()}")
        window.resize(WIDTH, HEIGHT)
        wait_for(lambda: bool(window.device_text), 60)
        window.statusBar().clearMessage()  # "Opened /tmp/...": the temporary copy is no news in a picture
        try:
            for name in PAGES:
                if pages is not None and name not in pages:
                    continue
                if load_page_class(PAGES[name]) is None:
                    print(f"  {name}: not in this build, skipped")
                    continue
                window.show_page(name)
                page = window.page(name)
                ready = getattr(page, "screenshot_ready", None)
                if callable(ready):
                    wait_for(ready, 60)
                stem = name.lower()
                states = getattr(page, "screenshot_states", None)
                views = dict(states()) if callable(states) else {}
                if stem not in views:  # no better picture of the page offered: as it opens
                    path = out_dir / f"{stem}.png"
                    _save(window, path)
                    written.append(path)
                for state, put in views.items():
                    window.show_page(name)
                    try:
                        shown = put()
                    except Exception as exc:  # one broken view must not cost the others
                        print(f"  {name} / {state}: could not be shown ({type(exc).__name__}: {exc})")
                        continue
                    path = out_dir / f"{file_stem(stem, state)}.png"
                    _save(shown if shown is not None and hasattr(shown, "grab") else window, path)
                    written.append(path)
                    if shown is not None and shown is not window and hasattr(shown, "close"):
                        shown.close()
                        settle(100)
                cleanup = getattr(page, "screenshot_cleanup", None)
                if views and callable(cleanup):
                    cleanup()
                    settle(100)
        finally:
            window.close()
            settle(100)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: python -m ftstudio.gui.screenshots [OUT_DIR]", file=sys.stderr)
        return 2
    out = Path(argv[0]) if argv else DEFAULT_OUT
    print(f"Saving screenshots to {out}/")
    written = take(out)
    print(f"{len(written)} pictures written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
