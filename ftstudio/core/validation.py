"""Checks on a project's examples before training, reported in plain words.

Empty turns, exact and near duplicates, examples longer than the context,
the same prompt in training and evaluation (leakage), examples without an
answer, turns out of order, answers the model's chat template ends with no
end-of-turn token, and label counts per split.

Near-duplicates are found with MinHash over word shingles and banded
locality-sensitive hashing, so the check grows linearly with the number of
examples (a pairwise comparison would take hours at 100,000). Every candidate
pair is confirmed with the exact Jaccard similarity before it is reported.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from ftstudio.core.examples import Example, check_conversation

if TYPE_CHECKING:
    from ftstudio.core.project import Project

KINDS = ("no_end_of_turn", "empty_turn", "duplicate", "near_duplicate", "too_long", "leakage", "no_answer",
         "bad_roles")
KIND_TITLES = {
    "no_end_of_turn": "Answers with no end-of-turn token",
    "empty_turn": "Empty turns",
    "duplicate": "Exact duplicates",
    "near_duplicate": "Near-duplicates",
    "too_long": "Longer than the context size",
    "leakage": "Same prompt in training and evaluation",
    "no_answer": "No answer yet",
    "bad_roles": "Turns out of order",
}

NEAR_DUPLICATE_JACCARD = 0.85
SHINGLE_WORDS = 3
# 20 bands of 5 rows: pairs at Jaccard 0.85 become candidates with probability
# 1 - (1 - 0.85**5)**20 > 0.9999; pairs below about 0.5 rarely do.
LSH_BANDS = 20
LSH_ROWS = 5
IDS_IN_MESSAGE = 8

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class Finding:
    kind: str
    example_ids: tuple[int, ...]
    message: str


@dataclass(frozen=True)
class TokenCount:
    """What a token counter tells about one conversation: its length, and the
    assistant turns (indexes into the conversation) the chat template ends with
    no end-of-turn token."""

    tokens: int
    unended_turns: tuple[int, ...] = ()


@dataclass
class ValidationReport:
    findings: list[Finding]
    label_counts: dict[str | None, dict[str, int]]
    token_lengths: dict[int, int] = field(default_factory=dict)  # example id -> tokens; empty without a counter
    max_length: int | None = None
    example_count: int = 0
    split_counts: dict[str, int] = field(default_factory=lambda: {"train": 0, "eval": 0})

    def problem_ids(self) -> set[int]:
        return {i for f in self.findings for i in f.example_ids}

    def by_kind(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for f in self.findings:
            out.setdefault(f.kind, []).append(f)
        return out

    def summary(self) -> str:
        train, held = self.split_counts.get("train", 0), self.split_counts.get("eval", 0)
        lines = [f"Checked {_n(self.example_count, 'example')} ({train:,} for training, {held:,} held out "
                 "for evaluation)."]
        grouped = self.by_kind()
        if not grouped:
            lines.append("No problems found.")
        for kind in KINDS:
            found = grouped.get(kind)
            if not found:
                continue
            affected = len({i for f in found for i in f.example_ids})
            lines.append("")
            lines.append(f"{KIND_TITLES[kind]}: {_n(affected, 'example')}")
            for f in found[:5]:
                lines.append(f"  - {f.message}")
            if len(found) > 5:
                lines.append(f"  ... and {len(found) - 5:,} more like these")
        if self.label_counts:
            lines.append("")
            lines.append("Labels (training / held out):")
            for label, counts in sorted(self.label_counts.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
                name = "(no label)" if label is None else label
                lines.append(f"  {name}: {counts.get('train', 0):,} / {counts.get('eval', 0):,}")
            missing = [lb for lb, c in self.label_counts.items()
                       if lb is not None and c.get("eval", 0) == 0 and held]
            if missing:
                lines.append(f"  Held out has no example of {', '.join(sorted(missing))}: the evaluation cannot "
                             "tell how well the model does on these labels.")
        if self.token_lengths:
            lengths = list(self.token_lengths.values())
            lines.append("")
            lines.append(f"Tokens per example: longest {max(lengths):,}, average {sum(lengths) / len(lengths):,.0f}"
                         + (f", context size {self.max_length:,}" if self.max_length else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (labels as a list, since a label may be null)."""
        return {
            "example_count": self.example_count,
            "split_counts": dict(self.split_counts),
            "counts": {k: len(v) for k, v in self.by_kind().items()},
            "findings": [{"kind": f.kind, "example_ids": list(f.example_ids), "message": f.message}
                         for f in self.findings],
            "label_counts": [{"label": label, "train": c.get("train", 0), "eval": c.get("eval", 0)}
                             for label, c in self.label_counts.items()],
            "token_lengths": {str(k): v for k, v in self.token_lengths.items()},
            "max_length": self.max_length,
        }


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _id_list(ids: Iterable[int]) -> str:
    ids = sorted(ids)
    shown = [str(i) for i in ids[:IDS_IN_MESSAGE]]
    if len(ids) > IDS_IN_MESSAGE:
        return ", ".join(shown) + f" and {len(ids) - IDS_IN_MESSAGE:,} more"
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lower case, punctuation and runs of spaces folded to one space."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def _content(m: dict) -> str:
    c = m.get("content")
    return c if isinstance(c, str) else ""


def _prompt_key(ex: Example) -> str:
    return normalise("\n".join(_content(m) for m in ex.messages if m.get("role") == "user"))


# -- near duplicates --------------------------------------------------------------------

class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads bits so that nearby ids hash far apart."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _shingle_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes of every word-trigram of every text, start offset of each text's trigrams).

    Each text of n words gives n shingles (the last ones padded), so even a
    one-word text has one; all texts are hashed in a few vectorised passes."""
    pad = SHINGLE_WORDS - 1
    padding = [0] * pad
    ids: list[int] = []
    counts = np.zeros(len(texts), dtype=np.int64)
    for t, text in enumerate(texts):
        words = text.split()
        counts[t] = len(words)
        # str hashes are salted per process, which is fine: they are only compared within one run.
        ids.extend(map(hash, words))
        ids.extend(padding)
    flat = np.asarray(ids, dtype=np.int64).view(np.uint64)
    positions = np.arange(len(flat), dtype=np.int64)
    text_starts = np.concatenate([[0], np.cumsum(counts + pad)[:-1]]) if len(texts) else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(texts)), counts + pad)
    keep = positions - text_starts[owner] < counts[owner]
    with np.errstate(over="ignore"):
        h = np.zeros(int(keep.sum()), dtype=np.uint64)
        starts = positions[keep]
        for k in range(SHINGLE_WORDS):
            h = _mix64(h ^ flat[starts + k])
    shingle_starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(texts) else counts
    return h, shingle_starts


def _minhash(hashes: np.ndarray, starts: np.ndarray, n_perm: int, seed: int = 1234) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=n_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=n_perm, dtype=np.uint64)
    sig = np.empty((len(starts), n_perm), dtype=np.uint32)
    work = np.empty_like(hashes)
    shift = np.uint64(32)
    # Multiply-shift hashing ((a*x + b) mod 2**64, top 32 bits) is universal and
    # needs two passes per permutation; the inputs are already well mixed.
    with np.errstate(over="ignore"):
        for p in range(n_perm):
            np.multiply(hashes, a[p], out=work)
            np.add(work, b[p], out=work)
            np.right_shift(work, shift, out=work)
            sig[:, p] = np.minimum.reduceat(work, starts)
    return sig


def near_duplicate_groups(texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> list[list[int]]:
    """Groups (indexes into ``texts``) whose word-trigram Jaccard similarity is at
    least ``threshold``, linked together. Texts should be normalised and distinct;
    empty texts are ignored.

    LSH buckets can be large (templated data), so within a bucket each text is
    compared only with the one before it in order of length, not with every
    other member: the work stays linear. Similar texts have similar lengths,
    and with 20 bands a similar pair meets in many buckets, so links missed in
    one bucket are almost always made in another."""
    live = [i for i, t in enumerate(texts) if t]
    if len(live) < 2:
        return []
    hashes, starts = _shingle_hashes([texts[i] for i in live])
    sig = _minhash(hashes, starts, LSH_BANDS * LSH_ROWS)
    ends = np.append(starts[1:], len(hashes))
    sets: dict[int, frozenset[int]] = {}

    def shingles(j: int) -> frozenset[int]:
        s = sets.get(j)
        if s is None:
            s = sets[j] = frozenset(hashes[starts[j]:ends[j]].tolist())
        return s

    sizes = ends - starts
    uf = _UnionFind(len(live))
    with np.errstate(over="ignore"):
        for band in range(LSH_BANDS):
            cols = sig[:, band * LSH_ROWS:(band + 1) * LSH_ROWS].astype(np.uint64)
            key = np.zeros(len(live), dtype=np.uint64)
            for c in range(LSH_ROWS):
                key = _mix64(key ^ cols[:, c])
            order = np.lexsort((sizes, key))
            sorted_keys = key[order]
            same_as_prev = np.nonzero(sorted_keys[1:] == sorted_keys[:-1])[0] + 1
            for pos in same_as_prev.tolist():
                x, y = int(order[pos - 1]), int(order[pos])
                if uf.find(x) == uf.find(y):
                    continue
                sx, sy = shingles(x), shingles(y)
                if min(len(sx), len(sy)) < threshold * max(len(sx), len(sy)):
                    continue
                inter = len(sx & sy)
                if inter >= threshold * (len(sx) + len(sy) - inter):
                    uf.union(x, y)
    groups: dict[int, list[int]] = defaultdict(list)
    for j in range(len(live)):
        groups[uf.find(j)].append(live[j])
    return [g for g in groups.values() if len(g) > 1]


# -- the report -------------------------------------------------------------------------

TokenCounter = Callable[[list[dict]], int | TokenCount]


def validate_project(project: Project, count_tokens: TokenCounter | None = None,
                     max_length: int | None = None) -> ValidationReport:
    """Run every check over the project's live examples."""
    return validate_examples(project.examples(), count_tokens=count_tokens, max_length=max_length)


def validate_examples(examples: list[Example], count_tokens: TokenCounter | None = None,
                      max_length: int | None = None) -> ValidationReport:
    findings: list[Finding] = []
    label_counts: dict[str | None, dict[str, int]] = defaultdict(lambda: {"train": 0, "eval": 0})
    split_counts = {"train": 0, "eval": 0}
    token_lengths: dict[int, int] = {}
    no_answer: list[int] = []
    unended: list[int] = []

    for ex in examples:
        label_counts[ex.label][ex.split] = label_counts[ex.label].get(ex.split, 0) + 1
        split_counts[ex.split] = split_counts.get(ex.split, 0) + 1
        conversation = ex.conversation()
        wrong = check_conversation(conversation, require_answer=False)
        if wrong is not None:
            findings.append(Finding("bad_roles", (ex.id,), f"Example {ex.id}: {wrong}. It is left out of training "
                                    "until the turns are put in order (user, then assistant, in turn)."))
        for n, m in enumerate(ex.messages, start=1):
            if isinstance(m, dict) and not _content(m).strip() and not m.get("tool_calls"):
                role = m.get("role", "?")
                findings.append(Finding("empty_turn", (ex.id,), f"Example {ex.id}: the {role} turn (turn {n}) is "
                                        "empty. Write its text, or delete the turn."))
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in ex.messages):
            no_answer.append(ex.id)
        if count_tokens is not None:
            try:
                counted = count_tokens(conversation)
            except Exception:  # e.g. a chat template that rejects turns out of order (reported above)
                continue
            if isinstance(counted, TokenCount):
                token_lengths[ex.id] = counted.tokens
                if counted.unended_turns:
                    unended.append(ex.id)
            else:
                token_lengths[ex.id] = int(counted)
            if max_length is not None and token_lengths[ex.id] > max_length:
                findings.append(Finding("too_long", (ex.id,), (
                    f"Example {ex.id} is {token_lengths[ex.id]:,} tokens long, more than the context size of "
                    f"{max_length:,}: the end of it would be cut off in training. Shorten it, split it, or raise "
                    "the context size.")))

    if no_answer:
        findings.append(Finding("no_answer", tuple(no_answer), (
            f"{_n(len(no_answer), 'example')} (example{'s' if len(no_answer) != 1 else ''} {_id_list(no_answer)}) "
            f"{'have' if len(no_answer) != 1 else 'has'} no answer yet, so "
            f"{'they are' if len(no_answer) != 1 else 'it is'} left out of training. Label or answer "
            f"{'them' if len(no_answer) != 1 else 'it'}, or delete {'them' if len(no_answer) != 1 else 'it'}.")))

    if unended:
        findings.insert(0, Finding("no_end_of_turn", tuple(unended), (
            f"The model's chat template ends the answers of {_n(len(unended), 'example')} (example"
            f"{'s' if len(unended) != 1 else ''} {_id_list(unended)}) with no end-of-turn token, so a model "
            "trained on them does not learn to stop and writes on past its answer. Choose a model whose chat "
            "template closes each assistant turn with an end-of-turn token (an instruct or chat model), or "
            "give the model a chat template that does; the template preview shows what is trained.")))

    prompts = [_prompt_key(ex) for ex in examples]
    findings += _duplicate_findings(examples, prompts)
    findings += _leakage_findings(examples, prompts)
    return ValidationReport(findings=findings, label_counts=dict(label_counts), token_lengths=token_lengths,
                            max_length=max_length, example_count=len(examples), split_counts=split_counts)


def _duplicate_findings(examples: list[Example], prompts: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    exact: dict[str, list[int]] = defaultdict(list)
    for ex in examples:
        key = json.dumps([ex.system or "", [(m.get("role"), m.get("content"), m.get("tool_calls"))
                                            for m in ex.messages if isinstance(m, dict)]],
                         ensure_ascii=False, sort_keys=True, default=str)
        exact[key].append(ex.id)
    for ids in exact.values():
        if len(ids) > 1:
            findings.append(Finding("duplicate", tuple(ids), (
                f"Examples {_id_list(ids)} are exact copies (same system prompt and turns). Copies make the model "
                "over-learn them; keep one and delete the others.")))

    # Near: the same text once case, punctuation and spacing are folded, or word-trigram
    # similarity of at least NEAR_DUPLICATE_JACCARD. Compared over the turns, without the
    # system prompt, which is often the same for every example.
    by_text: dict[str, list[int]] = defaultdict(list)
    exact_group_of: dict[int, int] = {}
    for group_no, ids in enumerate(exact.values()):
        for i in ids:
            exact_group_of[i] = group_no
    for ex in examples:
        by_text[normalise(" \n ".join(_content(m) for m in ex.messages if isinstance(m, dict)))].append(ex.id)
    texts = list(by_text)
    linked: list[list[int]] = [[t] for t in range(len(texts))]
    for group in near_duplicate_groups(texts):
        linked.append(group)
    members: dict[int, set[int]] = {}
    uf = _UnionFind(len(texts))
    for group in linked:
        for t in group[1:]:
            uf.union(group[0], t)
    for t in range(len(texts)):
        members.setdefault(uf.find(t), set()).add(t)
    for component in members.values():
        ids = sorted(i for t in component for i in by_text[texts[t]])
        if not texts[next(iter(component))] and len(component) == 1:
            continue  # examples with no text at all are reported as empty turns
        if len({exact_group_of[i] for i in ids}) < 2:
            continue  # only exact copies: reported above
        findings.append(Finding("near_duplicate", tuple(ids), (
            f"Examples {_id_list(ids)} are nearly the same (they differ only in capitals, punctuation, spacing "
            "or a few words). Near-copies make the model over-learn them and can make the evaluation look better "
            "than it is; keep the best one and delete the others.")))

    # The same question with different answers: the model cannot learn both.
    answers_by_prompt: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for ex, prompt in zip(examples, prompts):
        answer = ex.reference_answer()
        if answer is not None and prompt:
            answers_by_prompt[(normalise(ex.system or ""), prompt)][normalise(answer)].append(ex.id)
    for by_answer in answers_by_prompt.values():
        if len(by_answer) > 1:
            ids = sorted(i for group in by_answer.values() for i in group)
            quoted = " / ".join(f"\u201c{_clip(a)}\u201d" for a in list(by_answer)[:4])
            findings.append(Finding("near_duplicate", tuple(ids), (
                f"Examples {_id_list(ids)} ask the same thing but give different answers ({quoted}). The model "
                "cannot learn both: decide which answer is right and fix or delete the others.")))
    return findings


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _leakage_findings(examples: list[Example], prompts: list[str]) -> list[Finding]:
    by_prompt: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"train": [], "eval": []})
    for ex, prompt in zip(examples, prompts):
        if prompt:
            by_prompt[prompt].setdefault(ex.split, []).append(ex.id)
    findings = []
    for sides in by_prompt.values():
        train, held = sides.get("train", []), sides.get("eval", [])
        if train and held:
            findings.append(Finding("leakage", tuple(sorted(train + held)), (
                f"The same prompt is in the training set (example{'s' if len(train) > 1 else ''} {_id_list(train)}) "
                f"and in the held-out evaluation set (example{'s' if len(held) > 1 else ''} {_id_list(held)}): the "
                "evaluation would test the model on something it was trained on. Move them into the same split, "
                "or delete one.")))
    return findings
