"""Help > Getting started, Help > System check, About with the app's icon, the Hugging Face
account, and the line on each page's empty state that opens the guide."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel

from ftstudio.core import doctor as d
from ftstudio.gui.guide import GUIDE_FILE, GUIDE_LINK, GuideDialog
from ftstudio.gui.hub_account import HubAccountDialog
from ftstudio.gui.main_window import MainWindow
from ftstudio.gui.system_check import SystemCheckDialog

pytestmark = pytest.mark.qt_log_ignore(r"does not support (propagateSizeHints|raise)\(\)")


@pytest.fixture
def window(qtbot, settings):
    w = MainWindow(settings, detect_device=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def menu_actions(window: MainWindow, title: str) -> dict[str, object]:
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == title)
    return {a.text().replace("&", ""): a for a in menu.actions() if a.text()}


def test_window_and_about_box_carry_the_icon(window):
    assert not window.windowIcon().isNull()
    sizes = {s.width() for s in window.windowIcon().availableSizes()}
    assert {16, 32, 48, 256} <= sizes
    box = window.about_box()
    assert box.iconPixmap().width() == 96
    assert "FT Studio 0.1.0" in box.text()


def test_getting_started_shows_the_guide_with_its_pictures(window, qtbot):
    action = menu_actions(window, "&Help")["Getting started"]
    assert action.shortcut().toString() == "F1"
    action.trigger()
    guide = window._guide_dialog
    assert isinstance(guide, GuideDialog) and guide.isVisible()
    text = guide.browser.toPlainText()
    for step in ("1. Data", "2. Label", "3. Train", "4. Compare", "5. Export"):
        assert step in text
    pictures = [
        line.split("](")[1].rstrip(")")
        for line in GUIDE_FILE.read_text().splitlines()
        if line.startswith("![")
    ]
    assert len(pictures) == 5
    doc = guide.browser.document()
    base = QUrl.fromLocalFile(str(GUIDE_FILE))
    for picture in pictures:
        image = doc.resource(QTextDocument.ResourceType.ImageResource, base.resolved(QUrl(picture)))
        assert image is not None and not image.isNull(), picture
    action.trigger()  # a second F1 raises the same window
    assert window._guide_dialog is guide


def test_system_check_runs_the_checks_off_the_gui_thread(window, qtbot):
    menu_actions(window, "&Help")["System check…"].trigger()
    [dialog] = window.findChildren(SystemCheckDialog)
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    keys = [c.key for c in dialog.report.checks]
    assert keys[:3] == ["python", "ftstudio", "torch"] and "bundled_model" in keys
    badges = [
        w.text() for w in dialog.rows.findChildren(QLabel) if w.text() in ("OK", "Note", "Warning", "Problem")
    ]
    assert len(badges) == len(keys)
    assert "Nothing blocks training" in dialog.summary.text() or "block training" in dialog.summary.text()
    dialog.copy_report()
    from PySide6.QtGui import QGuiApplication

    assert "Python" in QGuiApplication.clipboard().text()
    dialog.close()


def test_system_check_shows_a_blocking_problem_with_its_fix(qtbot):
    dialog = SystemCheckDialog(run=False)
    qtbot.addWidget(dialog)
    dialog.show_report(
        d.Report(
            (
                d.Check("python", "Python", d.OK, "Python 3.11"),
                d.Check("disk", "Disk space", d.PROBLEM, "0.5 GiB free under /x", "Free at least 2 GiB"),
            )
        )
    )
    assert "1 problem(s) block training" in dialog.summary.text() and "Disk space" in dialog.summary.text()
    texts = [w.text() for w in dialog.rows.findChildren(QLabel)]
    assert "Problem" in texts and any("Free at least 2 GiB" in t for t in texts)


def test_empty_data_page_points_to_the_guide(window, tmp_path, qtbot):
    assert window.new_project(tmp_path / "empty.ftstudio")
    page = window.page("Data")
    assert GUIDE_LINK in page.empty.text()
    page.empty.linkActivated.emit(GUIDE_LINK)
    assert window._guide_dialog.isVisible()


@pytest.mark.parametrize(
    "name, label",
    [
        ("Runs", lambda p: p.empty),
        ("Compare", lambda p: p.compare.empty),
        ("Label", lambda p: p.mode.done),
        ("Train", lambda p: p.guide_hint),
    ],
)
def test_every_pages_empty_state_has_the_guide_line(window, tmp_path, name, label):
    assert window.new_project(tmp_path / "empty.ftstudio")
    window.show_page(name)
    assert GUIDE_LINK in label(window.page(name)).text()


def test_hugging_face_account_shows_the_stored_token_masked(window, monkeypatch, qtbot):
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecret1234")
    menu_actions(window, "&Edit")["Hugging Face account…"].trigger()
    [dialog] = window.findChildren(HubAccountDialog)
    assert "1234" in dialog.state.text() and "secretsecret" not in dialog.state.text()
    dialog.add_token()
    assert "Paste the token first" in dialog.message.text()
    dialog.close()


def test_a_token_the_hub_cannot_check_is_not_stored(qtbot, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the test machine cannot reach the hub
    dialog = HubAccountDialog()
    qtbot.addWidget(dialog)
    dialog.token_edit.setText("hf_notarealtoken000")
    dialog.add_token()
    qtbot.waitUntil(lambda: not dialog.is_checking(), timeout=30_000)
    assert "cannot be reached" in dialog.message.text()
    assert not (tmp_path / "token").exists()
