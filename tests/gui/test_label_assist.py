"""Model-assisted labelling and the review queue, driven with real key presses:
the newest run's predicted label pre-selected with its probability (from a
worker, with the tiny model and a real LoRA adapter), confirmed with Enter or
replaced by another key; "least sure first" in the run's order; mistakes sent
to "Review: the model disagrees" confirmed or corrected, undoable, with the
expert's name. The database is checked after each step."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from ftstudio.core import review
from ftstudio.core.examples import NewExample
from ftstudio.core.labelling import Labelling
from ftstudio.gui.labelling.page import LabellingPage
from ftstudio.gui.workers import wait_for

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

LABELS = ("billing", "technical", "account")
TEXTS = [
    "My card was charged twice.",
    "The app crashes on start.",
    "I cannot log in.",
    "Refund please.",
    "Settings page is blank.",
]


@pytest.fixture
def assisted(project, context, qtbot, tiny_model_dir, lora_adapter):
    lab = Labelling(project)
    lab.set_kind("classification")
    for name in LABELS:
        lab.add_label(name, "lead")
    ids = project.add_examples(
        [
            NewExample(messages=[{"role": "user", "content": t}], status="unlabelled", split="train")
            for t in TEXTS
        ],
        actor="import",
    )
    run_id = project.create_run({"model": str(tiny_model_dir), "method": "lora"})
    lora_adapter(tiny_model_dir, project.run_dir(run_id) / "adapter", seed=5)
    project.update_run(run_id, status="finished")
    page = LabellingPage(context)
    qtbot.addWidget(page)
    page.resize(1104, 740)
    page.show()
    qtbot.waitExposed(page)
    yield page, lab, ids, run_id
    page.shutdown()


def test_predicted_label_is_preselected_and_enter_confirms_it(qtbot, project, assisted):
    page, lab, ids, run_id = assisted
    mode = page.mode
    assert mode.current_id == ids[0]
    # the worker predicts every example still to label, storing each under the run id
    assert wait_for(
        lambda: review.predicted_ids(project, run_id) == set(ids) and not mode.assist.predictor.busy,
        timeout_s=120,
    )
    assert wait_for(lambda: mode.chosen is not None)
    first = review.prediction(project, run_id, ids[0])
    assert abs(sum(first.scores.values()) - 1) < 1e-6 and set(first.scores) == set(LABELS)
    assert mode.chosen == first.label and mode._buttons[first.label].isChecked()
    assert (
        f"{first.probability:.0%} sure" in mode.assist.line.text()
        and "pre-selected" in mode.assist.line.text()
    )

    qtbot.keyClick(page, Qt.Key.Key_Return)  # the expert confirms
    row = project.execute(
        "SELECT label, status FROM annotations WHERE example_id = ? AND annotator = 'tester'", (ids[0],)
    ).fetchone()
    assert (row["label"], row["status"]) == (first.label, "labelled")
    assert mode.current_id == ids[1]
    second = review.prediction(project, run_id, ids[1])
    assert mode.chosen == second.label  # shown pre-selected at once: stored, no waiting
    other = next(x for x in LABELS if x != second.label)
    qtbot.keyClick(page, str(LABELS.index(other) + 1))  # the expert picks another label
    assert project.get_example(ids[1]).label == other

    # least sure first: the run's order over what is still to label
    mode.load_queue("least_sure")
    rest = ids[2:]
    expected = sorted(rest, key=lambda i: (review.prediction(project, run_id, i).probability, i))
    assert mode.queue_ids == expected and mode.current_id == expected[0]
    assert mode.queue_combo.currentText().startswith("To label, least sure first  (3)")


def test_review_queue_confirms_or_corrects_with_a_name_and_undo(qtbot, project, assisted):
    page, lab, ids, run_id = assisted
    mode = page.mode
    for i in ids[:2]:
        lab.accept(i, "import", label="billing")
    review.send_to_review(
        project,
        [
            {"example_id": ids[0], "model": f"run:{run_id}", "answer": "technical", "confidence": 0.3},
            {"example_id": ids[1], "model": f"run:{run_id}", "answer": "account", "confidence": 0.8},
        ],
        sent_by="tester",
    )
    mode.load_queue("review")
    assert mode.queue_ids == [ids[0], ids[1]] and mode.current_id == ids[0]
    assert "answered <b>technical</b> (30% sure)" in mode.meta.text()
    assert mode.chosen == "billing"  # the label it has, for the expert to confirm
    qtbot.keyClick(page, Qt.Key.Key_Return)  # confirmed
    assert lab.annotation(ids[0], "tester").label == "billing"
    assert mode.current_id == ids[1]
    qtbot.keyClick(page, "3")  # corrected: account
    assert project.get_example(ids[1]).label == "account"
    assert lab.annotation(ids[1], "tester").label == "account"
    assert review.review_queue(project) == []
    qtbot.keyClick(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the correction
    assert project.get_example(ids[1]).label == "billing"
    assert review.review_queue(project) == [ids[1]]
