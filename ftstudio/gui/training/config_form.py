"""The settings of a run: the model picker, presets, and every TrainConfig knob
with its one-line explanation, a tooltip with more, and its problems beside it.

The form holds no TrainConfig of its own: ``config()`` builds one from the
widgets as they are (a number typed wrongly stays text, so ``validate`` can
name it), and ``set_config`` fills the widgets from one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QCompleter, QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QSizePolicy, QSpinBox, QToolButton, QVBoxLayout, QWidget,
)

from ftstudio.core.config import BUNDLED_MODEL, PRESET_TITLES, PRESETS, Problem, TrainConfig, field_help, preset, preset_values
from ftstudio.engine.estimate import known_model_ids
from ftstudio.gui import style

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

TITLES = {
    "method": "Method", "lora_rank": "Rank", "lora_alpha": "Alpha", "lora_dropout": "Dropout",
    "target_modules": "Target layers", "learning_rate": "Learning rate", "warmup_ratio": "Warm-up share",
    "lr_schedule": "Schedule", "weight_decay": "Weight decay", "epochs": "Epochs", "max_steps": "Max steps",
    "batch_tokens": "Batch (tokens)", "grad_accum": "Accumulation", "max_length": "Context (tokens)",
    "overlength": "Longer examples", "train_on": "Learn from", "gradient_checkpointing": "Checkpointing",
    "offload_checkpoints": "Offload checkpoints (GPU)", "auto_fit": "Fit to the device", "micro_batch_tokens": "Micro-batch (tokens)",
    "fused_loss": "Fused loss (GPU)", "varlen_attention": "Varlen attention (GPU)",
    "bf16_autocast": "bf16 compute", "liger_kernels": "Liger kernels (GPU)",
    "precision": "Precision", "device": "Device", "seed": "Seed", "log_every": "Report every",
    "eval_every": "Evaluate every", "eval_batches": "Eval batches", "samples": "Sample answers",
    "sample_max_new_tokens": "Sample length", "checkpoint_every": "Checkpoint every",
    "keep_checkpoints": "Checkpoints kept", "objective": "Training", "start_from": "Start from",
    "beta": "Beta", "loss_type": "DPO loss", "desirable_weight": "Good answers' weight",
    "undesirable_weight": "Bad answers' weight",
}
CHOICES = {
    "objective": [("Supervised (SFT)", "sft"), ("Preference (DPO)", "dpo"), ("Preference (KTO)", "kto")],
    "start_from": [("The base model", "")],  # the page adds the runs with an adapter
    "loss_type": [("Sigmoid (DPO)", "sigmoid"), ("IPO", "ipo")],
    "method": [("LoRA", "lora"), ("QLoRA (4-bit NF4)", "qlora")],
    "lr_schedule": [("Cosine", "cosine"), ("Linear", "linear"), ("Constant", "constant")],
    "overlength": [("Drop them", "drop"), ("Truncate them", "truncate")],
    "train_on": [("The assistant's answers", "assistant"), ("The whole conversation", "all")],
    "precision": [("Automatic", "auto"), ("bf16", "bf16"), ("fp32", "fp32")],
    "device": [("Automatic (GPU if present)", "auto"), ("GPU (CUDA)", "cuda"), ("CPU", "cpu")],
}
# Order on the form; everything else follows in the dataclass order.
MAIN_ORDER = ["objective", "start_from", "method", "lora_rank", "lora_alpha", "learning_rate", "beta", "epochs",
              "max_steps", "batch_tokens",
              "max_length", "eval_every", "samples", "seed"]
SPIN_STEPS = {"lora_rank": 4, "lora_alpha": 8, "batch_tokens": 256, "micro_batch_tokens": 256, "max_length": 64,
              "eval_every": 10,
              "checkpoint_every": 50, "max_steps": 10}
SUFFIXES = {"eval_every": " steps", "checkpoint_every": " steps", "log_every": " steps", "max_steps": " steps",
            "sample_max_new_tokens": " tokens"}
# Kept when a preset is applied: what the model and machine are, not how hard to train.
KEPT_BY_PRESETS = ("model", "objective", "start_from", "method", "device", "precision", "target_modules", "train_on", "overlength",
                   "gradient_checkpointing", "offload_checkpoints", "auto_fit", "fused_loss", "varlen_attention", "bf16_autocast",
                   "liger_kernels", "seed")

FOLDER_ITEM = "__folder__"

# When to use each training objective, under its choice on the form.
OBJECTIVE_WORDS = {
    "sft": "Learns to give your examples' answers: the first run on a task.",
    "dpo": "Learns from pairs of a better and a worse answer (your blind votes): after an SFT run, to make it "
           "answer the way the experts prefer.",
    "kto": "Learns from answers marked good or bad, no pairs needed ('both bad' votes count): when you have "
           "verdicts rather than comparisons.",
}
# Settings that mean something only for some objectives; hidden for the others.
ONLY_FOR = {"start_from": ("dpo", "kto"), "beta": ("dpo", "kto"), "loss_type": ("dpo",),
            "desirable_weight": ("kto",), "undesirable_weight": ("kto",)}


def model_title(spec: str) -> str:
    if spec == BUNDLED_MODEL:
        return "SmolLM2-135M-Instruct (bundled, offline)"
    path = Path(spec).expanduser()
    if spec.startswith(("/", "~", ".")) or path.is_dir():
        return f"{path.name or spec} (folder: {path.parent})"
    return f"{spec} (Hugging Face hub)"


def _format_float(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _parse_float(text: str):
    try:
        return float(text.strip())
    except ValueError:
        return text.strip()  # validate() names it: "must be a number"


class FieldRow:
    """The widgets of one setting: label, editor, explanation, problem."""

    def __init__(self, name: str, editor: QWidget) -> None:
        help_text, detail, advanced = field_help(name)
        self.name = name
        self.advanced = advanced
        self.editor = editor
        self.label = QLabel(TITLES.get(name, name.replace("_", " ").capitalize()))
        self.label.setBuddy(editor)
        self.help = QLabel(help_text)
        self.help.setObjectName("Hint")
        self.help.setWordWrap(True)
        self.help.setStyleSheet("font-size: 9pt;")
        self.problem = QLabel()
        self.problem.setObjectName("Problem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        tip = f"<p><b>{self.label.text()}</b> <code>({name})</code></p><p>{detail}</p>"
        for w in (self.label, self.editor, self.help):
            w.setToolTip(tip)

    def set_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))
        self.label.setStyleSheet(f"color: {style.BAD}; font-weight: 600;" if text else "")


class ConfigForm(QWidget):
    """``ConfigForm()``: ``changed`` fires on every edit; ``config()``, ``set_config(cfg)``,
    ``set_model(spec)``, ``apply_preset(name)``, ``set_problems(problems)``, ``set_editable(bool)``."""

    changed = Signal()
    model_changed = Signal(str)
    download_requested = Signal(str)  # a hub id that is not in the local cache yet
    fetch_config_requested = Signal(str)  # a hub id whose shape is unknown: fetch its config.json alone
    _train_examples: int | None = None  # Quick's epochs follow it (set_train_examples)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: dict[str, FieldRow] = {}
        self._loading = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 6, 0)
        outer.setSpacing(6)

        # -- model --------------------------------------------------------------------
        outer.addWidget(self._section("Model"))
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(20)
        self.model_combo.setToolTip(field_help("model")[1])
        self.folder_button = QPushButton("Folder\u2026")
        self.folder_button.setToolTip("Choose a folder holding a Hugging Face model (config.json and .safetensors)")
        pick = QHBoxLayout()
        pick.setSpacing(6)
        pick.addWidget(self.model_combo, 1)
        pick.addWidget(self.folder_button)
        outer.addLayout(pick)
        self.hub_edit = QLineEdit()
        self.hub_edit.setPlaceholderText("or a hub id, e.g. HuggingFaceTB/SmolLM2-360M-Instruct, then Enter")
        self.hub_edit.setClearButtonEnabled(True)
        self.hub_edit.setToolTip("A model id on the Hugging Face hub. It is used from the local cache; "
                                 "a model not downloaded yet offers a Download button here. Popular models "
                                 "are suggested as you type, with their estimate before any download.")
        completer = QCompleter(known_model_ids(), self.hub_edit)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.hub_edit.setCompleter(completer)
        outer.addWidget(self.hub_edit)
        download_row = QHBoxLayout()
        download_row.setSpacing(6)
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip("Download this model's config, tokenizer and safetensors weights "
                                        "into the local Hugging Face cache")
        self.download_button.clicked.connect(lambda: self.download_requested.emit(self.model_spec()))
        self.download_progress = QProgressBar()
        self.download_progress.setTextVisible(True)
        self.fetch_config_button = QPushButton("Fetch config.json")
        self.fetch_config_button.setToolTip("Fetch only this model's config.json (a few KB) from the hub, for a "
                                            "memory estimate before downloading its weights")
        self.fetch_config_button.clicked.connect(lambda: self.fetch_config_requested.emit(self.model_spec()))
        download_row.addWidget(self.download_button)
        download_row.addWidget(self.fetch_config_button)
        download_row.addWidget(self.download_progress, 1)
        outer.addLayout(download_row)
        self.download_button.hide()
        self.fetch_config_button.hide()
        self.download_progress.hide()
        self.model_info = QLabel()
        self.model_info.setObjectName("Hint")
        self.model_info.setWordWrap(True)
        outer.addWidget(self.model_info)
        self.model_problem = QLabel()
        self.model_problem.setObjectName("Problem")
        self.model_problem.setWordWrap(True)
        self.model_problem.hide()
        outer.addWidget(self.model_problem)

        # -- presets ------------------------------------------------------------------
        outer.addSpacing(4)
        outer.addWidget(self._section("Preset"))
        presets = QHBoxLayout()
        presets.setSpacing(0)
        self.preset_group = QButtonGroup(self)
        self.preset_group.setExclusive(False)
        self.preset_buttons: dict[str, QPushButton] = {}
        tips = {"quick": "Small batches and a short context: learns a simple task in minutes, even on a CPU.",
                "balanced": "Two passes over the data with a longer context: a good default on a GPU.",
                "best": "Higher rank, three passes and long context: slower, learns the most."}
        names = list(PRESETS)
        for i, name in enumerate(names):
            b = QPushButton(PRESET_TITLES.get(name, name))
            b.setCheckable(True)
            b.setToolTip(tips.get(name, ""))
            b.setMinimumHeight(28)
            radius = ("border-top-left-radius: 5px; border-bottom-left-radius: 5px;" if i == 0 else
                      "border-top-right-radius: 5px; border-bottom-right-radius: 5px;" if i == len(names) - 1
                      else "")
            b.setStyleSheet(
                "QPushButton { border-radius: 0px; " + radius + " margin-left: -1px; }"
                "QPushButton:checked { background: #dbe8f6; color: #2f6fb2; border-color: #2f6fb2; font-weight: 600; }")
            self.preset_group.addButton(b)
            self.preset_buttons[name] = b
            presets.addWidget(b, 1)
            b.clicked.connect(lambda _checked=False, n=name: self.apply_preset(n))
        outer.addLayout(presets)
        self.preset_note = QLabel("Custom settings")
        self.preset_note.setObjectName("Hint")
        self.preset_note.setStyleSheet("font-size: 9pt;")
        self.preset_note.setWordWrap(True)
        outer.addWidget(self.preset_note)

        # -- settings -----------------------------------------------------------------
        outer.addSpacing(4)
        outer.addWidget(self._section("Settings"))
        self.general_problem = QLabel()
        self.general_problem.setObjectName("Problem")
        self.general_problem.setWordWrap(True)
        self.general_problem.hide()
        outer.addWidget(self.general_problem)
        main_grid = self._grid()
        outer.addLayout(main_grid)

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setStyleSheet("QToolButton { border: none; font-weight: 600; padding: 6px 0; }")
        self.advanced_toggle.toggled.connect(self.set_advanced_visible)
        outer.addSpacing(2)
        outer.addWidget(self.advanced_toggle)
        self.advanced_box = QWidget()
        adv_grid = self._grid()
        self.advanced_box.setLayout(adv_grid)
        adv_grid.setContentsMargins(0, 0, 0, 0)
        self.advanced_box.hide()
        outer.addWidget(self.advanced_box)
        outer.addStretch(1)

        order = MAIN_ORDER + [n for n in FIELDS if n not in MAIN_ORDER and n != "model"]
        main_row = adv_row = 0
        for name in order:
            row = FieldRow(name, self._editor(name))
            self.rows[name] = row
            if row.advanced:
                adv_row = self._add_row(adv_grid, adv_row, row)
            else:
                main_row = self._add_row(main_grid, main_row, row)

        objective = self.rows["objective"].editor
        assert isinstance(objective, QComboBox)
        objective.currentIndexChanged.connect(self._objective_picked)
        self.model_combo.currentIndexChanged.connect(self._model_picked)
        self.folder_button.clicked.connect(lambda _checked=False: self.ask_model_folder())
        self.hub_edit.returnPressed.connect(self._hub_entered)
        self._fill_models()
        self.set_config(preset("quick"))

    # -- building -------------------------------------------------------------------------

    @staticmethod
    def _section(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("SectionTitle")
        return label

    @staticmethod
    def _grid() -> QGridLayout:
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        grid.setColumnMinimumWidth(0, 118)
        grid.setColumnStretch(1, 1)
        return grid

    @staticmethod
    def _add_row(grid: QGridLayout, r: int, row: FieldRow) -> int:
        grid.addWidget(row.label, r, 0)
        grid.addWidget(row.editor, r, 1)
        grid.addWidget(row.help, r + 1, 0, 1, 2)
        grid.addWidget(row.problem, r + 2, 0, 1, 2)
        spacer = QFrame()
        spacer.setFixedHeight(6)
        grid.addWidget(spacer, r + 3, 0)
        return r + 4

    def _editor(self, name: str) -> QWidget:
        kind = FIELDS[name].type
        w: QWidget
        if name in CHOICES:
            combo = QComboBox()
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            for text, value in CHOICES[name]:
                combo.addItem(text, value)
            combo.currentIndexChanged.connect(self._edited)
            w = combo
        elif kind in ("bool", bool):
            check = QCheckBox("On")
            check.toggled.connect(self._edited)
            w = check
        elif kind in ("int", int):
            spin = QSpinBox()
            spin.setRange(0, 1_000_000_000)
            spin.setSingleStep(SPIN_STEPS.get(name, 1))
            spin.setGroupSeparatorShown(True)
            spin.setSuffix(SUFFIXES.get(name, ""))
            if name == "max_steps":
                spin.setSpecialValueText("No limit")
            if name == "eval_every":
                spin.setSpecialValueText("Only at the end")
            if name == "checkpoint_every":
                spin.setSpecialValueText("Only at the end")
            if name == "eval_batches":
                spin.setSpecialValueText("All")
            if name == "micro_batch_tokens":
                spin.setSpecialValueText("Chosen by the plan")
            spin.setKeyboardTracking(True)
            spin.valueChanged.connect(self._edited)
            w = spin
        elif name == "target_modules":
            line = QLineEdit()
            line.setPlaceholderText("all-linear, or names such as q_proj, v_proj")
            line.textChanged.connect(self._edited)
            w = line
        else:  # floats: typed freely (2e-4), checked by validate()
            line = QLineEdit()
            line.textChanged.connect(self._edited)
            w = line
        w.setObjectName(f"field_{name}")
        w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return w

    # -- models ---------------------------------------------------------------------------

    def _fill_models(self) -> None:
        try:
            from ftstudio.engine.models import available_models

            choices = available_models()
        except Exception:  # an unreadable cache: offer the bundled model alone
            choices = []
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem(model_title(BUNDLED_MODEL), BUNDLED_MODEL)
        for c in choices:
            if c.spec != BUNDLED_MODEL:
                self.model_combo.addItem(c.title, c.spec)
        self.model_combo.insertSeparator(self.model_combo.count())
        self.model_combo.addItem("Choose a folder\u2026", FOLDER_ITEM)
        self.model_combo.blockSignals(False)

    def model_spec(self) -> str:
        value = self.model_combo.currentData()
        return "" if value in (None, FOLDER_ITEM) else str(value)

    def set_model(self, spec: str) -> None:
        """Select ``spec`` (bundled, a folder or a hub id), adding it to the list when new."""
        spec = spec.strip()
        if not spec:
            return
        index = self.model_combo.findData(spec)
        if index < 0:
            index = self.model_combo.count() - 2  # before the separator and "Choose a folder…"
            self.model_combo.insertItem(index, model_title(spec), spec)
        self._last_model_index = index
        self.model_combo.setCurrentIndex(index)

    @Slot(int)
    def _model_picked(self, index: int) -> None:
        if self.model_combo.itemData(index) == FOLDER_ITEM:
            self.model_combo.blockSignals(True)
            self.model_combo.setCurrentIndex(getattr(self, "_last_model_index", 0))
            self.model_combo.blockSignals(False)
            self.ask_model_folder()
            return
        self._last_model_index = index
        self.model_combo.setToolTip(self.model_spec())
        self.model_changed.emit(self.model_spec())
        self._edited()

    def ask_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", str(Path.home()))
        if folder:
            self.set_model(folder)

    @Slot()
    def _hub_entered(self) -> None:
        text = self.hub_edit.text().strip()
        if text:
            self.set_model(text)
            self.hub_edit.clear()

    def set_model_info(self, text: str, problem: str = "") -> None:
        """What the model is (size, layers), or why it cannot be read."""
        from ftstudio.engine.models import looks_like_hub_id

        downloadable = bool(problem) and ("not in the local Hugging Face cache" in problem
                                          or problem.startswith("Could not download")) \
            and looks_like_hub_id(self.model_spec())
        self.download_button.setVisible(downloadable and not self.download_progress.isVisible())
        self.fetch_config_button.setVisible(downloadable and "fetch its config.json" in problem
                                            and not self.download_progress.isVisible())
        self.model_info.setText(text)
        self.model_info.setVisible(bool(text))
        self._model_lookup_problem = problem
        self._show_model_problem()

    def show_download(self, done: int | None, total: int | None, text: str = "") -> None:
        """The download bar: bytes so far of the total (None: hide it)."""
        if done is None:
            self.download_progress.hide()
            return
        self.download_button.hide()
        self.fetch_config_button.hide()
        self.download_progress.show()
        if total:
            self.download_progress.setRange(0, 1000)
            self.download_progress.setValue(int(1000 * min(done, total) / total))
            self.download_progress.setFormat(f"{done / 1e6:,.0f} of {total / 1e6:,.0f} MB")
        else:
            self.download_progress.setRange(0, 0)  # busy: the size is not known yet
        if text:
            self.download_progress.setFormat(text)

    def _show_model_problem(self) -> None:
        text = "; ".join(t for t in (getattr(self, "_model_validation_problem", ""),
                                     getattr(self, "_model_lookup_problem", "")) if t)
        self.model_problem.setText(text)
        self.model_problem.setVisible(bool(text))

    # -- values ---------------------------------------------------------------------------

    def _value(self, name: str):
        w = self.rows[name].editor
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QSpinBox):
            return w.value()
        assert isinstance(w, QLineEdit)  # every other editor is a text box (see _editor)
        if name == "target_modules":
            return [m.strip() for m in w.text().split(",") if m.strip()]
        return _parse_float(w.text())

    def config(self) -> TrainConfig:
        """The settings as the widgets show them (possibly invalid; see validate)."""
        values = {name: self._value(name) for name in self.rows}
        return TrainConfig(model=self.model_spec(), **values)

    def set_config(self, cfg: TrainConfig) -> None:
        self._loading = True
        try:
            for name, row in self.rows.items():
                value = getattr(cfg, name)
                w = row.editor
                if isinstance(w, QComboBox):
                    i = w.findData(value)
                    if i < 0 and name == "start_from" and value:  # a folder the page did not list
                        w.addItem(str(value), value)
                        i = w.findData(value)
                    w.setCurrentIndex(i if i >= 0 else 0)
                elif isinstance(w, QCheckBox):
                    w.setChecked(bool(value))
                elif isinstance(w, QSpinBox):
                    w.setValue(int(value) if isinstance(value, (int, float)) else 0)
                else:
                    assert isinstance(w, QLineEdit)  # every other editor is a text box (see _editor)
                    if name == "target_modules":
                        w.setText(", ".join(value) if isinstance(value, list) else str(value))
                    else:
                        w.setText(_format_float(value))
            if cfg.model:
                self.set_model(cfg.model)
        finally:
            self._loading = False
        self._edited()

    def apply_preset(self, name: str) -> None:
        """The preset's settings, keeping the model, method and machine choices."""
        current = self.config()
        kept = {k: getattr(current, k) for k in KEPT_BY_PRESETS}
        self.set_config(preset(name, self._train_examples, **kept))

    def set_train_examples(self, n: int) -> None:
        """The number of training examples, which Quick's epochs follow; settings that are Quick stay Quick."""
        was_quick = self.matching_preset() == "quick"
        self._train_examples = n
        if was_quick and self.matching_preset() != "quick":
            self.apply_preset("quick")

    def matching_preset(self) -> str | None:
        cfg = self.config()
        for name in PRESETS:
            if all(getattr(cfg, k) == v for k, v in preset_values(name, self._train_examples).items()):
                return name
        return None

    @Slot()
    def _edited(self, *_args) -> None:
        if self._loading:
            return
        match = self.matching_preset()
        for name, b in self.preset_buttons.items():
            b.setChecked(name == match)
        self.preset_note.setText(f"{PRESET_TITLES.get(match, match)} preset" if match else
                                 "Custom settings (a preset keeps the model and method)")
        self._show_objective_rows()
        self.changed.emit()

    # -- problems and state -----------------------------------------------------------------

    # -- preference tuning ------------------------------------------------------------------

    def _show_objective_rows(self) -> None:
        objective = self._value("objective")
        for name, objectives in ONLY_FOR.items():
            row = self.rows[name]
            shown = objective in objectives  # (advanced ones also only while their box is open)
            for w in (row.label, row.editor, row.help):
                w.setVisible(shown)
            row.problem.setVisible(shown and bool(row.problem.text()))
        row = self.rows["objective"]
        note = getattr(self, "_objective_note", {}).get(objective, "")
        row.help.setText(OBJECTIVE_WORDS.get(objective, "") + (f" {note}" if note else ""))

    def set_objective_notes(self, notes: dict[str, str]) -> None:
        """What the page knows about each objective's data (e.g. "12 pairs to train on"), shown under the choice."""
        self._objective_note = dict(notes)
        self._show_objective_rows()

    def set_start_runs(self, runs: list[tuple[str, str]]) -> None:
        """The runs preference tuning can start from: (words, adapter folder), newest first."""
        combo = self.rows["start_from"].editor
        assert isinstance(combo, QComboBox)
        current = combo.currentData()
        self._loading = True
        try:
            combo.clear()
            combo.addItem("The base model", "")
            for text, folder in runs:
                combo.addItem(text, folder)
            i = combo.findData(current)
            combo.setCurrentIndex(i if i >= 0 else 0)
        finally:
            self._loading = False

    def _objective_picked(self, _index: int) -> None:
        # Preference tuning usually goes on from an SFT run: offer the newest one.
        combo = self.rows["start_from"].editor
        assert isinstance(combo, QComboBox)
        if not self._loading and self._value("objective") != "sft" and not combo.currentData() and combo.count() > 1:
            combo.setCurrentIndex(1)

    def set_problems(self, problems: list[Problem]) -> None:
        by_field: dict[str, list[str]] = {}
        general: list[str] = []
        for p in problems:
            if p.field in self.rows:
                by_field.setdefault(p.field, []).append(p.message)
            elif p.field == "model":
                by_field.setdefault("model", []).append(p.message)
            else:
                general.append(str(p))
        for name, row in self.rows.items():
            row.set_problem("; ".join(by_field.get(name, [])).capitalize())
        self._model_validation_problem = "; ".join(by_field.get("model", [])).capitalize()
        self._show_model_problem()
        self.general_problem.setText("\n".join(general))
        self.general_problem.setVisible(bool(general))
        if any(self.rows[n].advanced for n in by_field if n in self.rows):
            self.advanced_toggle.setChecked(True)  # never hide a problem in a folded section

    def set_editable(self, editable: bool) -> None:
        for w in (self.model_combo, self.folder_button, self.hub_edit, *self.preset_buttons.values()):
            w.setEnabled(editable)
        for row in self.rows.values():
            row.editor.setEnabled(editable)

    @Slot(bool)
    def set_advanced_visible(self, visible: bool) -> None:
        self.advanced_box.setVisible(visible)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if visible else Qt.ArrowType.RightArrow)
        if self.advanced_toggle.isChecked() != visible:
            self.advanced_toggle.setChecked(visible)

    def editor(self, name: str) -> QWidget:
        return self.rows[name].editor

    def problem_text(self, name: str) -> str:
        if name == "model":
            return self.model_problem.text() if not self.model_problem.isHidden() else ""
        row = self.rows[name]
        return row.problem.text() if not row.problem.isHidden() else ""
