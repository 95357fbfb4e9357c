"""Agreement between annotators: Cohen's kappa per pair, its words, and where they differ.

Pure statistics over ``{example_id: {annotator: value}}``: ``core/labelling.py``
gathers the values from the project's annotations, the Agreement tab shows
the report.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AgreementReport",
    "PairAgreement",
    "agreement_of",
    "cohen_kappa",
    "kappa_words",
    "normalise_answer",
]


def cohen_kappa(pairs: list[tuple[Any, Any]]) -> float | None:
    """Cohen's kappa of two annotators' choices on the same items; None where it is not defined."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    count_a = Counter(a for a, _ in pairs)
    count_b = Counter(b for _, b in pairs)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def kappa_words(kappa: float | None) -> str:
    """Landis and Koch's words for a kappa."""
    if kappa is None:
        return "not defined"
    for limit, words in (
        (0.0, "poor"),
        (0.20, "slight"),
        (0.40, "fair"),
        (0.60, "moderate"),
        (0.80, "substantial"),
    ):
        if kappa <= limit:
            return words
    return "almost perfect"


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    n: int  # examples both labelled
    agreed: int
    kappa: float | None

    @property
    def observed(self) -> float | None:
        return self.agreed / self.n if self.n else None


@dataclass
class AgreementReport:
    field: str  # "label" or "answer"
    annotators: list[str]
    pairs: list[PairAgreement]
    # label -> {"both": n, "either": n, "agreement": 2·both / (chosen by A + chosen by B) or None}
    per_label: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    disagreements: int = 0
    examples_compared: int = 0  # examples labelled by two or more annotators

    @property
    def kappa(self) -> float | None:
        """The pairs' kappas averaged, each weighted by the examples the pair shares."""
        usable = [(p.kappa, p.n) for p in self.pairs if p.kappa is not None and p.n]
        if not usable:
            return None
        return sum(kappa * n for kappa, n in usable) / sum(n for _, n in usable)

    @property
    def observed(self) -> float | None:
        n = sum(p.n for p in self.pairs)
        return sum(p.agreed for p in self.pairs) / n if n else None


def normalise_answer(text: str | None) -> str:
    """Free-text answers agree when they differ only in spacing and case."""
    return " ".join((text or "").split()).casefold()


def agreement_of(values: dict[int, dict[str, Any]], field_name: str = "label") -> AgreementReport:
    """Agreement over ``{example_id: {annotator: value}}`` (values compared with ==)."""
    annotators = sorted({a for per in values.values() for a in per})
    pairs: list[PairAgreement] = []
    chosen: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # label -> [both chose it, sum of choices]
    for a, b in itertools.combinations(annotators, 2):
        shared = [(per[a], per[b]) for per in values.values() if a in per and b in per]
        agreed = sum(1 for x, y in shared if x == y)
        kappa = cohen_kappa(shared) if field_name == "label" else None
        pairs.append(PairAgreement(a, b, len(shared), agreed, kappa))
        if field_name == "label":
            for x, y in shared:
                chosen[x][1] += 1
                chosen[y][1] += 1
                if x == y:
                    chosen[x][0] += 1
    per_label = {
        label: {"both": both, "choices": total, "agreement": (2 * both / total) if total else None}
        for label, (both, total) in sorted(chosen.items(), key=lambda kv: str(kv[0]))
    }
    compared = sum(1 for per in values.values() if len(per) >= 2)
    disagreements = sum(1 for per in values.values() if len(set(per.values())) > 1)
    return AgreementReport(field_name, annotators, pairs, per_label, disagreements, compared)
