"""Held-out evaluation of the base model or an adapter.

Always: the loss (mean over the answer tokens, as training counts it) and its
perplexity. For short-answer tasks (classification-like data, where each
answer is a word or a short phrase from a small set), also the exact-match
accuracy of greedy answers against the references, per label and overall,
with a confusion table.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from ftstudio.engine.inference import Generator

# Answers at most this many words long, from a set this small, make a short-answer task.
SHORT_ANSWER_WORDS = 6
SHORT_ANSWER_MAX_DISTINCT = 50
OTHER = "(other)"


def reference_answer(conversation: Sequence[dict[str, Any]]) -> str | None:
    """The last assistant turn: what the model is asked to say."""
    for message in reversed(conversation):
        if message.get("role") == "assistant":
            return str(message.get("content") or "")
    return None


def normalise_answer(text: str) -> str:
    """Case, surrounding space, quotes and a final full stop do not make an answer wrong."""
    text = unicodedata.normalize("NFKC", text).strip().casefold()
    text = re.sub(r"\s+", " ", text)
    return text.strip(" \"'`*").rstrip(".!").strip()


def is_short_answer_task(conversations: Sequence[Sequence[dict[str, Any]]]) -> bool:
    """True when every reference answer is a few words and they come from a small set (labels)."""
    answers = [a for a in (reference_answer(c) for c in conversations) if a is not None]
    if not answers:
        return False
    if any(len(a.split()) > SHORT_ANSWER_WORDS for a in answers):
        return False
    distinct = {normalise_answer(a) for a in answers}
    return len(distinct) <= min(SHORT_ANSWER_MAX_DISTINCT, max(2, len(answers) // 2))


@dataclass
class EvalResult:
    model: str | None  # adapter name, None for the base model
    examples: int
    loss: float | None
    perplexity: float | None
    tokens: int
    exact_match: float | None = None
    per_label: dict[str, dict[str, Any]] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _confusion(pairs: list[tuple[str, str]], labels: list[str]) -> dict[str, Any]:
    """Rows: reference labels; columns: the labels answered, plus "(other)" for anything else."""
    predicted = list(labels) + ([OTHER] if any(p not in labels for _r, p in pairs) else [])
    index = {p: j for j, p in enumerate(predicted)}
    matrix = [[0] * len(predicted) for _ in labels]
    row_of = {label: i for i, label in enumerate(labels)}
    for ref, pred in pairs:
        matrix[row_of[ref]][index.get(pred, index.get(OTHER, 0))] += 1
    return {"labels": labels, "predicted_labels": predicted, "matrix": matrix}


def evaluate(generator: Generator, conversations: Sequence[list[dict[str, Any]]], example_ids: Sequence[int] | None = None,
             model: str | None = None, max_length: int = 512, exact_match: bool | None = None,
             max_new_tokens: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> EvalResult:
    """Evaluate ``model`` (an adapter name of ``generator``, None for the base) on held-out ``conversations``.

    ``exact_match`` None decides by the data (``is_short_answer_task``).
    ``progress(done, total)`` is called after each example's loss and each
    answer; ``should_stop()`` is polled between examples.
    """
    from ftstudio.engine.inference import SamplingSettings

    conversations = [list(c) for c in conversations]
    ids = list(example_ids) if example_ids is not None else list(range(len(conversations)))
    if exact_match is None:
        exact_match = is_short_answer_task(conversations)
    n_all = len(conversations)
    work = 2 * n_all if exact_match else n_all  # the loss pass, then the answers
    sums = []
    for k, conv in enumerate(conversations):
        if should_stop is not None and should_stop():
            break
        sums.extend(generator.loss_sums([conv], model=model, max_length=max_length))
        if progress is not None:
            progress(k + 1, work)
    total = sum(s for s, _n in sums)
    tokens = sum(n for _s, n in sums)
    loss = total / tokens if tokens else None
    result = EvalResult(model=model, examples=len(conversations), loss=loss,
                        perplexity=math.exp(min(loss, 50.0)) if loss is not None else None, tokens=tokens)
    if not exact_match or (should_stop is not None and should_stop()):
        return result

    references = [reference_answer(c) or "" for c in conversations]
    if max_new_tokens is None:
        longest = max((len(generator.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references),
                      default=8)
        max_new_tokens = longest + 8  # room for a trailing full stop or end token, not for an essay
    settings = SamplingSettings(temperature=0.0, max_new_tokens=max_new_tokens)
    labels = sorted({normalise_answer(r) for r in references})
    display: dict[str, str] = {}
    for r in references:
        display.setdefault(normalise_answer(r), r.strip())
    pairs: list[tuple[str, str]] = []
    correct_by_label: Counter = Counter()
    count_by_label: Counter = Counter()
    for k, (conv, ref) in enumerate(zip(conversations, references)):
        if should_stop is not None and should_stop():
            break
        answer = generator.generate(conv, model=model, settings=settings)
        ref_n, ans_n = normalise_answer(ref), normalise_answer(answer)
        ok = ref_n == ans_n
        pairs.append((ref_n, ans_n))
        count_by_label[ref_n] += 1
        correct_by_label[ref_n] += int(ok)
        result.predictions.append({"example_id": ids[k], "reference": ref, "answer": answer, "correct": ok})
        if progress is not None:
            progress(n_all + k + 1, work)
    n = len(pairs)
    result.exact_match = sum(correct_by_label.values()) / n if n else None
    result.per_label = {
        display[label]: {"n": count_by_label[label], "correct": correct_by_label[label],
                         "accuracy": correct_by_label[label] / count_by_label[label]}
        for label in labels if count_by_label[label]
    }
    confusion = _confusion(pairs, labels)
    confusion["labels"] = [display[x] for x in confusion["labels"]]
    confusion["predicted_labels"] = [display.get(x, x) for x in confusion["predicted_labels"]]
    result.confusion = confusion
    return result
