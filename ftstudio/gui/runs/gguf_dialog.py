"""The GGUF export dialog of the Runs page: a run (or the base model) as one
file for llama.cpp, Ollama and LM Studio, with a progress bar, a Stop button
that leaves no half file, the parity check's figures and verdict, and an
Ollama Modelfile with the line that creates the model (run from here when
``ollama`` is on the PATH)."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ftstudio.gui import style
from ftstudio.gui.workers import Job, Outcome

log = logging.getLogger("ftstudio.gui.runs")
HOLDER = "a GGUF export"

QUANT_TITLES = {
    "f16": "f16: as trained, 16-bit (largest)",
    "bf16": "bf16: as trained, bfloat16",
    "q8_0": "q8_0: 8-bit, about half of f16",
    "q4_0": "q4_0: 4-bit, about a quarter of f16",
}


def run_export(request: Any, report: Any = None, interrupted: Any = None) -> Any:
    """The worker's function: export and check, progress as (fraction, message)."""
    from ftstudio.engine.gguf_export import export_gguf

    def progress(fraction: float, message: str) -> None:
        if report is not None:
            report((fraction, message))

    return export_gguf(request, progress, interrupted)


def run_ollama_create(modelfile: Any, report: Any = None, interrupted: Any = None) -> tuple[bool, str]:
    from ftstudio.engine.ollama import run_create

    return run_create(modelfile)


class GGUFExportDialog(QDialog):
    """``GGUFExportDialog(context, run_id)``; ``run_id`` "base" exports the base model alone.
    ``start()`` begins with what the fields say; ``finished_export`` carries the report (None on failure)."""

    finished_export = Signal(object)

    def __init__(self, context: Any, run_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from ftstudio.engine.gguf_export import BUILTIN_QUANTS, K_QUANTS, QUANTIZE_PROGRAM, llama_quantize
        from ftstudio.engine.ollama import ollama_program

        self.context = context
        self.project = context.project
        self.run_id = run_id
        self._job: Job | None = None
        self._ollama_job: Job | None = None
        self.report: Any = None
        self._has_ollama = ollama_program() is not None
        what = "the base model" if run_id == "base" else f"run {run_id}"
        self.setWindowTitle("Export as GGUF")
        self.setMinimumSize(660, 600)

        layout = QVBoxLayout(self)
        intro = QLabel(
            f"Write {what} as one GGUF file for llama.cpp, Ollama and LM Studio, with the adapter "
            "merged in, the run's chat template and its end-of-turn tokens."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)

        form = QFormLayout()
        self.path_edit = QLineEdit(str(self._default_path()))
        browse = QPushButton("Choose\u2026")
        browse.clicked.connect(lambda _checked=False: self._choose_path())
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("File", row)

        self.quant_combo = QComboBox()
        for quant in BUILTIN_QUANTS:
            self.quant_combo.addItem(QUANT_TITLES[quant], quant)
        program = llama_quantize()
        if program:
            for quant in K_QUANTS:
                self.quant_combo.addItem(f"{quant}: K-quant by llama.cpp's {QUANTIZE_PROGRAM}", quant)
        self.quant_combo.currentIndexChanged.connect(lambda _i: self._quant_changed())
        form.addRow("Quantisation", self.quant_combo)
        self.kquant_note = QLabel(
            f"K-quants (q4_k_m, q5_k_m, q6_k, \u2026) come from {program}."
            if program
            else f"K-quants (q4_k_m, q6_k, \u2026) need llama.cpp's {QUANTIZE_PROGRAM} on the PATH (not found)."
        )
        self.kquant_note.setObjectName("Hint")
        self.kquant_note.setWordWrap(True)
        form.addRow("", self.kquant_note)

        data = self.project.prepared_data()
        held_out = len(data.eval)
        self.check_box = QCheckBox("Check that the file answers like the adapter")
        self.check_box.setChecked(True)
        self.check_box.setToolTip(
            "Read the file back with transformers' GGUF loader (and llama.cpp when "
            "llama-cpp-python is installed) and ask it the held-out prompts"
        )
        self.prompts_spin = QSpinBox()
        self.prompts_spin.setRange(1, 64)
        self.prompts_spin.setValue(8)
        self.prompts_spin.setSuffix(" prompts")
        check_row = QHBoxLayout()
        check_row.addWidget(self.check_box)
        check_row.addWidget(self.prompts_spin)
        check_row.addStretch(1)
        form.addRow("Parity", check_row)
        source = (
            f"{held_out} held-out example{'s' * (held_out != 1)} in the project"
            if held_out
            else "no held-out examples: training prompts are asked instead"
        )
        self.check_note = QLabel(f"Greedy answers compared prompt by prompt; {source}.")
        self.check_note.setObjectName("Hint")
        form.addRow("", self.check_note)

        self.ollama_box = QCheckBox("Also write an Ollama Modelfile beside the file")
        self.ollama_box.setChecked(True)
        form.addRow("Ollama", self.ollama_box)
        layout.addLayout(form)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.result_view = QTextBrowser()
        self.result_view.setMinimumHeight(150)
        self.result_view.hide()
        layout.addWidget(self.result_view, 1)

        buttons = QHBoxLayout()
        self.ollama_button = QPushButton("Run ollama create")
        self.ollama_button.setToolTip("ollama is installed: create the Ollama model from the Modelfile now")
        self.ollama_button.hide()
        self.ollama_button.clicked.connect(lambda _checked=False: self.create_in_ollama())
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.setToolTip("Stop the export; a file not yet complete is removed")
        self.close_button = QPushButton("Close")
        self.export_button.clicked.connect(lambda _checked=False: self.start())
        self.stop_button.clicked.connect(lambda _checked=False: self.stop())
        self.close_button.clicked.connect(lambda _checked=False: self.close())
        buttons.addWidget(self.ollama_button)
        buttons.addStretch(1)
        for b in (self.export_button, self.stop_button, self.close_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self._quant_changed()

    # -- fields ---------------------------------------------------------------------------------

    def _default_path(self) -> Path:
        stem = "base" if self.run_id == "base" else self.run_id
        return Path(self.project.path).parent / f"{Path(self.project.path).stem}-{stem}-f16.gguf"

    def _choose_path(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export as GGUF", self.path_edit.text(), "GGUF model (*.gguf)"
        )
        if path:
            self.path_edit.setText(path if path.lower().endswith(".gguf") else path + ".gguf")

    def quant(self) -> str:
        return str(self.quant_combo.currentData())

    def set_quant(self, quant: str) -> None:
        index = self.quant_combo.findData(quant)
        if index >= 0:
            self.quant_combo.setCurrentIndex(index)

    def _quant_changed(self) -> None:
        # Keep the file name's quantisation in step with the choice, if it carries one of ours.
        from ftstudio.engine.gguf_export import BUILTIN_QUANTS, K_QUANTS

        text = self.path_edit.text()
        for quant in BUILTIN_QUANTS + K_QUANTS:
            suffix = f"-{quant}.gguf"
            if text.endswith(suffix):
                self.path_edit.setText(text[: -len(suffix)] + f"-{self.quant()}.gguf")
                break

    # -- the export -----------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._job is not None

    def start(self) -> bool:
        from ftstudio.engine.export import ExportError
        from ftstudio.engine.gguf_export import request_for_run

        if self._job is not None:
            return False
        out = Path(self.path_edit.text().strip()).expanduser()
        try:
            request = request_for_run(
                self.project,
                self.run_id,
                out,
                self.quant(),
                parity=self.check_box.isChecked(),
                prompts=self.prompts_spin.value(),
                ollama_dir=out.parent if self.ollama_box.isChecked() else None,
                overwrite=True,
            )  # the file dialog asked before replacing a file
        except ExportError as exc:
            self._show_status(str(exc), "bad")
            return False
        self.report = None
        self.result_view.hide()
        self.ollama_button.hide()
        self.progress.setValue(0)
        self._show_status("Starting\u2026")
        # The export loads the whole model: it holds the compute device, as training does.
        job = Job(run_export, request, parent=self, lock=self.context.compute, holder=HOLDER)
        job.progressed.connect(self._progressed)
        job.refused.connect(self._refused)
        job.ended.connect(self._ended)
        self._job = job
        self._set_running(True)
        if job.start() == "refused":
            return False
        return True

    def stop(self) -> None:
        if self._job is not None:
            self._job.stop()
            self.stop_button.setEnabled(False)
            self._show_status("Stopping\u2026")

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (self.path_edit, self.quant_combo, self.check_box, self.prompts_spin, self.ollama_box):
            w.setEnabled(not running)

    @Slot(object)
    def _progressed(self, value: object) -> None:
        fraction, message = cast(tuple[float, str], value)
        self.progress.setValue(int(1000 * float(fraction)))
        self._show_status(str(message))

    @Slot(str)
    def _refused(self, holder: str) -> None:
        self._job = None
        self._set_running(False)
        self._show_status(f"Wait until {holder} has finished; exporting loads the whole model.", "bad")

    @Slot(object)
    def _ended(self, outcome: Outcome) -> None:
        self._job = None
        self._set_running(False)
        if outcome.failed:
            self._failed(str(outcome.value), outcome.trace)
        else:
            self._succeeded(outcome.value)

    def _succeeded(self, report: object) -> None:
        self.report = report
        self.progress.setValue(1000)
        passed = getattr(report, "passed", None)
        written = report.written  # type: ignore[attr-defined]
        size = f"{written.size_bytes / 2**20:,.1f} MiB"
        if passed is None:
            self._show_status(f"Wrote {written.path.name} ({size}).", "good")
        elif passed:
            self._show_status(f"Wrote {written.path.name} ({size}); it answers like the adapter.", "good")
        else:
            self._show_status(
                f"Wrote {written.path.name} ({size}), but it does not answer like the adapter: "
                "see below. The file was kept.",
                "bad",
            )
        self.result_view.setHtml(self._report_html(report))
        self.result_view.show()
        modelfile = getattr(report, "modelfile", None)
        self.ollama_button.setVisible(modelfile is not None and self._has_ollama)
        self.context.status_message.emit(f"Exported {written.path}")
        self.finished_export.emit(report)

    def _failed(self, message: str, trace: str) -> None:
        log.warning("GGUF export failed: %s\n%s", message, trace)
        self.progress.setValue(0)
        self._show_status(message, "bad")
        self.finished_export.emit(None)

    def _report_html(self, report: Any) -> str:
        w = report.written
        types = ", ".join(f"{n} {k}" for k, n in sorted(w.tensor_types.items()))
        parts = [
            f"<p><b>{html.escape(str(w.path))}</b><br>{w.quant}, {w.size_bytes / 2**20:,.1f} MiB, written in "
            f"{w.seconds:.1f} s ({html.escape(types)})</p>"
        ]
        for p in report.parity:
            colour = style.GOOD if p.passed else style.BAD
            diff = "n/a" if p.max_logprob_diff is None else f"{p.max_logprob_diff:.4f}"
            parts.append(
                f"<p><b>Read back by {html.escape(p.reader)}</b>: {p.identical} of {p.prompts} answers identical; "
                f"largest next-token log-prob difference {diff}; stops where the adapter did on {p.stops_agree} "
                f"of {p.prompts}.<br><span style='color:{colour}'>{html.escape(p.verdict)}</span></p>"
            )
            for d in p.differences[:4]:
                parts.append(
                    f"<p style='margin-left:12px; color:{style.MUTED}'>Prompt {d['prompt']}: adapter "
                    f"\u201c{html.escape(d['adapter'])}\u201d, file \u201c{html.escape(d['file'])}\u201d"
                    "</p>"
                )
        if report.parity_note:
            parts.append(f"<p style='color:{style.MUTED}'>{html.escape(report.parity_note)}</p>")
        if report.modelfile is not None:
            m = report.modelfile
            notes = "".join(f"<br>{html.escape(n)}" for n in m.notes)
            parts.append(
                f"<p><b>Ollama</b>: {html.escape(str(m.path))}{notes}<br>Create the model with:<br>"
                f"<code>{html.escape(m.command_line)}</code></p>"
            )
        return "".join(parts)

    def create_in_ollama(self) -> bool:
        modelfile = getattr(self.report, "modelfile", None)
        if modelfile is None or self._ollama_job is not None:
            return False
        self.ollama_button.setEnabled(False)
        self._show_status(f"Running {modelfile.command_line}\u2026")
        job = Job(run_ollama_create, modelfile, parent=self)
        job.ended.connect(self._ollama_ended)
        self._ollama_job = job
        job.start()
        return True

    @Slot(object)
    def _ollama_ended(self, outcome: Outcome) -> None:
        self._ollama_job = None
        self.ollama_button.setEnabled(True)
        if outcome.failed:
            self._show_status(str(outcome.value), "bad")
            return
        ok, output = cast(tuple[bool, str], outcome.value)
        name = self.report.modelfile.name
        self._show_status(
            f"Created the Ollama model {name}: try it with 'ollama run {name}'."
            if ok
            else f"ollama create did not succeed: {output[-300:]}",
            "good" if ok else "bad",
        )

    def _show_status(self, text: str, kind: str = "info") -> None:
        colours = {"info": style.MUTED, "bad": style.BAD, "good": style.GOOD}
        self.status.setStyleSheet(f"color: {colours.get(kind, style.MUTED)};")
        self.status.setText(text)

    # -- closing --------------------------------------------------------------------------------

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        # Closing stops a running export (the half file is removed) and waits for it.
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        for job in (self._job, self._ollama_job):
            if job is not None:
                job.stop()
                job.wait()
