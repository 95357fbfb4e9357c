"""The Runs page: every run of the project in a table; below it the loss
curves of the selected runs (overlaid when several are selected), their
settings side by side with the differences marked, and the sample answers.
Runs can be exported (the adapter in PEFT format; from the Export menu a merged
Hugging Face model, or one GGUF file for llama.cpp, Ollama and LM Studio) and deleted."""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QSortFilterProxyModel, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMenu, QMessageBox, QPushButton,
    QSplitter, QStackedWidget, QTableView, QTableWidget, QTableWidgetItem, QTabWidget, QTextBrowser, QVBoxLayout,
    QWidget,
)

from ftstudio.core.config import TrainConfig
from ftstudio.core.project import ProjectError
from ftstudio.gui.page_header import page_layout
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.runs.curves import CurveCache, read_samples, smooth
from ftstudio.gui.runs.table_model import EVAL_COLUMNS, RUN_ID_ROLE, SORT_ROLE, RunsTableModel
from ftstudio.gui.training import plots
from ftstudio.gui.workers import Job, Outcome
from ftstudio.gui.pages import Page
from ftstudio.gui.guide import GUIDE_LINE, connect_guide_link

if TYPE_CHECKING:
    from ftstudio.gui.runs.gguf_dialog import GGUFExportDialog

log = logging.getLogger("ftstudio.gui.runs")

# Least width of each column (the header's own width is added where larger).
COLUMN_MIN_WIDTHS = (172, 68, 150, 60, 124, 52, 70, 70, 70, 70)
RUN_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-(\w+)$")


def short_run_label(run_id: str) -> str:
    """"20261126-164200-08a3" -> "11-26 16:42 08a3" (headers and legends; the full id is in tooltips)."""
    m = RUN_ID.match(run_id)
    if not m:
        return run_id
    _, month, day, hour, minute, _, suffix = m.groups()
    return f"{month}-{day} {hour}:{minute} {suffix}"
CONFIG_ORDER = [f.name for f in dataclasses.fields(TrainConfig)]
FIELD_HELP = {f.name: f.metadata.get("detail", "") for f in dataclasses.fields(TrainConfig)}


def export_run_adapter(adapter_dir: Path, out: Path, report=None, interrupted=None) -> Path:
    """Copy a run's adapter to ``out`` (a new folder), checking it is a loadable PEFT adapter."""
    try:
        from ftstudio.engine.export import export_adapter
    except ImportError:  # a build without the export module: a plain copy
        if out.exists():
            raise FileExistsError(f"{out} already exists: choose a new folder") from None
        shutil.copytree(adapter_dir, out)
        return out
    return export_adapter(adapter_dir, out)


def export_run_merged(model_spec: str, adapter_dir: Path, out: Path, report=None, interrupted=None) -> Path:
    """Write the base ``model_spec`` with the run's adapter merged in to ``out`` (a new folder)."""
    from ftstudio.engine.export import export_merged

    return export_merged(model_spec, adapter_dir, out)


def _value_text(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class RunsPage(Page):
    """``RunsPage(context)``: ``refresh()``, ``select_runs(ids)``, ``selected_ids()``,
    ``delete_runs(ids)``, ``export_adapter(run_id, out)``."""

    exported = Signal(str, str)  # run id, folder ("" when it failed)

    def __init__(self, context: ProjectContext, parent=None) -> None:
        super().__init__(parent)
        self.context = context
        self.project = context.project
        self._curves = CurveCache()
        self._export: Job | None = None
        self._export_job: tuple[str, Path] | None = None  # run id, folder of the export running
        self._export_what = "adapter"

        layout, head, self.count_label = page_layout(self, "Runs")
        self.folder_button = QPushButton("Open folder")
        self.folder_button.setToolTip("Show the run's folder (settings, metrics, checkpoints, adapter)")
        self.export_button = QPushButton("Export adapter\u2026")
        self.export_button.setToolTip("Copy the run's adapter (PEFT format, loads with PeftModel.from_pretrained) "
                                      "to a folder of your choice")
        self.export_menu_button = QPushButton("Export \u25be")
        self.export_menu_button.setToolTip("Export the run as a merged Hugging Face model, or as one GGUF file "
                                           "for llama.cpp, Ollama and LM Studio")
        self.export_menu = QMenu(self.export_menu_button)
        self.merged_action = self.export_menu.addAction("Merged model (Hugging Face folder)\u2026")
        self.gguf_action = self.export_menu.addAction("GGUF for llama.cpp, Ollama, LM Studio\u2026")
        self.export_menu.addSeparator()
        self.base_gguf_action = self.export_menu.addAction("The base model as GGUF\u2026")
        self.export_menu_button.setMenu(self.export_menu)
        self.merged_action.triggered.connect(lambda _checked=False: self.ask_export_merged())
        self.gguf_action.triggered.connect(lambda _checked=False: self.open_gguf_dialog())
        self.base_gguf_action.triggered.connect(lambda _checked=False: self.open_gguf_dialog("base"))
        self.gguf_dialog: GGUFExportDialog | None = None
        self.delete_button = QPushButton("Delete\u2026")
        self.delete_button.setToolTip("Delete the selected runs and their folders")
        for b in (self.folder_button, self.export_button, self.export_menu_button, self.delete_button):
            b.setMinimumHeight(30)
            head.addWidget(b)

        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.hide()
        layout.addWidget(self.notice)

        # the table
        self.model = RunsTableModel(self.project, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        hh = self.table.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setStretchLastSection(False)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.empty = QLabel("<p style='font-size:13pt'>No runs yet</p>"
                            "<p>Start one on the <b>Train</b> page; every run appears here with its curves and "
                            "settings.</p>"
                            f"<p>{GUIDE_LINE}</p>")
        connect_guide_link(self.empty)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("Hint")
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty)

        # the detail: curves beside settings / samples / details
        self.plot = plots.styled_plot("Loss")
        self.legend = plots.add_legend(self.plot)
        self.plot_hint = QLabel("Select a run to see its loss curve; select several to overlay them.")
        self.plot_hint.setObjectName("Hint")
        self.curve_items: list = []
        curve_box = QWidget()
        cb = QVBoxLayout(curve_box)
        cb.setContentsMargins(0, 0, 0, 0)
        cb.setSpacing(4)
        cb.addWidget(self.plot, 1)
        options = QHBoxLayout()
        options.addWidget(self.plot_hint, 1)
        self.raw_check = QCheckBox("Unsmoothed")
        self.raw_check.setToolTip("Also draw the loss of every step, not only its moving average")
        self.eval_check = QCheckBox("Held-out loss")
        self.eval_check.setChecked(True)
        options.addWidget(self.raw_check)
        options.addWidget(self.eval_check)
        cb.addLayout(options)

        self.settings_table = QTableWidget()
        self.settings_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.settings_table.verticalHeader().setVisible(False)
        self.settings_table.setAlternatingRowColors(True)
        self.settings_table.setShowGrid(False)
        self.settings_table.setWordWrap(False)
        self.settings_table.verticalHeader().setDefaultSectionSize(24)
        self.differences_only = QCheckBox("Only the differences")
        self.differences_only.setToolTip("With several runs selected, list only the settings that differ")
        self.diff_label = QLabel()
        self.diff_label.setObjectName("Hint")
        settings_box = QWidget()
        sb = QVBoxLayout(settings_box)
        sb.setContentsMargins(0, 6, 0, 0)
        sb.setSpacing(4)
        top = QHBoxLayout()
        top.addWidget(self.diff_label, 1)
        top.addWidget(self.differences_only)
        sb.addLayout(top)
        sb.addWidget(self.settings_table, 1)

        self.samples_view = QTextBrowser()
        self.details_view = QTextBrowser()
        self.details_view.setOpenExternalLinks(False)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(settings_box, "Settings")
        self.tabs.addTab(self.samples_view, "Sample answers")
        self.tabs.addTab(self.details_view, "Details")

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(curve_box)
        bottom.addWidget(self.tabs)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        bottom.setSizes([620, 440])
        bottom.setChildrenCollapsible(False)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table_stack)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([260, 420])
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter, 1)

        self.folder_button.clicked.connect(lambda _checked=False: self.open_folder())
        self.export_button.clicked.connect(lambda _checked=False: self.ask_export())
        self.delete_button.clicked.connect(lambda _checked=False: self.ask_delete())
        self.raw_check.toggled.connect(self._draw_curves)
        self.eval_check.toggled.connect(self._draw_curves)
        self.differences_only.toggled.connect(self._show_settings)
        context.runs_changed.connect(self.refresh)
        self.table.doubleClicked.connect(lambda _index: self.tabs.setCurrentIndex(0))
        self.refresh()

    # -- rows -------------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Read the runs again, keeping the selection."""
        keep = self.selected_ids()
        self.model.reload()
        for column in EVAL_COLUMNS:
            self.table.setColumnHidden(column, not self.model.has_evaluations)
        n = len(self.model.rows)
        self.count_label.setText(f"{n} run{'s' * (n != 1)}" if n else "")
        self.table_stack.setCurrentWidget(self.table if n else self.empty)
        hh = self.table.horizontalHeader()
        bold = hh.font()
        bold.setBold(True)
        metrics = QFontMetrics(bold)
        for column, least in enumerate(COLUMN_MIN_WIDTHS):
            title = str(self.model.headerData(column, Qt.Orientation.Horizontal))
            hh.resizeSection(column, max(least, metrics.horizontalAdvance(title) + 18))
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)  # the model's name takes what is left
        still = [i for i in keep if self.model.row_of(i) is not None]
        if still:
            self.select_runs(still)
        elif n:  # nothing kept (first show, or the selected runs were deleted): the newest run
            self.select_runs([self.model.rows[0].run.id])
        else:
            self._selection_changed()

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(r, 0).data(RUN_ID_ROLE) for r in rows]

    def select_runs(self, ids: list[str]) -> None:
        sm = self.table.selectionModel()
        sm.clearSelection()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        first = None
        for run_id in ids:
            row = self.model.row_of(run_id)
            if row is None:
                continue
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            sm.select(index, flags)
            first = first or index
        if first is not None:
            sm.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
            self.table.scrollTo(first)
        self._selection_changed()

    def _runs(self, ids: list[str]):
        out = []
        for run_id in ids:
            row = self.model.row_of(run_id)
            if row is not None:
                out.append(self.model.rows[row].run)
        return out

    @Slot()
    def _selection_changed(self, *_args) -> None:
        ids = self.selected_ids()
        runs = self._runs(ids)
        one = runs[0] if len(runs) == 1 else None
        adapter = one is not None and (self.project.run_dir(one.id) / "adapter" / "adapter_config.json").exists()
        self.export_button.setEnabled(adapter and self._export is None)
        self.merged_action.setEnabled(adapter and self._export is None)
        self.gguf_action.setEnabled(adapter)
        self.folder_button.setEnabled(one is not None)
        self.delete_button.setEnabled(bool(runs))
        self.differences_only.setEnabled(len(runs) > 1)
        if len(runs) > 1 and not self.differences_only.isChecked() and not getattr(self, "_diff_touched", False):
            self.differences_only.blockSignals(True)
            self.differences_only.setChecked(True)
            self.differences_only.blockSignals(False)
        self._draw_curves()
        self._show_settings()
        self._show_samples(one)
        self._show_details(runs)

    # -- curves -----------------------------------------------------------------------------

    @Slot()
    def _draw_curves(self, *_args) -> None:
        item = self.plot.getPlotItem()
        for c in self.curve_items:
            item.removeItem(c)
            c.deleteLater()  # deleted here, on the GUI thread, not by a garbage collection on a worker
        self.curve_items = []
        self.legend.clear()
        runs = self._runs(self.selected_ids())
        drawn = 0
        single = len(runs) == 1
        for i, run in enumerate(runs):
            curves = self._curves.get(self.project.run_dir(run.id))
            if curves.empty:
                continue
            drawn += 1
            colour = style.ACCENT if single else plots.PALETTE[i % len(plots.PALETTE)]
            name = "train" if single else short_run_label(run.id)
            if len(curves.steps):
                if self.raw_check.isChecked():
                    raw = item.plot(curves.steps, curves.loss, pen=plots.pen(plots.RAW if single else colour, 1.0))
                    raw.setOpacity(1.0 if single else 0.35)
                    self.curve_items.append(raw)
                    if single:
                        self.legend.addItem(raw, "train")
                        name = "train, smoothed"
                smoothed = item.plot(curves.steps, smooth(curves.loss), pen=plots.pen(colour, 2.0), name=name)
                self.curve_items.append(smoothed)
            if self.eval_check.isChecked() and len(curves.eval_steps):
                eval_colour = plots.EVAL if single else colour
                held = item.plot(curves.eval_steps, curves.eval_loss, pen=plots.pen(eval_colour, 1.6, dashed=True),
                                 symbol="o", symbolSize=6, symbolBrush=eval_colour, symbolPen=None,
                                 name="held-out" if single else f"{short_run_label(run.id)} held-out")
                self.curve_items.append(held)
        item.enableAutoRange()
        if not runs:
            self.plot_hint.setText("Select a run to see its loss curve; select several to overlay them.")
        elif not drawn:
            self.plot_hint.setText("No curves recorded for the selected run yet.")
        elif single:
            self.plot_hint.setText("Ctrl- or Shift-click more runs to overlay their curves.")
        else:
            self.plot_hint.setText(f"{drawn} runs: train loss solid, held-out dashed.")

    def curve_count(self) -> int:
        return len(self.curve_items)

    # -- settings and their differences -----------------------------------------------------

    @Slot()
    def _show_settings(self, *_args) -> None:
        if self.sender() is self.differences_only:
            self._diff_touched = True
        runs = self._runs(self.selected_ids())
        table = self.settings_table
        table.clear()
        if not runs:
            table.setRowCount(0)
            table.setColumnCount(0)
            self.diff_label.setText("Select runs to see their settings.")
            return
        keys = [k for k in CONFIG_ORDER if any(k in r.config for r in runs)]
        keys += sorted({k for r in runs for k in r.config} - set(keys))
        differing = [k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1]
        only = len(runs) > 1 and self.differences_only.isChecked()
        shown = differing if only else keys
        table.setColumnCount(1 + len(runs))
        table.setHorizontalHeaderLabels(["Setting", *(short_run_label(r.id) for r in runs)])
        for c, run in enumerate(runs, start=1):
            if (header := table.horizontalHeaderItem(c)) is not None:  # set by the labels above
                header.setToolTip(f"Run {run.id}")
        table.setRowCount(len(shown))
        mark = QBrush(QColor(style.WARN_SOFT))
        for r, key in enumerate(shown):
            name_item = QTableWidgetItem(key)
            name_item.setData(Qt.ItemDataRole.UserRole, key)
            if key in FIELD_HELP:
                name_item.setToolTip(FIELD_HELP[key])
            table.setItem(r, 0, name_item)
            row_items = [name_item]
            for c, run in enumerate(runs, start=1):
                value = run.config.get(key, "")
                cell = QTableWidgetItem(_value_text(value))
                cell.setToolTip(_value_text(value))
                table.setItem(r, c, cell)
                row_items.append(cell)
            if key in differing and len(runs) > 1:
                for item in row_items:
                    item.setBackground(mark)
        table.resizeColumnsToContents()
        hh = table.horizontalHeader()
        for c in range(table.columnCount()):
            hh.resizeSection(c, min(hh.sectionSize(c) + 12, 170 if c == 0 else 220))
        hh.setStretchLastSection(True)
        if len(runs) == 1:
            self.diff_label.setText(f"Settings of run {runs[0].id}")
        elif differing:
            self.diff_label.setText(f"{len(differing)} setting{'s' * (len(differing) != 1)} differ"
                                    f"{'s' * (len(differing) == 1)} between the {len(runs)} runs (marked)")
        else:
            self.diff_label.setText(f"The {len(runs)} runs have the same settings")

    def differing_settings(self) -> list[str]:
        """The settings rows marked as different (for tests and the window)."""
        runs = self._runs(self.selected_ids())
        keys = {k for r in runs for k in r.config}
        return sorted(k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1)

    # -- samples and details --------------------------------------------------------------------

    def _show_samples(self, run) -> None:
        from ftstudio.engine.evaluation import normalise_answer  # plain Python: no torch

        if run is None:
            self.samples_view.setHtml(f"<p style='color:{style.MUTED}'>Select one run to read its sample answers.</p>")
            return
        samples = read_samples(self.project.run_dir(run.id))
        if not samples:
            self.samples_view.setHtml(f"<p style='color:{style.MUTED}'>This run wrote no sample answers.</p>")
            return
        parts, step = [], None
        for s in samples:
            if s.step != step:
                step = s.step
                parts.append(f"<p style='margin:8px 0 2px 0; color:{style.MUTED}; font-weight:600'>Step {step}</p>")
            ref = ""
            if s.reference is not None:
                ok = normalise_answer(s.output) == normalise_answer(s.reference)
                ref = (f"<br><span style='color:{style.GOOD if ok else style.MUTED}'>"
                       f"{'matches' if ok else 'expected'}: {html.escape(s.reference[:200])}</span>")
            parts.append(f"<p style='margin:2px 0 6px 0'><span style='color:{style.MUTED}'>"
                         f"{html.escape(s.prompt[:200])}</span><br><b>{html.escape(s.output)}</b>{ref}</p>")
        self.samples_view.setHtml("".join(parts))

    def _show_details(self, runs) -> None:
        if len(runs) != 1:
            self.details_view.setHtml(f"<p style='color:{style.MUTED}'>"
                                      + ("Select one run to see its details." if not runs else
                                         f"{len(runs)} runs selected.") + "</p>")
            return
        run = runs[0]
        folder = self.project.run_dir(run.id)
        adapter = folder / "adapter"
        checkpoints = sorted(p.name for p in (folder / "checkpoints").glob("step-*")) if \
            (folder / "checkpoints").is_dir() else []
        rows = [
            ("Status", f"{run.status}" + (f" \u2014 {html.escape(run.message)}" if run.message else "")),
            ("Model", html.escape(run.model)),
            ("Method", run.method.upper()),
            ("Steps", f"{run.steps:,}"),
            ("Folder", html.escape(str(folder))),
            ("Adapter", html.escape(str(adapter)) if adapter.exists() else "none yet (finish or resume the run)"),
            ("Checkpoints", ", ".join(checkpoints) or "none"),
        ]
        self.details_view.setHtml(
            "<table cellspacing='0' cellpadding='3'>" + "".join(
                f"<tr><td style='color:{style.MUTED}; padding-right:12px'>{k}</td><td>{v}</td></tr>" for k, v in rows)
            + "</table>")

    # -- actions ----------------------------------------------------------------------------------

    def _notify(self, text: str, kind: str = "info") -> None:
        colours = {"info": style.MUTED, "bad": style.BAD, "good": style.GOOD}
        self.notice.setStyleSheet(f"color: {colours.get(kind, style.MUTED)};")
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def open_folder(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.project.run_dir(ids[0]))))

    def _is_training(self, run) -> bool:
        from ftstudio.gui.training.page import HOLDER as TRAINING_HOLDER

        return run.status == "running" and self.context.compute.holder == TRAINING_HOLDER

    def ask_delete(self) -> None:
        runs = self._runs(self.selected_ids())
        if not runs:
            return
        busy = [r.id for r in runs if self._is_training(r)]
        if busy:
            self._notify(f"Run {busy[0]} is training; stop it on the Train page before deleting it.", "bad")
            return
        what = f"run {runs[0].id}" if len(runs) == 1 else f"these {len(runs)} runs"
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete runs", f"Delete {what}?", parent=self)
        box.setInformativeText("Their folders are removed from disk: settings, curves, checkpoints and the adapter. "
                               "This cannot be undone; export an adapter first to keep it.")
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Cancel", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is delete:
            self.delete_runs([r.id for r in runs])

    def delete_runs(self, ids: list[str]) -> int:
        """Delete these runs (rows and folders), except one that is training; returns how many went."""
        gone = 0
        for run in self._runs(ids):
            if self._is_training(run):
                continue
            try:
                self.project.delete_run(run.id)
            except ProjectError as exc:
                self._notify(str(exc), "bad")
                continue
            gone += 1
        if gone:
            self._notify(f"Deleted {gone} run{'s' * (gone != 1)}.")
            self.context.runs_changed.emit()  # refreshes this page too
        return gone

    def ask_export(self) -> None:
        ids = self.selected_ids()
        if len(ids) != 1:
            return
        parent = QFileDialog.getExistingDirectory(self, "Export the adapter into this folder", str(Path.home()))
        if parent:
            self.export_adapter(ids[0], Path(parent) / f"adapter-{ids[0]}")

    def ask_export_merged(self) -> None:
        ids = self.selected_ids()
        if len(ids) != 1:
            return
        parent = QFileDialog.getExistingDirectory(self, "Export the merged model into this folder", str(Path.home()))
        if parent:
            self.export_merged(ids[0], Path(parent) / f"merged-{ids[0]}")

    def export_merged(self, run_id: str, out: Path) -> bool:
        """Write the base with the run's adapter merged in to ``out`` (a new folder) on a worker."""
        return self.export_adapter(run_id, out, merged=True)

    def open_gguf_dialog(self, run_id: str | None = None):
        """The GGUF export dialog for ``run_id`` (the selected run by default; "base": the base model)."""
        from ftstudio.gui.runs.gguf_dialog import GGUFExportDialog

        if run_id is None:
            ids = self.selected_ids()
            if len(ids) != 1:
                return None
            run_id = ids[0]
        if self.gguf_dialog is not None and self.gguf_dialog.is_running():
            self.gguf_dialog.raise_()
            return self.gguf_dialog
        if self.gguf_dialog is not None:
            self.gguf_dialog.deleteLater()
        self.gguf_dialog = GGUFExportDialog(self.context, run_id, parent=self)
        self.gguf_dialog.show()
        return self.gguf_dialog

    def export_adapter(self, run_id: str, out: Path, merged: bool = False) -> bool:
        """Copy the run's adapter (or, ``merged``, the merged model) to ``out`` on a worker;
        ``exported`` says when it is done."""
        if self._export is not None:
            return False
        adapter = self.project.run_dir(run_id) / "adapter"
        if not adapter.exists():
            self._notify(f"Run {run_id} has no adapter yet: finish or resume it first.", "bad")
            return False
        self._export_job = (run_id, Path(out))
        self._export_what = "merged model" if merged else "adapter"
        if merged:
            run = self.project.get_run(run_id)
            job = Job(export_run_merged, run.config.get("model", ""), adapter, Path(out), parent=self)
        else:
            job = Job(export_run_adapter, adapter, Path(out), parent=self)
        job.ended.connect(self._export_ended)
        self._export = job
        self.export_button.setEnabled(False)
        self._notify(f"Exporting the {self._export_what} of run {run_id}\u2026")
        job.start()
        return True

    @property
    def exporting(self) -> bool:
        return self._export is not None

    @Slot(object)
    def _export_ended(self, outcome: Outcome) -> None:
        if outcome.failed:
            self._export_failed(str(outcome.value), outcome.trace)
        else:
            self._export_done(outcome.value)
        self._export, self._export_job = None, None

    def _export_done(self, out: Path) -> None:
        run_id = self._export_job[0] if self._export_job else ""
        what = self._export_what
        loads = "PeftModel.from_pretrained(base_model, folder)" if what == "adapter" else \
            "AutoModelForCausalLM.from_pretrained(folder)"
        self._notify(f"Exported the {what} of run {run_id} to {out}. It loads with {loads}.", "good")
        self.context.status_message.emit(f"Exported the {what} of run {run_id} to {out}")
        self.exported.emit(run_id, str(out))

    def _export_failed(self, message: str, trace: str) -> None:
        log.warning("export failed: %s\n%s", message, trace)
        run_id = self._export_job[0] if self._export_job else ""
        self._notify(f"Could not export the {self._export_what} of run {run_id}: {message}", "bad")
        self.exported.emit(run_id, "")

    # -- pictures ---------------------------------------------------------------------------------

    def screenshot_states(self) -> dict:
        """Views for ``python -m ftstudio.gui.screenshots`` over sample runs written into the project
        (a throwaway copy there; see ``ftstudio.gui.training.sample``)."""
        from ftstudio.gui.training.sample import SAMPLE_RUNS, stage_sample_runs

        ids = [r[0] for r in SAMPLE_RUNS]

        def one():
            stage_sample_runs(self.project)
            self.context.runs_changed.emit()
            self.select_runs([ids[0]])

        def several():
            one()
            self.select_runs(ids[:2])

        return {"runs": one, "runs-overlay": several}

    def screenshot_cleanup(self) -> None:
        from ftstudio.gui.training.sample import remove_sample_runs

        remove_sample_runs(self.project)
        self.context.runs_changed.emit()

    # -- closing ----------------------------------------------------------------------------------

    def is_busy(self) -> bool:
        return self.gguf_dialog is not None and self.gguf_dialog.is_running()

    def shutdown(self) -> None:
        if self.gguf_dialog is not None:
            self.gguf_dialog.shutdown()
        if self._export is not None:
            self._export.wait()
