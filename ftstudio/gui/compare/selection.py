"""The left column of the Compare page: which models, which prompts, which
sampling settings. Every tab reads its choices from here, so a comparison,
a blind round and an evaluation all use the same models and prompts."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit,
    QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton, QRadioButton, QSpinBox, QVBoxLayout, QWidget,
)

from ftstudio.core import ratings
from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.core.examples import Example, check_conversation
from ftstudio.core.project import ExampleFilter
from ftstudio.engine.comparison import ModelRef, PromptItem
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.plain import plain_tip

ADAPTER_RUN_STATES = ("finished", "stopped")
SOURCE_HELDOUT, SOURCE_MATCHING, SOURCE_TYPED = "heldout", "matching", "typed"
ANY_LABEL = "Any label"


def prompt_from_example(ex: Example) -> PromptItem:
    """The example's conversation up to the answer, with the answer as the reference."""
    messages = ex.conversation()
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return PromptItem(messages=messages, example_id=ex.id, reference=ex.reference_answer(), label=ex.label)


def _section(title: str) -> QLabel:
    label = QLabel(title)
    label.setObjectName("SectionTitle")
    return label


class SelectionPanel(QWidget):
    models_changed = Signal()
    base_changed = Signal(str)
    prompts_changed = Signal()

    def __init__(self, context: ProjectContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self._folders: list[ModelRef] = []
        self.setMinimumWidth(270)
        self.setMaximumWidth(340)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(6)

        layout.addWidget(_section("Base model"))
        self.base_combo = QComboBox()
        self.base_combo.setToolTip("Adapters are compared on top of this model; it is loaded once.")
        layout.addWidget(self.base_combo)

        layout.addWidget(_section("Models to compare"))
        self.model_list = QListWidget()
        self.model_list.setMinimumHeight(84)
        self.model_list.setMaximumHeight(150)
        self.model_list.setToolTip("The base model and the adapters of finished runs trained on it.")
        layout.addWidget(self.model_list)
        row = QHBoxLayout()
        self.add_folder_button = QPushButton("Add adapter folder…")
        self.add_folder_button.setToolTip("An adapter saved in PEFT format (adapter_config.json and "
                                          "adapter_model.safetensors); it is checked before use.")
        row.addWidget(self.add_folder_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.model_message = QLabel()
        self.model_message.setObjectName("Problem")
        self.model_message.setWordWrap(True)
        self.model_message.hide()
        layout.addWidget(self.model_message)

        layout.addSpacing(4)
        layout.addWidget(_section("Prompts"))
        self.source_group = QButtonGroup(self)
        self.source_buttons = {}
        for key, text in ((SOURCE_HELDOUT, "Held-out examples"), (SOURCE_MATCHING, "Examples matching…"),
                          (SOURCE_TYPED, "Prompts I type")):
            button = QRadioButton(text)
            self.source_group.addButton(button)
            self.source_buttons[key] = button
            layout.addWidget(button)
        self.source_buttons[SOURCE_HELDOUT].setChecked(True)

        self.filter_box = QWidget()
        fl = QHBoxLayout(self.filter_box)
        fl.setContentsMargins(18, 0, 0, 0)
        self.filter_text = QLineEdit()
        self.filter_text.setPlaceholderText("Text to look for")
        self.filter_label = QComboBox()
        fl.addWidget(self.filter_text, 2)
        fl.addWidget(self.filter_label, 1)
        layout.addWidget(self.filter_box)

        self.typed = QPlainTextEdit()
        self.typed.setPlaceholderText("One prompt per paragraph; leave a blank line between prompts.")
        self.typed.setMaximumHeight(110)
        layout.addWidget(self.typed)

        limit_row = QHBoxLayout()
        limit_row.addWidget(QLabel("At most"))
        self.limit = QSpinBox()
        self.limit.setRange(1, 100000)
        self.limit.setValue(20)
        limit_row.addWidget(self.limit)
        limit_row.addWidget(QLabel("prompts"))
        limit_row.addStretch(1)
        layout.addLayout(limit_row)
        self.prompt_count = QLabel()
        self.prompt_count.setObjectName("Hint")
        self.prompt_count.setWordWrap(True)
        layout.addWidget(self.prompt_count)

        layout.addSpacing(4)
        layout.addWidget(_section("Sampling"))
        same = QLabel("The same settings for every model.")
        same.setObjectName("Hint")
        layout.addWidget(same)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setToolTip("0 always picks the likeliest word (repeatable); higher is more varied.")
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setValue(1.0)
        self.top_p.setToolTip("Only sample from the likeliest words that together make up this share.")
        self.max_new_tokens = QSpinBox()
        self.max_new_tokens.setRange(1, 4096)
        self.max_new_tokens.setValue(128)
        self.max_new_tokens.setToolTip("Longest answer, in tokens.")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("With a temperature above 0, the same seed gives every model the same random draws.")
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Max new tokens", self.max_new_tokens)
        form.addRow("Seed", self.seed)
        layout.addLayout(form)
        layout.addStretch(1)

        self.base_combo.currentIndexChanged.connect(self._on_base_changed)
        self.model_list.itemChanged.connect(lambda _item: self.models_changed.emit())
        self.source_group.buttonToggled.connect(self._on_source_toggled)
        self.filter_text.textChanged.connect(self._prompts_edited)
        self.filter_label.currentIndexChanged.connect(self._prompts_edited)
        self.typed.textChanged.connect(self._prompts_edited)
        self.limit.valueChanged.connect(self._prompts_edited)
        context.runs_changed.connect(self.reload)
        context.labels_changed.connect(self._reload_labels)
        context.examples_changed.connect(lambda _ids: self._prompts_edited())
        self.reload()
        self._reload_labels()
        self._on_source_toggled()

    # -- models -------------------------------------------------------------------------

    def base_spec(self) -> str:
        return self.base_combo.currentData() or BUNDLED_MODEL

    def base_four_bit(self) -> bool:
        """Whether the chosen base loads in 4-bit: a run of it with an adapter trained QLoRA."""
        from ftstudio.engine.inference import loads_in_4bit

        project = self.context.project
        base = self.base_spec()
        return loads_in_4bit(r.config for r in project.runs()
                             if (r.model or BUNDLED_MODEL) == base and (project.run_dir(r.id) / "adapter").is_dir())

    def base_ref(self) -> ModelRef:
        key = ratings.base_key(self.base_spec())
        return ModelRef(key, ratings.model_label(key), None)

    def reload(self) -> None:
        """Refill the base models and the adapters of finished runs."""
        project = self.context.project
        runs = [r for r in project.runs() if (project.run_dir(r.id) / "adapter").is_dir()]
        current = self.base_combo.currentData()
        bases = [BUNDLED_MODEL] + sorted({r.model for r in runs if r.model} - {BUNDLED_MODEL})
        self.base_combo.blockSignals(True)
        self.base_combo.clear()
        for spec in bases:
            self.base_combo.addItem(ratings.model_label(ratings.base_key(spec)).removeprefix("Base (")[:-1], spec)
            self.base_combo.setItemData(self.base_combo.count() - 1, plain_tip(spec), Qt.ItemDataRole.ToolTipRole)
        if current in bases:
            self.base_combo.setCurrentIndex(bases.index(current))
        elif runs:
            self.base_combo.setCurrentIndex(bases.index(runs[0].model or BUNDLED_MODEL))
        self.base_combo.blockSignals(False)
        self._fill_models(runs)

    def _fill_models(self, runs=None) -> None:
        project = self.context.project
        if runs is None:
            runs = [r for r in project.runs() if (project.run_dir(r.id) / "adapter").is_dir()]
        checked = {ref.key for ref in self.checked_refs()} if self.model_list.count() else None
        base = self.base_spec()
        self.model_list.blockSignals(True)
        self.model_list.clear()
        refs = [self.base_ref()]
        details = {refs[0].key: base}
        for r in runs:
            if (r.model or BUNDLED_MODEL) != base:
                continue
            key = ratings.run_key(r.id)
            refs.append(ModelRef(key, ratings.model_label(key), project.run_dir(r.id) / "adapter"))
            loss = f", eval loss {r.eval_loss:.3f}" if r.eval_loss is not None else ""
            details[key] = f"{r.method} run from {r.created_at[:16].replace('T', ' ')}, {r.steps} steps{loss}"
        refs += self._folders
        for ref in refs:
            item = QListWidgetItem(ref.label)
            item.setData(Qt.ItemDataRole.UserRole, ref)
            item.setToolTip(details.get(ref.key, str(ref.adapter_dir)))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = ref.key in checked if checked is not None else True
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.model_list.addItem(item)
        self.model_list.blockSignals(False)
        self.models_changed.emit()

    def _on_base_changed(self) -> None:
        self._folders.clear()
        self._fill_models()
        self.base_changed.emit(self.base_spec())

    def all_refs(self) -> list[ModelRef]:
        return [self.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.model_list.count())]

    def checked_refs(self) -> list[ModelRef]:
        return [self.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.model_list.count())
                if self.model_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, keys: list[str]) -> None:
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole).key in keys
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def add_folder_ref(self, folder: Path) -> ModelRef:
        """Add an adapter folder that has already passed the check."""
        key = ratings.adapter_key(folder)
        for ref in self.all_refs():
            if ref.key == key:
                return ref
        ref = ModelRef(key, ratings.model_label(key), Path(folder).resolve())
        self._folders.append(ref)
        self._fill_models()
        return ref

    def show_model_message(self, text: str) -> None:
        self.model_message.setText(text)
        self.model_message.setVisible(bool(text))

    # -- prompts ------------------------------------------------------------------------

    def _reload_labels(self) -> None:
        current = self.filter_label.currentData()
        self.filter_label.blockSignals(True)
        self.filter_label.clear()
        self.filter_label.addItem(ANY_LABEL, None)
        for label in self.context.project.labels():
            self.filter_label.addItem(label, label)
        index = self.filter_label.findData(current)
        self.filter_label.setCurrentIndex(max(0, index))
        self.filter_label.blockSignals(False)

    def source(self) -> str:
        for key, button in self.source_buttons.items():
            if button.isChecked():
                return key
        return SOURCE_HELDOUT

    def set_source(self, key: str) -> None:
        self.source_buttons[key].setChecked(True)

    def _on_source_toggled(self, *_args) -> None:
        source = self.source()
        self.filter_box.setVisible(source == SOURCE_MATCHING)
        self.typed.setVisible(source == SOURCE_TYPED)
        self._prompts_edited()

    def _prompts_edited(self, *_args) -> None:
        n = len(self.prompts())
        source = self.source()
        if source == SOURCE_TYPED:
            text = f"{n} typed prompt{'s' if n != 1 else ''}"
        elif n == 0 and source == SOURCE_HELDOUT:
            text = "The project has no held-out examples yet; add examples or type prompts."
        else:
            text = f"{n} example{'s' if n != 1 else ''} with a prompt"
            if n >= self.limit.value():
                text = f"The first {n} of {self.context.project.count_examples(self._filter())} examples"
        self.prompt_count.setText(text)
        self.prompts_changed.emit()

    def _filter(self) -> ExampleFilter:
        if self.source() == SOURCE_HELDOUT:
            return ExampleFilter(split="eval")
        return ExampleFilter(text=self.filter_text.text().strip(), label=self.filter_label.currentData())

    def examples(self, limited: bool = True) -> list[Example]:
        """The chosen examples (none for typed prompts), at most the chosen number when ``limited``."""
        source = self.source()
        limit = self.limit.value() if limited else None
        if source == SOURCE_TYPED:
            return []
        out = []
        for ex in self.context.project.examples(self._filter()):
            if ex.status in ("skipped",) or not ex.prompt_text().strip():
                continue
            out.append(ex)
            if limit is not None and len(out) >= limit:
                break
        return out

    def evaluation_examples(self) -> list[Example]:
        """The chosen examples that have a well-formed answer to measure against.

        No limit: with the held-out source these are exactly the examples
        ``ftstudio evaluate`` measures, so both give the same numbers.
        """
        return [ex for ex in self.examples(limited=False)
                if ex.status == "labelled" and check_conversation(ex.conversation()) is None]

    def prompts(self) -> list[PromptItem]:
        if self.source() == SOURCE_TYPED:
            paragraphs = [p.strip() for p in self.typed.toPlainText().replace("\r\n", "\n").split("\n\n")]
            items = [PromptItem(messages=[{"role": "user", "content": p}]) for p in paragraphs if p]
            return items[: self.limit.value()]
        return [prompt_from_example(ex) for ex in self.examples()]

    # -- sampling -----------------------------------------------------------------------

    def sampling(self) -> dict:
        """The sampling settings as a plain dict (SamplingSettings fields)."""
        return {"temperature": round(self.temperature.value(), 4), "top_p": round(self.top_p.value(), 4),
                "max_new_tokens": self.max_new_tokens.value(), "seed": self.seed.value()}


def separator() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setStyleSheet("color: #d8dce3;")
    return line
