"""The demo project: support-ticket triage, created and filled on first use.

Both the headless command (``ftstudio train --demo``) and the app's "Open the
demo" start from it, so it lives here, below both.
"""

from __future__ import annotations

from pathlib import Path

from ftstudio.core.formats import import_dataset
from ftstudio.core.labelling import Labelling
from ftstudio.core.project import DB_NAME, Project
from ftstudio.paths import resource

DEMO_DATA = "support_tickets.jsonl"
# The demo's label set, in the order of its system prompt; keys 1-5 pick them in the labelling mode.
DEMO_LABELS = ("billing", "technical", "account", "shipping", "feedback")
DEMO_INSTRUCTIONS = (
    "Read the ticket and choose the one team that should handle it. Billing: payments, charges, refunds, "
    "invoices. Technical: the shop or the app not working. Account: signing in, passwords, the profile. "
    "Shipping: delivery, customs, damaged or missing parcels. Feedback: praise or suggestions, nothing to fix. "
    "Not sure? Flag it (F) and say why."
)


def demo_project_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("ftstudio", appauthor=False)) / "demo.ftstudio"


def ensure_demo_project(path: Path | None = None) -> Project:
    """The demo project (support-ticket triage), created and filled on first use."""
    path = Path(path) if path else demo_project_dir()
    if (path / DB_NAME).exists():
        project = Project.open(path)
        if project.count_examples() > 0:
            return project
    else:
        project = Project.create(path, name="Support ticket triage (demo)")
    import_dataset(project, resource("demo", DEMO_DATA), eval_fraction=0.1, actor="demo")
    _set_up_demo_labelling(project)
    return project


def _set_up_demo_labelling(project: Project) -> None:
    """The demo's label schema, so its Label page is ready to use: choose one of the five
    categories, each with its key (1-5) and colour, and a word for annotators."""
    labelling = Labelling(project)
    if labelling.labels():
        return  # someone set it up already
    labelling.set_kind("classification")
    for key, name in enumerate(DEMO_LABELS, start=1):
        labelling.add_label(name, "demo", shortcut=str(key))
    labelling.set_instructions(DEMO_INSTRUCTIONS)
