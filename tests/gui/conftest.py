"""GUI fixtures: settings in a temporary file, a context over a fresh project,
a data file to import, and a main window that does not probe the device."""

from __future__ import annotations

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
