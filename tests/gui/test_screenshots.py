"""``python -m ftstudio.gui.screenshots``: the pictures of the Label and Compare pages, each view
at 1280 x 800, the most telling one under the page's own name (staged: quick, with made-up figures,
which never go into docs/screenshots). The real pictures train a model for minutes: they are made by
running the command, not here."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QImage

from ftstudio.gui import screenshots
from ftstudio.gui.settings import SETTINGS_ENV

pytestmark = pytest.mark.qt_log_ignore("does not support")


def test_file_names():
    assert screenshots.file_stem("label", "label") == "label"
    assert screenshots.file_stem("label", "label-setup") == "label-setup"
    assert screenshots.file_stem("data", "checks") == "data-checks"
    assert screenshots.file_stem("compare", "compared") == "compare-compared"


@pytest.fixture
def app_as_it_was(qapp):
    """take() styles the application as the program does; put it back for the tests after this one."""
    style, palette, font, sheet = qapp.style().name(), qapp.palette(), qapp.font(), qapp.styleSheet()
    name, organisation = qapp.applicationName(), qapp.organizationName()
    yield qapp
    qapp.setStyleSheet(sheet)
    qapp.setStyle(style)
    qapp.setPalette(palette)
    qapp.setFont(font)
    qapp.setApplicationName(name)
    qapp.setOrganizationName(organisation)


@pytest.mark.slow
def test_label_and_compare_pictures(app_as_it_was, tmp_path, monkeypatch):
    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path / "settings.ini"))  # take() points it at its own copy
    monkeypatch.setattr(screenshots, "SETTLE_MS", 50)
    out = tmp_path / "shots"
    written = screenshots.take(out, pages=("Label", "Compare"), staged=True)
    names = [p.name for p in written]
    assert names == ["label.png", "label-setup.png", "label-agreement.png",
                     "compare.png", "compare-blind.png", "compare-results.png", "compare-evaluation.png",
                     "compare-chat.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for path in written:
        image = QImage(str(path))
        assert (image.width(), image.height()) == (screenshots.WIDTH, screenshots.HEIGHT), path.name


def test_staged_pictures_stay_out_of_the_docs(tmp_path, capsys):
    docs = screenshots.Path(screenshots.__file__).resolve().parents[2] / screenshots.DEFAULT_OUT
    with pytest.raises(ValueError, match="made-up"):
        screenshots.take(docs, staged=True)
    assert screenshots.main(["--staged", str(docs)]) == 2
    assert screenshots.main(["--staged"]) == 2  # no folder named: the default is docs/screenshots
    assert "made-up" in capsys.readouterr().err
