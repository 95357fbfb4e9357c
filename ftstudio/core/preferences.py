"""Preference data: pairs of a better and a worse answer to one prompt (for DPO),
and single answers rated good or bad (for KTO).

Records (table ``preference_pairs``)
- ``prompt`` is the JSON list of messages before the answer, system prompt
  first if there is one; ``chosen`` and ``rejected`` are answer texts. A row
  with both is a pair; a row with only ``chosen`` is one desirable answer, with
  only ``rejected`` one undesirable answer.
- ``source`` says where it came from: a blind vote (``vote_id``, ``voter``,
  the two model keys), an imported file (``file``, ``line``) or typed in.
- ``split`` is train or eval, given once when the row is added (by prompt, so
  every pair of one prompt sits on the same side) and changed only by the user.
- Edits, swaps and deletions go through the project's journal, so the Data
  page's undo reverts them.

Votes become pairs with ``derive_from_votes``: a pick gives one pair of the
picked output over each output passed over, "both bad" gives each output as
one undesirable answer, a tie gives nothing. ``origin`` names the vote and the
outputs, so deriving again adds only what is new (and a deleted pair stays
deleted).

Files are read all or nothing, every problem with the file, line and field:
TRL's preference form (``prompt`` / ``chosen`` / ``rejected``, each text or a
list of messages, the answers with or without the prompt in front, or no
``prompt`` when the two conversations share it), LLaMA-Factory's ranking form
(``conversations`` plus a ``chosen`` and a ``rejected`` turn; also
``instruction`` / ``input`` with ``chosen`` / ``rejected``), and the unpaired
form (``prompt`` / ``completion`` / ``label``, ``messages`` with a ``label``,
or ShareGPT ``conversations`` with ``kto_tag``), where the label is true or false.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ftstudio.core.examples import SPLITS, Message, check_conversation
from ftstudio.core.fileio import write_text_atomic
from ftstudio.core.formats import (
    FORM_NAMES,
    SHAREGPT_RANKING,
    TRL_PREFERENCE,
    UNPAIRED,
    form_of_rows,
    alpaca_prompt,
    sharegpt_turn,
    FormatProblem,
    ImportFailed,
    _json_rows,
    _layout_of,
    _Problems,
    _read_text,
)
from ftstudio.core.project import Project, default_actor, inserted_id, now
from ftstudio.core.where import Where

TABLE = "preference_pairs"
SOURCES = ("vote", "import", "typed")
DETECT_ROWS = 20
EDITABLE = ("prompt", "chosen", "rejected", "split")


@dataclass(frozen=True)
class PreferencePair:
    id: int
    prompt: list[Message]
    chosen: str | None
    rejected: str | None
    split: str
    source: str
    voter: str | None = None
    chosen_model: str | None = None
    rejected_model: str | None = None
    vote_id: int | None = None
    file: str | None = None
    line: int | None = None
    created_at: str = ""

    @property
    def kind(self) -> str:
        """'pair', 'desirable' (a good answer alone) or 'undesirable' (a bad answer alone)."""
        if self.chosen is not None and self.rejected is not None:
            return "pair"
        return "desirable" if self.chosen is not None else "undesirable"

    def prompt_text(self) -> str:
        """The last user turn: what a person reads as the prompt."""
        for m in reversed(self.prompt):
            if m.get("role") == "user":
                return str(m.get("content") or "")
        return ""

    def source_words(self) -> str:
        if self.source == "vote":
            return f"vote by {self.voter}" if self.voter else "vote"
        if self.source == "import":
            name = Path(self.file).name if self.file else "a file"
            return f"{name}, line {self.line}" if self.line else name
        return "typed"


@dataclass
class NewPair:
    """A pair (or a single rated answer) about to be added."""

    prompt: list[Message]
    chosen: str | None
    rejected: str | None
    split: str | None = None  # None: assigned by the project's held-out split
    source: str = "import"
    line: int | None = None
    origin: str | None = None
    vote_id: int | None = None
    voter: str | None = None
    chosen_model: str | None = None
    rejected_model: str | None = None

    @property
    def kind(self) -> str:
        if self.chosen is not None and self.rejected is not None:
            return "pair"
        return "desirable" if self.chosen is not None else "undesirable"


# -- reading and writing the table -------------------------------------------------------


def _pair(row: sqlite3.Row) -> PreferencePair:
    return PreferencePair(
        id=row["id"],
        prompt=json.loads(row["prompt"]),
        chosen=row["chosen"],
        rejected=row["rejected"],
        split=row["split"],
        source=row["source"],
        voter=row["voter"],
        chosen_model=row["chosen_model"],
        rejected_model=row["rejected_model"],
        vote_id=row["vote_id"],
        file=row["file"],
        line=row["line"],
        created_at=row["created_at"],
    )


def _row_state(c: sqlite3.Connection, pair_id: int) -> dict[str, Any] | None:
    row = c.execute(f"SELECT * FROM {TABLE} WHERE id = ?", (pair_id,)).fetchone()
    return dict(row) if row is not None else None


@dataclass
class PairFilter:
    source: str | None = None  # 'vote', 'import', 'typed'
    voter: str | None = None
    split: str | None = None
    kind: str | None = None  # 'pair', 'desirable', 'undesirable'
    text: str = ""


def pairs(project: Project, flt: PairFilter | None = None) -> list[PreferencePair]:
    """The live pairs (and single rated answers), oldest first."""
    where = Where("deleted = 0")
    if flt is not None:
        where.equal("source", flt.source)
        where.equal("voter", flt.voter)
        where.equal("split", flt.split)
        if flt.kind == "pair":
            where.add("chosen IS NOT NULL AND rejected IS NOT NULL")
        elif flt.kind == "desirable":
            where.add("rejected IS NULL")
        elif flt.kind == "undesirable":
            where.add("chosen IS NULL")
        where.contains(flt.text, ("prompt", "IFNULL(chosen, '')", "IFNULL(rejected, '')"))
    rows = project.execute(f"SELECT * FROM {TABLE} WHERE {where.sql} ORDER BY id", where.params)
    return [_pair(r) for r in rows]


def get_pair(project: Project, pair_id: int) -> PreferencePair:
    row = project.execute(f"SELECT * FROM {TABLE} WHERE id = ? AND deleted = 0", (pair_id,)).fetchone()
    if row is None:
        raise KeyError(f"no preference pair {pair_id}")
    return _pair(row)


def voters(project: Project) -> list[str]:
    return [
        r[0]
        for r in project.execute(
            f"SELECT DISTINCT voter FROM {TABLE} WHERE deleted = 0 AND voter IS NOT NULL ORDER BY voter"
        )
    ]


@dataclass(frozen=True)
class PairCounts:
    pairs: dict[str, int]  # split -> complete pairs
    desirable: dict[str, int]  # split -> good answers KTO sees (pairs' chosen answers included)
    undesirable: dict[str, int]  # split -> bad answers KTO sees (pairs' rejected answers included)

    def total_pairs(self) -> int:
        return sum(self.pairs.values())

    def total_singles(self) -> int:
        return sum(self.desirable.values()) + sum(self.undesirable.values())


def counts(project: Project) -> PairCounts:
    p: dict[str, int] = {s: 0 for s in SPLITS}
    d: dict[str, int] = {s: 0 for s in SPLITS}
    u: dict[str, int] = {s: 0 for s in SPLITS}
    for row in project.execute(
        f"SELECT split, chosen IS NOT NULL AS c, rejected IS NOT NULL AS r, COUNT(*) AS n FROM {TABLE} "
        "WHERE deleted = 0 GROUP BY split, c, r"
    ):
        if row["c"] and row["r"]:
            p[row["split"]] += row["n"]
        if row["c"]:
            d[row["split"]] += row["n"]
        if row["r"]:
            u[row["split"]] += row["n"]
    return PairCounts(p, d, u)


def training_sizes(project: Project, objective: str) -> dict[str, tuple[int, int]]:
    """{split: (units, characters of the sequences they train on)} for a DPO or KTO run, in one query.

    A DPO unit is a complete pair, trained on two sequences: the prompt with the chosen answer and
    the prompt with the rejected one. A KTO unit is one rated answer (a pair gives a good and a bad
    one), trained on the prompt with the answer; its second sequence (the prompt with another
    unit's answer, for the KL baseline) only goes forward, about as long again.
    """
    if objective == "dpo":
        select = (
            "COUNT(*) AS n, SUM(2 * LENGTH(prompt) + LENGTH(chosen) + LENGTH(rejected)) AS chars "
            f"FROM {TABLE} WHERE deleted = 0 AND chosen IS NOT NULL AND rejected IS NOT NULL"
        )
    else:
        select = (
            "SUM((chosen IS NOT NULL) + (rejected IS NOT NULL)) AS n, "
            "SUM(IFNULL(LENGTH(prompt) + LENGTH(chosen), 0) + IFNULL(LENGTH(prompt) + LENGTH(rejected), 0)) "
            f"AS chars FROM {TABLE} WHERE deleted = 0"
        )
    rows = project.execute(f"SELECT split, {select} GROUP BY split")
    return {r["split"]: (int(r["n"] or 0), int(r["chars"] or 0)) for r in rows}


def _prompt_key(messages: list[Message]) -> str:
    from ftstudio.core.validation import normalise

    return normalise("\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user"))


def _assign_splits(project: Project, c: sqlite3.Connection, new: list[NewPair]) -> list[str]:
    """Held-out split for new pairs, by prompt: a prompt already in the table keeps its side; new
    prompts bring the held-out share of prompts up to the project's fraction (seeded shuffle)."""
    fraction = float(project.setting("eval_fraction"))
    seed = int(project.setting("split_seed"))
    side: dict[str, str] = {}
    for row in c.execute(f"SELECT prompt, split FROM {TABLE} WHERE deleted = 0 ORDER BY id"):
        side.setdefault(_prompt_key(json.loads(row["prompt"])), row["split"])
    for p in new:
        if p.split is not None:
            side.setdefault(_prompt_key(p.prompt), p.split)
    fresh = sorted({_prompt_key(p.prompt) for p in new if p.split is None} - set(side))
    held = sum(1 for s in side.values() if s == "eval")
    want = min(len(fresh), max(0, round((len(side) + len(fresh)) * fraction) - held))
    batch_no = c.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
    rng = random.Random(f"{seed}:preferences:{batch_no}")
    order = fresh[:]
    rng.shuffle(order)
    for i, key in enumerate(order):
        side[key] = "eval" if i < want else "train"
    return [p.split or side[_prompt_key(p.prompt)] for p in new]


def add_pairs(
    project: Project,
    new: list[NewPair],
    actor: str | None = None,
    file: str | None = None,
    journal: bool = True,
) -> list[int]:
    """Add pairs in one transaction (all or nothing); returns the ids of those added.

    A pair whose ``origin`` is already in the table (also a deleted one) is left out.
    ``journal`` False: not undoable (pairs derived from votes follow the votes).
    """
    for p in new:
        problem = check_pair(p)
        if problem:
            raise ValueError(problem)
        if p.source not in SOURCES:
            raise ValueError(f"unknown source {p.source!r}")
    actor = actor or default_actor()
    ids: list[int] = []
    with project.transaction() as c:
        if not new:
            return ids
        splits = _assign_splits(project, c, new)
        group = project.journal_group(c, actor) if journal else None
        stamp = now()
        for p, split in zip(new, splits):
            cur = c.execute(
                f"INSERT OR IGNORE INTO {TABLE} (prompt, chosen, rejected, split, source, origin, vote_id, voter, "
                "chosen_model, rejected_model, file, line, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    json.dumps(p.prompt, ensure_ascii=False),
                    p.chosen,
                    p.rejected,
                    split,
                    p.source,
                    p.origin,
                    p.vote_id,
                    p.voter,
                    p.chosen_model,
                    p.rejected_model,
                    file,
                    p.line,
                    stamp,
                    stamp,
                ),
            )
            if cur.rowcount == 0:
                continue
            ids.append(inserted_id(cur))
            if group is not None:
                project.journal_row_change(c, group, actor, TABLE, None, None, _row_state(c, ids[-1]))
    return ids


def update_pairs(project: Project, ids: list[int], actor: str | None = None, **changes: Any) -> None:
    """The same change to several pairs (prompt, chosen, rejected, split), as one undoable step."""
    bad = set(changes) - set(EDITABLE)
    if bad:
        raise ValueError(f"cannot edit {', '.join(sorted(bad))} of a preference pair")
    if "split" in changes and changes["split"] not in SPLITS:
        raise ValueError(f"unknown split {changes['split']!r}")
    encoded = dict(changes)
    if "prompt" in encoded:
        encoded["prompt"] = json.dumps(encoded["prompt"], ensure_ascii=False)
    _change_rows(project, ids, actor, lambda row: encoded)


def swap_pairs(project: Project, ids: list[int], actor: str | None = None) -> None:
    """Chosen becomes rejected and the other way round (a single answer flips from good to bad)."""
    _change_rows(
        project,
        ids,
        actor,
        lambda row: {
            "chosen": row["rejected"],
            "rejected": row["chosen"],
            "chosen_model": row["rejected_model"],
            "rejected_model": row["chosen_model"],
        },
    )


def delete_pairs(project: Project, ids: list[int], actor: str | None = None) -> None:
    """Delete pairs (undoable: the row stays, marked deleted, until undone)."""
    _change_rows(project, ids, actor, lambda row: {"deleted": 1})


def _change_rows(
    project: Project, ids: list[int], actor: str | None, change: Callable[[sqlite3.Row], dict[str, Any]]
) -> None:
    actor = actor or default_actor()
    with project.transaction() as c:
        group = None
        for pair_id in ids:
            row = c.execute(f"SELECT * FROM {TABLE} WHERE id = ?", (pair_id,)).fetchone()
            if row is None:
                raise KeyError(f"no preference pair {pair_id}")
            values = {k: v for k, v in change(row).items() if row[k] != v}
            if not values:
                continue
            if (
                values.get("chosen", row["chosen"]) is None
                and values.get("rejected", row["rejected"]) is None
            ):
                raise ValueError(f"pair {pair_id} would have neither a chosen nor a rejected answer")
            if group is None:
                group = project.journal_group(c, actor)
            before = dict(row)
            cols = ", ".join(f"{k} = ?" for k in values)
            c.execute(
                f"UPDATE {TABLE} SET {cols}, updated_at = ? WHERE id = ?", (*values.values(), now(), pair_id)
            )
            project.journal_row_change(c, group, actor, TABLE, None, before, _row_state(c, pair_id))


# -- from blind votes --------------------------------------------------------------------


def pairs_from_votes(project: Project) -> list[NewPair]:
    """What the blind votes say, as pairs: a pick gives the picked output over each one passed
    over; "both bad" gives each output as an undesirable answer; a tie gives nothing."""
    from ftstudio.core import ratings

    vote_list = ratings.votes(project)
    gens = ratings.get_generations(project, {g for v in vote_list for g in v.shown})
    out: list[NewPair] = []
    for v in vote_list:
        prompt = ratings.decode_prompt(v.prompt)
        if v.verdict == "pick" and v.chosen in gens:
            best = gens[v.chosen]
            for g in v.shown:
                if g == v.chosen or g not in gens:
                    continue
                out.append(
                    NewPair(
                        prompt,
                        best.output,
                        gens[g].output,
                        source="vote",
                        origin=f"vote:{v.id}:{v.chosen}>{g}",
                        vote_id=v.id,
                        voter=v.voter,
                        chosen_model=best.model,
                        rejected_model=gens[g].model,
                    )
                )
        elif v.verdict == "both_bad":
            for g in v.shown:
                if g in gens:
                    out.append(
                        NewPair(
                            prompt,
                            None,
                            gens[g].output,
                            source="vote",
                            origin=f"vote:{v.id}:bad:{g}",
                            vote_id=v.id,
                            voter=v.voter,
                            rejected_model=gens[g].model,
                        )
                    )
    return [p for p in out if check_pair(p) is None]


def derive_from_votes(project: Project) -> int:
    """Add the pairs the votes give that are not in the table yet; returns how many were added."""
    return len(add_pairs(project, pairs_from_votes(project), journal=False))


# -- checks ------------------------------------------------------------------------------


def check_pair(p: NewPair | PreferencePair) -> str | None:
    """None when the pair can be trained on, else what is wrong, in words."""
    problem = check_conversation(p.prompt, require_answer=False)
    if problem is not None:
        return f"the prompt: {problem}"
    if not any(m.get("role") == "user" for m in p.prompt):
        return "the prompt has no user turn"
    if p.prompt[-1].get("role") == "assistant":
        return "the prompt ends with an assistant turn; the answers must follow a user turn"
    if p.chosen is None and p.rejected is None:
        return "there is neither a chosen nor a rejected answer"
    return None


@dataclass(frozen=True)
class PairFinding:
    kind: str  # 'same_answers', 'empty_answer', 'too_long', 'leakage'
    pair_ids: tuple[int, ...]
    message: str


FINDING_TITLES = {
    "same_answers": "Chosen and rejected are the same",
    "empty_answer": "Empty answer",
    "too_long": "Longer than the context size",
    "leakage": "Same prompt in training and evaluation",
}


def validate_pairs(
    project: Project,
    count_tokens: Callable[[list[Message]], int] | None = None,
    max_length: int | None = None,
) -> list[PairFinding]:
    """What would make training on the pairs go wrong: the same text chosen and rejected (nothing to
    learn), an empty answer, a pair longer than the context (dropped in training), and a prompt both
    in training and held out (in the pairs or the examples), which makes the held-out figures lie."""
    live = pairs(project)
    findings: list[PairFinding] = []
    same = [p.id for p in live if p.kind == "pair" and (p.chosen or "").strip() == (p.rejected or "").strip()]
    if same:
        findings.append(
            PairFinding(
                "same_answers",
                tuple(same),
                (
                    f"{_count(same, 'pair')} {'has' if len(same) == 1 else 'have'} the same chosen and rejected answer "
                    f"({_ids(same)}): there is nothing to prefer. Edit one answer or delete the pair."
                ),
            )
        )
    empty = [p.id for p in live if any(a is not None and not a.strip() for a in (p.chosen, p.rejected))]
    if empty:
        findings.append(
            PairFinding(
                "empty_answer",
                tuple(empty),
                (
                    f"{_count(empty, 'pair')} {'has' if len(empty) == 1 else 'have'} an empty answer ({_ids(empty)}). "
                    "Write the answer or delete the pair."
                ),
            )
        )
    if count_tokens is not None and max_length:
        long = []
        for p in live:
            answers = [a for a in (p.chosen, p.rejected) if a is not None]
            if (
                max(count_tokens([*p.prompt, {"role": "assistant", "content": a}]) for a in answers)
                > max_length
            ):
                long.append(p.id)
        if long:
            findings.append(
                PairFinding(
                    "too_long",
                    tuple(long),
                    (
                        f"{_count(long, 'pair')} {'is' if len(long) == 1 else 'are'} longer than the context size of "
                        f"{max_length} tokens ({_ids(long)}) and will be left out of training. Raise max_length or "
                        "shorten the answers."
                    ),
                )
            )
    sides: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"train": [], "eval": []})
    for p in live:
        sides[_prompt_key(p.prompt)][p.split].append(p.id)
    held_examples: dict[str, set[str]] = {}
    for ex in project.examples():
        held_examples.setdefault(_prompt_key(ex.conversation()), set()).add(ex.split)
    leaked: list[int] = []
    for key, side in sides.items():
        example_sides = held_examples.get(key, set())
        if side["train"] and (side["eval"] or "eval" in example_sides):
            leaked += side["train"] + side["eval"]
        elif side["eval"] and "train" in example_sides:
            leaked += side["eval"]
    if leaked:
        leaked.sort()
        findings.append(
            PairFinding(
                "leakage",
                tuple(leaked),
                (
                    f"{_count(leaked, 'pair')} share{'s' if len(leaked) == 1 else ''} a prompt with the other split "
                    f"({_ids(leaked)}): trained on, then tested on, the held-out figures would flatter the model. Move "
                    "each prompt's pairs and examples into one split, or delete them."
                ),
            )
        )
    return findings


def _count(ids: list[int], noun: str) -> str:
    return f"{len(ids)} {noun}{'s' if len(ids) != 1 else ''}"


def _ids(ids: Iterable[int], limit: int = 8) -> str:
    ids = list(ids)
    head = ", ".join(f"#{i}" for i in ids[:limit])
    return head + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


# -- files -------------------------------------------------------------------------------


class _Bad(Exception):
    """What is wrong with one record: the field and the words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"'{field}': {message}" if field else message)


def detect_form(path: Path | str) -> str | None:
    """The preference form of a JSON/JSONL file, or None when it does not hold preference data."""
    path = Path(path)
    if _layout_of(path) != "json":
        return None
    problems = _Problems(path)
    text = _read_text(path, problems)
    if text is None:
        return None
    _, rows_iter = _json_rows(text, problems)
    rows = []
    for r in rows_iter:
        rows.append(r)
        if len(rows) >= DETECT_ROWS:
            break
    return form_of_rows(rows)


def _messages(value: Any, field: str) -> list[Message]:
    """Text (one user turn) or a list of {"role", "content"} messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _Bad(field, 'must be text or a non-empty list of {"role", "content"} messages')
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or "role" not in m:
            raise _Bad(field, f"message {i} is not an object with 'role' and 'content'")
        content = m.get("content")
        if not isinstance(content, str):
            raise _Bad(field, f"message {i} has content that is not text")
        out.append({"role": m["role"], "content": content})
    return out


def _answer(value: Any, field: str, prompt: list[Message] | None) -> str:
    """One assistant answer from text or messages; messages may repeat the prompt in front."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # a single message
        value = [value]
    msgs = _messages(value, field)
    if prompt is not None and msgs[: len(prompt)] == prompt and len(msgs) > len(prompt):
        msgs = msgs[len(prompt) :]
    if len(msgs) != 1 or msgs[0]["role"] != "assistant":
        raise _Bad(
            field,
            "must be one assistant answer (text, or one message with role 'assistant'), "
            "after the prompt's messages if they are repeated in front",
        )
    return msgs[0]["content"]


def _require(data: dict, field: str, what: str) -> Any:
    if field not in data or data[field] is None:
        raise _Bad(field, f"is missing; {what}")
    return data[field]


def _shared_prefix(a: list[Message], b: list[Message]) -> list[Message]:
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return a[:n]


def _with_system(prompt: list[Message], system: Any) -> list[Message]:
    if system is None or system == "":
        return prompt
    if not isinstance(system, str):
        raise _Bad("system", "must be text")
    if prompt and prompt[0].get("role") == "system":
        return prompt
    return [{"role": "system", "content": system}, *prompt]


def _pair_from_trl(data: dict) -> NewPair:
    chosen_raw = _require(data, "chosen", "each record needs a 'chosen' answer")
    rejected_raw = _require(data, "rejected", "each record needs a 'rejected' answer")
    if "prompt" in data and data["prompt"] is not None:
        if isinstance(data["prompt"], str) and not data["prompt"].strip():
            raise _Bad("prompt", "is empty; write the prompt or delete the record")
        prompt = _messages(data["prompt"], "prompt")
    elif isinstance(chosen_raw, list) and isinstance(rejected_raw, list):
        # No prompt: the two conversations share it (TRL's implicit prompt).
        prompt = _shared_prefix(_messages(chosen_raw, "chosen"), _messages(rejected_raw, "rejected"))
        if not any(m.get("role") == "user" for m in prompt):
            raise _Bad(
                "prompt",
                "is missing, and 'chosen' and 'rejected' do not start with the same user turn; "
                "add a 'prompt' field",
            )
    else:
        raise _Bad("prompt", "is missing; each record needs a 'prompt' (text or messages) before its answers")
    prompt = _with_system(prompt, data.get("system"))
    return NewPair(prompt, _answer(chosen_raw, "chosen", prompt), _answer(rejected_raw, "rejected", prompt))


def _sharegpt_turns(turns: Any, field: str) -> list[Message]:
    if not isinstance(turns, list) or not turns:
        raise _Bad(field, 'must be a non-empty list of {"from", "value"} turns')
    out = []
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise _Bad(field, f"turn {i} is not an object with 'from' and 'value'")
        speaker, value, role = sharegpt_turn(t)
        if role not in ("user", "assistant", "system"):
            raise _Bad(field, f"turn {i} comes from {speaker!r}; expected human, gpt or system")
        if not isinstance(value, str):
            raise _Bad(field, f"turn {i} has a 'value' that is not text")
        out.append({"role": role, "content": value})
    return out


def _sharegpt_answer(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise _Bad(field, 'must be one turn {"from": "gpt", "value": ...}')
    (turn,) = _sharegpt_turns([value], field)
    if turn["role"] != "assistant":
        raise _Bad(field, "must be an answer turn (from 'gpt' or 'assistant')")
    return turn["content"]


def _pair_from_ranking(data: dict) -> NewPair:
    if "conversations" in data:
        prompt = _sharegpt_turns(data["conversations"], "conversations")
    else:
        instruction = data.get("instruction")
        extra = data.get("input") or ""
        if not isinstance(instruction, str) or not isinstance(extra, str):
            raise _Bad("instruction", "must be text")
        text = alpaca_prompt(instruction, extra)
        if not text.strip():
            raise _Bad("instruction", "is empty; write the prompt or delete the record")
        prompt = [{"role": "user", "content": text}]
    prompt = _with_system(prompt, data.get("system"))
    chosen = _sharegpt_answer(_require(data, "chosen", "each record needs a 'chosen' turn"), "chosen")
    rejected = _sharegpt_answer(_require(data, "rejected", "each record needs a 'rejected' turn"), "rejected")
    return NewPair(prompt, chosen, rejected)


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad(
            field,
            f"is {json.dumps(value, ensure_ascii=False)[:40]}, not true or false; write true for a "
            "good answer and false for a bad one (without quotes)",
        )
    return value


def _single_from_unpaired(data: dict) -> NewPair:
    if "completion" in data:
        label = _boolean(_require(data, "label", "each record needs 'label': true or false"), "label")
        prompt_raw = _require(data, "prompt", "each record needs a 'prompt' before its completion")
        if isinstance(prompt_raw, str) and not prompt_raw.strip():
            raise _Bad("prompt", "is empty; write the prompt or delete the record")
        prompt = _with_system(_messages(prompt_raw, "prompt"), data.get("system"))
        answer = _answer(data["completion"], "completion", prompt)
    else:
        field = "messages" if "messages" in data else "conversations"
        tag = "label" if field == "messages" else "kto_tag"
        label = _boolean(_require(data, tag, f"each record needs '{tag}': true or false"), tag)
        raw = _require(data, field, "each record needs the conversation")
        msgs = _messages(raw, field) if field == "messages" else _sharegpt_turns(raw, field)
        if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
            raise _Bad(field, "must end with the assistant answer that the label rates")
        prompt, answer = _with_system(msgs[:-1], data.get("system")), msgs[-1]["content"]
    return NewPair(prompt, answer if label else None, None if label else answer)


_READERS: dict[str, Callable[[dict], NewPair]] = {
    TRL_PREFERENCE: _pair_from_trl,
    SHAREGPT_RANKING: _pair_from_ranking,
    UNPAIRED: _single_from_unpaired,
}


@dataclass
class PreferencePreview:
    path: Path
    form: str | None
    pairs: list[NewPair]
    problems: list[FormatProblem]
    problem_count: int
    row_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def description(self) -> str:
        complete = sum(1 for p in self.pairs if p.kind == "pair")
        good = sum(1 for p in self.pairs if p.kind == "desirable")
        bad = sum(1 for p in self.pairs if p.kind == "undesirable")
        parts = [f"{complete} pair{'s' if complete != 1 else ''}"] if complete or not (good or bad) else []
        if good or bad:
            parts.append(f"{good} good and {bad} bad single answer{'s' if good + bad != 1 else ''}")
        return (
            f"{FORM_NAMES.get(self.form or '', 'preference data')}, {self.row_count} rows: {', '.join(parts)}"
        )


def read_preferences(path: Path | str, form: str = "auto") -> PreferencePreview:
    """Read every record of a JSON/JSONL preference file, collecting every problem (never raises for content)."""
    path = Path(path)
    problems = _Problems(path)
    preview = PreferencePreview(path, None, [], [], 0)

    def done() -> PreferencePreview:
        preview.problems, preview.problem_count = problems.items, problems.count
        return preview

    if not path.exists():
        problems.add("no such file; check the path")
        return done()
    if _layout_of(path) != "json":
        problems.add(
            "preference data is read from JSON or JSONL files (one record per line); save it as .jsonl"
        )
        return done()
    text = _read_text(path, problems)
    if text is None:
        return done()
    _, rows_iter = _json_rows(text, problems)
    rows = list(rows_iter)
    preview.row_count = len(rows)
    detected = form_of_rows(rows)
    if form == "auto":
        form = detected or ""
    if form not in _READERS:
        if rows or problems.count == 0:
            problems.add(
                "does not hold preference data: expected records with 'prompt', 'chosen' and 'rejected' "
                "(or 'conversations' with 'chosen' and 'rejected'), or 'prompt', 'completion' and 'label' "
                "true/false"
            )
        return done()
    preview.form = form
    reader = _READERS[form]
    for r in rows:
        try:
            if not isinstance(r.data, dict):
                raise _Bad("", "is not an object with fields")
            p = reader(r.data)
            problem = check_pair(p)
            if problem:
                raise _Bad("prompt", problem)
            if p.kind == "pair" and (p.chosen or "").strip() == (p.rejected or "").strip():
                raise _Bad("rejected", "is the same as 'chosen'; a pair needs two different answers")
            for name, value in (("chosen", p.chosen), ("rejected", p.rejected)):
                if value is not None and not value.strip():
                    raise _Bad(
                        name if form != UNPAIRED else "completion",
                        "is empty; write the answer or delete the record",
                    )
        except _Bad as exc:
            problems.add(str(exc), line=r.line, record=None if r.line is not None else r.record)
            continue
        p.line = r.line if r.line is not None else r.record
        preview.pairs.append(p)
    if not rows and problems.count == 0:
        problems.add("holds no records; choose a file with preference pairs in it")
    return done()


def import_preferences(
    project: Project, path: Path | str, form: str = "auto", actor: str | None = None
) -> PreferencePreview:
    """Read ``path`` and add all its pairs in one transaction (undoable), or raise ImportFailed and add none."""
    preview = read_preferences(path, form)
    if not preview.ok:
        raise ImportFailed(preview.problems, max(preview.problem_count, 1), path)
    add_pairs(project, preview.pairs, actor=actor, file=str(path))
    return preview


def export_preferences(
    project: Project, path: Path | str, unpaired: bool = False, split: str | None = None
) -> int:
    """Write the pairs as JSONL (atomically) in TRL's conversational form; returns how many rows.

    Paired (default): {"prompt": [...], "chosen": [assistant], "rejected": [assistant]} for every
    complete pair. ``unpaired``: {"prompt", "completion", "label"} for every answer, as TRL's KTO
    reads them (a pair gives a good and a bad one). Votes not yet turned into pairs are turned first.
    """
    derive_from_votes(project)
    lines = []
    for p in pairs(project, PairFilter(split=split)):
        if unpaired:
            for answer, label in ((p.chosen, True), (p.rejected, False)):
                if answer is not None:
                    lines.append(
                        {
                            "prompt": p.prompt,
                            "completion": [{"role": "assistant", "content": answer}],
                            "label": label,
                        }
                    )
        elif p.kind == "pair":
            lines.append(
                {
                    "prompt": p.prompt,
                    "chosen": [{"role": "assistant", "content": p.chosen}],
                    "rejected": [{"role": "assistant", "content": p.rejected}],
                }
            )
    write_text_atomic(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    return len(lines)


# -- what the engine trains on -----------------------------------------------------------


@dataclass
class PreferenceData:
    """Preference rows as the engine reads them, already split. Each row is
    {"prompt": messages, "chosen": text | None, "rejected": text | None}."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    train_ids: list[int]
    eval_ids: list[int]


def preference_data(project: Project) -> PreferenceData:
    """Every live pair and single answer that passes ``check_pair`` (votes turned into pairs first)."""
    derive_from_votes(project)
    data = PreferenceData([], [], [], [])
    for p in pairs(project):
        if check_pair(p) is not None:
            continue
        row = {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        (data.eval if p.split == "eval" else data.train).append(row)
        (data.eval_ids if p.split == "eval" else data.train_ids).append(p.id)
    return data


def starting_adapter(project: Project, run_id: str) -> str:
    """The adapter folder of run ``run_id``, for ``start_from``; ValueError in words when there is none."""
    try:
        run = project.get_run(run_id)
    except KeyError:
        known = ", ".join(r.id for r in project.runs()[:5]) or "none yet"
        raise ValueError(f"no run '{run_id}' in {project.path} (recent runs: {known})") from None
    adapter = project.run_dir(run.id) / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise ValueError(f"run {run.id} has no adapter yet ({adapter}); finish or resume it first")
    return str(adapter)


def run_of_adapter(project: Project, start_from: str) -> str | None:
    """The id of the run whose adapter folder ``start_from`` is, if it is one of this project's."""
    if not start_from:
        return None
    path = Path(start_from)
    if path.name == "adapter" and path.parent.parent == project.runs_dir:
        return path.parent.name
    return None


def training_data(project: Project, objective: str) -> Any:
    """What a run with this objective trains on: the examples (sft) or the preference data (dpo, kto)."""
    if objective in ("dpo", "kto"):
        return preference_data(project)
    return project.prepared_data()
