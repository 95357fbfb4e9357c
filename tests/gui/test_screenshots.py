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


def test_from_run_asks_for_a_finished_run_with_its_adapter(tmp_path, capsys):
    from ftstudio.core.project import Project

    folder = tmp_path / "demo.ftstudio"
    assert screenshots.main(["--from-run", str(folder), "quick-1"]) == 2
    assert "not an FT Studio project" in capsys.readouterr().err
    project = Project.create(folder)
    project.create_run({"model": "bundled:SmolLM2-135M-Instruct", "method": "lora"}, run_id="quick-1")
    project.close()
    assert screenshots.main(["--from-run", str(folder), "other", str(tmp_path / "shots")]) == 2
    assert "has no run other (its runs: quick-1)" in capsys.readouterr().err
    assert screenshots.main(["--from-run", str(folder), "quick-1", str(tmp_path / "shots")]) == 2
    err = capsys.readouterr().err
    assert "run quick-1" in err and "without a saved adapter" in err
    assert screenshots.main(["--from-run", str(folder)]) == 2  # the run is missing
    assert screenshots.main(["--staged", "--from-run", str(folder), "quick-1", str(tmp_path / "shots")]) == 2
    assert "usage" in capsys.readouterr().err
    assert not (tmp_path / "shots").exists()


def test_from_run_pictures_a_copy_of_the_project(tmp_path):
    """The copy holds what the project's write-ahead log still holds, and the project is not touched."""
    from ftstudio.core.examples import NewExample
    from ftstudio.core.project import DB_NAME, Project

    source = Project.create(tmp_path / "demo.ftstudio")
    source.add_examples([NewExample(messages=[{"role": "user", "content": "Where is my parcel?"},
                                              {"role": "assistant", "content": "shipping"}])], actor="test")
    run_id = source.create_run({"model": "bundled:SmolLM2-135M-Instruct", "method": "lora"}, run_id="quick-1")
    (source.run_dir(run_id) / "adapter").mkdir()
    (source.run_dir(run_id) / "adapter" / "adapter_config.json").write_text("{}")
    # left open: the rows may still be in the write-ahead log only
    before = (tmp_path / "demo.ftstudio" / DB_NAME).read_bytes()
    copy = screenshots._copy_project(source.path, tmp_path / "copy" / "demo.ftstudio")
    assert (tmp_path / "demo.ftstudio" / DB_NAME).read_bytes() == before
    source.close()
    copied = Project.open(copy)
    assert copied.count_examples() == 1
    assert copied.get_run("quick-1").id == "quick-1"
    assert (copied.run_dir("quick-1") / "adapter" / "adapter_config.json").read_text() == "{}"
    copied.close()
