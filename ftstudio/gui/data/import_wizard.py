"""Import a data file: choose it, see what it holds and how its columns map,
see every problem with its line, then import all of it or nothing.

Files are read and imported on worker threads (each with its own database
connection), so a large file never freezes the window.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QListWidget, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWizard, QWizardPage,
)

from ftstudio.core.formats import (
    FIX_COLUMNS, FIX_FORMAT, FIX_PROMPT_COLUMN, FORMATS, JSON_TABLE, MAPPABLE_FIELDS, PREVIEW_ROWS,
    DatasetPreview, ImportFailed, import_dataset, read_dataset,
)
from ftstudio.core.project import Project
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.workers import Job, JobSlot, Outcome

DATA_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".tab", ".parquet")
FILE_FILTER = "Data files (*.jsonl *.json *.ndjson *.csv *.tsv *.parquet);;All files (*)"
FORMAT_NAMES = {
    "auto": "Detect from the file", "messages": "OpenAI / TRL messages", "alpaca": "Alpaca (instruction, output)",
    "sharegpt": "ShareGPT (conversations)", "csv": "CSV / TSV table", "parquet": "Parquet table",
    "hf-dataset": "Folder saved by datasets", JSON_TABLE: "JSON records as a table",
}
NO_COLUMN = "(not used)"
FIELD_HELP = {
    "prompt": "What the user asks (required)",
    "response": "The answer the model should learn",
    "system": "System prompt for each example",
    "label": "A category, for labelled tasks",
}
CELL_CHARS = 120


# The reader's problems name their fixes; here the same choices are controls.
WIZARD_FIXES = {
    FIX_FORMAT: "choose the format on the first page (Back)",
    FIX_COLUMNS: "choose the prompt and response columns below",
    FIX_PROMPT_COLUMN: "choose the prompt column below",
}


def _first(messages: list[dict], role: str) -> str:
    return next((str(m.get("content") or "") for m in messages if m.get("role") == role), "")


def _last(messages: list[dict], role: str) -> str:
    return next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == role), "")


def is_importable(path: str | Path) -> bool:
    """A data file by its name, or a folder saved by ``datasets``."""
    path = Path(path)
    if path.is_dir():
        return (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists() \
            or (path / "state.json").exists()
    return path.suffix.lower() in DATA_SUFFIXES


class _Superseded(Exception):
    """A newer read was asked for: this one stops where it is."""


def _read(path: str, fmt: str, column_map: dict | None, system: str | None, report, interrupted) -> DatasetPreview:
    def progress(done: int, total: int) -> None:
        if interrupted():
            raise _Superseded
        report((done, total))

    # The preview holds the first examples only; the whole file is still read and checked.
    return read_dataset(path, format=fmt, column_map=column_map, system=system, keep_examples=PREVIEW_ROWS,
                        progress=progress)


def _import(project_path: str, path: str, fmt: str, column_map: dict | None, system: str | None,
            eval_fraction: float, actor: str, report, interrupted) -> DatasetPreview | ImportFailed:
    """Worker thread: the import, or (nothing imported) the problems that stopped it."""
    project = Project.open(project_path)
    try:
        project.on_wait = lambda message: report(message)
        return import_dataset(project, path, format=fmt, column_map=column_map, system=system,
                              eval_fraction=eval_fraction, actor=actor, progress=lambda d, t: report((d, t)))
    except ImportFailed as exc:  # told with the wizard's words for the fixes
        return exc
    finally:
        project.close()


class FilePage(QWizardPage):
    def __init__(self, wizard: "ImportWizard") -> None:
        super().__init__(wizard)
        self.setTitle("Choose a file")
        self.setSubTitle("JSONL or JSON (messages, Alpaca, ShareGPT), CSV or TSV, Parquet, "
                         "or a folder saved by the datasets library.")
        form = QFormLayout(self)
        form.setVerticalSpacing(10)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("Path to a data file or datasets folder")
        self.path.textChanged.connect(self.completeChanged)
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form.addRow("File", row)
        self.format = QComboBox()
        for fmt in (*FORMATS, JSON_TABLE):
            self.format.addItem(FORMAT_NAMES.get(fmt, fmt), fmt)
        form.addRow("Format", self.format)
        self.system = QLineEdit()
        self.system.setPlaceholderText("Optional: given to examples that have none")
        form.addRow("System prompt", self.system)
        self.eval_fraction = QDoubleSpinBox()
        self.eval_fraction.setRange(0, 50)
        self.eval_fraction.setSuffix(" %")
        self.eval_fraction.setDecimals(0)
        self.eval_fraction.setToolTip("The share of new examples held out to measure the model, per label. "
                                      "Examples already in the project never move.")
        form.addRow("Hold out for evaluation", self.eval_fraction)

    def _browse(self) -> None:
        start = str(Path(self.path.text()).parent) if self.path.text() else ""
        name, _ = QFileDialog.getOpenFileName(self, "Import data", start, FILE_FILTER)
        if name:
            self.path.setText(name)

    def isComplete(self) -> bool:
        text = self.path.text().strip()
        return bool(text) and Path(text).exists()


class PreviewPage(QWizardPage):
    def __init__(self, wizard: "ImportWizard") -> None:
        super().__init__(wizard)
        self._wizard = wizard
        self.setTitle("Check what comes in")
        self.setSubTitle("The first rows of the file, how they become examples, and any problems.")
        self.setButtonText(QWizard.WizardButton.FinishButton, "Import")
        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        self.description = QLabel("Reading\u2026")
        self.description.setWordWrap(True)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.description)
        self.rows = self._table()
        self.examples = self._table()
        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self.views.addTab(self.examples, "As examples")
        self.views.addTab(self.rows, "Rows in the file")
        layout.addWidget(self.views, 3)

        self.mapping = QGroupBox("Columns")
        grid = QFormLayout(self.mapping)
        self.combos: dict[str, QComboBox] = {}
        for fld in MAPPABLE_FIELDS:
            combo = QComboBox()
            combo.setToolTip(FIELD_HELP[fld])
            combo.setMinimumWidth(220)
            combo.currentIndexChanged.connect(self._mapping_changed)
            self.combos[fld] = combo
            hint = QLabel(FIELD_HELP[fld])
            hint.setObjectName("Hint")
            row = QHBoxLayout()
            row.addWidget(combo)
            row.addWidget(hint, 1)
            grid.addRow(fld.capitalize(), row)
        layout.addWidget(self.mapping)
        self.mapping.hide()

        self.count = QLabel()
        self.count.setObjectName("SectionTitle")
        layout.addWidget(self.count)
        # How far reading (then importing) a big file has got; hidden when idle.
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%p%")
        self.progress.hide()
        layout.addWidget(self.progress)
        self.problems = QListWidget()
        self.problems.setWordWrap(True)
        layout.addWidget(self.problems, 1)
        self.problems.hide()
        self._filling = False

    @staticmethod
    def _table() -> QTableWidget:
        table = QTableWidget()
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.verticalHeader().setDefaultSectionSize(24)
        table.horizontalHeader().setStretchLastSection(True)
        table.setWordWrap(False)
        return table

    @staticmethod
    def _fill(table: QTableWidget, header: list[str], rows: list[list[object]], row_names: list[str] | None,
              widths: list[int]) -> None:
        table.clear()
        table.setColumnCount(len(header))
        table.setRowCount(len(rows))
        table.setHorizontalHeaderLabels(header)
        if row_names is not None:
            table.setVerticalHeaderLabels(row_names)
        for r, values in enumerate(rows):
            for c, value in enumerate(values):
                if value is None:
                    value = ""
                elif not isinstance(value, str):
                    value = json.dumps(value, ensure_ascii=False)
                text = " ".join(value.split())
                item = QTableWidgetItem(text[:CELL_CHARS] + ("\u2026" if len(text) > CELL_CHARS else ""))
                item.setToolTip(str(value)[:2000])
                table.setItem(r, c, item)
        hh = table.horizontalHeader()
        for c, width in enumerate(widths):
            hh.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
            hh.resizeSection(c, width)

    def initializePage(self) -> None:
        self._wizard.read(None)

    def isComplete(self) -> bool:
        p = self._wizard.preview
        return p is not None and p.ok and bool(p.examples) and not self._wizard.busy

    def column_map(self) -> dict[str, str]:
        return {f: c.currentText() for f, c in self.combos.items() if c.currentText() and c.currentText() != NO_COLUMN}

    @Slot()
    def _mapping_changed(self) -> None:
        if not self._filling:
            self._wizard.schedule_read()

    @Slot(object)
    def show_progress(self, step: object) -> None:
        """How far the read (or the import) has got: (done, total), or a word (waiting for a lock)."""
        if isinstance(step, str):
            self.count.setText(step)
            return
        assert isinstance(step, tuple)
        done, total = int(step[0]), int(step[1])
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * done / max(total, 1)))
        self.progress.show()

    def show_reading(self) -> None:
        self.progress.setValue(0)
        self.description.setText("Reading\u2026")
        self.count.setText("")
        self.completeChanged.emit()

    def show_preview(self, p: DatasetPreview) -> None:
        self.description.setText(p.description[:1].upper() + p.description[1:])
        columns = list(p.columns) or sorted({k for r in p.first_rows for k in r})
        self._fill(self.rows, columns, [[record.get(name) for name in columns] for record in p.first_rows], None,
                   [180 if len(columns) > 2 else 320] * len(columns))
        shown = p.examples[:len(p.first_rows) or PREVIEW_ROWS]
        self._fill(self.examples, ["system", "user", "assistant", "label", "turns"],
                   [[ex.system, _first(ex.messages, "user"), _last(ex.messages, "assistant"), ex.label,
                     str(len(ex.messages))] for ex in shown],
                   [str(ex.source_line) if ex.source_line is not None else "" for ex in shown],
                   [150, 250, 170, 90, 40])
        table = p.needs_column_map or bool(p.column_map)
        self.mapping.setVisible(table)
        # A table is mapped by looking at its columns; other files read best as the examples they become.
        self.views.setCurrentWidget(self.rows if p.needs_column_map or not p.examples else self.examples)
        if table:
            self._filling = True
            try:
                for fld, combo in self.combos.items():
                    combo.clear()
                    combo.addItem(NO_COLUMN)
                    combo.addItems(columns)
                    combo.setCurrentText(p.column_map.get(fld, NO_COLUMN))
            finally:
                self._filling = False

        n = p.example_count
        if p.ok and n:
            self.count.setText(f"{n:,} example{'s' if n != 1 else ''} will be imported.")
        elif p.problem_count:
            self.count.setText(f"{p.problem_count:,} problem{'s' if p.problem_count != 1 else ''} to fix first: "
                               "nothing is imported while there are problems.")
        else:
            self.count.setText("The file holds no examples.")
        self.problems.clear()
        for prob in p.problems:
            self.problems.addItem(f"{prob.location()}: {prob.worded(WIZARD_FIXES)}")
        if p.problem_count > len(p.problems):
            self.problems.addItem(f"\u2026 and {p.problem_count - len(p.problems):,} more")
        self.problems.setVisible(bool(p.problems))
        self.completeChanged.emit()


class ImportWizard(QWizard):
    """``ImportWizard(context, path=None, parent=None)``; emits ``imported(count)`` after a successful import."""

    imported = Signal(int)

    def __init__(self, context: ProjectContext, path: str | Path | None = None, parent=None) -> None:
        super().__init__(parent)
        self._context = context
        self.preview: DatasetPreview | None = None
        self._reader = JobSlot(self)  # a read asked for while one runs reads again after it
        self._importer: Job | None = None
        self._column_map: dict | None = None
        self.setWindowTitle("Import data")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.HaveHelpButton, False)
        self.resize(860, 640)
        self.file_page = FilePage(self)
        self.preview_page = PreviewPage(self)
        self.addPage(self.file_page)
        self.addPage(self.preview_page)
        fraction = context.project.setting("eval_fraction")
        self.file_page.eval_fraction.setValue(round(float(fraction if fraction is not None else 0.1) * 100))
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(lambda: self.read(self.preview_page.column_map() or None))
        if path:
            self.file_page.path.setText(str(path))

    @property
    def busy(self) -> bool:
        return self._reader.busy or self._importer is not None

    # -- reading --------------------------------------------------------------------

    def _args(self) -> tuple[str, str, str | None]:
        return (self.file_page.path.text().strip(), self.file_page.format.currentData(),
                self.file_page.system.text().strip() or None)

    def schedule_read(self) -> None:
        self._debounce.start()

    def read(self, column_map: dict | None) -> None:
        if self._reader.busy:  # read again with the newest choices when this one ends
            self._reader.request(lambda: self._read_job(self.preview_page.column_map() or None))
        else:
            self._reader.request(lambda: self._read_job(column_map))

    def _read_job(self, column_map: dict | None) -> Job:
        path, fmt, system = self._args()
        self._column_map = column_map
        self.preview_page.show_reading()
        job = Job(_read, path, fmt, column_map, system, parent=self)
        job.progressed.connect(self.preview_page.show_progress)
        job.ended.connect(self._read_ended)
        return job

    @Slot(object)
    def _read_ended(self, outcome: Outcome) -> None:
        self.preview_page.progress.hide()
        if outcome.stopped or outcome.error_type == "_Superseded":
            return
        if outcome.done:
            self.preview = outcome.value
            self.preview_page.show_preview(outcome.value)
            return
        self.preview = None
        self.preview_page.description.setText(f"The file could not be read: {outcome.value}")
        self.preview_page.completeChanged.emit()

    # -- importing ------------------------------------------------------------------

    def accept(self) -> None:
        if self.busy or self.preview is None or not self.preview.ok:
            return
        path, fmt, system = self._args()
        actor = self._context.author
        fraction = self.file_page.eval_fraction.value() / 100
        self.preview_page.count.setText("Importing\u2026")
        self._importer = Job(_import, str(self._context.project.path), path, fmt, self._column_map,
                             system, fraction, actor, parent=self)
        self._importer.progressed.connect(self.preview_page.show_progress)
        self._importer.ended.connect(self._import_ended)
        self.button(QWizard.WizardButton.FinishButton).setEnabled(False)
        self._importer.start()

    @Slot(object)
    def _import_ended(self, outcome: Outcome) -> None:
        self._importer = None
        self.preview_page.progress.hide()
        if outcome.failed:
            self._import_failed(str(outcome.value).splitlines())
        elif isinstance(outcome.value, ImportFailed):
            self._import_failed(outcome.value.lines(WIZARD_FIXES))
        elif outcome.done:
            self._import_done(outcome.value)
        # stopped: only at shutdown, when nobody is left to tell

    def _import_done(self, preview: DatasetPreview) -> None:
        n = preview.example_count
        self._context.examples_changed.emit([])
        self._context.status_message.emit(f"Imported {n:,} example{'s' if n != 1 else ''} from "
                                          f"{Path(preview.path).name}")
        self.imported.emit(n)
        super().accept()

    def _import_failed(self, lines: list[str]) -> None:
        self.preview_page.count.setText("Nothing was imported.")
        self.preview_page.problems.clear()
        self.preview_page.problems.addItems(lines)
        self.preview_page.problems.show()
        self.preview_page.completeChanged.emit()

    def reject(self) -> None:
        if self._importer is not None:  # an import is all or nothing: let it land
            return
        self.shutdown()
        super().reject()

    def shutdown(self) -> None:
        self._reader.stop()
        self._reader.wait()
        if self._importer is not None:
            self._importer.stop()
            self._importer.wait()
