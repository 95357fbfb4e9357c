"""Prompting baselines: the base model asked zero-shot (the project's own system
prompt) or few-shot (k training examples put in front as earlier turns).

The k examples are drawn with a seed from the training split, balanced across
the labels where the answers are labels: the labels take turns (in a seeded
order), each giving its next randomly chosen example, so 5 shots over 5
labels show each label once. Only single-turn examples (one user turn, one
answer) serve as shots; their system prompt is left out (the prompt being
answered keeps its own).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftstudio.core.project import Project

Message = dict[str, Any]
DEFAULT_SHOTS = 5


@dataclass(frozen=True)
class Shot:
    example_id: int | None
    user: str
    answer: str


def _single_turn(conversation: Sequence[Message]) -> tuple[str, str] | None:
    turns = [m for m in conversation if m.get("role") != "system"]
    if len(turns) != 2 or turns[0].get("role") != "user" or turns[1].get("role") != "assistant":
        return None
    user, answer = str(turns[0].get("content") or ""), str(turns[1].get("content") or "")
    return (user, answer) if user.strip() and answer.strip() else None


def choose_shots(
    train: Sequence[Sequence[Message]],
    k: int,
    seed: int = 0,
    example_ids: Sequence[int] | None = None,
    balance: bool = True,
) -> list[Shot]:
    """``k`` shots from ``train`` (fewer if it has fewer single-turn examples), in the order they are shown."""
    if k <= 0:
        return []
    rng = random.Random(seed)
    pool: list[Shot] = []
    for i, conv in enumerate(train):
        pair = _single_turn(conv)
        if pair is not None:
            pool.append(Shot(example_ids[i] if example_ids is not None else None, *pair))
    if not balance:
        return rng.sample(pool, min(k, len(pool)))
    by_label: dict[str, list[Shot]] = {}
    for shot in pool:
        by_label.setdefault(shot.answer.strip().casefold(), []).append(shot)
    labels = sorted(by_label)
    rng.shuffle(labels)
    for label in labels:
        rng.shuffle(by_label[label])
    out: list[Shot] = []
    while len(out) < k and any(by_label.values()):
        for label in labels:
            if by_label[label] and len(out) < k:
                out.append(by_label[label].pop())
    return out


def with_shots(conversation: Sequence[Message], shots: Sequence[Shot]) -> list[Message]:
    """``conversation`` with the shots as earlier turns, after its system prompt and before its own turns."""
    conversation = list(conversation)
    head = [m for m in conversation[:1] if m.get("role") == "system"]
    earlier: list[Message] = []
    for shot in shots:
        earlier += [{"role": "user", "content": shot.user}, {"role": "assistant", "content": shot.answer}]
    return head + earlier + conversation[len(head) :]


def label_set_for(project: Project, references: Sequence[str]) -> list[str] | None:
    """The Label page's label set when the held-out answers are its labels, else None (the data decides)."""
    from ftstudio.core.labelling import Labelling

    def norm(text: str) -> str:
        return " ".join(text.split()).casefold().strip(" .")

    schema = Labelling(project).schema()
    names = [d.name for d in schema.labels]
    if schema.uses_labels and names and {norm(r) for r in references} <= {norm(n) for n in names}:
        return names
    return None
