"""Where an annotator is in a labelling queue: the pure state behind the Label page.

The queue is a list of example ids (``Labelling.queue`` reads it); the cursor
is the position of the example on screen, and the history the examples done
in this session, newest last, for Back. Everything here is plain data, so the
moves (done, skipped, back, undone, read afresh) are tested without Qt; the
page asks the database and shows what the cursor points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class QueueCursor:
    name: str = "todo"
    ids: list[int] = field(default_factory=list)
    pos: int = 0
    history: list[int] = field(default_factory=list)

    @property
    def current(self) -> int | None:
        """The example the cursor is on (None past the end)."""
        return self.ids[self.pos] if self.pos < len(self.ids) else None

    def load(self, name: str, ids: list[int], keep: int | None = None, keep_exists: bool = False) -> bool:
        """The queue ``name`` read afresh. ``keep``: the example on screen, kept there when it is
        in the queue, or (``keep_exists``: it is still in the project) left on screen with the
        cursor where it was. Returns whether ``keep`` stays on screen."""
        self.name, self.ids = name, list(ids)
        if keep is not None and keep in self.ids:
            self.pos = self.ids.index(keep)
            return True
        if keep is not None and keep_exists:
            self.pos = min(self.pos, len(self.ids))
            return True
        self.pos = 0
        return False

    def drop_current(self) -> None:
        """The example under the cursor is gone (deleted meanwhile)."""
        del self.ids[self.pos]

    def done_with(self, example_id: int, action: str, still_in_queue: bool) -> None:
        """``example_id`` was labelled, flagged or skipped (``action``); move on.

        A skipped example of the to-do queue waits at the back, and the cursor
        comes round to it after the last one."""
        on_queue = self.current == example_id
        if on_queue:
            if not still_in_queue:
                del self.ids[self.pos]
            elif action == "skip" and self.name == "todo":
                self.ids.append(self.ids.pop(self.pos))
            else:
                self.pos += 1
        elif example_id in self.ids and not still_in_queue:
            i = self.ids.index(example_id)
            del self.ids[i]
            if i < self.pos:
                self.pos -= 1
        self.history.append(example_id)
        if self.pos >= len(self.ids) and self.ids and self.name == "todo":
            self.pos = 0  # skipped ones wait at the back: come round to them

    def back(self) -> int | None:
        """The example done before, to show again (None: nothing to go back to)."""
        if not self.history:
            return None
        previous = self.history.pop()
        if previous in self.ids:
            self.pos = self.ids.index(previous)
        return previous

    def undone(self, example_id: int, in_queue: bool) -> None:
        """The annotator's label on ``example_id`` was taken back: it comes next, to label again."""
        if self.history and self.history[-1] == example_id:
            self.history.pop()
        if in_queue:
            if example_id in self.ids:
                self.ids.remove(example_id)
            self.pos = min(self.pos, len(self.ids))
            self.ids.insert(self.pos, example_id)
