"""What every page of the main window shares: the open project, the
annotator's name, change notifications, and the one compute device.

Pages talk to each other only through this object, so a page can be built
and tested on its own with a context over a temporary project.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ftstudio.core.project import Project, default_actor


class ComputeLock(QObject):
    """Who is using the GPU (or the CPU, for long jobs): a training run or a comparison.

    Training and generation never run at the same time; the second asker is
    refused and told who holds it, so the page can say so in plain words.
    """

    changed = Signal(str)  # the holder's description, "" when free

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._holder = ""

    @property
    def holder(self) -> str:
        return self._holder

    def try_acquire(self, holder: str) -> bool:
        if self._holder and self._holder != holder:
            return False
        self._holder = holder
        self.changed.emit(holder)
        return True

    def release(self, holder: str) -> None:
        if self._holder == holder:
            self._holder = ""
            self.changed.emit("")


class ProjectContext(QObject):
    examples_changed = Signal(list)  # example ids touched; [] means "reload everything"
    runs_changed = Signal()
    labels_changed = Signal()
    status_message = Signal(str)  # a short line for the status bar
    actor_changed = Signal(str)
    open_example = Signal(int)  # show this example on the Data page
    review_changed = Signal()  # examples were sent to the Label page's review queue

    def __init__(self, project: Project, actor: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self._actor = actor
        self.compute = ComputeLock(self)

    @property
    def actor(self) -> str:
        """The person whose name goes on edits, labels and votes ("" until asked)."""
        return self._actor

    @property
    def author(self) -> str:
        """Who the changes made in the app are by, in the journal (and so whose undo takes them
        back): the annotator's name, or this computer's user until a name is given."""
        return self._actor or default_actor()

    def set_actor(self, name: str) -> None:
        name = name.strip()
        if name != self._actor:
            self._actor = name
            self.actor_changed.emit(name)
