"""The review queue fed by an evaluation's mistakes, and a run's stored
predictions ordering the "least sure first" queue: checked in the database."""

from __future__ import annotations

from ftstudio.core import review
from ftstudio.core.examples import NewExample
from ftstudio.core.labelling import Labelling


def _tickets(project, n: int, labelled: bool) -> list[int]:
    examples = [
        NewExample(
            messages=[{"role": "user", "content": f"ticket {i}"}, {"role": "assistant", "content": "billing"}]
            if labelled
            else [{"role": "user", "content": f"ticket {i}"}],
            label="billing" if labelled else None,
            status="labelled" if labelled else "unlabelled",
        )
        for i in range(n)
    ]
    return project.add_examples(examples, actor="import")


def _finished_run(project, created_at: str) -> str:
    run_id = project.create_run({"model": "m", "method": "lora"}, created_at=created_at)
    project.update_run(run_id, status="finished")
    adapter = project.run_dir(run_id) / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    return run_id


def test_mistakes_sent_to_review_wait_until_someone_labels_them(project):
    lab = Labelling(project)
    lab.set_kind("classification")
    for name in ("billing", "shipping"):
        lab.add_label(name, "lead")
    ids = _tickets(project, 4, labelled=True)
    sent = review.send_to_review(
        project,
        [
            {"example_id": ids[1], "model": "run:r1", "answer": "shipping", "confidence": 0.9},
            {"example_id": ids[2], "model": "run:r1", "answer": "shipping", "confidence": 0.4},
        ],
        sent_by="ana",
    )
    assert sent == 2
    # least sure of its answer first
    assert lab.queue("review", "bo") == [ids[2], ids[1]]
    assert review.review_request(project, ids[1]).answer == "shipping"
    assert review.review_request(project, ids[1]).sent_by == "ana"
    # the expert corrects one: it leaves the queue, with their name on the label
    lab.accept(ids[2], "bo", label="shipping")
    assert lab.queue("review", "bo") == [ids[1]] and not lab.in_queue("review", ids[2], "bo")
    assert project.get_example(ids[2]).label == "shipping"
    assert lab.annotation(ids[2], "bo").label == "shipping"
    # undone: back in the queue
    lab.undo("bo")
    assert lab.queue("review", "bo") == [ids[2], ids[1]]
    assert lab.queue_sizes("bo")["review"] == 2


def test_predictions_are_kept_per_run_and_order_least_sure_first(project):
    lab = Labelling(project)
    lab.set_kind("classification")
    lab.add_label("billing", "lead")
    ids = _tickets(project, 4, labelled=False)
    assert lab.queue("least_sure", "ana") == []  # no run yet
    first = _finished_run(project, "2026-01-01T10:00:00")
    labels = ["billing", "shipping"]
    review.store_predictions(
        project,
        first,
        [(ids[0], labels, [0.9, 0.1]), (ids[1], labels, [0.45, 0.55]), (ids[2], labels, [0.3, 0.7])],
    )
    assert lab.queue("least_sure", "ana") == [ids[1], ids[2], ids[0]]  # 0.55, 0.7, 0.9; ids[3] not predicted
    p = review.prediction(project, first, ids[1])
    assert p.label == "shipping" and p.probability == 0.55 and p.scores == {"billing": 0.45, "shipping": 0.55}

    # a later run: its own predictions, none of the earlier run's
    later = _finished_run(project, "2026-01-02T10:00:00")
    assert review.assisting_run(project) == later
    assert lab.queue("least_sure", "ana") == []
    review.store_predictions(project, later, [(ids[3], labels, [0.6, 0.4])])
    assert lab.queue("least_sure", "ana") == [ids[3]]
    assert review.prediction(project, later, ids[1]) is None
    assert review.prediction(project, first, ids[1]).probability == 0.55
    # labelled: no longer to label
    lab.accept(ids[3], "ana", label="billing")
    assert lab.queue("least_sure", "ana") == []
