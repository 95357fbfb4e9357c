"""From the model's mistakes back to the experts.

- ``review_requests``: examples sent from an evaluation's mistakes to the Label
  page's queue "Review: the model disagrees", with what the model answered.
  An example leaves the queue when someone labels it after it was sent (a
  label newer than its newest then; an undo of that label puts it back);
  sending it again asks again.
- ``model_predictions``: a run's predicted label per example, with its
  probability and the scores of every label, stored under the run id so a
  later run's predictions never mix with an earlier one's. The Label page
  pre-selects the prediction and offers the queue "least sure first".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ftstudio.core.project import Project, now

REVIEW = "review"
LEAST_SURE = "least_sure"


@dataclass(frozen=True)
class ReviewRequest:
    example_id: int
    model: str
    answer: str | None
    confidence: float | None
    sent_by: str
    created_at: str


@dataclass(frozen=True)
class Prediction:
    run_id: str
    example_id: int
    label: str
    probability: float
    scores: dict[str, float]


def send_to_review(project: Project, items: Iterable[dict[str, Any]], sent_by: str) -> int:
    """Put examples in the review queue; ``items``: dicts with example_id, model, answer, confidence.

    Returns how many were sent (an example already waiting is asked again, with the newer answer).
    """
    stamp = now()
    rows = [
        (
            int(i["example_id"]),
            str(i.get("model") or ""),
            i.get("answer"),
            i.get("confidence"),
            sent_by,
            stamp,
            int(i["example_id"]),
        )
        for i in items
    ]
    with project.transaction() as c:
        c.executemany(
            "INSERT INTO review_requests (example_id, model, answer, confidence, sent_by, created_at, "
            "seen_updated_at) VALUES (?, ?, ?, ?, ?, ?, (SELECT MAX(updated_at) FROM annotations WHERE "
            "example_id = ? AND status = 'labelled')) ON CONFLICT (example_id) DO UPDATE SET "
            "model = excluded.model, answer = excluded.answer, confidence = excluded.confidence, "
            "sent_by = excluded.sent_by, created_at = excluded.created_at, "
            "seen_updated_at = excluded.seen_updated_at",
            rows,
        )
    return len(rows)


# Waiting: not deleted, and no label newer than the newest it had when it was sent (timestamps are to the
# millisecond: "newer than that label" holds where "after the sending" could tie).
_WAITING = (
    "SELECT r.example_id FROM review_requests r JOIN examples e ON e.id = r.example_id WHERE e.deleted = 0 "
    "AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.example_id = r.example_id AND a.status = 'labelled' "
    "AND (r.seen_updated_at IS NULL OR a.updated_at > r.seen_updated_at))"
)


def review_queue(project: Project) -> list[int]:
    """Examples waiting for review, the model's least sure answers first, then by when they were sent."""
    return [
        r[0]
        for r in project.execute(
            _WAITING.replace("SELECT r.example_id", "SELECT r.example_id, r.confidence, r.created_at", 1)
            + " ORDER BY r.confidence IS NULL, r.confidence, r.created_at, r.example_id"
        )
    ]


def in_review_queue(project: Project, example_id: int) -> bool:
    return project.execute(_WAITING + " AND r.example_id = ?", (example_id,)).fetchone() is not None


def review_request(project: Project, example_id: int) -> ReviewRequest | None:
    row = project.execute("SELECT * FROM review_requests WHERE example_id = ?", (example_id,)).fetchone()
    if row is None:
        return None
    return ReviewRequest(
        row["example_id"], row["model"], row["answer"], row["confidence"], row["sent_by"], row["created_at"]
    )


# -- a run's predictions ---------------------------------------------------------------


def store_predictions(
    project: Project, run_id: str, predictions: Sequence[tuple[int, Sequence[str], Sequence[float]]]
) -> int:
    """Keep (example id, labels, probabilities) of run ``run_id``; a newer prediction of the run replaces one."""
    stamp = now()
    rows = []
    for example_id, labels, probs in predictions:
        top = max(range(len(labels)), key=lambda j: probs[j])
        rows.append(
            (
                run_id,
                int(example_id),
                labels[top],
                float(probs[top]),
                json.dumps(dict(zip(labels, map(float, probs)))),
                stamp,
            )
        )
    with project.transaction() as c:
        c.executemany(
            "INSERT INTO model_predictions (run_id, example_id, label, probability, scores, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, example_id) DO UPDATE SET label = excluded.label, "
            "probability = excluded.probability, scores = excluded.scores, created_at = excluded.created_at",
            rows,
        )
    return len(rows)


def prediction(project: Project, run_id: str, example_id: int) -> Prediction | None:
    row = project.execute(
        "SELECT * FROM model_predictions WHERE run_id = ? AND example_id = ?", (run_id, example_id)
    ).fetchone()
    if row is None:
        return None
    return Prediction(
        row["run_id"], row["example_id"], row["label"], row["probability"], json.loads(row["scores"])
    )


def predicted_ids(project: Project, run_id: str) -> set[int]:
    return {
        r[0] for r in project.execute("SELECT example_id FROM model_predictions WHERE run_id = ?", (run_id,))
    }


def least_sure_first(project: Project, run_id: str, ids: Sequence[int]) -> list[int]:
    """``ids`` that run ``run_id`` has predicted, its least sure prediction first (unpredicted ones left out)."""
    sure = {
        r[0]: r[1]
        for r in project.execute(
            "SELECT example_id, probability FROM model_predictions WHERE run_id = ?", (run_id,)
        )
    }
    return sorted((i for i in ids if i in sure), key=lambda i: (sure[i], i))


def assisting_run(project: Project) -> str | None:
    """The run whose predictions assist labelling: the newest finished run with an adapter."""
    for run in sorted(project.runs(), key=lambda r: r.created_at, reverse=True):
        if (
            run.status == "finished"
            and (project.run_dir(run.id) / "adapter" / "adapter_config.json").is_file()
        ):
            return run.id
    return None
