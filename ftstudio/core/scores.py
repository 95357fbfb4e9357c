"""What evaluations say: intervals, calibration, and prompting against fine-tuning.

- Exact match carries a 95% Wilson score interval (``ratings.wilson_interval``).
- The difference between two models measured on the same examples is a
  paired difference; its 95% interval is Newcombe's hybrid score interval for
  paired proportions (Newcombe 1998, method 10): the Wilson intervals of
  both shares, joined through the correlation (phi) of the paired outcomes.
- Calibration: each example's confidence is the probability its model gives
  its most likely label. The expected calibration error (ECE) splits the
  examples into ``bins`` equal-width confidence bins and sums, over bins,
  the share of examples in the bin times |accuracy - mean confidence| there.
  The reliability diagram plots those bins (mean confidence against
  accuracy); a calibrated model lies on the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftstudio.core.ratings import Z95, wilson_interval

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class PairedCounts:
    """Outcomes of models A and B on the same examples."""

    both: int  # both right
    only_a: int
    only_b: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither

    @property
    def difference(self) -> float:
        """Share A answers right minus share B answers right."""
        return (self.only_a - self.only_b) / self.n if self.n else 0.0


def paired_counts(a_correct: Mapping[Any, bool], b_correct: Mapping[Any, bool]) -> PairedCounts:
    """Counts over the examples both were measured on (keys: example ids)."""
    common = [k for k in a_correct if k in b_correct]
    both = sum(1 for k in common if a_correct[k] and b_correct[k])
    only_a = sum(1 for k in common if a_correct[k] and not b_correct[k])
    only_b = sum(1 for k in common if not a_correct[k] and b_correct[k])
    return PairedCounts(both, only_a, only_b, len(common) - both - only_a - only_b)


def paired_difference_interval(counts: PairedCounts, z: float = Z95) -> tuple[float, float]:
    """95% interval of ``counts.difference`` (Newcombe's method 10); (-1, 1) without data."""
    n = counts.n
    if n == 0:
        return (-1.0, 1.0)
    a, b, c, d = counts.both, counts.only_a, counts.only_b, counts.neither
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom else 0.0
    diff = p1 - p2
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    epsilon = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, diff - delta), min(1.0, diff + epsilon))


# -- calibration ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float | None  # mean confidence of its examples
    accuracy: float | None  # share of them whose most likely label is right


@dataclass(frozen=True)
class Calibration:
    examples: int
    accuracy: float | None  # share whose most likely label is the reference
    ece: float | None
    bins: list[ReliabilityBin]

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "accuracy": self.accuracy,
            "ece": self.ece,
            "bins": [b.__dict__ for b in self.bins],
        }


def calibration(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = CALIBRATION_BINS
) -> Calibration:
    """Argmax accuracy, expected calibration error and reliability bins.

    Bin k of ``bins`` holds confidences in (k/bins, (k+1)/bins], the first one
    also 0 (a confidence exactly on an edge goes to the lower bin).
    """
    if len(confidences) != len(correct):
        raise ValueError("one confidence per outcome")
    n = len(confidences)
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, p in enumerate(confidences):
        # Rounded first: 0.3 * 10 is 3.0000000000000004 and belongs to the bin ending at 0.3.
        k = min(bins - 1, max(0, math.ceil(round(p * bins, 9)) - 1))
        members[k].append(i)
    out: list[ReliabilityBin] = []
    ece = 0.0
    for k, idx in enumerate(members):
        if idx:
            conf = sum(confidences[i] for i in idx) / len(idx)
            acc = sum(1 for i in idx if correct[i]) / len(idx)
            ece += len(idx) / n * abs(acc - conf)
            out.append(ReliabilityBin(k / bins, (k + 1) / bins, len(idx), conf, acc))
        else:
            out.append(ReliabilityBin(k / bins, (k + 1) / bins, 0, None, None))
    return Calibration(n, sum(bool(c) for c in correct) / n if n else None, ece if n else None, out)


# -- prompting against fine-tuning ------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """The best adapter against the best prompt, measured on the same examples."""

    adapter: str
    prompt: str
    adapter_share: float
    prompt_share: float
    counts: PairedCounts
    interval: tuple[float, float]

    @property
    def difference(self) -> float:
        return self.counts.difference


def _points(x: float) -> str:
    return f"{x * 100:.0f}"


def best_of(rows: Iterable[tuple[str, float | None]]) -> tuple[str, float] | None:
    scored = [(k, v) for k, v in rows if v is not None]
    return max(scored, key=lambda kv: kv[1]) if scored else None


def compare_prompt_and_adapter(
    outcomes: Mapping[str, Mapping[Any, bool]], is_adapter: Mapping[str, bool]
) -> Finding | None:
    """The best adapter and the best prompt (by exact match) and their paired difference.

    ``outcomes[model][example_id]`` says whether that model answered right.
    None unless there is at least one of each.
    """

    def share(model: str) -> float | None:
        seen = outcomes[model]
        return sum(bool(v) for v in seen.values()) / len(seen) if seen else None

    adapter = best_of((m, share(m)) for m in outcomes if is_adapter.get(m))
    prompt = best_of((m, share(m)) for m in outcomes if not is_adapter.get(m))
    if adapter is None or prompt is None:
        return None
    counts = paired_counts(outcomes[adapter[0]], outcomes[prompt[0]])
    return Finding(adapter[0], prompt[0], adapter[1], prompt[1], counts, paired_difference_interval(counts))


def finding_sentence(finding: Finding | None, same_examples: bool = True) -> str:
    """One sentence for the top of the results."""
    if finding is None:
        return (
            "Evaluate the base model (zero-shot and few-shot) and at least one adapter to see whether "
            "fine-tuning is worth it here."
        )
    d = finding.difference
    low, high = finding.interval
    verb = "adds" if d >= 0 else "loses"
    if d < 0:  # the interval of what it loses
        low, high = -high, -low
    span = f"{_points(low)}–{_points(high)}" if low >= 0 else f"{_points(low)} to {_points(high)}"
    text = (
        f"The best adapter answers {_points(finding.adapter_share)}% correctly, the best prompt "
        f"{_points(finding.prompt_share)}%: fine-tuning {verb} {_points(abs(d))} points "
        f"(95% interval {span})"
    )
    if low <= 0 <= high:
        text += "; on these examples that is not a clear difference"
    if not same_examples:
        text += f" (paired over the {finding.counts.n} examples both were measured on)"
    return text + "."


# -- the results of a project's evaluations, as the CLI and the GUI show them ----------


@dataclass(frozen=True)
class ModelRow:
    """One evaluated model: a prompt of the base model or an adapter."""

    key: str  # the evaluation key (ratings.StoredEvaluation.key)
    name: str
    is_adapter: bool
    examples: int
    loss: float | None
    exact_match: float | None
    interval: tuple[float, float] | None
    per_label: dict[str, float]  # label -> share answered exactly
    label_accuracy: float | None  # argmax of the label scores
    ece: float | None
    created_at: str
    results: dict[str, Any]

    @property
    def outcomes(self) -> dict[Any, bool]:
        return {
            p["example_id"]: bool(p.get("correct"))
            for p in self.results.get("predictions") or []
            if "example_id" in p
        }


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def model_rows(stored: Iterable[Any], newest_only: bool = True) -> list[ModelRow]:
    """A row per model of the ``ratings.StoredEvaluation``s given (newest first: the newest of each model
    wins; every one with ``newest_only`` False), prompts before adapters."""
    from ftstudio.core.ratings import evaluation_label, is_adapter_key

    rows: dict[Any, ModelRow] = {}
    for ev in stored:
        slot = ev.key if newest_only else ev.id
        if slot in rows:
            continue
        r = ev.results
        em = _float(r.get("exact_match"))
        interval = r.get("exact_match_interval")
        if em is not None and not interval:
            n_pred = len(r.get("predictions") or [])
            interval = wilson_interval(round(em * n_pred), n_pred) if n_pred else None
        per_label = {}
        for label, v in (r.get("per_label") or {}).items():
            if isinstance(v, dict):
                acc = _float(v.get("accuracy"))
                if acc is None and v.get("n"):
                    acc = _float(v.get("correct", 0) / v["n"])
            else:
                acc = _float(v)
            if acc is not None:
                per_label[str(label)] = acc
        cal = r.get("calibration") or {}
        rows[slot] = ModelRow(
            ev.key,
            evaluation_label(ev.key),
            is_adapter_key(ev.key),
            int(r.get("examples") or 0),
            _float(r.get("loss")),
            em,
            tuple(interval) if interval else None,
            per_label,
            _float(cal.get("accuracy")),
            _float(cal.get("ece")),
            ev.created_at,
            r,
        )
    return sorted(rows.values(), key=lambda row: (row.is_adapter, row.name, row.created_at))


def headline(rows: Sequence[ModelRow]) -> str:
    """The sentence at the top: the best adapter against the best prompt, paired over the same examples."""
    outcomes = {row.key: row.outcomes for row in rows if row.exact_match is not None and row.outcomes}
    finding = compare_prompt_and_adapter(outcomes, {row.key: row.is_adapter for row in rows})
    if finding is None:
        return finding_sentence(None)
    same = set(outcomes[finding.adapter]) == set(outcomes[finding.prompt])
    return finding_sentence(finding, same_examples=same)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.0f}%"


def results_text(rows: Sequence[ModelRow]) -> str:
    """The results as plain text: the sentence, then a row per model (as ``ftstudio evaluate`` prints them)."""
    labels = sorted({label for row in rows for label in row.per_label})
    head = ["Model", "Examples", "Exact match", "95% interval", *labels, "Label acc.", "ECE"]
    table = [head]
    for row in rows:
        interval = f"{_pct(row.interval[0])}–{_pct(row.interval[1])}" if row.interval else "—"
        table.append(
            [
                row.name,
                str(row.examples),
                _pct(row.exact_match),
                interval,
                *[_pct(row.per_label.get(label)) for label in labels],
                _pct(row.label_accuracy),
                "—" if row.ece is None else f"{row.ece:.3f}",
            ]
        )
    widths = [max(len(r[c]) for r in table) for c in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths)))
        for r in table
    ]
    return "\n".join([headline(rows), "", *lines])
