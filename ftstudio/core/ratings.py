"""Generated outputs, blind votes, what the votes say, and stored evaluations.

Records
- ``generations.prompt`` and ``votes.prompt`` hold the exact input as a JSON
  list of chat messages (system prompt first, if any); ``decode_prompt``
  also accepts plain text written by other tools (one user message).
- ``generations.model`` and ``evaluations.model`` hold a model key:
  ``base:<model spec>``, ``run:<run id>`` or ``adapter:<folder>``.
- ``votes.shown`` lists generation ids in the order the voter saw them, so the
  random order of a blind comparison can be replayed from the record.

Statistics
- Each vote between k shown outputs counts for every pair among them: a pick
  is a win of the chosen output over each other one; a tie and "both bad" are
  ties for every pair ("both bad" is also counted on its own).
- Confidence intervals are 95% Wilson score intervals.
- The ranking is a Bradley-Terry model fitted with Hunter's MM algorithm,
  ties counted as half a win for each side. ``prior`` adds that many virtual
  ties to every compared pair, so a model without a single win still gets a
  finite strength.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ftstudio.core.project import Project, inserted_id, now

VERDICTS = ("pick", "tie", "both_bad")
BASE_PREFIX = "base:"
RUN_PREFIX = "run:"
ADAPTER_PREFIX = "adapter:"
Z95 = 1.959963984540054


# -- model keys -------------------------------------------------------------------------


def base_key(model_spec: str) -> str:
    return BASE_PREFIX + model_spec


def run_key(run_id: str) -> str:
    return RUN_PREFIX + run_id


def adapter_key(folder: str | Path) -> str:
    return ADAPTER_PREFIX + str(Path(folder).resolve())


def run_id_of(model_key: str) -> str | None:
    return model_key[len(RUN_PREFIX):] if model_key.startswith(RUN_PREFIX) else None


def model_label(model_key: str) -> str:
    """Short words for a model key, as column headers show it."""
    if model_key.startswith(BASE_PREFIX):
        spec = model_key[len(BASE_PREFIX):]
        name = spec.split(":", 1)[1] if spec.startswith("bundled:") else Path(spec).name or spec
        return f"Base ({name})"
    if model_key.startswith(RUN_PREFIX):
        return f"Run {model_key[len(RUN_PREFIX):]}"
    if model_key.startswith(ADAPTER_PREFIX):
        path = Path(model_key[len(ADAPTER_PREFIX):])
        name = path.parent.name if path.name == "adapter" else path.name
        return f"Adapter {name}"
    return model_key


# -- prompts ----------------------------------------------------------------------------


def encode_prompt(messages: list[dict[str, Any]]) -> str:
    return json.dumps([{"role": m["role"], "content": m.get("content") or ""} for m in messages],
                      ensure_ascii=False)


def decode_prompt(stored: str) -> list[dict[str, Any]]:
    """The messages of a stored prompt; plain text becomes one user message."""
    try:
        value = json.loads(stored)
    except (json.JSONDecodeError, TypeError):
        value = None
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return value
    return [{"role": "user", "content": stored}]


def prompt_text(stored_or_messages: str | list[dict[str, Any]]) -> str:
    """The last user turn: what a person reads as "the prompt"."""
    messages = decode_prompt(stored_or_messages) if isinstance(stored_or_messages, str) else stored_or_messages
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


# -- generations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    id: int
    model: str
    example_id: int | None
    prompt: str  # stored form; see decode_prompt
    output: str
    settings: dict[str, Any]
    created_at: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return decode_prompt(self.prompt)


def _generation(row: sqlite3.Row) -> Generation:
    return Generation(row["id"], row["model"], row["example_id"], row["prompt"], row["output"],
                      json.loads(row["settings"]), row["created_at"])


def _settings_json(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


def add_generation(project: Project, model: str, messages: list[dict[str, Any]], output: str,
                   settings: dict[str, Any], example_id: int | None = None) -> int:
    with project.transaction() as c:
        cur = c.execute(
            "INSERT INTO generations (model, example_id, prompt, output, settings, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (model, example_id, encode_prompt(messages), output, _settings_json(settings), now()),
        )
        return inserted_id(cur)


def get_generations(project: Project, ids: Iterable[int]) -> dict[int, Generation]:
    ids = list(ids)
    out: dict[int, Generation] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        marks = ",".join("?" * len(chunk))
        for row in project.execute(f"SELECT * FROM generations WHERE id IN ({marks})", chunk):
            out[row["id"]] = _generation(row)
    return out


def find_generation(project: Project, model: str, messages: list[dict[str, Any]],
                    settings: dict[str, Any]) -> Generation | None:
    """The latest stored output of ``model`` for exactly this prompt and these settings."""
    row = project.execute(
        "SELECT * FROM generations WHERE model = ? AND prompt = ? AND settings = ? ORDER BY id DESC LIMIT 1",
        (model, encode_prompt(messages), _settings_json(settings)),
    ).fetchone()
    return _generation(row) if row else None


# -- votes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vote:
    id: int
    prompt: str
    example_id: int | None
    shown: list[int]  # generation ids, in shown order
    shown_models: list[str]  # their model keys, same order
    chosen: int | None
    verdict: str
    comment: str | None
    voter: str
    created_at: str

    @property
    def chosen_model(self) -> str | None:
        if self.chosen is None:
            return None
        return self.shown_models[self.shown.index(self.chosen)]


def add_vote(project: Project, shown: list[int], verdict: str, voter: str, chosen: int | None = None,
             comment: str | None = None) -> int:
    """Store one blind verdict; ``shown`` is the generation ids in the order they were shown."""
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r} (expected one of {', '.join(VERDICTS)})")
    if len(shown) < 2 or len(set(shown)) != len(shown):
        raise ValueError("a vote needs two or more different outputs")
    if (verdict == "pick") != (chosen is not None):
        raise ValueError("a pick names the chosen output; a tie or 'both bad' names none")
    if chosen is not None and chosen not in shown:
        raise ValueError(f"output {chosen} was not among those shown")
    if not voter.strip():
        raise ValueError("a vote needs the voter's name")
    gens = get_generations(project, shown)
    missing = [g for g in shown if g not in gens]
    if missing:
        raise ValueError(f"no stored output with id {missing[0]}")
    first = gens[shown[0]]
    if len({gens[g].model for g in shown}) != len(shown):
        raise ValueError("the outputs shown in a vote must come from different models")
    with project.transaction() as c:
        cur = c.execute(
            "INSERT INTO votes (prompt, example_id, shown, chosen, verdict, comment, voter, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (first.prompt, first.example_id, json.dumps(shown), chosen, verdict, comment or None,
             voter.strip(), now()),
        )
        return inserted_id(cur)


def votes(project: Project) -> list[Vote]:
    rows = project.execute("SELECT * FROM votes ORDER BY id").fetchall()
    shown_lists = [json.loads(r["shown"]) for r in rows]
    gens = get_generations(project, {g for s in shown_lists for g in s})
    out = []
    for row, shown in zip(rows, shown_lists):
        models = [gens[g].model if g in gens else f"missing:{g}" for g in shown]
        out.append(Vote(row["id"], row["prompt"], row["example_id"], shown, models, row["chosen"],
                        row["verdict"], row["comment"], row["voter"], row["created_at"]))
    return out


# -- win / tie / loss -------------------------------------------------------------------


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there is no data."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class PairRecord:
    """How ``a`` fared against ``b`` (a and b in sorted order)."""

    a: str
    b: str
    wins: int = 0  # a preferred
    losses: int = 0  # b preferred
    ties: int = 0  # includes both_bad
    both_bad: int = 0

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    def share(self, what: str) -> float:
        count = {"win": self.wins, "tie": self.ties, "loss": self.losses}[what]
        return count / self.n if self.n else 0.0

    def interval(self, what: str) -> tuple[float, float]:
        """95% Wilson interval of the share of votes that were a win / tie / loss for ``a``."""
        count = {"win": self.wins, "tie": self.ties, "loss": self.losses}[what]
        return wilson_interval(count, self.n)

    @property
    def decisive_win_rate(self) -> float | None:
        """How often ``a`` was preferred when one of the two was."""
        d = self.wins + self.losses
        return self.wins / d if d else None

    def decisive_interval(self) -> tuple[float, float]:
        return wilson_interval(self.wins, self.wins + self.losses)

    def flipped(self) -> "PairRecord":
        return PairRecord(self.b, self.a, self.losses, self.wins, self.ties, self.both_bad)


def pair_records(vote_list: Iterable[Vote]) -> dict[tuple[str, str], PairRecord]:
    """{(a, b): record} with a < b, over every pair of models shown together."""
    records: dict[tuple[str, str], PairRecord] = {}

    def rec(x: str, y: str) -> tuple[PairRecord, bool]:
        key = (x, y) if x < y else (y, x)
        if key not in records:
            records[key] = PairRecord(*key)
        return records[key], x == key[0]

    for v in vote_list:
        winner = v.chosen_model
        for x, y in itertools.combinations(v.shown_models, 2):
            r, x_first = rec(x, y)
            if v.verdict == "pick":
                if winner not in (x, y):
                    continue  # the pick says nothing about two outputs that were both passed over
                a_won = (winner == x) == x_first
                if a_won:
                    r.wins += 1
                else:
                    r.losses += 1
            else:
                r.ties += 1
                if v.verdict == "both_bad":
                    r.both_bad += 1
    return records


def pair_record(vote_list: Iterable[Vote], a: str, b: str) -> PairRecord:
    """How ``a`` fared against ``b``."""
    key = (a, b) if a < b else (b, a)
    r = pair_records(vote_list).get(key, PairRecord(*key))
    return r if r.a == a else r.flipped()


# -- Bradley-Terry ----------------------------------------------------------------------


@dataclass
class Ranking:
    models: list[str]  # best first
    strength: dict[str, float]  # geometric mean 1
    comparisons: dict[str, int]
    iterations: int
    converged: bool

    def win_probability(self, a: str, b: str) -> float:
        pa, pb = self.strength[a], self.strength[b]
        return pa / (pa + pb)

    def score(self, model: str) -> float:
        """Chance of being preferred over a model of average strength."""
        return self.strength[model] / (self.strength[model] + 1.0)


def bradley_terry(records: Iterable[PairRecord] | dict, prior: float = 0.0, max_iter: int = 10000,
                  tol: float = 1e-10) -> Ranking:
    """Bradley-Terry strengths by Hunter's MM updates, ties as half a win each.

    p_i <- W_i / sum_j n_ij / (p_i + p_j), then rescaled to geometric mean 1.
    Without a prior the estimate exists only when every model has beaten and
    lost to the rest, directly or through others; ``prior`` virtual ties per
    compared pair make it exist always.
    """
    recs = list(records.values()) if isinstance(records, dict) else list(records)
    wins: dict[str, float] = defaultdict(float)
    n: dict[tuple[str, str], float] = defaultdict(float)
    comparisons: dict[str, int] = defaultdict(int)
    for r in recs:
        if r.n == 0:
            continue
        wins[r.a] += r.wins + 0.5 * r.ties + 0.5 * prior
        wins[r.b] += r.losses + 0.5 * r.ties + 0.5 * prior
        n[(r.a, r.b)] += r.n + prior
        n[(r.b, r.a)] += r.n + prior
        comparisons[r.a] += r.n
        comparisons[r.b] += r.n
    models = sorted(wins)
    if not models:
        return Ranking([], {}, {}, 0, True)
    opponents: dict[str, list[str]] = defaultdict(list)
    for (i, j) in n:
        opponents[i].append(j)
    p = {m: 1.0 for m in models}
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        new = {}
        for i in models:
            denom = sum(n[(i, j)] / (p[i] + p[j]) for j in opponents[i])
            new[i] = wins[i] / denom if denom > 0 else p[i]
        # rescale to geometric mean 1; a model with no wins stays at 0
        positive = [v for v in new.values() if v > 0]
        g = math.exp(sum(math.log(v) for v in positive) / len(positive)) if positive else 1.0
        new = {m: v / g for m, v in new.items()}
        change = max(abs(math.log(new[m]) - math.log(p[m])) if new[m] > 0 and p[m] > 0 else abs(new[m] - p[m])
                     for m in models)
        p = new
        if change < tol:
            converged = True
            break
    order = sorted(models, key=lambda m: (-p[m], m))
    return Ranking(order, p, dict(comparisons), it, converged)


# -- evaluations ------------------------------------------------------------------------


def evaluation_key(run_id: str | None, model: str) -> str:
    """The model key of a stored evaluation.

    The Compare page stores model keys; ``ftstudio evaluate`` stores the
    base model's spec with the run id beside it. Both read as one key: the
    run's key when there is a run, else the base key of a plain spec.
    """
    if run_id:
        return run_key(run_id)
    if model.startswith((BASE_PREFIX, RUN_PREFIX, ADAPTER_PREFIX)):
        return model
    return base_key(model)


FEW_SHOT_MARK = "#shots="


def is_adapter_key(model_key: str) -> bool:
    return model_key.startswith((RUN_PREFIX, ADAPTER_PREFIX))


def evaluation_label(key: str) -> str:
    """Words for an evaluation key: the base model's prompt (zero-shot or k-shot) or the adapter."""
    model, _mark, shots = key.partition(FEW_SHOT_MARK)
    label = model_label(model)
    if is_adapter_key(model):
        return label
    return f"{label}, {shots}-shot prompt" if shots else f"{label}, zero-shot"


@dataclass(frozen=True)
class StoredEvaluation:
    id: int
    run_id: str | None
    model: str
    results: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @property
    def key(self) -> str:
        """The model key, however the evaluation was stored (see ``evaluation_key``); a few-shot prompt of
        the base model is a model of its own, ``base:<spec>#shots=<k>``."""
        key = evaluation_key(self.run_id, self.model)
        shots = self.results.get("few_shot") if isinstance(self.results, dict) else None
        return f"{key}{FEW_SHOT_MARK}{int(shots)}" if shots else key


def store_evaluation(project: Project, run_id: str | None, model: str, results_dict: dict[str, Any]) -> int:
    """Keep one evaluation (``EvalResult.to_dict()``); ``run_id`` None for the base model."""
    text = json.dumps(results_dict, ensure_ascii=False, allow_nan=True)
    with project.transaction() as c:
        cur = c.execute(
            "INSERT INTO evaluations (run_id, model, results, created_at) VALUES (?, ?, ?, ?)",
            (run_id, model, text, now()),
        )
        return inserted_id(cur)


def evaluations(project: Project, run_id: str | None = None) -> list[StoredEvaluation]:
    """Stored evaluations, newest first: all of them, or those of one run."""
    if run_id is None:
        rows = project.execute("SELECT * FROM evaluations ORDER BY id DESC").fetchall()
    else:
        rows = project.execute("SELECT * FROM evaluations WHERE run_id = ? ORDER BY id DESC", (run_id,)).fetchall()
    return [StoredEvaluation(r["id"], r["run_id"], r["model"], json.loads(r["results"]), r["created_at"])
            for r in rows]


def latest_evaluations(project: Project) -> dict[str, StoredEvaluation]:
    """The newest evaluation of each model key."""
    out: dict[str, StoredEvaluation] = {}
    for e in evaluations(project):
        out.setdefault(e.key, e)
    return out
