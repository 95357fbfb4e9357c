"""The main window driven as a user would: projects, recent list, pages,
shortcuts, drag and drop, the status bar, and closing during a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QMessageBox, QVBoxLayout

from ftstudio.gui.pages import Page
from ftstudio.core.project import Project
from ftstudio.gui import main_window as mw
from ftstudio.gui.main_window import PAGES, MainWindow, Placeholder

# The offscreen platform cannot pass a dialog's size limits to a window system, nor raise one, and says so.
pytestmark = pytest.mark.qt_log_ignore(r"does not support (propagateSizeHints|raise)\(\)")


@pytest.fixture
def make_window(qtbot, settings):
    made = []

    def make(**kwargs) -> MainWindow:
        w = MainWindow(settings, detect_device=kwargs.pop("detect_device", False), **kwargs)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def answer_next_dialog(qtbot, button: QMessageBox.StandardButton, seen: list) -> None:
    """Press ``button`` on the next message box that opens (it runs its own event loop)."""

    def press() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, press)
            return
        seen.append(box.text())
        box.button(button).click()

    QTimer.singleShot(0, press)


def test_new_project_through_the_window_opens_the_data_page(make_window, tmp_path):
    w = make_window()
    assert w.central.currentWidget() is w.welcome
    assert not w.import_action.isEnabled()
    assert w.new_project(tmp_path / "tickets")
    folder = tmp_path / "tickets.ftstudio"
    assert (folder / "project.db").exists() and (folder / "runs").is_dir()
    assert w.central.currentWidget() is w.workspace
    assert w.current_page_name() == "Data"
    assert w.page_stack.currentWidget() is w.data_page()
    assert "tickets" in w.windowTitle()
    assert w.import_action.isEnabled()
    assert w.data_page().empty.isVisibleTo(w)
    # The project is real: an example added through the window lands in its database.
    w.add_action.trigger()
    assert w.data_page().current_id() is not None
    with Project.open(folder) as again:
        assert again.count_examples() == 1


def test_creating_over_an_existing_project_says_so(make_window, tmp_path):
    Project.create(tmp_path / "taken.ftstudio").close()
    w = make_window()
    assert not w.new_project(tmp_path / "taken.ftstudio")
    assert "already holds a project" in w.statusBar().currentMessage()
    assert w.context is None


def test_recent_projects_are_remembered_across_windows(make_window, qtbot, settings, tmp_path):
    first = make_window()
    first.new_project(tmp_path / "one")
    first.new_project(tmp_path / "two")
    first.close()
    assert first.context is None

    second = make_window()
    # "two" was open when the window closed: the next window reopens it.
    assert second.context is None  # run_app reopens settings.last_project(); a bare window starts empty
    assert settings.last_project() == str((tmp_path / "two.ftstudio").resolve())
    recent = [second.welcome.recent.item(i).data(Qt.ItemDataRole.UserRole)
              for i in range(second.welcome.recent.count())]
    assert recent == [str((tmp_path / n).resolve()) for n in ("two.ftstudio", "one.ftstudio")]
    assert second.welcome.recent.isVisibleTo(second) and not second.welcome.no_recent.isVisibleTo(second)
    # Clicking an entry opens it.
    item = second.welcome.recent.item(1)
    rect = second.welcome.recent.visualItemRect(item)
    qtbot.mouseClick(second.welcome.recent.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert second.context is not None and second.context.project.path.name == "one.ftstudio"
    # The File menu lists them too, newest first.
    second.recent_menu.aboutToShow.emit()
    assert [a.text() for a in second.recent_menu.actions()][:2] == recent[::-1]


def test_closing_the_project_returns_to_the_welcome_screen(make_window, settings, tmp_path):
    w = make_window()
    w.new_project(tmp_path / "p")
    assert w.close_project()
    assert w.central.currentWidget() is w.welcome
    assert settings.last_project() is None
    assert w.welcome.recent.count() == 1
    assert not w.import_action.isEnabled()


def test_a_missing_recent_project_is_dropped_with_a_message(make_window, settings, tmp_path):
    settings.add_recent_project(tmp_path / "gone.ftstudio")
    w = make_window()
    assert w.welcome.recent.count() == 1
    assert not w.open_project(tmp_path / "gone.ftstudio")
    assert "not an FT Studio project" in w.statusBar().currentMessage()
    assert settings.recent_projects() == []
    assert w.welcome.recent.count() == 0


def test_window_layout_and_page_are_remembered(make_window, qtbot, tmp_path):
    first = make_window()
    first.new_project(tmp_path / "p")
    first.resize(800, 640)  # the offscreen screen is 800 x 800: restoring keeps a window on it
    first.show_page("Runs")
    first.close()
    second = make_window()
    assert (second.width(), second.height()) == (800, 640)
    second.open_project(tmp_path / "p.ftstudio")
    assert second.current_page_name() == "Runs"


def test_every_page_is_reachable_and_missing_ones_say_so(make_window, qtbot, tmp_path, monkeypatch):
    w = make_window()
    w.new_project(tmp_path / "p")
    for name in PAGES:
        w.show_page(name)
        assert w.current_page_name() == name
        page = w.page_stack.currentWidget()
        assert page is w.built_pages()[name]
        assert not isinstance(page, Placeholder), name  # every page of the app is there
    # A page whose module is not installed says so in its place.
    monkeypatch.setitem(PAGES, "Compare", "ftstudio.gui.not_installed:ComparePage")
    assert mw.load_page_class(PAGES["Compare"]) is None
    w.close_project()
    w.new_project(tmp_path / "q")
    w.show_page("Compare")
    page = w.page_stack.currentWidget()
    assert isinstance(page, Placeholder)
    assert "not available" in page.findChildren(QLabel)[1].text()


def test_keyboard_shortcuts_switch_pages_and_undo(make_window, qtbot, tmp_path):
    w = make_window()
    w.new_project(tmp_path / "p")
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    qtbot.keyClick(w, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert w.current_page_name() == "Runs"
    qtbot.keyClick(w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert w.current_page_name() == "Data"
    qtbot.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    project = w.context.project
    assert project.count_examples() == 1
    w.data_page().table.setFocus()
    qtbot.keyClick(w.data_page().table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.count_examples() == 0
    qtbot.keyClick(w.data_page().table, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert project.count_examples() == 1
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString() for a in w.findChildren(mw.QAction)}
    assert shortcuts["New project\u2026"] == "Ctrl+N"
    assert shortcuts["Open project\u2026"] == "Ctrl+O"
    assert shortcuts["Import data\u2026"] == "Ctrl+I"


def _drop(window: MainWindow, path: Path) -> tuple[bool, bool]:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    accepted = enter.isAccepted()
    drop = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    return accepted, drop.isAccepted()


def test_dropping_a_data_file_opens_the_import_wizard(make_window, qtbot, tmp_path, tickets_jsonl):
    w = make_window()
    w.new_project(tmp_path / "p")
    w.show_page("Runs")
    page = w.data_page()
    with qtbot.waitSignal(page.wizard_opened) as opened:
        assert _drop(w, tickets_jsonl) == (True, True)
    wizard = opened.args[0]
    assert w.current_page_name() == "Data"
    assert wizard.isVisible()
    assert wizard.file_page.path.text() == str(tickets_jsonl)
    assert wizard.currentPage() is wizard.preview_page
    qtbot.waitUntil(lambda: wizard.preview is not None and not wizard.busy)
    assert wizard.preview_page.count.text() == "6 examples will be imported."
    wizard.reject()


def test_dropping_something_else_is_refused(make_window, qtbot, tmp_path):
    w = make_window()
    w.new_project(tmp_path / "p")
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG")
    assert _drop(w, picture) == (False, False)
    assert w.data_page()._wizard is None


def test_dropping_a_project_folder_opens_it(make_window, tmp_path):
    Project.create(tmp_path / "other.ftstudio").close()
    w = make_window()
    _drop(w, tmp_path / "other.ftstudio")
    assert w.context is not None and w.context.project.path.name == "other.ftstudio"


def test_status_bar_shows_the_device_and_what_runs(make_window, qtbot, tmp_path):
    w = make_window(detect_device=True)
    qtbot.waitUntil(lambda: bool(w.device_text), timeout=60000)
    assert w.device_label.text() == w.device_text
    assert "GiB free" in w.device_text or w.device_text.startswith("CPU (")
    w.new_project(tmp_path / "p")
    assert w.activity_label.text() == "Idle"
    assert w.context.compute.try_acquire("Training run 1")
    assert w.activity_label.text() == "Running: Training run 1"
    w.context.compute.release("Training run 1")
    assert w.activity_label.text() == "Idle"


class FakeTrainPage(Page):
    """Stands in for the Train page: busy while a run goes, stops (saving) when asked."""

    stopped = Signal()

    def __init__(self, context, parent=None) -> None:
        super().__init__(parent)
        QVBoxLayout(self).addWidget(QLabel("training\u2026"))
        self.context = context
        self.running = True
        self.stop_calls: list[int] = []
        self.checkpoint = Path(context.project.runs_dir) / "run-1" / "checkpoint"

    def is_busy(self) -> bool:
        return self.running

    def stop_and_wait(self, timeout_ms: int) -> bool:
        self.stop_calls.append(timeout_ms)
        self.checkpoint.mkdir(parents=True, exist_ok=True)
        (self.checkpoint / "adapter_model.safetensors").write_bytes(b"weights")
        self.running = False
        return True


@pytest.fixture
def fake_train(monkeypatch):
    monkeypatch.setitem(PAGES, "Train", f"{__name__}:FakeTrainPage")


def test_closing_during_a_run_asks_and_keeps_running_on_no(make_window, qtbot, tmp_path, fake_train):
    w = make_window()
    w.new_project(tmp_path / "p")
    w.show_page("Train")
    page = w.page("Train")
    assert isinstance(page, FakeTrainPage)
    seen: list[str] = []
    answer_next_dialog(qtbot, QMessageBox.StandardButton.No, seen)
    assert not w.close()
    assert seen and "training" in seen[0].lower()
    assert w.isVisible() and w.context is not None
    assert page.stop_calls == [] and page.running
    page.running = False  # let the fixture close the window


def test_opening_another_project_during_a_run_asks_too(make_window, qtbot, tmp_path, fake_train):
    Project.create(tmp_path / "b.ftstudio").close()
    w = make_window()
    w.new_project(tmp_path / "a")
    page = w.page("Train")
    seen: list[str] = []
    answer_next_dialog(qtbot, QMessageBox.StandardButton.No, seen)
    assert not w.open_project(tmp_path / "b.ftstudio")
    assert w.context.project.path.name == "a.ftstudio"
    answer_next_dialog(qtbot, QMessageBox.StandardButton.Yes, seen)
    assert w.open_project(tmp_path / "b.ftstudio")
    assert page.stop_calls
    assert len(seen) == 2


def test_a_page_that_fails_to_build_shows_why(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setitem(PAGES, "Compare", f"{__name__}:BrokenPage")
    w = make_window()
    w.new_project(tmp_path / "p")
    import logging

    logging.getLogger("ftstudio.gui").disabled = True
    try:
        w.show_page("Compare")
    finally:
        logging.getLogger("ftstudio.gui").disabled = False
    page = w.page_stack.currentWidget()
    assert isinstance(page, Placeholder)
    assert "no model here" in " ".join(label.text() for label in page.findChildren(QLabel))


class BrokenPage(Page):
    def __init__(self, context, parent=None) -> None:
        raise RuntimeError("no model here")


def test_demo_project_opens(make_window, tmp_path, monkeypatch):
    import ftstudio.core.demo as demo

    monkeypatch.setattr(demo, "demo_project_dir", lambda: tmp_path / "demo.ftstudio")
    w = make_window()
    assert w.open_demo_project()
    assert w.context.project.count_examples() == 300
    assert w.data_page().model.rowCount() == 300


class PageWithViews(Page):
    """A page offering two extra views to the screenshot tool, one of them a dialog."""

    def __init__(self, context, parent=None) -> None:
        super().__init__(parent)
        self.label = QLabel("first view", self)

    def screenshot_states(self) -> dict:
        def second():
            self.label.setText("second view")

        def dialog():
            box = QMessageBox(QMessageBox.Icon.Information, "A dialog", "A dialog of this page", parent=self)
            box.setModal(False)
            box.show()
            return box

        def broken():
            raise RuntimeError("cannot show this one")

        return {"second": second, "dialog": dialog, "broken": broken}


def test_screenshots_save_one_picture_per_page_and_view(qtbot, tmp_path, monkeypatch, capsys):
    from PySide6.QtGui import QImage

    from ftstudio.gui import screenshots

    # The Data page's own views are tested in test_data_page.py; here, the tool itself.
    monkeypatch.setattr(mw, "PAGES", {"Label": f"{__name__}:PageWithViews",
                                      "Train": "ftstudio.gui.not_built_yet.page:Page"})
    monkeypatch.setenv("FTSTUDIO_SETTINGS", str(tmp_path / "unused.ini"))
    written = screenshots.take(tmp_path / "shots")
    names = sorted(p.name for p in written)
    # The Help menu's windows come after the pages: System check, Getting started, About.
    assert names == ["about.png", "getting-started.png", "label-dialog.png", "label-second.png", "label.png",
                     "system-check.png"]
    for path in written:
        image = QImage(str(path))
        assert not image.isNull()
        if path.name in ("label-second.png", "label.png"):
            assert (image.width(), image.height()) == (screenshots.WIDTH, screenshots.HEIGHT)
    out = capsys.readouterr().out
    assert "Train: not in this build, skipped" in out
    assert "Label / broken: could not be shown (RuntimeError: cannot show this one)" in out


def _launch(args: list[str], tmp_path) -> str:
    """Run the ``ftstudio`` command (offscreen) until its window shows; the window's title then."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", FTSTUDIO_REPORT_FIRST_SHOW="1",
               FTSTUDIO_SETTINGS=str(tmp_path / "settings.ini"), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("FTSTUDIO_FIRST_SHOWN "):
                return line.split("title=", 1)[1].strip()
        raise AssertionError(f"no window (exit code {proc.wait()})")
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.slow
def test_the_ftstudio_command_opens_the_window_and_the_demo(tmp_path):
    assert _launch([], tmp_path) == "FT Studio"
    assert _launch(["--demo"], tmp_path) == "Support ticket triage (demo) \u2014 FT Studio"
    assert (tmp_path / "data" / "ftstudio" / "demo.ftstudio" / "project.db").exists()
    # The project open when the app last closed opens again.
    assert _launch([], tmp_path) == "Support ticket triage (demo) \u2014 FT Studio"


def test_dropping_a_second_file_shows_it_in_the_open_wizard(make_window, qtbot, tmp_path, tickets_jsonl):
    w = make_window()
    w.new_project(tmp_path / "p")
    first = w.import_data(tickets_jsonl)
    qtbot.waitUntil(lambda: first.preview is not None and not first.busy)
    other = tmp_path / "other.csv"
    other.write_text("question,answer\nWhere is my parcel?,shipping\n", encoding="utf-8")
    _drop(w, other)
    assert w.data_page()._wizard is first
    assert first.file_page.path.text() == str(other) and first.currentPage() is first.preview_page
    qtbot.waitUntil(lambda: not first.busy and first.preview is not None and first.preview.path == other)
    assert first.preview_page.count.text() == "1 example will be imported."
    first.reject()


def test_device_words_for_a_gpu_and_for_the_cpu():
    from ftstudio.engine.device import DeviceInfo

    gpu = DeviceInfo(kind="cuda", name="NVIDIA H100 80GB HBM3", total_bytes=80 * 2**30, free_bytes=int(61.25 * 2**30))
    assert mw.device_text(gpu) == "NVIDIA H100 80GB HBM3 \u00b7 61.2 of 80.0 GiB free"
    cpu = DeviceInfo(kind="cpu", name="AMD EPYC", total_bytes=64 * 2**30, free_bytes=32 * 2**30)
    assert mw.device_text(cpu).startswith("CPU (") and mw.device_text(cpu).endswith(" cores)")


def test_restore_from_backup_puts_the_snapshot_back_on_every_page(make_window, tmp_path):
    from ftstudio.gui.backups import RestoreDialog

    folder = tmp_path / "p.ftstudio"
    with Project.create(folder) as project:
        for i in range(3):
            project.add_example([{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}])
        snapshot = project.backup()
    w = make_window()
    assert w.open_project(folder)
    w.add_action.trigger()  # a change after the snapshot, made through the window
    assert w.data_page().model.rowCount() == 4
    dialog = RestoreDialog(folder, w)
    assert dialog.list.count() >= 1 and "3 examples" in dialog.list.item(dialog.list.count() - 1).text()
    assert w.restore_backup(snapshot)
    assert w.data_page().model.rowCount() == 3
    assert "Restored the backup" in w.statusBar().currentMessage()
    # The state it replaced is a backup of its own, listed first.
    assert "4 examples" in RestoreDialog(folder, w).list.item(0).text()


def test_a_damaged_project_offers_its_backups(make_window, tmp_path, monkeypatch):
    from ftstudio.gui import backups

    folder = tmp_path / "p.ftstudio"
    with Project.create(folder) as project:
        project.add_example([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        project.backup()
    data = bytearray((folder / "project.db").read_bytes())
    for start in range(4096, len(data), 4096):
        data[start:start + 64] = b"\xde\xad" * 32
    (folder / "project.db").write_bytes(bytes(data))
    shown = []
    # The dialog's own event loop cannot run under a test: accept it with the newest backup chosen.
    monkeypatch.setattr(backups.RestoreDialog, "exec",
                        lambda self: shown.append(self.list.count()) or QDialog.DialogCode.Accepted)
    w = make_window()
    assert w.open_project(folder)
    assert shown == [1]
    assert w.data_page().model.rowCount() == 1
    assert list(folder.glob("project.db.damaged-*"))
