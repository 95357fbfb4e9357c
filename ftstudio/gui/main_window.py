"""The main window: a navigation list of pages beside the open page, menus,
a status bar with the device and what is running, and a welcome screen when
no project is open.

Pages are imported by dotted path the first time they are shown, so start-up
loads only what the first page needs.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import shiboken6
from PySide6.QtCore import QSize, Qt, QThread, QTimer, Signal, Slot, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QListWidget, QListWidgetItem, QMainWindow,
    QMessageBox, QPushButton, QStackedWidget, QVBoxLayout, QWidget,
)

from ftstudio.core.project import (
    PROJECT_SUFFIX,
    DamagedProject,
    Project,
    ProjectError,
    UndoConflict,
    default_actor,
    list_backups,
    restore_damaged,
)
from ftstudio.gui.backups import RestoreDialog, backup_summary
from ftstudio.gui.app_icon import app_icon
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.pages import Page
from ftstudio.gui.settings import AppSettings
from ftstudio.gui.workers import Job, Outcome

log = logging.getLogger("ftstudio.gui")

PAGES: dict[str, str] = {
    "Data": "ftstudio.gui.data.page:DataPage",
    "Label": "ftstudio.gui.labelling.page:LabellingPage",
    "Train": "ftstudio.gui.training.page:TrainPage",
    "Runs": "ftstudio.gui.runs.page:RunsPage",
    "Compare": "ftstudio.gui.compare.page:ComparePage",
}
PAGE_HINTS = {
    "Data": "Import, edit and check examples", "Label": "Label examples one at a time",
    "Train": "Configure and run training", "Runs": "Past runs and their results",
    "Compare": "Compare the base model and adapters",
}
FIRST_SHOWN_ENV = "FTSTUDIO_REPORT_FIRST_SHOW"  # print a time stamp when the window first shows
STOP_TIMEOUT_MS = 60_000  # how long closing waits for a run to save its checkpoint and stop
DROPPABLE = (".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".tab", ".parquet")


def load_page_class(spec: str):
    """The class at "package.module:Class", or None while that module is not in this build."""
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the page's own module (or its package) missing means "not in this build";
        # a missing module inside it is a real error.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")) \
                and exc.name.startswith("ftstudio.gui."):
            return None
        raise
    return getattr(module, class_name)


def device_text(info) -> str:
    """The status bar's words for an ``engine.device.DeviceInfo``: the GPU and its free memory, or the CPU."""
    if info is not None and info.kind == "cuda":
        return f"{info.name} \u00b7 {info.free_bytes / 2**30:.1f} of {info.total_bytes / 2**30:.1f} GiB free"
    return f"CPU ({os.cpu_count() or 1} cores)"


def _detect_device(report, interrupted) -> str:  # worker thread: imports torch
    try:
        from ftstudio.engine.device import device_info
    except ImportError:
        return device_text(None)
    return device_text(device_info())


def _close_after(context: ProjectContext, pages: Sequence[QWidget]) -> None:
    """Delete the pages, then close the project once the last is gone: a page may
    still run a slot queued before it was deleted, and that slot finds its
    project open."""
    left = {"n": len(pages)}

    project = context.project

    def done() -> None:
        project.close()
        if shiboken6.isValid(context):  # at exit Qt may have deleted it already
            context.deleteLater()

    def one_gone(*_args) -> None:
        left["n"] -= 1
        if left["n"] == 0:
            done()

    if not pages:
        done()
        return
    for page in pages:
        page.destroyed.connect(one_gone)
        page.deleteLater()


class Placeholder(Page):
    def __init__(self, title: str, text: str, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        head = QLabel(title)
        head.setObjectName("PageTitle")
        head.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body = QLabel(text)
        body.setObjectName("Hint")
        body.setWordWrap(True)
        body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(head)
        layout.addWidget(body)
        layout.addStretch(2)


class WelcomeScreen(QWidget):
    new_requested = Signal()
    open_requested = Signal()
    demo_requested = Signal()
    recent_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.addStretch(2)
        title = QLabel("FT Studio")
        title.setStyleSheet("font-size: 26pt; font-weight: 600;")
        column.addWidget(title)
        sub = QLabel("Fine-tune a language model on your own examples, on this computer.")
        sub.setObjectName("Hint")
        column.addWidget(sub)
        column.addSpacing(24)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("New project\u2026")
        self.new_button.setProperty("primary", True)
        self.open_button = QPushButton("Open project\u2026")
        self.demo_button = QPushButton("Open the demo project")
        self.demo_button.setToolTip("300 support tickets in 5 categories, ready to train on")
        for b in (self.new_button, self.open_button, self.demo_button):
            b.setMinimumHeight(34)
            buttons.addWidget(b)
        buttons.addStretch(1)
        column.addLayout(buttons)
        column.addSpacing(28)
        recent_title = QLabel("Recent projects")
        recent_title.setObjectName("SectionTitle")
        column.addWidget(recent_title)
        self.recent = QListWidget()
        self.recent.setMinimumWidth(560)
        self.recent.setMaximumHeight(240)
        self.recent.itemActivated.connect(lambda item: self.recent_requested.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.recent.itemClicked.connect(lambda item: self.recent_requested.emit(item.data(Qt.ItemDataRole.UserRole)))
        column.addWidget(self.recent)
        self.no_recent = QLabel("None yet. Create a project, or try the demo project.")
        self.no_recent.setObjectName("Hint")
        column.addWidget(self.no_recent)
        column.addStretch(3)
        outer.addLayout(column)
        outer.addStretch(1)
        self.new_button.clicked.connect(self.new_requested)
        self.open_button.clicked.connect(self.open_requested)
        self.demo_button.clicked.connect(self.demo_requested)

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for p in paths:
            item = QListWidgetItem(f"{Path(p).name.removesuffix(PROJECT_SUFFIX)}    \u2014    {p}")
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setSizeHint(QSize(0, 30))
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.no_recent.setVisible(not paths)


class MainWindow(QMainWindow):
    """``MainWindow(settings=None, context_factory=None, detect_device=True)``.

    ``context_factory(project, actor)`` makes the ProjectContext for an opened
    project (tests may pass their own). ``project_opened``/``project_closed``
    tell the app when the project changes.
    """

    project_opened = Signal(object)  # ProjectContext
    project_closed = Signal()

    def __init__(self, settings: AppSettings | None = None,
                 context_factory: Callable[[Project, str], ProjectContext] | None = None,
                 detect_device: bool = True, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings or AppSettings()
        self._context_factory = context_factory or (lambda project, actor: ProjectContext(project, actor))
        self.context: ProjectContext | None = None
        self._pages: dict[str, Page] = {}
        self._first_shown = False
        self._device_job: Job | None = None
        self.device_text = ""
        self.setWindowTitle("FT Studio")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.setMinimumSize(800, 560)

        self.welcome = WelcomeScreen()
        self.welcome.new_requested.connect(self.ask_new_project)
        self.welcome.open_requested.connect(self.ask_open_project)
        self.welcome.demo_requested.connect(self.open_demo_project)
        self.welcome.recent_requested.connect(self.open_project)

        self.nav = QListWidget()
        self.nav.setObjectName("NavList")
        self.nav.setFixedWidth(176)
        for name in PAGES:
            item = QListWidgetItem(name)
            item.setToolTip(PAGE_HINTS[name])
            item.setSizeHint(QSize(0, 38))
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self._nav_changed)
        self.project_label = QLabel()
        self.project_label.setTextFormat(Qt.TextFormat.PlainText)  # the project's name is the user's text
        self.project_label.setObjectName("NavTitle")
        self.project_label.setWordWrap(True)
        side = QWidget()
        side.setObjectName("Sidebar")
        side.setStyleSheet("#Sidebar { background: #eceef2; border-right: 1px solid #d8dce3; }")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(0)
        side_layout.addWidget(self.project_label)
        side_layout.addWidget(self.nav, 1)
        self.page_stack = QStackedWidget()
        self.workspace = QWidget()
        work = QHBoxLayout(self.workspace)
        work.setContentsMargins(0, 0, 0, 0)
        work.setSpacing(0)
        work.addWidget(side)
        work.addWidget(self.page_stack, 1)
        self.nav.setStyleSheet("QListWidget#NavList { border-right: none; }")

        self.central = QStackedWidget()
        self.central.addWidget(self.welcome)
        self.central.addWidget(self.workspace)
        self.setCentralWidget(self.central)

        self.activity_label = QLabel("Idle")
        self.device_label = QLabel("Device: checking\u2026" if detect_device else "")
        self.statusBar().addPermanentWidget(self.activity_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().setSizeGripEnabled(False)

        self._backup_timer = QTimer(self)
        self._backup_timer.setInterval(60_000)  # looks each minute; backs up when due (15 min, changed)
        self._backup_timer.timeout.connect(self._backup_now_and_then)
        self._build_menus()
        self._restore_window()
        self._show_welcome()
        if detect_device:
            # After the first paint: importing torch takes a while and must not delay the window.
            QTimer.singleShot(300, self.detect_device)

    # -- menus ----------------------------------------------------------------------

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.new_action = self._action(file, "&New project\u2026", self.ask_new_project, "Ctrl+N")
        self.open_action = self._action(file, "&Open project\u2026", self.ask_open_project, "Ctrl+O")
        self.recent_menu = file.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._action(file, "Open the &demo project", self.open_demo_project)
        file.addSeparator()
        self.import_action = self._action(file, "&Import data\u2026", self.import_data, "Ctrl+I")
        self.export_action = self._action(file, "&Export dataset\u2026", self.ask_export_dataset)
        self.restore_action = self._action(file, "Restore from &backup\u2026", self.ask_restore_backup,
                                           tip="Put one of the project's automatic snapshots back")
        file.addSeparator()
        self.close_project_action = self._action(file, "&Close project", self.close_project)
        self._action(file, "&Quit", self.close, "Ctrl+Q")

        edit = bar.addMenu("&Edit")
        self.undo_action = self._action(edit, "&Undo", self.undo, "Ctrl+Z")
        self.redo_action = self._action(edit, "&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        # Undo and redo take back only your own changes; this one is for someone else's.
        self.undo_others_action = self._action(
            edit, "Undo &someone else's change\u2026", self.undo_someone_elses_change,
            tip="Take back the newest change another annotator made (they can redo it)")
        edit.addSeparator()
        self.add_action = self._action(edit, "&Add example", lambda: self._on_data("add_example"), "Ctrl+Shift+N")
        self.duplicate_action = self._action(edit, "D&uplicate example", lambda: self._on_data("duplicate_selected"),
                                             "Ctrl+D")
        # No window-wide key: Ctrl+Backspace and the like edit text in the boxes. The Delete
        # key deletes examples while the table has the focus (the Data page's own shortcut).
        self.delete_action = self._action(edit, "&Delete selected examples\tDel in the table",
                                          lambda: self._on_data("delete_selected"))
        self.find_action = self._action(edit, "&Find examples\u2026", lambda: self._on_data("focus_search"),
                                        "Ctrl+F")
        edit.addSeparator()
        self._action(edit, "Your &name\u2026", self.ask_annotator)
        self._action(edit, "&Hugging Face account\u2026", self.show_hub_account,
                     tip="The token gated hub models need")

        view = bar.addMenu("&View")
        self.page_actions: list[QAction] = []
        for i, name in enumerate(PAGES, start=1):
            self.page_actions.append(self._action(view, name, lambda n=name: self.show_page(n), f"Ctrl+{i}"))

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Getting started", self.show_guide, "F1")
        self._action(help_menu, "&System check\u2026", self.show_system_check,
                     tip="PyTorch and the GPU, bitsandbytes, memory, disk, the bundled model")
        help_menu.addSeparator()
        self._action(help_menu, "&About FT Studio", self.show_about)
        self._project_actions = [self.import_action, self.export_action, self.restore_action,
                                 self.close_project_action, self.undo_action, self.redo_action,
                                 self.undo_others_action, self.add_action, self.duplicate_action,
                                 self.delete_action, self.find_action, *self.page_actions]

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = self.settings.recent_projects()
        for p in paths:
            action = self.recent_menu.addAction(p)
            action.triggered.connect(lambda _checked=False, p=p: self.open_project(p))
        if not paths:
            none = self.recent_menu.addAction("No recent projects")
            none.setEnabled(False)

    # -- projects -------------------------------------------------------------------

    def ask_new_project(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "New project", str(Path.home() / f"my-project{PROJECT_SUFFIX}"),
                                              f"FT Studio project (*{PROJECT_SUFFIX})")
        if path:
            self.new_project(path)

    def new_project(self, path: str | Path) -> bool:
        """Create NAME.ftstudio at ``path`` and open it (the New action after its dialog)."""
        path = Path(path)
        if not path.name.endswith(PROJECT_SUFFIX):
            path = path.with_name(path.name + PROJECT_SUFFIX)
        if not self._release_project():
            return False
        try:
            project = Project.create(path)
        except (ProjectError, OSError) as exc:
            self.show_error(f"Could not create the project: {exc}")
            return False
        self._install_project(project)
        return True

    def ask_open_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open project", str(Path.home()))
        if path:
            self.open_project(path)

    def open_project(self, path: str | Path) -> bool:
        if self.context is not None and Path(path).resolve() == self.context.project.path.resolve():
            return True
        if not self._release_project():
            return False
        try:
            project = Project.open(path)
        except DamagedProject as exc:
            self.show_error(str(exc))
            return self._offer_restore(Path(path), str(exc))
        except (ProjectError, OSError) as exc:
            self.show_error(str(exc))
            if not Path(path).exists():
                self.settings.remove_recent_project(path)
                self.welcome.set_recent(self.settings.recent_projects())
            return False
        self._install_project(project)
        return True

    def open_demo_project(self) -> bool:
        from ftstudio.core.demo import ensure_demo_project

        try:
            project = ensure_demo_project()
        except Exception as exc:  # a read-only data folder, a broken earlier copy
            self.show_error(f"Could not prepare the demo project: {exc}")
            return False
        path = project.path
        project.close()
        return self.open_project(path)

    def _offer_restore(self, folder: Path, damage: str) -> bool:
        """project.db cannot be read: offer its backups (the damaged file is kept aside)."""
        if not list_backups(folder):
            QMessageBox.warning(self, "The project is damaged", damage)
            return False
        dialog = RestoreDialog(folder, self, damaged=damage)
        chosen = dialog.chosen() if dialog.exec() == QDialog.DialogCode.Accepted else None
        if chosen is None:
            return False
        try:
            aside = restore_damaged(folder, chosen)
        except (ProjectError, OSError) as exc:
            self.show_error(str(exc))
            return False
        opened = self.open_project(folder)
        self.show_status(f"Restored {chosen.name}; the damaged file is kept as {aside.name}")
        return opened

    def ask_restore_backup(self) -> None:
        if self.context is None:
            return
        folder = self.context.project.path
        dialog = RestoreDialog(folder, self)
        chosen = dialog.chosen() if dialog.exec() == QDialog.DialogCode.Accepted else None
        if chosen is not None:
            self.restore_backup(chosen)

    def restore_backup(self, backup: Path) -> bool:
        """Put ``backup`` in place of the open project's data and reopen it on every page."""
        if self.context is None:
            return False
        folder = self.context.project.path
        if not self._release_project():
            return False
        try:
            with Project.open(folder) as project:
                project.restore(Path(backup))
        except ProjectError as exc:
            self.show_error(str(exc))
            self.open_project(folder)
            return False
        opened = self.open_project(folder)
        self.show_status(f"Restored the backup of {backup_summary(Path(backup)).split('  ')[0]}; the state before "
                         "it is kept as a backup")
        return opened

    def _backup_now_and_then(self) -> None:
        """A snapshot of the open project when the last one is old and something changed."""
        if self.context is None:
            return
        try:
            self.context.project.backup_if_due()
        except (ProjectError, OSError) as exc:
            self.show_error(f"Could not take the automatic backup: {exc}")

    def _say_waiting(self, message: str) -> None:
        """A write is waiting for another program's lock: say so where the user looks."""
        if QThread.currentThread() is self.thread():
            self.statusBar().showMessage(message, 15000)
            self.statusBar().repaint()  # the event loop waits with the write: paint now
        elif self.context is not None:
            self.context.status_message.emit(message)

    def _install_project(self, project: Project) -> None:
        project.on_wait = self._say_waiting
        self.context = self._context_factory(project, self.settings.annotator())
        self.context.status_message.connect(self.show_status)
        self.context.open_example.connect(self.open_example)
        self.context.compute.changed.connect(self._compute_changed)
        self.settings.add_recent_project(project.path)
        self.setWindowTitle(f"{project.name} \u2014 FT Studio")
        self.project_label.setText(project.name)
        self.project_label.setToolTip(str(project.path))
        self.central.setCurrentWidget(self.workspace)
        for a in self._project_actions:
            a.setEnabled(True)
        start = str(self.settings.value("window/page", "Data") or "Data")
        self.show_page(start if start in PAGES else "Data")
        self.project_opened.emit(self.context)
        self.show_status(f"Opened {project.path}")
        self._backup_timer.start()
        QTimer.singleShot(0, self._backup_now_and_then)

    def busy_pages(self) -> dict[str, Page]:
        """Built pages with work going on (a training run): those with ``is_busy()`` true."""
        out = {}
        for name, page in self._pages.items():
            try:
                if page.is_busy():
                    out[name] = page
            except Exception:
                log.exception("page %s could not say whether it is busy", name)
        return out

    def _confirm_stop(self, busy: dict[str, Page]) -> bool:
        """Ask before stopping running work; True to stop it."""
        names = ", ".join(busy)
        box = QMessageBox(QMessageBox.Icon.Question, "Stop the running work?",
                          f"Training is still running ({names} page). Stop it now?", parent=self)
        box.setInformativeText("The run is stopped cleanly: its last checkpoint is saved and kept, "
                               "and you can resume it later.")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.button(QMessageBox.StandardButton.Yes).setText("Stop and close")
        box.button(QMessageBox.StandardButton.No).setText("Keep running")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def _stop_busy_pages(self) -> bool:
        """Ask, then stop every busy page (each saves its checkpoint); False to keep the project open."""
        busy = self.busy_pages()
        if not busy:
            return True
        if not self._confirm_stop(busy):
            return False
        for name, page in busy.items():
            self.show_status(f"Stopping the {name} page's run and saving its checkpoint\u2026")
            try:
                stopped = page.stop_and_wait(STOP_TIMEOUT_MS)
            except Exception as exc:
                log.exception("page %s failed to stop", name)
                self.show_error(f"The {name} page could not stop its run: {exc}")
                return False
            if stopped is False:
                self.show_error(f"The {name} page's run has not stopped yet; try closing again in a moment")
                return False
        return True

    def _release_project(self) -> bool:
        """Close the open project's pages (asking each); False if one says no."""
        if self.context is None:
            return True
        if not self._stop_busy_pages():
            return False
        for page in self._pages.values():
            if not page.can_close():
                return False
        for name, page in list(self._pages.items()):
            try:
                state = page.save_state()
                if state is not None:
                    self.settings.set_value(f"pages/{name}", state)
            except Exception:
                log.exception("page %s could not save its layout", name)
            try:
                page.shutdown()
            except Exception:
                log.exception("page %s failed to shut down", name)
            self.page_stack.removeWidget(page)
        pages = list(self._pages.values())
        self._pages.clear()
        context, self.context = self.context, None
        _close_after(context, pages)
        self.project_closed.emit()
        return True

    def close_project(self) -> bool:
        if not self._release_project():
            return False
        self.settings.forget_last_project()
        self._show_welcome()
        return True

    def _show_welcome(self) -> None:
        if hasattr(self, "_backup_timer"):
            self._backup_timer.stop()
        self.setWindowTitle("FT Studio")
        self.welcome.set_recent(self.settings.recent_projects())
        self.central.setCurrentWidget(self.welcome)
        for a in getattr(self, "_project_actions", []):
            a.setEnabled(False)

    # -- pages ----------------------------------------------------------------------

    def page(self, name: str) -> Page | None:
        """The page widget, built on first use (None without a project)."""
        if self.context is None or name not in PAGES:
            return None
        if name not in self._pages:
            self._pages[name] = self._build_page(name)
            self.page_stack.addWidget(self._pages[name])
        return self._pages[name]

    def built_pages(self) -> dict[str, Page]:
        return dict(self._pages)

    def _build_page(self, name: str) -> Page:
        try:
            cls = load_page_class(PAGES[name])
            if cls is None:
                return Placeholder(name, "This page is not available in this build.")
            page = cls(self.context)
        except Exception as exc:
            log.exception("the %s page could not be built", name)
            self.show_error(f"The {name} page could not be opened: {exc}")
            return Placeholder(name, f"This page could not be opened:\n{exc}\n\nDetails are in the log.")
        state = self.settings.value(f"pages/{name}")
        if state is not None:
            try:
                page.restore_state(state)
            except Exception:  # a layout saved by another version: keep the default
                log.warning("the %s page's saved layout was not used", name)
        return page

    @Slot(int)
    def open_example(self, example_id: int) -> None:
        """The Data page, showing example ``example_id`` (asked from another page, such as a mistake)."""
        self.show_page("Data")
        data = self.page("Data")
        select = getattr(data, "select_ids", None)
        if callable(select):
            select([example_id])

    def show_page(self, name: str) -> None:
        if self.context is None or name not in PAGES:
            return
        row = list(PAGES).index(name)
        if self.nav.currentRow() != row:
            self.nav.setCurrentRow(row)  # comes back through _nav_changed
            return
        page = self.page(name)
        if page is None:  # never: a project is open and the name is a page's
            return
        self.page_stack.setCurrentWidget(page)
        self.settings.set_value("window/page", name)

    def current_page_name(self) -> str | None:
        row = self.nav.currentRow()
        return list(PAGES)[row] if self.context is not None and row >= 0 else None

    @Slot(int)
    def _nav_changed(self, row: int) -> None:
        if row >= 0:
            self.show_page(list(PAGES)[row])

    def data_page(self):
        return self.page("Data")

    def _on_data(self, method: str):
        if self.context is None:
            return None
        self.show_page("Data")
        return getattr(self.data_page(), method)()

    # -- edit -----------------------------------------------------------------------

    def undo(self) -> None:
        self._history("undo")

    def redo(self) -> None:
        self._history("redo")

    def _history(self, which: str) -> None:
        """The open page's own undo when it has one, else the project's journal."""
        if self.context is None:
            return
        page = self._pages.get(self.current_page_name() or "")
        if page is not None and page.history(which):
            return
        data = self._pages.get("Data")
        if data is not None and data.history(which):
            return
        try:
            ids = getattr(self.context.project, which)(self.actor)
        except UndoConflict as exc:
            self.show_status(str(exc))
            return
        self.context.examples_changed.emit(ids)
        self.show_status(("Undid" if which == "undo" else "Redid") + f" a change to {len(ids)} examples"
                         if ids else f"Nothing of yours to {which}")

    @property
    def actor(self) -> str:
        """Who the changes made here are by: the annotator's name, else this computer's user."""
        return self.context.author if self.context is not None else default_actor()

    def undo_someone_elses_change(self, confirm: bool = True) -> list[int]:
        """Undo the newest change another person made, after saying whose it is; returns the example ids."""
        if self.context is None:
            return []
        project = self.context.project
        latest = project.latest_change_by_others(self.actor)
        if latest is None:
            self.show_status("Nobody else has a change to undo")
            return []
        who, count = latest
        if confirm:
            answer = QMessageBox.question(
                self, "Undo someone else's change",
                f"Undo the newest change {who} made ({count:,} example{'s' if count != 1 else ''})? "
                f"It is {who}'s change, not yours; {who} can redo it.")
            if answer != QMessageBox.StandardButton.Yes:
                return []
        try:
            who, ids = project.undo_someone_elses_change(self.actor)
        except UndoConflict as exc:
            self.show_status(str(exc))
            return []
        self.context.labels_changed.emit()  # the change may have been to the label set
        self.context.examples_changed.emit(ids)
        self.show_status(f"Undid {who}'s change to {len(ids):,} example{'s' if len(ids) != 1 else ''}")
        return ids

    def import_data(self, path: str | Path | None = None):
        """Open the import wizard (on ``path`` when given); returns it."""
        if self.context is None:
            self.show_status("Open or create a project first, then import data into it")
            return None
        self.show_page("Data")
        return self.data_page().open_import_wizard(path)

    def ask_export_dataset(self) -> None:
        if self.context is None:
            return
        default = str(Path.home() / f"{self.context.project.name}.jsonl")
        path, _ = QFileDialog.getSaveFileName(self, "Export dataset", default, "JSON Lines (*.jsonl)")
        if path:
            self.export_dataset(path)

    def export_dataset(self, path: str | Path, split: str | None = None) -> int:
        from ftstudio.core.formats import export_dataset

        if self.context is None:
            return 0
        data = self._pages.get("Data")
        if data is not None:
            data.flush_edits()
        try:
            n = export_dataset(self.context.project, path, split=split)
        except OSError as exc:
            self.show_error(f"Could not write {path}: {exc}")
            return 0
        self.show_status(f"Exported {n:,} examples to {path}")
        return n

    def ask_annotator(self) -> None:
        current = self.settings.annotator()
        name, ok = QInputDialog.getText(self, "Your name", "The name put on your edits, labels and votes:",
                                        text=current)
        if ok:
            self.set_annotator(name)

    def set_annotator(self, name: str) -> None:
        self.settings.set_annotator(name)
        if self.context is not None:
            self.context.set_actor(name)

    def about_box(self) -> QMessageBox:
        import platform

        from ftstudio import __version__
        from ftstudio.gui.app_icon import app_pixmap

        box = QMessageBox(self)
        box.setWindowTitle("About FT Studio")
        box.setIconPixmap(app_pixmap(96))
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(f"<h3>FT Studio {__version__}</h3><p>Fine-tune language models with LoRA and QLoRA "
                    "on your own workstation.</p>")
        box.setInformativeText(f"Python {platform.python_version()} \u00b7 Qt {qVersion()}<br>"
                               "Help &gt; System check shows PyTorch, the GPU and what training needs.<br>"
                               "Licence: Apache-2.0")
        return box

    def show_about(self) -> None:
        self.about_box().exec()

    def show_guide(self):
        from ftstudio.gui.guide import show_guide

        return show_guide(self)

    def show_system_check(self):
        from ftstudio.gui.system_check import SystemCheckDialog

        dialog = SystemCheckDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_hub_account(self):
        from ftstudio.gui.hub_account import HubAccountDialog

        dialog = HubAccountDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # -- status ---------------------------------------------------------------------

    @Slot(str)
    def show_status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    @Slot(str)
    def show_error(self, text: str) -> None:
        log.warning("%s", text)
        self.statusBar().showMessage(text, 15000)

    @Slot(str)
    def _compute_changed(self, holder: str) -> None:
        self.activity_label.setText(f"Running: {holder}" if holder else "Idle")
        if self.device_text:  # free memory changes with each run: look again
            self.detect_device()

    def detect_device(self) -> None:
        if self._device_job is not None:
            return
        self._device_job = Job(_detect_device, parent=self)
        self._device_job.ended.connect(self._device_detected)
        self._device_job.start()

    @Slot(object)
    def _device_detected(self, outcome: Outcome) -> None:
        self._device_job = None
        if outcome.done:
            self.device_text = str(outcome.value)
        else:
            log.warning("device detection failed: %s", outcome.value)
            self.device_text = f"CPU ({os.cpu_count() or 1} cores)"
        self.device_label.setText(self.device_text)

    # -- drag and drop --------------------------------------------------------------

    @staticmethod
    def _dropped_path(event) -> Path | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                if path.is_dir() or path.suffix.lower() in DROPPABLE:
                    return path
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self._dropped_path(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        if path.is_dir() and (path / "project.db").exists():
            self.open_project(path)
        elif self.context is None:
            self.show_status("Open or create a project first, then drop the data file on it")
        else:
            self.import_data(path)

    # -- window ---------------------------------------------------------------------

    def _restore_window(self) -> None:
        geometry = self.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._first_shown:
            self._first_shown = True
            if os.environ.get(FIRST_SHOWN_ENV):
                heavy = sorted(m for m in ("torch", "transformers", "peft", "pyqtgraph") if m in sys.modules)
                print(f"FTSTUDIO_FIRST_SHOWN {time.time():.6f} loaded={','.join(heavy) or '-'} "
                      f"title={self.windowTitle()}", flush=True)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._release_project():
            event.ignore()
            return
        self.settings.save_window(self.saveGeometry(), self.saveState())
        if self._device_job is not None:
            self._device_job.wait()
        from ftstudio.gui.data.tokens import _shared

        if _shared is not None:
            _shared.wait()
        event.accept()
