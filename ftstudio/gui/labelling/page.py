"""The Label page: the labelling mode, its set-up, and agreement between annotators."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ftstudio.core.labelling import KIND_TITLES, Labelling
from ftstudio.gui.page_header import page_layout
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.labelling.agreement import AgreementPanel
from ftstudio.gui.labelling.mode import LabelMode
from ftstudio.gui.labelling.setup import SetupPanel
from ftstudio.gui.pages import Page


class LabellingPage(Page):
    """``LabellingPage(context, parent=None)``. The window calls ``undo``/``redo``,
    ``can_close``, ``shutdown``; ``saved(example_id)`` follows every committed label."""

    saved = Signal(int)

    def __init__(self, context: ProjectContext, parent=None) -> None:
        super().__init__(parent)
        self.context = context
        self.labelling = Labelling(context.project)

        layout, _head, self.kind_hint = page_layout(self, "Label", margins=(20, 12, 20, 10), spacing=6)

        self.mode = LabelMode(context, self.labelling)
        self.setup = SetupPanel(context, self.labelling)
        self.agreement = AgreementPanel(context, self.labelling)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._padded(self.mode), "Label")
        self.tabs.addTab(self._padded(self.setup), "Set up")
        self.tabs.addTab(self._padded(self.agreement), "Agreement")
        layout.addWidget(self.tabs, 1)

        self.mode.saved.connect(self.saved)
        self.mode.setup_requested.connect(lambda: self.tabs.setCurrentIndex(1))
        self.setup.schema_changed.connect(self._schema_changed)
        self.agreement.review_requested.connect(self.review_disagreements)
        self.tabs.currentChanged.connect(self._tab_changed)
        context.labels_changed.connect(self._update_hint)
        self._update_hint()
        if not self.labelling.schema().labels and self.labelling.kind() != "free_text" \
                and not self.labelling.labels_in_data():
            self.tabs.setCurrentIndex(1)  # nothing to label with yet: set up first

    @staticmethod
    def _padded(widget: QWidget) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 12, 0, 0)
        lay.addWidget(widget)
        return box

    @Slot()
    def _update_hint(self) -> None:
        schema = self.labelling.schema()
        hint = KIND_TITLES[schema.kind]
        if schema.uses_labels:
            n = len(schema.labels)
            hint += f" \u00b7 {n} label{'s' if n != 1 else ''}"
        self.kind_hint.setText(hint)

    @Slot()
    def _schema_changed(self) -> None:
        self._update_hint()
        self.mode.reload_schema()

    @Slot(int)
    def _tab_changed(self, index: int) -> None:
        if index == 0:
            self.setup.flush()
            self.mode.setFocus()
        elif index == 1 and self.mode.current_id is not None:
            self.setup.show_preview_of(self.mode.current_id)

    def review_disagreements(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.mode.load_queue("disagreements")

    def show_mode(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.mode.setFocus()

    # -- pictures ------------------------------------------------------------------------------

    def screenshot_states(self) -> dict:
        """Views for ``python -m ftstudio.gui.screenshots``; they write sample labels into the
        project (a throwaway copy there): see ``ftstudio.gui.labelling.sample``."""
        from ftstudio.gui.labelling.sample import stage_sample_state

        return {name: (lambda view=view: stage_sample_state(self, view))
                for name, view in (("label", "label"), ("label-setup", "setup"),
                                   ("label-agreement", "agreement"))}

    def screenshot_cleanup(self) -> None:
        """Take the sample tickets out again, so the pages pictured next count the project as it was."""
        from ftstudio.gui.labelling.sample import remove_sample_examples

        remove_sample_examples(self)
        self.context.set_actor("")

    # -- the window's calls ---------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.tabs.currentIndex() == 0 and self.mode.handle_key(event):
            event.accept()
            return
        super().keyPressEvent(event)

    def undo(self) -> None:
        self.mode.undo()

    def redo(self) -> None:
        self.mode.redo()

    def history(self, which: str) -> bool:
        self.undo() if which == "undo" else self.redo()
        return True

    def shutdown(self) -> None:
        self.setup.flush()
        self.mode.shutdown()
