"""What the main window asks of its pages.

Every page is a ``Page``: a QWidget with the calls below, each with the answer
of a page that runs nothing and keeps nothing, so a page overrides only what
it has. The main window and the screenshots tool call these and nothing else;
they never probe a page for what it might have.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtWidgets import QWidget

# A view for the screenshots tool: puts the page in a state and returns what to
# photograph (None: the window).
ScreenshotView = Callable[[], Any]


class Page(QWidget):
    # -- running work --------------------------------------------------------------

    def is_busy(self) -> bool:
        """Work is going on that closing the project would stop (a training run)."""
        return False

    def stop_and_wait(self, timeout_ms: int) -> bool:
        """Stop that work cleanly (keeping what it saved); False when it has not stopped in time."""
        return True

    # -- closing -------------------------------------------------------------------

    def can_close(self) -> bool:
        """Asked before the project closes; False keeps it open (the page has said why)."""
        return True

    def shutdown(self) -> None:
        """Stop and wait for everything the page runs; the project closes next."""

    # -- saving --------------------------------------------------------------------

    def flush_edits(self) -> None:
        """Save now what is typed and waits for a pause to be saved (before the project is read
        elsewhere, as by an export)."""

    # -- layout kept between sessions ------------------------------------------------

    def save_state(self) -> Any:
        """What to remember of the page's layout (None: nothing)."""
        return None

    def restore_state(self, state: Any) -> None:
        """Use a layout from ``save_state``; may raise on one from another version."""

    # -- edit menu -------------------------------------------------------------------

    def history(self, which: str) -> bool:
        """Undo (``which`` "undo") or redo the page's own last edit; False when the page has none
        of its own, so the window uses the project's journal."""
        return False

    # -- pictures for the documentation -------------------------------------------------

    def screenshot_ready(self) -> bool:
        """True once the page can be photographed (the screenshots tool waits for it)."""
        return True

    def screenshot_states(self) -> dict[str, ScreenshotView]:
        """Views for ``python -m ftstudio.gui.screenshots``: {name: callable putting the page in it}."""
        return {}

    def screenshot_cleanup(self) -> None:
        """Undo what the views wrote into the (throwaway) project."""
