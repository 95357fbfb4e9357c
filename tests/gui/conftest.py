"""GUI fixtures: settings in a temporary file, a context over a fresh project,
a data file to import, and a main window that does not probe the device."""

from __future__ import annotations

import gc
import json

import pytest

from ftstudio.gui.context import ProjectContext
from ftstudio.gui.settings import SETTINGS_ENV, AppSettings


@pytest.fixture
def settings(tmp_path, monkeypatch) -> AppSettings:
    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path / "settings.ini"))
    return AppSettings()


@pytest.fixture
def context(project, qapp) -> ProjectContext:
    ctx = ProjectContext(project, actor="tester")
    yield ctx
    ctx.deleteLater()


@pytest.fixture(autouse=True)
def _let_tokenizer_finish(qapp):
    yield
    from ftstudio.gui.data import tokens

    if tokens._shared is not None:
        tokens._shared.wait()


@pytest.fixture(autouse=True)
def _collect_between_tests(qapp):
    """What a test leaves behind is deleted here, on the GUI thread with no worker running:
    Qt objects in Python's cyclic garbage would otherwise be destroyed whenever a later
    collection happens, in the middle of another test's event loop."""
    yield
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect(1)  # the young generations hold what the test made; a full collection costs ~0.4 s here


TICKETS = [
    ("My card was charged twice for one order.", "billing"),
    ("The app crashes when I open settings.", "technical"),
    ("I cannot log in after changing my email.", "account"),
    ("My parcel has not arrived after two weeks.", "shipping"),
    ("Great service, thank you very much!", "feedback"),
    ("Where is the refund for my returned shoes?", "billing"),
]


def write_messages_jsonl(path, rows=TICKETS) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for prompt, answer in rows:
            fh.write(json.dumps({"messages": [{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": answer}], "label": answer}) + "\n")


@pytest.fixture
def tickets_jsonl(tmp_path):
    path = tmp_path / "tickets.jsonl"
    write_messages_jsonl(path)
    return path


def _fill(project, n: int, eval_every: int = 0) -> list[int]:
    from ftstudio.core.examples import NewExample

    labels = ["billing", "technical", "account"]
    return project.add_examples([
        NewExample(messages=[{"role": "user", "content": f"question number {i}"},
                             {"role": "assistant", "content": labels[i % 3]}],
                   label=labels[i % 3], split="eval" if eval_every and i % eval_every == 0 else "train")
        for i in range(n)
    ], actor="fixture")


@pytest.fixture
def fill():
    """fill(project, n, eval_every=0) adds n short labelled examples; returns their ids."""
    return _fill
