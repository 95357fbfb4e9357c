"""Labelling: a project's label schema, one annotation per example and
annotator, the queues an annotator works through, and how far annotators agree.

The schema
- ``kind``: choose one of a set of labels (``classification``), write or
  correct the answer (``free_text``), or ``both``.
- The label set (name, position, colour, shortcut key) lives in ``label_set``.
- ``instructions`` for annotators, shown at the top of the mode.
- ``template``: the prompt put around the example's input when it becomes
  training data, e.g. ``"Classify this ticket: {input}"``.

How a labelled example becomes training data
- The example's messages always hold exactly what is trained on: accepting
  an example writes its last user turn as the template around the input, and
  its answer as the assistant turn after it (the label for
  ``classification``, the written answer otherwise). The input is read back
  by taking the template off again, so changing the template re-renders the
  examples labelled here, as one undoable step.

Saving and undo
- Every action is one transaction that writes the annotation row, the
  example and their journal entries together (``row:<table>`` entries are
  restored by ``Project.undo``/``redo``), so a killed process loses nothing
  that was confirmed, and Ctrl+Z steps back through labels as through edits.

Agreement
- Cohen's kappa per pair of annotators over the examples both labelled:
  (p_o - p_e) / (1 - p_e), with p_o the share they agree on and p_e the
  agreement expected from each one's label frequencies; None when p_e is 1
  (both used one and the same label throughout: kappa is not defined).
- Per label: the specific agreement 2·both / (times A chose it + times B
  chose it), pooled over every pair.
- An example is a disagreement when two annotators gave it different labels
  (different answers, for free text), until a reviewer decides it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from ftstudio.core.agreement import AgreementReport, agreement_of, normalise_answer
from ftstudio.core import review
from ftstudio.core.examples import Example
from ftstudio.core.project import Project, default_actor, now

KINDS = ("classification", "free_text", "both")
KIND_TITLES = {
    "classification": "Choose a label",
    "free_text": "Write the answer",
    "both": "Choose a label and write the answer",
}
SETTING_KIND = "labelling.kind"
SETTING_INSTRUCTIONS = "labelling.instructions"
SETTING_TEMPLATE = "labelling.template"
SETTING_OVERLAP = "labelling.overlap"
DEFAULT_OVERLAP = 10  # percent of the examples others labelled that come early in one's queue
INPUT = "{input}"
DEFAULT_TEMPLATE = INPUT
MAX_LABEL_LENGTH = 60
# Keys the mode uses for its own actions; a label cannot take them.
RESERVED_KEYS = {"s": "Skip", "f": "Flag for review"}
PALETTE = ("#2f6fb2", "#2e7d4f", "#b7791f", "#b42318", "#6941c6", "#0e7490", "#c11574", "#4d7c0f",
           "#475467", "#9a3412")
QUEUES = ("todo", "least_sure", "review", "flagged", "mine", "disagreements")
QUEUE_TITLES = {"todo": "To label", "least_sure": "To label, least sure first", "review":
                "Review: the model disagrees", "flagged": "Flagged", "mine": "Labelled by me",
                "disagreements": "Disagreements"}
QUEUE_HINTS = {
    "todo": "Examples you have not labelled yet: those without a label first (with a share of those others "
            "labelled, to measure agreement), skipped ones last",
    "least_sure": "The examples still to label that the newest run has predicted, those it is least sure of "
                  "first: your time goes where the model needs it",
    "review": "Examples sent from an evaluation's mistakes: the model answered otherwise; confirm or correct "
              "the label",
    "flagged": "Examples someone flagged for review",
    "mine": "Examples you labelled, to look over again",
    "disagreements": "Examples two annotators labelled differently, for a reviewer to decide",
}
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class LabellingError(ValueError):
    """Bad input to the label schema or an annotation, in words the user can act on."""


# -- the schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelDef:
    name: str
    position: int
    colour: str
    shortcut: str | None


@dataclass(frozen=True)
class Schema:
    kind: str
    labels: tuple[LabelDef, ...]
    instructions: str
    template: str

    @property
    def uses_labels(self) -> bool:
        return self.kind in ("classification", "both")

    @property
    def uses_answer(self) -> bool:
        return self.kind in ("free_text", "both")

    def label_for_key(self, key: str) -> str | None:
        key = key.lower()
        for label in self.labels:
            if label.shortcut == key:
                return label.name
        return None


def check_template(template: str) -> str | None:
    """None when ``template`` can wrap an input, else what is wrong with it."""
    count = template.count(INPUT)
    if count == 0:
        return f"The prompt template must contain {INPUT} where the example's text goes"
    if count > 1:
        return f"The prompt template may contain {INPUT} only once"
    return None


def wrap(template: str, text: str) -> str:
    """The prompt for ``text``: the template with the text in place of {input}."""
    prefix, _, suffix = template.partition(INPUT)
    return prefix + text + suffix


def unwrap(template: str, prompt: str) -> str:
    """The input inside ``prompt`` when it was made with ``template``, else ``prompt`` as it is."""
    prefix, _, suffix = template.partition(INPUT)
    if (prefix or suffix) and prompt.startswith(prefix) and prompt.endswith(suffix) \
            and len(prompt) >= len(prefix) + len(suffix):
        return prompt[len(prefix):len(prompt) - len(suffix)]
    return prompt


@dataclass(frozen=True)
class LabelItem:
    """What the mode shows of one example: the turns before, the input, the answer it has."""

    example_id: int
    system: str | None
    context: tuple[dict[str, Any], ...]
    input: str
    answer: str | None


def _last_user(messages: list[dict[str, Any]]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None


def item_of(example: Example, template: str) -> LabelItem:
    messages = example.messages
    u = _last_user(messages)
    if u is None:
        answer = example.reference_answer()
        return LabelItem(example.id, example.system, (), "", answer)
    answer = None
    if u + 1 < len(messages) and messages[u + 1].get("role") == "assistant":
        answer = str(messages[u + 1].get("content") or "")
    return LabelItem(example.id, example.system, tuple(messages[:u]),
                     unwrap(template, str(messages[u].get("content") or "")), answer)


def training_messages(example: Example, template: str, answer: str, old_template: str | None = None
                      ) -> list[dict[str, Any]]:
    """The example's messages as they are trained on: the template around its input, then ``answer``.

    Turns before the last user turn are kept; a later assistant turn is replaced.
    """
    messages = example.messages
    u = _last_user(messages)
    if u is None:
        return [{"role": "user", "content": wrap(template, "")}, {"role": "assistant", "content": answer}]
    user = dict(messages[u])
    user["content"] = wrap(template, unwrap(old_template or template, str(user.get("content") or "")))
    return [*messages[:u], user, {"role": "assistant", "content": answer}]


def prompt_messages(example: Example, template: str) -> list[dict[str, Any]]:
    """What a model is asked for a suggestion: the system prompt, earlier turns, the templated input."""
    item = item_of(example, template)
    out: list[dict[str, Any]] = []
    if example.system:
        out.append({"role": "system", "content": example.system})
    out.extend(item.context)
    out.append({"role": "user", "content": wrap(template, item.input)})
    return out


# -- annotations and progress (agreement: core/agreement.py) -------------------------------------------------------


@dataclass(frozen=True)
class Annotation:
    id: int
    example_id: int
    annotator: str
    label: str | None
    answer: str | None
    status: str
    comment: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Progress:
    total: int  # live examples
    done: int  # labelled (or flagged) by this annotator
    flagged: int  # examples flagged for review, by anyone

    @property
    def text(self) -> str:
        return f"{self.done:,} of {self.total:,}, {self.flagged:,} flagged"


class SessionStats:
    """How fast this session goes: examples per minute over the time spent labelling.

    A pause longer than ``idle_s`` counts as ``idle_s``, so a coffee break
    does not drag the rate down.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, idle_s: float = 120.0) -> None:
        self._clock = clock
        self.idle_s = idle_s
        self.started = clock()
        self._last = self.started
        self._active = 0.0
        self.count = 0

    def record(self, n: int = 1) -> None:
        t = self._clock()
        self._active += min(t - self._last, self.idle_s)
        self._last = t
        self.count = max(0, self.count + n)

    @property
    def active_s(self) -> float:
        """Seconds spent labelling so far (long pauses cut short)."""
        return self._active

    @property
    def per_minute(self) -> float | None:
        if self.count == 0 or self._active <= 0:
            return None
        return self.count / (self._active / 60.0)


@dataclass(frozen=True)
class UndoResult:
    ids: list[int]
    schema_changed: bool  # the label set or the template changed back


# -- the project's labelling ------------------------------------------------------------------


class _Edit:
    """The journal entries of one action: one group, written in the caller's transaction."""

    def __init__(self, project: Project, c: sqlite3.Connection, actor: str) -> None:
        self.project, self.c, self.actor = project, c, actor
        self._group: int | None = None

    @property
    def group(self) -> int:
        if self._group is None:
            self._group = self.project.journal_group(self.c, self.actor)  # one journal for the project
        return self._group

    @property
    def changed(self) -> bool:
        return self._group is not None

    def example(self, example_id: int, **changes: Any) -> bool:
        """Change columns of one example (as ``Project.update_examples`` does); False if nothing changed."""
        encoded = dict(changes)
        if "messages" in encoded:
            encoded["messages"] = json.dumps(encoded["messages"], ensure_ascii=False)
        row = self.c.execute("SELECT * FROM examples WHERE id = ?", (example_id,)).fetchone()
        if row is None:
            raise KeyError(f"no example {example_id}")
        before = {k: row[k] for k in encoded if row[k] != encoded[k]}
        if not before:
            return False
        after = {k: encoded[k] for k in before}
        group = self.group
        self.project.journal_example_change(self.c, group, self.actor, example_id, before, after)
        return True

    def row(self, table: str, example_id: int | None, before: dict | None, after: dict | None) -> None:
        self.project.journal_row_change(self.c, self.group, self.actor, table, example_id, before, after)


class Labelling:
    """The labelling side of one open project. Every change commits before it returns."""

    def __init__(self, project: Project) -> None:
        self.project = project

    # -- schema -----------------------------------------------------------------------------

    def kind(self) -> str:
        value = self.project.setting(SETTING_KIND)
        if value in KINDS:
            return value
        # Not chosen yet: labels if the project has any, else answers.
        has_labels = self.project.execute("SELECT 1 FROM label_set LIMIT 1").fetchone() is not None \
            or self.project.execute("SELECT 1 FROM examples WHERE deleted = 0 AND label IS NOT NULL LIMIT 1"
                                    ).fetchone() is not None
        return "classification" if has_labels else "free_text"

    def set_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise LabellingError(f"Unknown kind of labelling {kind!r}; choose one of {', '.join(KINDS)}")
        self.project.set_setting(SETTING_KIND, kind)

    def instructions(self) -> str:
        return str(self.project.setting(SETTING_INSTRUCTIONS, "") or "")

    def set_instructions(self, text: str) -> None:
        self.project.set_setting(SETTING_INSTRUCTIONS, text)

    def template(self) -> str:
        value = self.project.setting(SETTING_TEMPLATE)
        return value if isinstance(value, str) and check_template(value) is None else DEFAULT_TEMPLATE

    def overlap(self) -> int:
        """Percent of the examples someone else labelled that come early in an annotator's queue, so
        that some examples get two labels and agreement can be measured."""
        try:
            return max(0, min(100, int(self.project.setting(SETTING_OVERLAP, DEFAULT_OVERLAP))))
        except (TypeError, ValueError):
            return DEFAULT_OVERLAP

    def set_overlap(self, percent: int) -> None:
        if not 0 <= int(percent) <= 100:
            raise LabellingError("The share of examples labelled twice must be between 0 and 100 percent")
        self.project.set_setting(SETTING_OVERLAP, int(percent))

    def labels(self) -> list[LabelDef]:
        return [LabelDef(r["name"], r["position"], r["colour"], r["shortcut"]) for r in self.project.execute(
            "SELECT * FROM label_set ORDER BY position, name")]

    def schema(self) -> Schema:
        return Schema(self.kind(), tuple(self.labels()), self.instructions(), self.template())

    def label_usage(self) -> dict[str, int]:
        """How many live examples carry each label (labels outside the set included)."""
        return {r[0]: r[1] for r in self.project.execute(
            "SELECT label, COUNT(*) FROM examples WHERE deleted = 0 AND label IS NOT NULL GROUP BY label")}

    def labels_in_data(self) -> list[str]:
        """Labels examples carry that the label set does not have yet."""
        known = {d.name for d in self.labels()}
        return sorted(set(self.label_usage()) - known)

    @staticmethod
    def _check_name(name: str) -> str:
        name = (name or "").strip()
        if not name:
            raise LabellingError("A label needs a name")
        if "\n" in name or "\r" in name:
            raise LabellingError("A label name must fit on one line")
        if len(name) > MAX_LABEL_LENGTH:
            raise LabellingError(f"A label name may be at most {MAX_LABEL_LENGTH} characters long")
        return name

    @staticmethod
    def _check_key(key: str | None, others: dict[str, str]) -> str | None:
        if key is None or not key.strip():
            return None
        key = key.strip().lower()
        if len(key) != 1 or not key.isalnum() or not key.isascii():
            raise LabellingError(f"The shortcut key must be one letter or digit, not {key!r}")
        if key in RESERVED_KEYS:
            raise LabellingError(f"The key {key.upper()} is taken by {RESERVED_KEYS[key]}; choose another")
        if key in others:
            raise LabellingError(f"The key {key.upper()} already picks '{others[key]}'; choose another")
        return key

    @staticmethod
    def _label_row(c: sqlite3.Connection, name: str) -> dict | None:
        row = c.execute("SELECT * FROM label_set WHERE name = ?", (name,)).fetchone()
        return dict(row) if row else None

    def add_label(self, name: str, actor: str, colour: str | None = None, shortcut: str | None = None) -> LabelDef:
        with self.project.transaction() as c:
            return self._add_label(_Edit(self.project, c, actor), name, colour, shortcut)

    def _add_label(self, edit: _Edit, name: str, colour: str | None, shortcut: str | None) -> LabelDef:
        name = self._check_name(name)
        c = edit.c
        rows = [dict(r) for r in c.execute("SELECT * FROM label_set ORDER BY position")]
        if any(r["name"] == name for r in rows):
            raise LabellingError(f"The label set already has '{name}'")
        keys = {r["shortcut"]: r["name"] for r in rows if r["shortcut"]}
        if shortcut is None:
            shortcut = next((str(d) for d in range(1, 10) if str(d) not in keys), None)
        shortcut = self._check_key(shortcut, keys)
        if colour is None:
            used = {r["colour"] for r in rows}
            colour = next((p for p in PALETTE if p not in used), PALETTE[len(rows) % len(PALETTE)])
        if not _COLOUR.match(colour):
            raise LabellingError(f"The colour must look like #2f6fb2, not {colour!r}")
        row = {"name": name, "position": len(rows), "colour": colour.lower(), "shortcut": shortcut}
        c.execute("INSERT INTO label_set (name, position, colour, shortcut) VALUES (?, ?, ?, ?)",
                  tuple(row.values()))
        edit.row("label_set", None, None, row)
        return LabelDef(name, len(rows), colour.lower(), shortcut)

    def adopt_data_labels(self, actor: str) -> list[str]:
        """Add the labels the examples carry to the label set, most used first (one undoable step)."""
        usage = self.label_usage()
        names = sorted(self.labels_in_data(), key=lambda n: (-usage.get(n, 0), n))
        added = []
        with self.project.transaction() as c:
            edit = _Edit(self.project, c, actor)
            for name in names:
                try:
                    self._add_label(edit, name, None, None)
                except LabellingError:  # a name that cannot be a label (too long, two lines): left out
                    continue
                added.append(name)
        return added

    def _update_label_row(self, name: str, actor: str, **changes: Any) -> None:
        with self.project.transaction() as c:
            before = self._label_row(c, name)
            if before is None:
                raise LabellingError(f"There is no label '{name}' in the label set")
            after = {**before, **changes}
            if after == before:
                return
            c.execute("UPDATE label_set SET " + ", ".join(f"{k} = ?" for k in changes) + " WHERE name = ?",
                      (*changes.values(), name))
            _Edit(self.project, c, actor).row("label_set", None, before, after)

    def set_label_colour(self, name: str, colour: str, actor: str) -> None:
        if not _COLOUR.match(colour or ""):
            raise LabellingError(f"The colour must look like #2f6fb2, not {colour!r}")
        self._update_label_row(name, actor, colour=colour.lower())

    def set_label_shortcut(self, name: str, key: str | None, actor: str) -> None:
        others = {d.shortcut: d.name for d in self.labels() if d.shortcut and d.name != name}
        self._update_label_row(name, actor, shortcut=self._check_key(key, others))

    def move_label(self, name: str, position: int, actor: str) -> None:
        """Put ``name`` at ``position`` (0 first) in the label set; the others close up."""
        with self.project.transaction() as c:
            rows = [dict(r) for r in c.execute("SELECT * FROM label_set ORDER BY position, name")]
            names = [r["name"] for r in rows]
            if name not in names:
                raise LabellingError(f"There is no label '{name}' in the label set")
            names.remove(name)
            names.insert(max(0, min(position, len(names))), name)
            edit = _Edit(self.project, c, actor)
            for r in rows:
                new_pos = names.index(r["name"])
                if new_pos != r["position"]:
                    c.execute("UPDATE label_set SET position = ? WHERE name = ?", (new_pos, r["name"]))
                    edit.row("label_set", None, r, {**r, "position": new_pos})

    def remove_label(self, name: str, actor: str) -> None:
        """Take an unused label out of the set (rename it into another label to merge it)."""
        used = self.label_usage().get(name, 0)
        if used:
            raise LabellingError(
                f"{used:,} example{'s carry' if used != 1 else ' carries'} '{name}': rename it to another "
                "label to merge them, or relabel them first")
        with self.project.transaction() as c:
            before = self._label_row(c, name)
            if before is None:
                raise LabellingError(f"There is no label '{name}' in the label set")
            c.execute("DELETE FROM label_set WHERE name = ?", (name,))
            edit = _Edit(self.project, c, actor)
            edit.row("label_set", None, before, None)
            for r in [dict(x) for x in c.execute("SELECT * FROM label_set WHERE position > ? ORDER BY position",
                                                 (before["position"],))]:
                c.execute("UPDATE label_set SET position = ? WHERE name = ?", (r["position"] - 1, r["name"]))
                edit.row("label_set", None, r, {**r, "position": r["position"] - 1})

    def rename_label(self, old: str, new: str, actor: str) -> int:
        """Rename a label everywhere: the set, every example that carries it (and its answer, where the
        answer is the label), every annotation and review. Renaming to a label the set already has merges
        the two. One undoable step; returns how many examples changed."""
        new = self._check_name(new)
        if new == old:
            return 0
        changed = 0
        with self.project.transaction() as c:
            before = self._label_row(c, old)
            if before is None:
                raise LabellingError(f"There is no label '{old}' in the label set")
            edit = _Edit(self.project, c, actor)
            target = self._label_row(c, new)
            c.execute("DELETE FROM label_set WHERE name = ?", (old,))
            if target is None:
                after = {**before, "name": new}
                c.execute("INSERT INTO label_set (name, position, colour, shortcut) VALUES (?, ?, ?, ?)",
                          (new, before["position"], before["colour"], before["shortcut"]))
                edit.row("label_set", None, before, after)
            else:  # a merge: the old label goes, the others close up
                edit.row("label_set", None, before, None)
                for r in [dict(x) for x in c.execute(
                        "SELECT * FROM label_set WHERE position > ? ORDER BY position", (before["position"],))]:
                    c.execute("UPDATE label_set SET position = ? WHERE name = ?", (r["position"] - 1, r["name"]))
                    edit.row("label_set", None, r, {**r, "position": r["position"] - 1})
            for row in c.execute("SELECT id, messages FROM examples WHERE label = ?", (old,)).fetchall():
                messages = json.loads(row["messages"])
                if messages and messages[-1].get("role") == "assistant" and messages[-1].get("content") == old:
                    messages = [*messages[:-1], {**messages[-1], "content": new}]
                    edit.example(row["id"], label=new, messages=messages)
                else:
                    edit.example(row["id"], label=new)
                changed += 1
            for table in ("annotations", "label_reviews"):
                for row in [dict(r) for r in c.execute(f"SELECT * FROM {table} WHERE label = ?", (old,))]:
                    after = {**row, "label": new}
                    if table == "annotations" and row["answer"] == old:
                        after["answer"] = new
                    keys = ("id",) if table == "annotations" else ("example_id",)
                    c.execute(f"UPDATE {table} SET label = ?, answer = ? WHERE " +
                              " AND ".join(f"{k} = ?" for k in keys),
                              (new, after["answer"], *(row[k] for k in keys)))
                    edit.row(table, row["example_id"], row, after)
        return changed

    def set_template(self, template: str, actor: str) -> int:
        """Use ``template`` from now on, and re-render the examples labelled here with it.

        One undoable step; returns how many examples changed."""
        problem = check_template(template)
        if problem:
            raise LabellingError(problem)
        old = self.template()
        changed = 0
        with self.project.transaction() as c:
            edit = _Edit(self.project, c, actor)
            before_row = c.execute("SELECT * FROM settings WHERE key = ?", (SETTING_TEMPLATE,)).fetchone()
            before = dict(before_row) if before_row else None
            after = {"key": SETTING_TEMPLATE, "value": json.dumps(template)}
            if before == after:
                return 0
            c.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (SETTING_TEMPLATE, after["value"]))
            edit.row("settings", None, before, after)
            if template != old:
                ids = [r[0] for r in c.execute(
                    "SELECT DISTINCT e.id FROM examples e JOIN annotations a ON a.example_id = e.id "
                    "WHERE e.deleted = 0 AND a.status = 'labelled' ORDER BY e.id")]
                for ex in self.project.get_examples(ids):
                    u = _last_user(ex.messages)
                    if u is None:
                        continue
                    content = str(ex.messages[u].get("content") or "")
                    if wrap(old, unwrap(old, content)) != content:
                        continue  # edited by hand since: leave it as it is
                    messages = list(ex.messages)
                    messages[u] = {**messages[u], "content": wrap(template, unwrap(old, content))}
                    if edit.example(ex.id, messages=messages):
                        changed += 1
        return changed

    # -- annotations -------------------------------------------------------------------------

    @staticmethod
    def _annotation(row: sqlite3.Row) -> Annotation:
        return Annotation(row["id"], row["example_id"], row["annotator"], row["label"], row["answer"],
                          row["status"], row["comment"], row["created_at"], row["updated_at"])

    def annotation(self, example_id: int, annotator: str) -> Annotation | None:
        row = self.project.execute("SELECT * FROM annotations WHERE example_id = ? AND annotator = ?",
                                   (example_id, annotator)).fetchone()
        return self._annotation(row) if row else None

    def annotations(self, example_id: int) -> list[Annotation]:
        return [self._annotation(r) for r in self.project.execute(
            "SELECT * FROM annotations WHERE example_id = ? ORDER BY annotator", (example_id,))]

    def _put_annotation(self, edit: _Edit, example_id: int, annotator: str, **fields: Any) -> None:
        c = edit.c
        row = c.execute("SELECT * FROM annotations WHERE example_id = ? AND annotator = ?",
                        (example_id, annotator)).fetchone()
        stamp = now()
        if row is not None:
            before = dict(row)
            if all(before[k] == v for k, v in fields.items()):
                return
            after = {**before, **fields, "updated_at": stamp}
            c.execute("UPDATE annotations SET " + ", ".join(f"{k} = ?" for k in (*fields, "updated_at")) +
                      " WHERE id = ?", (*fields.values(), stamp, before["id"]))
        else:
            before = None
            values = {"example_id": example_id, "annotator": annotator, "label": None, "answer": None,
                      "comment": None, **fields, "created_at": stamp, "updated_at": stamp}
            cur = c.execute(f"INSERT INTO annotations ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                            tuple(values.values()))
            after = {"id": cur.lastrowid, **values}
        edit.row("annotations", example_id, before, after)

    @staticmethod
    def _check_annotator(annotator: str) -> str:
        annotator = (annotator or "").strip()
        if not annotator:
            raise LabellingError("Enter your name first: it goes on every label you make")
        return annotator

    def accept(self, example_id: int, annotator: str, label: str | None = None, answer: str | None = None,
               resolve: bool = False) -> bool:
        """Label ``example_id`` as ``annotator`` says: the annotation, the example's label and the
        training conversation, together. ``resolve``: this decides a disagreement. Returns whether
        anything changed."""
        annotator = self._check_annotator(annotator)
        schema = self.schema()
        example = self.project.get_example(example_id)
        if schema.uses_labels:
            if not label:
                raise LabellingError("Choose a label first")
            if label not in {d.name for d in schema.labels} and label != example.label:
                raise LabellingError(f"'{label}' is not in the label set; add it there first")
        else:
            label = None
        if schema.uses_answer:
            if answer is None or not answer.strip():
                raise LabellingError("Write the answer first (or skip this example)")
            answer = answer.strip()
            trained = answer
        else:
            answer = None
            trained = label or ""  # a classification schema: the label was checked above
        changes: dict[str, Any] = {"status": "labelled", "annotator": annotator,
                                   "messages": training_messages(example, schema.template, trained)}
        if schema.uses_labels:
            changes["label"] = label
        with self.project.transaction() as c:
            edit = _Edit(self.project, c, annotator)
            self._put_annotation(edit, example_id, annotator, status="labelled", label=label, answer=answer)
            edit.example(example_id, **changes)
            if resolve:
                self._put_review(edit, example_id, annotator, label, answer)
            return edit.changed

    def _put_review(self, edit: _Edit, example_id: int, reviewer: str, label: str | None,
                    answer: str | None) -> None:
        c = edit.c
        row = c.execute("SELECT * FROM label_reviews WHERE example_id = ?", (example_id,)).fetchone()
        before = dict(row) if row else None
        after = {"example_id": example_id, "reviewer": reviewer, "label": label, "answer": answer,
                 "created_at": now()}
        c.execute("INSERT OR REPLACE INTO label_reviews (example_id, reviewer, label, answer, created_at) "
                  "VALUES (?, ?, ?, ?, ?)", tuple(after.values()))
        edit.row("label_reviews", example_id, before, after)

    def flag(self, example_id: int, annotator: str, label: str | None = None, answer: str | None = None,
             comment: str | None = None) -> bool:
        """Flag ``example_id`` for review: it leaves the training data until someone accepts it."""
        annotator = self._check_annotator(annotator)
        self.project.get_example(example_id)
        with self.project.transaction() as c:
            edit = _Edit(self.project, c, annotator)
            fields: dict[str, Any] = {"status": "flagged", "label": label, "answer": (answer or "").strip() or None}
            if comment is not None:
                fields["comment"] = comment.strip() or None
            self._put_annotation(edit, example_id, annotator, **fields)
            edit.example(example_id, status="flagged")
            return edit.changed

    def skip(self, example_id: int, annotator: str) -> bool:
        """Put ``example_id`` at the back of this annotator's queue (a label already given stays)."""
        annotator = self._check_annotator(annotator)
        with self.project.transaction() as c:
            edit = _Edit(self.project, c, annotator)
            row = c.execute("SELECT * FROM annotations WHERE example_id = ? AND annotator = ?",
                            (example_id, annotator)).fetchone()
            if row is None:
                self._put_annotation(edit, example_id, annotator, status="skipped")
            elif row["status"] == "skipped":  # skipped again: to the back once more
                before = dict(row)
                stamp = now()
                c.execute("UPDATE annotations SET updated_at = ? WHERE id = ?", (stamp, before["id"]))
                edit.row("annotations", example_id, before, {**before, "updated_at": stamp})
            return edit.changed

    # -- queues ------------------------------------------------------------------------------

    _TODO = ("SELECT e.id FROM examples e LEFT JOIN annotations a ON a.example_id = e.id AND a.annotator = ? "
             "WHERE e.deleted = 0 AND (a.id IS NULL OR a.status = 'skipped')")

    def queue(self, name: str, annotator: str) -> list[int]:
        """The example ids of queue ``name`` for ``annotator``, in the order to work through them."""
        if name == "todo":
            # Unlabelled examples first, and among them, spread evenly by id, the chosen share of the
            # examples others labelled ((id * 61) % 100 runs through 0..99 every hundred ids).
            return [r[0] for r in self.project.execute(
                self._TODO + " ORDER BY a.id IS NOT NULL, CASE WHEN e.status = 'unlabelled' THEN 0 "
                "WHEN (e.id * 61) % 100 < ? AND EXISTS (SELECT 1 FROM annotations o WHERE o.example_id = e.id "
                "AND o.annotator != ? AND o.status = 'labelled') THEN 0 ELSE 1 END, a.updated_at, e.id",
                (annotator, self.overlap(), annotator))]
        if name == "least_sure":
            run_id = review.assisting_run(self.project)
            return review.least_sure_first(self.project, run_id, self.queue("todo", annotator)) if run_id else []
        if name == "review":
            return review.review_queue(self.project)
        if name == "flagged":
            return [r[0] for r in self.project.execute(
                "SELECT id FROM examples WHERE deleted = 0 AND status = 'flagged' ORDER BY id")]
        if name == "mine":
            return [r[0] for r in self.project.execute(
                "SELECT e.id FROM examples e JOIN annotations a ON a.example_id = e.id "
                "WHERE e.deleted = 0 AND a.annotator = ? AND a.status IN ('labelled', 'flagged') ORDER BY e.id",
                (annotator,))]
        if name == "disagreements":
            return self.disagreement_ids()
        raise LabellingError(f"Unknown queue {name!r}; choose one of {', '.join(QUEUES)}")

    def in_queue(self, name: str, example_id: int, annotator: str) -> bool:
        """Whether ``example_id`` belongs to queue ``name`` now (cheap: one example)."""
        if name == "todo":
            return self.project.execute(self._TODO + " AND e.id = ?", (annotator, example_id)).fetchone() is not None
        if name == "least_sure":
            run_id = review.assisting_run(self.project)
            return run_id is not None and self.in_queue("todo", example_id, annotator) and \
                review.prediction(self.project, run_id, example_id) is not None
        if name == "review":
            return review.in_review_queue(self.project, example_id)
        if name == "flagged":
            return self.project.execute("SELECT 1 FROM examples WHERE id = ? AND deleted = 0 AND status = 'flagged'",
                                        (example_id,)).fetchone() is not None
        if name == "mine":
            return self.project.execute(
                "SELECT 1 FROM annotations a JOIN examples e ON e.id = a.example_id WHERE a.example_id = ? "
                "AND a.annotator = ? AND a.status IN ('labelled', 'flagged') AND e.deleted = 0",
                (example_id, annotator)).fetchone() is not None
        if name == "disagreements":
            return bool(self._disagreements([example_id]))
        raise LabellingError(f"Unknown queue {name!r}")

    def queue_sizes(self, annotator: str) -> dict[str, int]:
        todo = self.project.execute("SELECT COUNT(*) FROM (" + self._TODO + ")", (annotator,)).fetchone()[0]
        run_id = review.assisting_run(self.project)
        least_sure = len(review.least_sure_first(self.project, run_id, self.queue("todo", annotator))) if run_id else 0
        return {"todo": todo, "least_sure": least_sure, "review": len(review.review_queue(self.project)),
                "flagged": self.progress(annotator).flagged,
                "mine": self.project.execute(
                    "SELECT COUNT(*) FROM annotations a JOIN examples e ON e.id = a.example_id WHERE e.deleted = 0 "
                    "AND a.annotator = ? AND a.status IN ('labelled', 'flagged')", (annotator,)).fetchone()[0],
                "disagreements": len(self.disagreement_ids())}

    def progress(self, annotator: str) -> Progress:
        total = self.project.execute("SELECT COUNT(*) FROM examples WHERE deleted = 0").fetchone()[0]
        # Counted from the (annotator, status) index, less the few on deleted examples: no join over all.
        done = self.project.execute(
            "SELECT COUNT(*) FROM annotations WHERE annotator = ? AND status IN ('labelled', 'flagged')",
            (annotator,)).fetchone()[0] - self.project.execute(
            "SELECT COUNT(*) FROM examples e WHERE e.deleted = 1 AND EXISTS (SELECT 1 FROM annotations a "
            "WHERE a.example_id = e.id AND a.annotator = ? AND a.status IN ('labelled', 'flagged'))",
            (annotator,)).fetchone()[0]
        flagged = self.project.execute(
            "SELECT COUNT(*) FROM examples WHERE deleted = 0 AND status = 'flagged'").fetchone()[0]
        return Progress(total, done, flagged)

    def annotators(self) -> list[str]:
        return [r[0] for r in self.project.execute("SELECT DISTINCT annotator FROM annotations ORDER BY annotator")]

    # -- agreement ---------------------------------------------------------------------------

    def _field(self) -> str:
        return "label" if self.schema().uses_labels else "answer"

    def _values(self, ids: list[int] | None = None, field_name: str | None = None
                ) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
        """({example: {annotator: value}}, {example: latest annotation time}) over labelled annotations."""
        field_name = field_name or self._field()
        sql = ("SELECT a.example_id, a.annotator, a.label, a.answer, a.updated_at FROM annotations a "
               "JOIN examples e ON e.id = a.example_id WHERE e.deleted = 0 AND a.status = 'labelled'")
        params: list[Any] = []
        if ids is not None:
            sql += f" AND a.example_id IN ({','.join('?' * len(ids))})"
            params = list(ids)
        values: dict[int, dict[str, Any]] = defaultdict(dict)
        latest: dict[int, str] = {}
        for r in self.project.execute(sql, params):
            value = r["label"] if field_name == "label" else normalise_answer(r["answer"])
            if value is None:
                continue
            values[r["example_id"]][r["annotator"]] = value
            latest[r["example_id"]] = max(latest.get(r["example_id"], ""), r["updated_at"])
        return dict(values), latest

    def agreement(self) -> AgreementReport:
        field_name = self._field()
        values, _ = self._values(field_name=field_name)
        report = agreement_of(values, field_name)
        report.disagreements = len(self.disagreement_ids())
        return report

    def _disagreements(self, ids: list[int] | None = None) -> list[int]:
        values, latest = self._values(ids)
        split = [i for i, per in values.items() if len(per) >= 2 and len(set(per.values())) > 1]
        if not split:
            return []
        reviewed = {r[0]: r[1] for r in self.project.execute(
            f"SELECT example_id, created_at FROM label_reviews WHERE example_id IN ({','.join('?' * len(split))})",
            split)}
        return sorted(i for i in split if i not in reviewed or reviewed[i] < latest[i])

    def disagreement_ids(self) -> list[int]:
        """Examples annotators labelled differently that no reviewer has decided since."""
        return self._disagreements()

    def review(self, example_id: int) -> dict[str, Any] | None:
        row = self.project.execute("SELECT * FROM label_reviews WHERE example_id = ?", (example_id,)).fetchone()
        return dict(row) if row else None

    # -- undo --------------------------------------------------------------------------------

    def _latest_group_changes_schema(self, undone: int, actor: str | None) -> bool:
        pick = "MAX" if undone == 0 else "MIN"
        row = self.project.execute(
            f"SELECT 1 FROM journal WHERE group_id = (SELECT {pick}(group_id) FROM journal WHERE undone = ? "
            "AND actor = ?) AND action IN ('row:label_set', 'row:settings') LIMIT 1",
            (undone, actor or default_actor())).fetchone()
        return row is not None

    def undo(self, actor: str | None = None) -> UndoResult:
        """Undo ``actor``'s latest change (a label, a skip, a rename...); raises UndoConflict
        when someone else has changed the same thing since."""
        schema = self._latest_group_changes_schema(0, actor)
        return UndoResult(self.project.undo(actor), schema)

    def redo(self, actor: str | None = None) -> UndoResult:
        schema = self._latest_group_changes_schema(1, actor)
        return UndoResult(self.project.redo(actor), schema)
