"""The Held-out evaluation results with prompting baselines beside the adapters:
a row per model (exact match, its interval, per label, label accuracy, ECE), the
sentence at the top counted by hand, the reliability diagram, and the mistakes
table (surest first) that opens an example on the Data page and sends the chosen
ones to the Label page's review queue. The stored evaluations are written here as
the engine writes them; the engine's numbers are tested in tests/engine."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from ftstudio.core import ratings, review
from ftstudio.core.examples import NewExample
from ftstudio.core.scores import calibration
from ftstudio.gui.compare.evaluate_tab import EvaluationsView

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

LABELS = ["billing", "shipping"]


def _results(ids, right, confidences, few_shot=0) -> dict:
    preds = []
    for i, ok, conf in zip(ids, right, confidences):
        ref = LABELS[i % 2]
        answer = ref if ok else LABELS[(i + 1) % 2]
        preds.append(
            {
                "example_id": i,
                "reference": ref,
                "answer": answer,
                "correct": ok,
                "confidence": conf,
                "scores": {answer: conf, ref if not ok else LABELS[(i + 1) % 2]: 1 - conf},
            }
        )
    n = len(ids)
    em = sum(right) / n
    return {
        "examples": n,
        "loss": 1.0,
        "perplexity": 2.7,
        "tokens": n,
        "exact_match": em,
        "exact_match_interval": list(ratings.wilson_interval(sum(right), n)),
        "per_label": {
            lab: {
                "n": sum(1 for i in ids if LABELS[i % 2] == lab),
                "correct": sum(1 for i, ok in zip(ids, right) if ok and LABELS[i % 2] == lab),
            }
            for lab in LABELS
        },
        "predictions": preds,
        "few_shot": few_shot,
        "labels": LABELS,
        "calibration": calibration(confidences, right).to_dict(),
    }


@pytest.fixture
def stored(project):
    ids = project.add_examples(
        [
            NewExample(
                messages=[
                    {"role": "user", "content": f"ticket number {k}"},
                    {"role": "assistant", "content": LABELS[k % 2]},
                ],
                label=LABELS[k % 2],
                split="eval",
            )
            for k in range(10)
        ],
        actor="t",
    )
    base = ratings.base_key("bundled:SmolLM2-135M-Instruct")
    # by hand: zero-shot right on 4 (ids 0-3), few-shot on 6 (0-5), the adapter on 9 (all but id 5)
    ratings.store_evaluation(project, None, base, _results(ids, [k < 4 for k in range(10)], [0.6] * 10))
    ratings.store_evaluation(project, None, base, _results(ids, [k < 6 for k in range(10)], [0.7] * 10, 3))
    ratings.store_evaluation(
        project,
        "r1",
        ratings.run_key("r1"),
        _results(ids, [k != 5 for k in range(10)], [0.95] * 5 + [0.99] + [0.9] * 4),
    )
    return ids


def test_every_model_is_a_row_and_the_sentence_counts_by_hand(qtbot, project, stored):
    view = EvaluationsView(project, latest_only=True)
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    names = [view.summary.item(r, 0).text() for r in range(view.summary.rowCount())]
    assert names == [
        "Base (SmolLM2-135M-Instruct), 3-shot prompt",
        "Base (SmolLM2-135M-Instruct), zero-shot",
        "Run r1",
    ]
    header = [view.summary.horizontalHeaderItem(c).text() for c in range(view.summary.columnCount())]
    assert header[3:8] == ["Exact match", "95% interval", "billing", "shipping", "Label accuracy"]
    assert view.summary.item(2, 3).text() == "90.0%"
    low, high = ratings.wilson_interval(9, 10)
    assert view.summary.item(2, 4).text() == f"{low:.0%}–{high:.0%}"
    # paired over the 10 examples: both right 5 (0-4), only the adapter 4 (6-9), only the prompt 1 (5)
    sentence = view.headline.text()
    assert sentence.startswith(
        "The best adapter answers 90% correctly, the best prompt 60%: fine-tuning adds "
        "30 points (95% interval "
    )
    assert set(view.reliability.curves) == {row.key for row in view.rows}


def test_mistakes_open_the_example_and_go_to_review(qtbot, project, stored, context):
    from ftstudio.gui.compare.evaluate_tab import EvaluateTab

    tab = EvaluateTab(context)
    qtbot.addWidget(tab)
    tab.resize(1200, 900)
    tab.show()
    table = tab.view.mistakes.table
    mistakes = tab.view.mistakes.mistakes
    assert len(mistakes) == 6 + 4 + 1
    assert mistakes[0]["example_id"] == stored[5] and mistakes[0]["model"] == ratings.run_key(
        "r1"
    )  # 99% sure
    assert table.item(0, 3).text() == "99%" and table.item(0, 4).text() == "Run r1"
    assert table.item(0, 0).text() == "ticket number 5"
    with qtbot.waitSignal(context.open_example) as opened:
        table.cellDoubleClicked.emit(0, 1)
    assert opened.args == [stored[5]]

    # Through the selection model: QTableWidget.selectRow reads the keyboard modifiers, which an
    # earlier test's Ctrl key clicks can leave set in the same process (it would toggle the row).
    table.selectionModel().select(
        table.model().index(0, 0),
        table.selectionModel().SelectionFlag.ClearAndSelect | table.selectionModel().SelectionFlag.Rows,
    )
    table.selectionModel().select(
        table.model().index(1, 0),
        table.selectionModel().SelectionFlag.Select | table.selectionModel().SelectionFlag.Rows,
    )
    chosen = {m["example_id"] for m in tab.view.mistakes.selected()}
    with qtbot.waitSignal(context.review_changed):
        qtbot.mouseClick(tab.view.mistakes.review_button, Qt.MouseButton.LeftButton)
    assert set(review.review_queue(project)) == chosen
    req = review.review_request(project, stored[5])
    assert req.sent_by == "tester" and req.model == ratings.run_key("r1") and req.confidence == 0.99
