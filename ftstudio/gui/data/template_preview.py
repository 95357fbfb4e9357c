"""Exactly what the model is trained on for one example: the conversation
rendered through the chosen model's chat template, token by token, with the
tokens that carry loss highlighted, and the token count."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QTextBrowser, QVBoxLayout, QWidget

from ftstudio.core.examples import Example
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.data.tokens import RenderedExample, render_conversation, shared_tokenizer, training_choice
from ftstudio.gui.workers import Job, JobSlot, Outcome

BUNDLED_CHOICE = "Bundled: SmolLM2-135M-Instruct"
OTHER_CHOICE = "Another model folder\u2026"


class TemplatePreview(QWidget):
    """Shows the example given to ``set_example`` once the tokenizer is ready (loaded on first show)."""

    def __init__(self, context: ProjectContext, parent=None) -> None:
        super().__init__(parent)
        self._context = context
        self._example_id: int | None = None
        self._user_chose = False  # a model picked here wins over the Train page's
        self._slot = JobSlot(self)  # newer wishes (another example, another model) win
        self.rendered: RenderedExample | None = None
        self._render_for: tuple[str | None, int | None] = (None, None)  # (model, example) of the render running
        self._tokens = shared_tokenizer()
        self._tokens.ready.connect(self._refresh)
        self._tokens.failed.connect(self._load_failed)
        self._tokens.progress.connect(self._progress)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        top = QHBoxLayout()
        top.addWidget(QLabel("Chat template of"))
        self.model = QComboBox()
        self.model.addItem(BUNDLED_CHOICE, None)
        self.model.addItem(OTHER_CHOICE, "")
        self.model.activated.connect(self._model_chosen)
        top.addWidget(self.model, 1)
        layout.addLayout(top)
        self.count = QLabel("Select an example to see it as the model sees it.")
        self.count.setObjectName("Hint")
        self.count.setWordWrap(True)
        layout.addWidget(self.count)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(style.FONT_POINT_SIZE)
        self.text.setFont(mono)
        layout.addWidget(self.text, 1)
        legend = QLabel(f'<span style="background:{style.LOSS_BG}">&nbsp;highlighted&nbsp;</span> '
                        f'tokens carry loss (the model learns to write them, the end-of-turn marker included: that is how it learns to stop); '
                        f'<span style="color:{style.SPECIAL_FG}">grey</span> ones are the template\'s own markers.')
        legend.setObjectName("Hint")
        legend.setWordWrap(True)
        layout.addWidget(legend)
        context.examples_changed.connect(self._examples_changed)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.follow_training()
        self._tokens.choose(self._chosen_dir())
        self._refresh()

    def follow_training(self) -> None:
        """Preview with the model chosen on the Train page, unless the user chose one here."""
        if self._user_chose:
            return
        model, _length = training_choice(self._context.project)
        if not model or model.startswith("bundled"):
            if self.model.currentData() is not None:
                self.model.setCurrentIndex(0)
            return
        i = self.model.findData(model)
        if i < 0:
            self.model.insertItem(self.model.count() - 1, f"Train page: {Path(model).name or model}", model)
            i = self.model.findData(model)
        self.model.setCurrentIndex(i)

    def _chosen_dir(self) -> str | None:
        return self.model.currentData() or None

    @Slot(int)
    def _model_chosen(self, index: int) -> None:
        self._user_chose = True
        if self.model.itemData(index) == "":
            folder = QFileDialog.getExistingDirectory(self, "Choose a model folder")
            if not folder:
                self.model.setCurrentIndex(0)
                return
            self.set_model_dir(folder)
            return
        self._tokens.choose(self._chosen_dir())
        self._refresh()

    def set_model_dir(self, folder: str | Path | None) -> None:
        """Preview with the tokenizer of a model folder or cached hub id (None: the bundled model)."""
        self._user_chose = True
        if folder is None:
            self.model.setCurrentIndex(0)
        else:
            folder = str(folder)
            i = self.model.findData(folder)
            if i < 0:
                self.model.insertItem(self.model.count() - 1, Path(folder).name, folder)
                i = self.model.findData(folder)
            self.model.setCurrentIndex(i)
        self._tokens.choose(self._chosen_dir())
        self._refresh()

    def set_example(self, example_id: int | None) -> None:
        self._example_id = example_id
        if self.isVisible():
            self._refresh()

    @Slot(list)
    def _examples_changed(self, ids: list) -> None:
        if self._example_id is not None and (not ids or self._example_id in ids) and self.isVisible():
            self._refresh()

    @Slot(str)
    def _progress(self, text: str) -> None:
        if self.isVisible():
            self.count.setText(text)

    @Slot(str)
    def _load_failed(self, message: str) -> None:
        self.count.setText(f"The tokenizer could not be loaded: {message}")

    @Slot()
    def _refresh(self) -> None:
        self._slot.request(self._render_job)

    def _render_job(self) -> Job | None:
        """The render of the example shown, or None (with a word why) when there is none to make."""
        if self._example_id is None:
            self.text.clear()
            self.count.setText("Select an example to see it as the model sees it.")
            return None
        tokenizer = self._tokens.tokenizer
        if tokenizer is None:
            if self._tokens.error:
                self.count.setText(f"The tokenizer could not be loaded: {self._tokens.error}")
            else:
                self.count.setText("Loading the tokenizer\u2026")
            return None
        try:
            example: Example = self._context.project.get_example(self._example_id)
        except KeyError:
            self.text.clear()
            return None
        self._render_for = (self._tokens.chosen, self._example_id)
        job = Job(render_conversation, tokenizer, example.conversation(), parent=self)
        job.ended.connect(self._render_ended)
        return job

    @Slot(object)
    def _render_ended(self, outcome: Outcome) -> None:
        # Newer wishes (another example, another model) win: their render starts after this one.
        stale = outcome.superseded or self._render_for != (self._tokens.chosen, self._example_id)
        if stale or outcome.stopped:
            return
        if outcome.failed:
            self.rendered = None
            self.text.clear()
            self.count.setText(f"The chat template cannot render this example: {outcome.value}")
            return
        if self._tokens.tokenizer is None:
            return
        rendered: RenderedExample = outcome.value
        self.rendered = rendered
        share = 100 * rendered.loss_count / max(1, rendered.token_count)
        self.count.setText(f"{rendered.token_count:,} tokens; {rendered.loss_count:,} carry loss ({share:.0f}%).")
        self.text.setHtml(f'<pre style="white-space: pre-wrap; font-family: \'DejaVu Sans Mono\', monospace">'
                          f"{rendered.to_html(style.LOSS_BG, style.SPECIAL_FG)}</pre>")

    def shutdown(self) -> None:
        self._slot.wait()
