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
    exact_match_interval: list[float] | None = None  # 95% Wilson interval
    few_shot: int = 0  # training examples put in the prompt (0: zero-shot, the project's own prompt)
    shot_ids: list[int | None] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # the label set scored, when there is one
    calibration: dict[str, Any] | None = None  # scores.Calibration.to_dict(): argmax accuracy, ECE, bins

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PromptTooLong(ValueError):
    """A few-shot prompt that does not fit the context, in words."""


def check_prompt_length(generator: Any, conversations: Sequence[list[dict[str, Any]]], shots: Sequence[Any],
                        max_length: int, answer_tokens: int) -> None:
    """Raise ``PromptTooLong`` when the longest prompt with ``shots`` and its answer exceed ``max_length``."""
    from ftstudio.core.prompting import with_shots

    def longest(k: int) -> int:
        return max(len(generator.prompt_ids(with_shots(c, shots[:k]))) for c in conversations)

    need = longest(len(shots)) + answer_tokens
    if need <= max_length:
        return
    fits = max((k for k in range(len(shots)) if longest(k) + answer_tokens <= max_length), default=0)
    raise PromptTooLong(
        f"With {len(shots)} examples in the prompt the longest held-out prompt and its answer take {need} tokens, "
        f"more than the context of {max_length}: use fewer examples ({fits} fit) or a larger context.")


def _confusion(pairs: list[tuple[str, str]], labels: list[str]) -> dict[str, Any]:
    """Rows: reference labels; columns: the labels answered, plus "(other)" for anything else."""
    predicted = list(labels) + ([OTHER] if any(p not in labels for _r, p in pairs) else [])
    index = {p: j for j, p in enumerate(predicted)}
    matrix = [[0] * len(predicted) for _ in labels]
    row_of = {label: i for i, label in enumerate(labels)}
    for ref, pred in pairs:
        matrix[row_of[ref]][index.get(pred, index.get(OTHER, 0))] += 1
    return {"labels": labels, "predicted_labels": predicted, "matrix": matrix}


def answer_budget(tokenizer: Any, references: Sequence[str]) -> int:
    """New tokens a greedy answer may take: the longest reference's, and room for a full stop or end token,
    not for an essay."""
    longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references), default=8)
    return longest + 8


def evaluate(generator: Generator, conversations: Sequence[list[dict[str, Any]]], example_ids: Sequence[int] | None = None,
             model: str | None = None, max_length: int = 512, exact_match: bool | None = None,
             max_new_tokens: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             shots: Sequence[Any] = (), labels: Sequence[str] | None = None) -> EvalResult:
    """Evaluate ``model`` (an adapter name of ``generator``, None for the base) on held-out ``conversations``.

    ``exact_match`` None decides by the data (``is_short_answer_task``).
    ``shots`` (``prompting.Shot``) go in front of every prompt as earlier
    turns (the few-shot baseline); the loss then counts the final answer only.
    ``labels``: the label set to score (calibrated label probabilities, their
    argmax accuracy and calibration); None takes the distinct references of a
    short-answer task, [] scores nothing. ``progress(done, total)`` is called
    after each example's loss, score and answer; ``should_stop()`` is polled
    between examples (and between tokens).
    """
    from ftstudio.core.prompting import with_shots
    from ftstudio.core.ratings import wilson_interval
    from ftstudio.core.scores import calibration
    from ftstudio.engine.batch_generation import Request, generate_batch
    from ftstudio.engine.inference import SamplingSettings
    from ftstudio.engine.label_scores import score_labels

    originals = [list(c) for c in conversations]
    conversations = [with_shots(c, shots) for c in originals] if shots else originals
    ids = list(example_ids) if example_ids is not None else list(range(len(conversations)))
    if exact_match is None:
        exact_match = is_short_answer_task(originals)
    references = [reference_answer(c) or "" for c in originals]
    if max_new_tokens is None:
        max_new_tokens = answer_budget(generator.tokenizer, references)
    if shots:
        check_prompt_length(generator, originals, shots, max_length, max_new_tokens)
    if labels is None:
        labels = _label_set(references) if exact_match else []
    labels = list(labels)
    n_all = len(conversations)
    passes = 1 + (1 if exact_match else 0) + (1 if labels else 0)
    work = passes * n_all  # the loss pass, the label scores, then the answers
    done = [0]

    def tick(*_args: Any) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], work)

    sums = []
    for conv in conversations:
        if should_stop is not None and should_stop():
            break
        sums.extend(generator.loss_sums([conv], model=model, max_length=max_length, final_answer_only=bool(shots)))
        tick()
    total = sum(s for s, _n in sums)
    tokens = sum(n for _s, n in sums)
    loss = total / tokens if tokens else None
    result = EvalResult(model=model, examples=len(conversations), loss=loss,
                        perplexity=math.exp(min(loss, 50.0)) if loss is not None else None, tokens=tokens,
                        few_shot=len(shots), shot_ids=[getattr(s, "example_id", None) for s in shots])
    if should_stop is not None and should_stop():
        return result

    scores: list[list[float] | None] = [None] * n_all
    if labels:
        result.labels = labels
        scores = score_labels(generator, conversations, labels, model=model, on_scored=tick,
                              should_stop=should_stop)
        if should_stop is not None and should_stop():
            return result
        label_n = [normalise_answer(x) for x in labels]
        confidences, right = [], []
        for ref, row in zip(references, scores):
            if row is None:
                continue
            top = max(range(len(labels)), key=row.__getitem__)
            confidences.append(row[top])
            right.append(label_n[top] == normalise_answer(ref))
        result.calibration = calibration(confidences, right).to_dict()
    if not exact_match:
        return result

    settings = SamplingSettings(temperature=0.0, max_new_tokens=max_new_tokens)
    label_keys = sorted({normalise_answer(r) for r in references})
    display: dict[str, str] = {}
    for r in references:
        display.setdefault(normalise_answer(r), r.strip())
    pairs: list[tuple[str, str]] = []
    correct_by_label: Counter = Counter()
    count_by_label: Counter = Counter()
    answers = generate_batch(
        generator,[Request(conv, model) for conv in conversations], settings,
                                       on_answer=tick, should_stop=should_stop)
    for k, (ref, answer) in enumerate(zip(references, answers)):
        if answer is None:  # stopped before it was answered
            continue
        ref_n, ans_n = normalise_answer(ref), normalise_answer(answer)
        ok = ref_n == ans_n
        pairs.append((ref_n, ans_n))
        count_by_label[ref_n] += 1
        correct_by_label[ref_n] += int(ok)
        prediction: dict[str, Any] = {"example_id": ids[k], "reference": ref, "answer": answer, "correct": ok}
        probs = scores[k]
        if probs is not None:
            prediction["scores"] = dict(zip(labels, probs))
            top = max(range(len(labels)), key=lambda j: probs[j])
            prediction["scored_label"] = labels[top]
            prediction["confidence"] = probs[top]
            # How sure the model is of what it answered (0 for an answer outside the label set).
            prediction["answer_probability"] = next(
                (p for x, p in zip(labels, probs) if normalise_answer(x) == ans_n), 0.0)
        result.predictions.append(prediction)
    n = len(pairs)
    right_n = sum(correct_by_label.values())
    result.exact_match = right_n / n if n else None
    result.exact_match_interval = list(wilson_interval(right_n, n)) if n else None
    result.per_label = {
        display[label]: {"n": count_by_label[label], "correct": correct_by_label[label],
                         "accuracy": correct_by_label[label] / count_by_label[label]}
        for label in label_keys if count_by_label[label]
    }
    confusion = _confusion(pairs, label_keys)
    confusion["labels"] = [display[x] for x in confusion["labels"]]
    confusion["predicted_labels"] = [display.get(x, x) for x in confusion["predicted_labels"]]
    result.confusion = confusion
    return result


def _label_set(references: Sequence[str]) -> list[str]:
    """The distinct references, each as first written, in sorted order."""
    display: dict[str, str] = {}
    for r in references:
        display.setdefault(normalise_answer(r), r.strip())
    return [display[k] for k in sorted(display)]
