"""A representative state of the Label page, for screenshot scripts and demonstrations.

``stage_sample_state(page, view)`` puts the Label page as a team would have
it part-way through a labelling job, and shows ``view``:

- ``"label"``: the labelling mode in action. Dana has labelled a share of
  the examples and flagged two; new tickets wait in her queue, and the first
  of them is on screen with the label set as buttons.
- ``"setup"``: the Set up tab: the kind of labelling, the label set with
  keys and colours, the instructions and the template preview.
  A new prompt template is typed in (not applied), so the preview shows
  what it would make of a labelled example.
- ``"agreement"``: Sam and Lee have labelled some of the examples Dana
  labelled, differing on a few, so the Agreement tab shows kappa per pair,
  per label, and the disagreements waiting for a reviewer.

It writes into the page's project (new tickets, annotations by "Dana" and
"Sam"), using the public labelling API: use it on a throwaway copy only.
``remove_sample_examples(page)`` deletes the tickets it added again (and
puts the saved template back in the editor), so that pages shown afterwards
count the project's examples as they were.
The state needs a label set; when the project has none it adopts the labels
its examples carry.
"""

from __future__ import annotations

from ftstudio.core.examples import NewExample
from ftstudio.core.labelling import LabellingError

VIEWS = ("label", "setup", "agreement")
ANNOTATOR = "Dana"
SECOND_ANNOTATOR = "Sam"
THIRD_ANNOTATOR = "Lee"
SAMPLE_TEMPLATE = "Which team should handle this support ticket?\n\n{input}"
SOURCE = "screenshot sample"
# Tickets still to label: they come first in the annotator's queue.
NEW_TICKETS = [
    "Hi, I ordered the blue rain jacket on Monday and was charged twice, once at checkout and again this "
    "morning. The order number is 48213. Could you refund the second payment? Thanks, Priya",
    "The tracking page says delivered but nothing is at my door or with the neighbours.",
    "I can't change my delivery address in my profile, the save button stays grey.",
    "Love the new ceramic mugs, they arrived beautifully packed. Keep it up!",
    "Your checkout page shows an error 500 when I pay with PayPal.",
    "I never received the invoice for my last order, can you send it again?",
    "How do I delete my account and all my data?",
    "The parcel came with the wrong size, I ordered a medium.",
    "Please add more colours for the linen shirts.",
    "The app logs me out every few minutes on my tablet.",
    "I was charged a customs fee nobody told me about.",
    "My discount code says it expired, but the email said it is valid until Sunday.",
]
# Of the new tickets, those Dana flagged, with her note.
FLAGGED = {
    10: "Customs fee: billing or shipping? Asking the team lead.",
    11: "Not sure this is billing or technical.",
}
DONE_BY_ANNOTATOR = 46  # demo examples Dana has labelled already
DONE_BY_SECOND = 40  # of those, how many Sam labelled too
SECOND_DIFFERS = (3, 11, 17, 26, 34)  # positions where Sam chose another label
THIRD_FROM, THIRD_TO = 20, 44  # the examples Lee labelled: some of Sam's, some only Dana's
THIRD_DIFFERS = (26, 31, 40)  # positions where Lee chose another label


def _labelling(page):
    return page.labelling


def _ensure_labels(page) -> None:
    lab = _labelling(page)
    if lab.schema().uses_labels and not lab.labels() and lab.labels_in_data():
        lab.adopt_data_labels(ANNOTATOR)
        page.context.labels_changed.emit()


def _sample_ids(page) -> list[int]:
    project = page.context.project
    return project.ids_from_source(SOURCE)


def _add_tickets(page) -> list[int]:
    """The new tickets (added once), unlabelled, in the training split."""
    ids = _sample_ids(page)
    if ids:
        return ids
    project = page.context.project
    system = project.first_system_prompt()
    new = [NewExample(messages=[{"role": "user", "content": text}], system=system, status="unlabelled",
                      split="train") for text in NEW_TICKETS]
    ids = project.add_examples(new, actor=ANNOTATOR, source=SOURCE)
    page.context.examples_changed.emit(ids)
    return ids


def _labelled_demo_examples(page) -> list[tuple[int, str]]:
    """(id, label) of training examples that carry a label from the set, in id order."""
    names = {d.name for d in _labelling(page).labels()}
    rows = page.context.project.labelled_training_examples(not_from=SOURCE, limit=DONE_BY_ANNOTATOR)
    return [(example_id, label) for example_id, label in rows if label in names]


def _annotate(page) -> None:
    """Sam's and Lee's labels, then Dana's (so each example ends with Dana's label, the one it had),
    then Dana's flags on two new tickets. Done once."""
    lab = _labelling(page)
    if lab.progress(ANNOTATOR).done:
        return
    names = [d.name for d in lab.labels()]
    done = _labelled_demo_examples(page)
    for annotator, first, last, differ, step in ((SECOND_ANNOTATOR, 0, DONE_BY_SECOND, SECOND_DIFFERS, 1),
                                                 (THIRD_ANNOTATOR, THIRD_FROM, THIRD_TO, THIRD_DIFFERS, 2)):
        for i, (example_id, label) in enumerate(done[first:last], start=first):
            other = names[(names.index(label) + step) % len(names)] if i in differ else label
            lab.accept(example_id, annotator, label=other)
    for example_id, label in done:
        lab.accept(example_id, ANNOTATOR, label=label)
    tickets = _add_tickets(page)
    for position, comment in FLAGGED.items():
        if position < len(tickets):
            lab.flag(tickets[position], ANNOTATOR, comment=comment)
    page.context.examples_changed.emit([example_id for example_id, _ in done] + tickets)


def stage_sample_state(page, view: str = "label") -> None:
    """Fill ``page`` (a LabellingPage) as part-way through a labelling job and show ``view`` (one of VIEWS)."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r} (expected one of {', '.join(VIEWS)})")
    _ensure_labels(page)
    if not _labelling(page).labels():
        raise LabellingError("The project has no label set and its examples carry no labels")
    _add_tickets(page)
    _annotate(page)
    page.context.set_actor(ANNOTATOR)
    if view == "label":
        page.show_mode()
        page.mode.load_queue("todo")
    elif view == "setup":
        page.tabs.setCurrentWidget(page.setup.parentWidget())
        page.setup.template.setPlainText(SAMPLE_TEMPLATE)  # typed, not applied
        shortest = page.context.project.shortest_labelled_by(ANNOTATOR)
        if shortest is not None:
            page.setup.show_preview_of(shortest)
    else:
        page.tabs.setCurrentWidget(page.agreement.parentWidget())
        page.agreement.refresh()


def remove_sample_examples(page) -> int:
    """Delete the tickets ``stage_sample_state`` added (one undoable step); returns how many."""
    page.setup.template.setPlainText(_labelling(page).template())
    ids = _sample_ids(page)
    if ids:
        page.context.project.delete_examples(ids, actor=ANNOTATOR)
        page.context.examples_changed.emit(ids)
    return len(ids)
