"""The project: a folder holding one SQLite database and a ``runs/`` folder.

Every public method that changes something commits before it returns, so
killing the process at any moment loses nothing a call returned from. Every
change to an example goes into the edit journal (who, when, before, after) in
the same transaction, which is what undo and redo replay.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import math
import random
import re
import sqlite3
import sys
import time
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import yaml

from ftstudio.core import liveness
from ftstudio.core.examples import SPLITS, STATUSES, Example, NewExample, PreparedData, check_conversation
from ftstudio.core.fileio import (
    disk_full_message,
    display_path,
    is_disk_full,
    remove_stale_temp_dirs,
    remove_tree_inside,
    write_text_atomic,
)
from ftstudio.core.where import Where

DB_NAME = "project.db"
RUNS_DIR = "runs"
BACKUPS_DIR = "backups"
PROJECT_SUFFIX = ".ftstudio"
# Automatic snapshots of project.db kept in backups/ (the oldest go first), and how
# often the app takes one while the project is open and changing.
BACKUPS_KEPT = 5
BACKUP_INTERVAL_S = 15 * 60

# A run id names a folder under runs/: letters, digits, '.', '_' and '-', not starting
# with a dot, so it can never climb out of the project or hide.
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# SQLite waits this long for another writer inside each attempt; between attempts we
# say that we are waiting, so a writer never sits silent and never gives up early.
LOCK_STEP_S = 2.0
WRITE_PATIENCE_S = 600.0
EVAL_FRACTION_MAX = 0.9

# Each entry moves the schema from version i to i + 1. Never edit a released
# entry: add a new one, so old projects migrate forward on open.
MIGRATIONS: list[str] = [
    # 0 -> 1: examples, journal, runs, settings
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE examples (
        id INTEGER PRIMARY KEY,
        messages TEXT NOT NULL,
        system TEXT,
        split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
        status TEXT NOT NULL DEFAULT 'labelled'
            CHECK (status IN ('unlabelled', 'labelled', 'flagged', 'skipped')),
        label TEXT,
        annotator TEXT,
        source TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX examples_live ON examples (deleted, id);
    CREATE INDEX examples_label ON examples (label);
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        group_id INTEGER NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        example_id INTEGER REFERENCES examples (id),
        before TEXT,
        after TEXT,
        -- 0: in effect; 1: undone (can be redone); 2: undone and dropped by a later edit
        undone INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX journal_group ON journal (group_id);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        status TEXT NOT NULL,
        model TEXT NOT NULL,
        method TEXT NOT NULL,
        config TEXT NOT NULL,
        steps INTEGER NOT NULL DEFAULT 0,
        train_loss REAL,
        eval_loss REAL,
        message TEXT
    );
    """,
    # 1 -> 2: labelling (label set, one annotation per example and annotator)
    """
    CREATE TABLE label_set (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        colour TEXT NOT NULL DEFAULT '#6b7280',
        shortcut TEXT
    );
    CREATE TABLE annotations (
        id INTEGER PRIMARY KEY,
        example_id INTEGER NOT NULL REFERENCES examples (id),
        annotator TEXT NOT NULL,
        label TEXT,
        answer TEXT,
        status TEXT NOT NULL CHECK (status IN ('labelled', 'flagged', 'skipped')),
        comment TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (example_id, annotator)
    );
    CREATE INDEX annotations_example ON annotations (example_id);
    """,
    # 2 -> 3: comparisons, generations, blind votes, stored evaluations
    """
    CREATE TABLE generations (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL,
        example_id INTEGER REFERENCES examples (id),
        prompt TEXT NOT NULL,
        output TEXT NOT NULL,
        settings TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE votes (
        id INTEGER PRIMARY KEY,
        prompt TEXT NOT NULL,
        example_id INTEGER REFERENCES examples (id),
        -- JSON list of generation ids in the order they were shown
        shown TEXT NOT NULL,
        -- generation id of the chosen output; NULL for a tie or both bad
        chosen INTEGER REFERENCES generations (id),
        verdict TEXT NOT NULL CHECK (verdict IN ('pick', 'tie', 'both_bad')),
        comment TEXT,
        voter TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY,
        run_id TEXT,
        model TEXT NOT NULL,
        results TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 3 -> 4: a reviewer's decision on an example the annotators disagreed on;
    # the annotator's own queue ("labelled by me") reads annotations by annotator.
    """
    CREATE TABLE label_reviews (
        example_id INTEGER PRIMARY KEY REFERENCES examples (id),
        reviewer TEXT NOT NULL,
        label TEXT,
        answer TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX annotations_annotator ON annotations (annotator, status);
    """,
    # 4 -> 5: every edit drops what could be redone (undone = 1) and undo/redo look for the
    # newest/oldest group by state: without this index each edit scanned the whole journal.
    # Counting examples by status (the labelling progress) reads an index, not every row.
    """
    CREATE INDEX journal_state ON journal (undone, group_id);
    CREATE INDEX examples_status ON examples (deleted, status);
    """,
    # 5 -> 6: undo and redo go by the person who made the change: their newest and oldest
    # group by state.
    """
    CREATE INDEX journal_actor_state ON journal (actor, undone, group_id);
    """,
    # 6 -> 7: examples sent from an evaluation's mistakes to the Label page's review queue, and a
    # run's predicted label per example (kept per run id, so runs never mix).
    """
    CREATE TABLE review_requests (
        example_id INTEGER PRIMARY KEY REFERENCES examples (id),
        model TEXT NOT NULL,
        answer TEXT,
        confidence REAL,
        sent_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        seen_updated_at TEXT  -- its newest label when it was sent: a label after that answers it
    );
    CREATE TABLE model_predictions (
        run_id TEXT NOT NULL,
        example_id INTEGER NOT NULL REFERENCES examples (id),
        label TEXT NOT NULL,
        probability REAL NOT NULL,
        scores TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, example_id)
    );
    """,
    # 7 -> 8: preference pairs (DPO) and single rated answers (KTO). ``chosen`` or
    # ``rejected`` alone is one desirable / undesirable answer. ``origin`` names the vote
    # and outputs a derived pair came from, so deriving again never adds it twice.
    """
    CREATE TABLE preference_pairs (
        id INTEGER PRIMARY KEY,
        prompt TEXT NOT NULL,
        chosen TEXT,
        rejected TEXT,
        split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
        source TEXT NOT NULL CHECK (source IN ('vote', 'import', 'typed')),
        origin TEXT UNIQUE,
        vote_id INTEGER REFERENCES votes (id),
        voter TEXT,
        chosen_model TEXT,
        rejected_model TEXT,
        file TEXT,
        line INTEGER,
        deleted INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK (chosen IS NOT NULL OR rejected IS NOT NULL)
    );
    CREATE INDEX preference_pairs_live ON preference_pairs (deleted, id);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

DEFAULT_EVAL_FRACTION = 0.1
DEFAULT_SPLIT_SEED = 1234
DEFAULT_SETTINGS = {"eval_fraction": DEFAULT_EVAL_FRACTION, "split_seed": DEFAULT_SPLIT_SEED, "name": ""}

# Columns of ``examples`` that an edit may change, and what undo restores.
EDITABLE = ("messages", "system", "split", "status", "label", "annotator", "deleted")

# Rows of other tables that the journal restores beside example edits (the
# labelling mode writes them): action "row:<table>", before/after the whole row
# (None where it did not exist); these columns say which row it is.
JOURNALED_ROWS: dict[str, tuple[str, ...]] = {
    "annotations": ("example_id", "annotator"),
    "label_set": ("name",),
    "label_reviews": ("example_id",),
    "settings": ("key",),
    "preference_pairs": ("id",),
}


def _restore_row(c: sqlite3.Connection, table: str, target: dict | None, other: dict | None) -> None:
    """Put ``table`` back to ``target`` (None: no row), replacing the row ``other`` describes."""
    keys = JOURNALED_ROWS[table]
    for state in (other, target):
        if state is not None:
            c.execute(f"DELETE FROM {table} WHERE " + " AND ".join(f"{k} = ?" for k in keys),
                      [state[k] for k in keys])
    if target is not None:
        cols = list(target)
        c.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                  [target[k] for k in cols])


def _method_of(config: dict[str, Any]) -> str:
    """What the runs list shows as a run's method: dpo / kto for preference tuning, else lora / qlora."""
    objective = config.get("objective", "sft")
    return objective if objective in ("dpo", "kto") else config.get("method", "")


class ProjectError(Exception):
    """A problem with the project folder or database, in words a user can act on."""


class UndoConflict(ProjectError):
    """Undoing (or redoing) a change would overwrite a later change someone else made to the same thing."""


def _touches(entry: sqlite3.Row) -> set[tuple[Any, ...]]:
    """What a journal entry changed: (example id, column) pairs, or (table, row key) for other rows."""
    action = entry["action"]
    if action.startswith("row:"):
        table = action[4:]
        state = json.loads(entry["after"] or entry["before"] or "{}")
        return {(table, tuple(state.get(k) for k in JOURNALED_ROWS[table]))}
    if action == "insert":
        return {(entry["example_id"], "*")}
    return {(entry["example_id"], column) for column in json.loads(entry["after"] or "{}")}


def _overlap(mine: set[tuple[Any, ...]], theirs: set[tuple[Any, ...]]) -> bool:
    if mine & theirs:
        return True
    whole = {t[0] for t in mine | theirs if t[1] == "*"}  # an added example: every column of it
    return any(t[0] in whole for t in mine) and any(t[0] in whole for t in theirs)


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row the INSERT on ``cur`` just made (sqlite3 types lastrowid as optional)."""
    if cur.lastrowid is None:
        raise RuntimeError("the statement inserted no row")
    return cur.lastrowid


class DamagedProject(ProjectError):
    """project.db is damaged; a backup can be restored (File > Restore from backup)."""


def check_run_id(run_id: str) -> str:
    """``run_id`` if it can name a run folder, else ProjectError saying what is allowed."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id) or run_id in (".", ".."):
        shown = display_path(run_id) if isinstance(run_id, str) else repr(run_id)
        raise ProjectError(f"'{shown}' cannot be a run id: use up to 100 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit (no '/' and no '..')")
    return run_id


def run_folder(runs_dir: Path, run_id: str) -> Path:
    """The folder of ``run_id`` under ``runs_dir``. An id that is not a valid name (a
    row written by an older version) maps to a fixed name inside ``runs_dir`` that no
    run uses, so it can never reach outside the project."""
    if RUN_ID_RE.fullmatch(run_id or "") and run_id not in (".", ".."):
        return Path(runs_dir) / run_id
    digest = hashlib.sha1(os.fsencode(run_id or "")).hexdigest()[:16]
    return Path(runs_dir) / f"invalid-id-{digest}"


def check_eval_fraction(value: Any) -> float:
    """The held-out share as a float in [0, EVAL_FRACTION_MAX], else ValueError in words."""
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the evaluation fraction must be a number from 0 to {EVAL_FRACTION_MAX}, "
                         f"not {value!r}") from None
    if not math.isfinite(fraction) or not 0.0 <= fraction <= EVAL_FRACTION_MAX:
        raise ValueError(f"the evaluation fraction must be from 0 to {EVAL_FRACTION_MAX} (0.1 holds out one "
                         f"example in ten), not {value}")
    return fraction


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _say_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration script, one by one (comments may hold ';')."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name on some sandboxes
        return "user"


@dataclass
class ExampleFilter:
    text: str = ""
    split: str | None = None
    status: str | None = None
    label: str | None = None
    ids: frozenset[int] | None = None  # e.g. the examples with a validation problem


@dataclass
class Run:
    id: str
    created_at: str
    updated_at: str
    status: str
    model: str
    method: str
    config: dict[str, Any]
    steps: int
    train_loss: float | None
    eval_loss: float | None
    message: str | None


class Project:
    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = Path(path)
        self._conn = conn
        # Told (in words) when a write has to wait for another program holding the
        # database; the app shows it in its status bar, the command line on stderr.
        self.on_wait: Callable[[str], None] = _say_waiting

    # -- opening --------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path | str, name: str | None = None) -> "Project":
        path = Path(path)
        if (path / DB_NAME).exists():
            raise ProjectError(f"{display_path(path)} already holds a project; open it instead")
        path.mkdir(parents=True, exist_ok=True)
        (path / RUNS_DIR).mkdir(exist_ok=True)
        project = cls._connect(path)
        if name is None:
            name = display_path(path.name).removesuffix(PROJECT_SUFFIX)
        project.set_setting("name", name)
        return project

    @classmethod
    def open(cls, path: Path | str) -> "Project":
        path = Path(path)
        if not (path / DB_NAME).exists():
            raise ProjectError(
                f"{display_path(path)} is not an FT Studio project (no {DB_NAME}); create one with "
                f"'ftstudio new {display_path(path)}'"
            )
        (path / RUNS_DIR).mkdir(exist_ok=True)
        project = cls._connect(path)
        project._remove_stale_temp_dirs()
        return project

    def _remove_stale_temp_dirs(self) -> None:
        """Temporary checkpoint and adapter folders a killed run left behind (tens of MB
        each), in every run folder no process trains now."""
        try:
            folders = [p for p in self.runs_dir.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            return
        for folder in folders:
            if not liveness.is_alive(folder):
                remove_stale_temp_dirs(folder)

    @staticmethod
    def damaged_message(path: Path, detail: object) -> str:
        backups = list_backups(path)
        if backups:
            fix = (f"Restore the newest backup ({backups[0].name}, from {_backup_time(backups[0])}) with "
                   f"File > Restore from backup, or 'ftstudio restore {display_path(path)}'")
        else:
            fix = "There is no backup of it yet; copy the folder somewhere safe before trying to repair it"
        return (f"{display_path(path / DB_NAME)} is damaged and cannot be read ({detail}). Nothing was changed. "
                f"{fix}.")

    @classmethod
    def _connect(cls, path: Path) -> "Project":
        try:
            conn = sqlite3.connect(path / DB_NAME, isolation_level=None, check_same_thread=False,
                                   timeout=LOCK_STEP_S)
            conn.row_factory = sqlite3.Row
            project = cls(path, conn)
            project._wait_for(lambda: conn.execute("PRAGMA journal_mode=WAL"), "open the project")
            # NORMAL in WAL mode: a killed process loses nothing committed;
            # only a power cut can lose the last transactions.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            # Damage anywhere in the file is found now, in words, not later as a traceback
            # in the middle of some page. quick_check reads every page (about 1 s per GB).
            check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise ProjectError(f"{display_path(path / DB_NAME)} is held by another program and could not "
                                   "be opened; close it and try again") from None
            raise DamagedProject(cls.damaged_message(path, exc)) from None
        if check != "ok":
            conn.close()
            raise DamagedProject(cls.damaged_message(path, check))
        if version > SCHEMA_VERSION:
            conn.close()
            raise ProjectError(
                f"{display_path(path / DB_NAME)} was written by a newer FT Studio (schema {version}, this one "
                f"knows {SCHEMA_VERSION}); update FT Studio to open it"
            )
        if version < SCHEMA_VERSION:
            project._migrate()
        return project

    def _migrate(self) -> None:
        """Bring the schema up to date. The version is read again under the write lock,
        so two processes opening an old project at once migrate it once, one after the other."""
        with self.transaction() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            for target in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[target]):
                    c.execute(statement)
            if version < SCHEMA_VERSION:
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def runs_dir(self) -> Path:
        return self.path / RUNS_DIR

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def name(self) -> str:
        return str(self.setting("name") or self.path.name.removesuffix(PROJECT_SUFFIX))

    def _wait_for(self, attempt: Callable[[], Any], what: str, patience: float | None = WRITE_PATIENCE_S) -> Any:
        """Run ``attempt`` until another program's write lock lets it through. Says once
        that it is waiting; gives up in words after ``patience`` seconds (None: never)."""
        started = time.monotonic()
        told = False
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                waited = time.monotonic() - started
                if patience is not None and waited >= patience:
                    raise ProjectError(
                        f"Could not {what}: another program has been writing to {display_path(self.db_path)} "
                        f"for {waited:.0f} s (another FT Studio window, or a command still running?). Nothing "
                        "was changed; close the other program and try again.") from None
                if not told:
                    told = True
                    self.on_wait(f"Waiting for another program to finish writing to {display_path(self.db_path)} "
                                 f"(to {what})\u2026")

    @contextlib.contextmanager
    def transaction(self, patience: float | None = WRITE_PATIENCE_S) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside lands together or not at all.

        Waits (saying so) while another program holds the write lock. A full disk is
        said in words; SQLite has then already rolled back, so there is nothing to undo.
        """
        if self._conn.in_transaction:  # nested: the outer one commits
            yield self._conn
            return
        self._wait_for(lambda: self._conn.execute("BEGIN IMMEDIATE"), "save a change", patience)
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._database_error(exc) from exc
            raise

    def _database_error(self, exc: sqlite3.DatabaseError) -> BaseException:
        """A SQLite error as words: disk full, damaged file, or the error itself."""
        if is_disk_full(exc):
            return ProjectError(disk_full_message(
                "saving the change", self.path, None,
                f"Nothing of this change was saved; {DB_NAME} keeps everything saved before it."))
        text = str(exc).lower()
        if "malformed" in text or "not a database" in text or "corrupt" in text:
            return DamagedProject(self.damaged_message(self.path, exc))
        return exc

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Plain read access for item models and reports."""
        return self._conn.execute(sql, tuple(params))

    # -- settings -------------------------------------------------------------------

    def setting(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        if row is None:
            return DEFAULT_SETTINGS.get(key, default)
        return json.loads(row["value"])

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def eval_fraction(self) -> float:
        """The project's held-out share; a value out of range (stored by an older
        version) reads as the default rather than breaking every import."""
        try:
            return check_eval_fraction(self.setting("eval_fraction"))
        except ValueError:
            return DEFAULT_EVAL_FRACTION

    # -- examples: reading ----------------------------------------------------------

    @staticmethod
    def _example(row: sqlite3.Row) -> Example:
        return Example(
            id=row["id"], messages=json.loads(row["messages"]), system=row["system"], split=row["split"],
            status=row["status"], label=row["label"], annotator=row["annotator"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )

    def get_example(self, example_id: int) -> Example:
        row = self._conn.execute(
            "SELECT * FROM examples WHERE id = ? AND deleted = 0", (example_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no example {example_id}")
        return self._example(row)

    def get_examples(self, ids: list[int]) -> list[Example]:
        """Examples in the order of ``ids`` (deleted ones left out)."""
        out: dict[int, Example] = {}
        for start in range(0, len(ids), 900):  # SQLite's variable limit
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT * FROM examples WHERE deleted = 0 AND id IN ({marks})", chunk
            ):
                out[row["id"]] = self._example(row)
        return [out[i] for i in ids if i in out]

    def _where(self, flt: ExampleFilter | None) -> tuple[str, list[Any]]:
        where = Where("deleted = 0")
        if flt is not None:
            where.contains(flt.text, ("messages", "IFNULL(system, '')", "IFNULL(label, '')"))
            where.equal("split", flt.split)
            where.equal("status", flt.status)
            if flt.label is not None:  # "": the examples without a label
                where.add("label IS ?" if flt.label == "" else "label = ?", flt.label or None)
        return where.sql, where.params

    def example_ids(self, flt: ExampleFilter | None = None) -> list[int]:
        where, params = self._where(flt)
        ids = [r[0] for r in self._conn.execute(f"SELECT id FROM examples WHERE {where} ORDER BY id", params)]
        if flt is not None and flt.ids is not None:
            ids = [i for i in ids if i in flt.ids]
        return ids

    def count_examples(self, flt: ExampleFilter | None = None) -> int:
        if flt is not None and flt.ids is not None:
            return len(self.example_ids(flt))
        where, params = self._where(flt)
        return self._conn.execute(f"SELECT COUNT(*) FROM examples WHERE {where}", params).fetchone()[0]

    def examples(self, flt: ExampleFilter | None = None) -> list[Example]:
        where, params = self._where(flt)
        rows = self._conn.execute(f"SELECT * FROM examples WHERE {where} ORDER BY id", params).fetchall()
        out = [self._example(r) for r in rows]
        if flt is not None and flt.ids is not None:
            out = [e for e in out if e.id in flt.ids]
        return out

    def label_counts(self) -> dict[str | None, dict[str, int]]:
        """{label: {"train": n, "eval": n}} over live examples."""
        counts: dict[str | None, dict[str, int]] = defaultdict(lambda: {"train": 0, "eval": 0})
        for row in self._conn.execute(
            "SELECT label, split, COUNT(*) AS n FROM examples WHERE deleted = 0 GROUP BY label, split"
        ):
            counts[row["label"]][row["split"]] = row["n"]
        return dict(counts)

    def labels(self) -> list[str]:
        return [r[0] for r in self._conn.execute(
            "SELECT DISTINCT label FROM examples WHERE deleted = 0 AND label IS NOT NULL ORDER BY label"
        )]

    # -- examples: the pages' named queries ---------------------------------------------

    def example_exists(self, example_id: int) -> bool:
        """The example is there and not deleted."""
        return self._conn.execute("SELECT 1 FROM examples WHERE id = ? AND deleted = 0",
                                  (example_id,)).fetchone() is not None

    def split_counts(self) -> dict[str, int]:
        """Live examples per split."""
        return {r[0]: r[1] for r in self._conn.execute(
            "SELECT split, COUNT(*) FROM examples WHERE deleted = 0 GROUP BY split")}

    def trainable_sizes(self) -> dict[str, tuple[int, int]]:
        """{split: (examples, characters of their messages and system prompt)} over the examples a
        run would train on (not unlabelled, skipped or flagged), in one query."""
        rows = self._conn.execute(
            "SELECT split, COUNT(*) AS n, SUM(LENGTH(messages) + IFNULL(LENGTH(system), 0)) AS chars "
            "FROM examples WHERE deleted = 0 AND status NOT IN ('unlabelled', 'skipped', 'flagged') GROUP BY split"
        ).fetchall()
        return {r["split"]: (r["n"], r["chars"] or 0) for r in rows}

    def example_rows(self, ids: Iterable[int]) -> list[sqlite3.Row]:
        """The table view's columns (id, messages, system, split, status, label, updated_at) of the
        live examples among ``ids``: one range scan when the ids are dense, else a lookup each."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        low, high = wanted[0], wanted[-1]
        if high - low < 4 * len(wanted):  # dense ids: one range scan of the primary key
            sql, params = "id BETWEEN ? AND ?", [low, high]
        else:  # a sparse page (a narrow filter): look the ids up one by one
            sql, params = f"id IN ({','.join('?' * len(wanted))})", wanted
        return self._conn.execute(
            "SELECT id, messages, system, split, status, label, updated_at FROM examples "
            f"WHERE {sql} AND deleted = 0", params,
        ).fetchall()

    def matching_ids(self, flt: ExampleFilter | None, ids: Iterable[int]) -> set[int]:
        """Which of ``ids`` pass ``flt`` now."""
        clause, params = self._where(flt)
        out: set[int] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 900):  # SQLite's variable limit
            chunk = unique[start:start + 900]
            out.update(r[0] for r in self._conn.execute(
                f"SELECT id FROM examples WHERE {clause} AND id IN ({','.join('?' * len(chunk))})",
                [*params, *chunk]))
        if flt is not None and flt.ids is not None:
            out &= flt.ids
        return out

    def first_example_id(self, after: int = 0, labelled_first: bool = False) -> int | None:
        """The first live example (with an id above ``after``; labelled ones first if asked)."""
        order = "label IS NULL, id" if labelled_first else "id"
        row = self._conn.execute(f"SELECT id FROM examples WHERE deleted = 0 AND id > ? ORDER BY {order} LIMIT 1",
                                 (after,)).fetchone()
        return None if row is None else int(row[0])

    def ids_from_source(self, source: str) -> list[int]:
        """Live examples added with ``source`` (``add_examples(source=...)``), in id order."""
        return [r[0] for r in self._conn.execute(
            "SELECT id FROM examples WHERE deleted = 0 AND source = ? ORDER BY id", (source,))]

    def first_system_prompt(self) -> str | None:
        row = self._conn.execute("SELECT system FROM examples WHERE deleted = 0 AND system IS NOT NULL "
                                 "ORDER BY id LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def labelled_training_examples(self, not_from: str | None = None, limit: int = -1) -> list[tuple[int, str]]:
        """(id, label) of labelled training examples with a label, in id order (``not_from``: leave
        out those added with that source)."""
        rows = self._conn.execute(
            "SELECT id, label FROM examples WHERE deleted = 0 AND split = 'train' AND status = 'labelled' "
            "AND label IS NOT NULL AND (source IS NULL OR source != ?) ORDER BY id LIMIT ?",
            (not_from or "", limit)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def shortest_labelled_by(self, annotator: str) -> int | None:
        """The shortest example ``annotator`` labelled (ties: the first)."""
        row = self._conn.execute(
            "SELECT id FROM examples WHERE deleted = 0 AND status = 'labelled' AND label IS NOT NULL "
            "AND annotator = ? ORDER BY length(messages), id LIMIT 1", (annotator,)).fetchone()
        return None if row is None else int(row[0])

    # -- examples: changing ---------------------------------------------------------

    def _next_group(self, c: sqlite3.Connection, actor: str) -> int:
        # A new edit drops whatever its author could still redo (others keep theirs).
        c.execute("UPDATE journal SET undone = 2 WHERE undone = 1 AND actor = ?", (actor,))
        return (c.execute("SELECT IFNULL(MAX(group_id), 0) FROM journal").fetchone()[0]) + 1

    def _journal(self, c: sqlite3.Connection, group: int, actor: str, action: str, example_id: int | None,
                 before: dict | None, after: dict | None) -> None:
        c.execute(
            "INSERT INTO journal (group_id, at, actor, action, example_id, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (group, now(), actor, action, example_id,
             None if before is None else json.dumps(before, ensure_ascii=False),
             None if after is None else json.dumps(after, ensure_ascii=False)),
        )

    # -- the journal, for the core modules that edit inside a transaction ------------------
    # (core/labelling.py: its annotations and label set undo in the project's one journal)

    def journal_group(self, c: sqlite3.Connection, actor: str) -> int:
        """A new undo step's group id for ``actor`` (and what they could still redo is dropped)."""
        return self._next_group(c, actor)

    def journal_example_change(self, c: sqlite3.Connection, group: int, actor: str, example_id: int,
                               before: dict[str, Any], after: dict[str, Any]) -> None:
        """Write ``after`` (encoded columns) into the example and journal the change in ``group``."""
        self._apply(c, example_id, after)
        self._journal(c, group, actor, "update", example_id, before, after)

    def journal_row_change(self, c: sqlite3.Connection, group: int, actor: str, table: str,
                           example_id: int | None, before: dict | None, after: dict | None) -> None:
        """Journal a row of another table written by the caller (undo puts ``before`` back)."""
        self._journal(c, group, actor, f"row:{table}", example_id, before, after)

    def add_examples(self, new: Iterable[NewExample], actor: str | None = None, source: str | None = None,
                     eval_fraction: float | None = None,
                     keys: Sequence[tuple[str | None, str | None]] | None = None) -> list[int]:
        """Add examples in one transaction (all or nothing); returns their ids.

        Examples without a split get one from the project's held-out split:
        stratified by label, seeded, and only ever assigned to new examples.

        ``new`` may be a stream (an import reading a file as it goes) when ``keys``
        gives every example's (label, split) in order beforehand: then no more than
        one example is held at a time. A stream that yields other examples than its
        keys announce raises ValueError and adds nothing.
        """
        if keys is None:
            new = list(new)
            keys = [(ex.label, ex.split) for ex in new]
        actor = actor or default_actor()
        ids: list[int] = []
        with self.transaction() as c:
            if eval_fraction is not None:  # in the same transaction: a failed import changes nothing
                self.set_setting("eval_fraction", check_eval_fraction(eval_fraction))
            splits = self._assign_splits(c, keys)
            group = self._next_group(c, actor)
            stamp = now()
            for n, ex in enumerate(new):
                if ex.status not in STATUSES:
                    raise ValueError(f"unknown status {ex.status!r}")
                if ex.split is not None and ex.split not in SPLITS:
                    raise ValueError(f"unknown split {ex.split!r}")
                if n >= len(keys) or keys[n] != (ex.label, ex.split):
                    raise ValueError("the examples differ from those announced (did the file change while it "
                                     "was imported?)")
                split = splits[n]
                row = {
                    "messages": json.dumps(ex.messages, ensure_ascii=False), "system": ex.system,
                    "split": split, "status": ex.status, "label": ex.label,
                    "annotator": None, "deleted": 0,
                }
                cur = c.execute(
                    "INSERT INTO examples (messages, system, split, status, label, source, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["messages"], ex.system, split, ex.status, ex.label, source, stamp, stamp),
                )
                new_id = inserted_id(cur)
                ids.append(new_id)
                self._journal(c, group, actor, "insert", new_id, None, row)
            if len(ids) != len(keys):
                raise ValueError(f"{len(keys)} examples were announced but {len(ids)} came (did the file change "
                                 "while it was imported?)")
        return ids

    def add_example(self, messages: list[dict], system: str | None = None, label: str | None = None,
                    status: str = "labelled", split: str | None = None, actor: str | None = None) -> int:
        return self.add_examples(
            [NewExample(messages=messages, system=system, label=label, status=status, split=split)], actor
        )[0]

    def _assign_splits(self, c: sqlite3.Connection, new: Sequence[tuple[str | None, str | None]]) -> list[str]:
        """Held-out split for new examples, per label: bring each label's eval
        share up to the project's fraction, choosing which ones with a seeded
        shuffle. Existing examples are never moved."""
        fraction = self.eval_fraction()
        try:
            seed = int(self.setting("split_seed"))
        except (TypeError, ValueError, OverflowError):
            seed = DEFAULT_SPLIT_SEED
        batch_no = c.execute("SELECT COUNT(*) FROM journal WHERE action = 'insert'").fetchone()[0]
        existing: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
        for row in c.execute(
            "SELECT label, split, COUNT(*) FROM examples WHERE deleted = 0 GROUP BY label, split"
        ):
            existing[row[0]][0 if row[1] == "train" else 1] += row[2]
        splits: list[str | None] = [split for _label, split in new]
        by_label: dict[str | None, list[int]] = defaultdict(list)
        for i, (label, split) in enumerate(new):
            if split is None:
                by_label[label].append(i)
            else:
                existing[label][0 if split == "train" else 1] += 1
        rng = random.Random(f"{seed}:{batch_no}")
        for label in sorted(by_label, key=lambda x: (x is None, x or "")):
            members = by_label[label]
            n_train, n_eval = existing[label]
            total = n_train + n_eval + len(members)
            want_eval = min(len(members), max(0, round(total * fraction) - n_eval))
            order = members[:]
            rng.shuffle(order)
            chosen = set(order[:want_eval])
            for i in members:
                splits[i] = "eval" if i in chosen else "train"
        return [s or "train" for s in splits]

    def update_example(self, example_id: int, actor: str | None = None, **changes: Any) -> None:
        """Change fields of one example (messages, system, split, status, label, annotator)."""
        self.update_examples([example_id], actor, **changes)

    def update_examples(self, ids: list[int], actor: str | None = None, **changes: Any) -> None:
        """The same change to several examples, as one undoable step."""
        bad = set(changes) - set(EDITABLE)
        if bad:
            raise ValueError(f"cannot edit {', '.join(sorted(bad))}")
        if "split" in changes and changes["split"] not in SPLITS:
            raise ValueError(f"unknown split {changes['split']!r}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"unknown status {changes['status']!r}")
        actor = actor or default_actor()
        encoded = dict(changes)
        if "messages" in encoded:
            encoded["messages"] = json.dumps(encoded["messages"], ensure_ascii=False)
        with self.transaction() as c:
            group = None
            for example_id in ids:
                row = c.execute("SELECT * FROM examples WHERE id = ?", (example_id,)).fetchone()
                if row is None:
                    raise KeyError(f"no example {example_id}")
                before = {k: row[k] for k in encoded if row[k] != encoded[k]}
                if not before:
                    continue
                after = {k: encoded[k] for k in before}
                if group is None:
                    group = self._next_group(c, actor)
                self._apply(c, example_id, after)
                action = "delete" if after.get("deleted") == 1 else "update"
                self._journal(c, group, actor, action, example_id, before, after)

    @staticmethod
    def _apply(c: sqlite3.Connection, example_id: int, values: dict[str, Any]) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        c.execute(f"UPDATE examples SET {cols}, updated_at = ? WHERE id = ?",
                  (*values.values(), now(), example_id))

    def delete_examples(self, ids: list[int], actor: str | None = None) -> None:
        """Delete examples (undoable: the row stays, marked deleted, until undone)."""
        self.update_examples(ids, actor, deleted=1)

    def duplicate_example(self, example_id: int, actor: str | None = None) -> int:
        ex = self.get_example(example_id)
        return self.add_examples([NewExample(messages=ex.messages, system=ex.system, label=ex.label,
                                             status=ex.status, split=ex.split)], actor)[0]

    def move_to_split(self, ids: list[int], split: str, actor: str | None = None) -> None:
        """Bulk move to train or eval: an explicit user action, journaled and undoable."""
        self.update_examples(ids, actor, split=split)

    # -- undo / redo ----------------------------------------------------------------
    # Undo and redo go by the person who made the change: one annotator's Ctrl+Z never
    # takes back another's label. The journal is in the database, so both work the same
    # after the project is closed and opened again. Undoing someone else's change is a
    # separate, explicitly named action.

    def can_undo(self, actor: str | None = None) -> bool:
        return self._group_of(self._conn, actor or default_actor(), 0) is not None

    def can_redo(self, actor: str | None = None) -> bool:
        return self._group_of(self._conn, actor or default_actor(), 1) is not None

    @staticmethod
    def _group_of(c: sqlite3.Connection, actor: str, undone: int) -> int | None:
        """The actor's newest change in effect (undone=0) or oldest one undone last (undone=1)."""
        pick = "MAX" if undone == 0 else "MIN"
        row = c.execute(f"SELECT {pick}(group_id) FROM journal WHERE actor = ? AND undone = ?",
                        (actor, undone)).fetchone()
        return row[0]

    def undo(self, actor: str | None = None) -> list[int]:
        """Undo ``actor``'s latest change still in effect (default: this computer's user);
        returns the example ids it touched. Raises UndoConflict when someone else has
        changed the same thing since."""
        with self.transaction() as c:
            group = self._group_of(c, actor or default_actor(), 0)
            return [] if group is None else self._replay(c, group, undo=True)

    def redo(self, actor: str | None = None) -> list[int]:
        """Redo the change ``actor`` undid last; returns the example ids it touched."""
        with self.transaction() as c:
            group = self._group_of(c, actor or default_actor(), 1)
            return [] if group is None else self._replay(c, group, undo=False)

    def latest_change_by_others(self, actor: str | None = None) -> tuple[str, int] | None:
        """(who, how many examples) of the newest change in effect made by anyone but ``actor``."""
        row = self._conn.execute(
            "SELECT group_id, actor FROM journal WHERE undone = 0 AND actor != ? ORDER BY group_id DESC LIMIT 1",
            (actor or default_actor(),)).fetchone()
        if row is None:
            return None
        n = self._conn.execute("SELECT COUNT(DISTINCT example_id) FROM journal WHERE group_id = ?",
                               (row["group_id"],)).fetchone()[0]
        return row["actor"], n

    def undo_someone_elses_change(self, actor: str | None = None) -> tuple[str, list[int]]:
        """Undo the newest change in effect made by anyone but ``actor``: (whose it was, example ids).
        Their redo brings it back."""
        with self.transaction() as c:
            row = c.execute("SELECT group_id, actor FROM journal WHERE undone = 0 AND actor != ? "
                            "ORDER BY group_id DESC LIMIT 1", (actor or default_actor(),)).fetchone()
            if row is None:
                return "", []
            return row["actor"], self._replay(c, row["group_id"], undo=True)

    def _replay(self, c: sqlite3.Connection, group: int, undo: bool) -> list[int]:
        entries = c.execute("SELECT * FROM journal WHERE group_id = ? ORDER BY id", (group,)).fetchall()
        self._check_no_later_change(c, group, entries)
        for e in reversed(entries) if undo else entries:
            if e["action"] == "insert":
                self._apply(c, e["example_id"], {"deleted": 1 if undo else 0})
            elif e["action"].startswith("row:"):
                states = [None if x is None else json.loads(x) for x in (e["before"], e["after"])]
                target, other = states if undo else states[::-1]
                _restore_row(c, e["action"][4:], target, other)
            else:
                self._apply(c, e["example_id"], json.loads(e["before"] if undo else e["after"]))
        c.execute("UPDATE journal SET undone = ? WHERE group_id = ?", (1 if undo else 0, group))
        return sorted({e["example_id"] for e in entries if e["example_id"] is not None})

    @staticmethod
    def _check_no_later_change(c: sqlite3.Connection, group: int, entries: list[sqlite3.Row]) -> None:
        """Undoing or redoing ``group`` must not overwrite what another person changed after it."""
        if not entries:
            return
        author = entries[0]["actor"]
        mine: set[tuple[Any, ...]] = set()
        for e in entries:
            mine |= _touches(e)
        ids = sorted({e["example_id"] for e in entries if e["example_id"] is not None})
        where = "example_id IS NULL" + (f" OR example_id IN ({', '.join('?' * len(ids))})" if ids else "")
        later = c.execute(f"SELECT * FROM journal WHERE undone = 0 AND group_id > ? AND actor != ? AND ({where}) "
                          "ORDER BY id", (group, author, *ids))
        for e in later:
            if _overlap(mine, _touches(e)):
                what = (f"example {e['example_id']}" if e["example_id"] is not None else
                        "a preference pair" if e["action"] == "row:preference_pairs" else "the label set")
                raise UndoConflict(
                    f"{e['actor']} has changed {what} since ({e['at'][:16].replace('T', ' ')} UTC); undoing "
                    f"this change of {author}'s would overwrite theirs. {e['actor']} can undo theirs first.")

    def journal(self, example_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The audit trail, newest first."""
        sql = "SELECT * FROM journal"
        params: list[Any] = []
        if example_id is not None:
            sql += " WHERE example_id = ?"
            params.append(example_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [dict(r) for r in self._conn.execute(sql, params)]

    # -- training data --------------------------------------------------------------

    def prepared_data(self) -> PreparedData:
        """The live examples that have an answer, as the engine trains on them."""
        data = PreparedData(train=[], eval=[])
        for ex in self.examples():
            if ex.status in ("unlabelled", "skipped", "flagged"):
                continue
            if check_conversation(ex.conversation()) is not None:
                continue
            if ex.split == "eval":
                data.eval.append(ex.conversation())
                data.eval_ids.append(ex.id)
            else:
                data.train.append(ex.conversation())
                data.train_ids.append(ex.id)
        return data

    # -- runs -----------------------------------------------------------------------

    def create_run(self, config: dict[str, Any], run_id: str | None = None, created_at: str | None = None) -> str:
        """A new run row with its settings, and its folder with ``config.yaml`` written from them.

        The row is the settings' one source of truth; a run's settings never change after this,
        so the file, written once from the same dict, cannot disagree with it. A given
        ``run_id`` must be a plain folder name (check_run_id)."""
        run_id = check_run_id(run_id) if run_id else (
            datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4])
        stamp = now()
        try:
            with self.transaction() as c:
                c.execute(
                    "INSERT INTO runs (id, created_at, updated_at, status, model, method, config) "
                    "VALUES (?, ?, ?, 'created', ?, ?, ?)",
                    (run_id, created_at or stamp, stamp, config.get("model", ""), _method_of(config),
                     json.dumps(config)),
                )
        except sqlite3.IntegrityError:
            raise ProjectError(f"There is already a run '{run_id}' in {display_path(self.path)}; choose another "
                               "name or resume it") from None
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_dir(run_id) / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        return run_id

    def update_run(self, run_id: str, patience: float | None = WRITE_PATIENCE_S, **fields: Any) -> None:
        allowed = {"status", "steps", "train_loss", "eval_loss", "message"}  # settings never change
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot set {', '.join(sorted(bad))} on a run")
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction(patience) as c:
            c.execute(f"UPDATE runs SET {cols}, updated_at = ? WHERE id = ?", (*fields.values(), now(), run_id))

    def finish_run(self, run_id: str, **fields: Any) -> None:
        """Record how a run ended. The outcome goes beside the run first, so it survives a
        database that stays locked (the next reader applies it); then the database is
        told, waiting as long as it takes."""
        liveness.write_outcome(self.run_dir(run_id), fields)
        self.update_run(run_id, patience=None, **fields)
        liveness.clear_outcome(self.run_dir(run_id))

    def _run(self, row: sqlite3.Row) -> Run:
        run = Run(id=row["id"], created_at=row["created_at"], updated_at=row["updated_at"], status=row["status"],
                  model=row["model"], method=row["method"], config=json.loads(row["config"]), steps=row["steps"],
                  train_loss=row["train_loss"], eval_loss=row["eval_loss"], message=row["message"])
        if run.status == "running":
            self._settle(run)
        return run

    def _settle(self, run: Run) -> None:
        """A run recorded as running whose process is gone: apply the outcome it left
        beside itself, or show it as interrupted (it can be resumed)."""
        folder = self.run_dir(run.id)
        if liveness.is_alive(folder):
            return
        outcome = liveness.read_outcome(folder)
        if outcome is not None:
            allowed = {"status", "steps", "train_loss", "eval_loss", "message"}
            fields = {k: v for k, v in outcome.items() if k in allowed}
            for key, value in fields.items():
                setattr(run, key, value)
            with contextlib.suppress(ProjectError, sqlite3.Error):
                self.update_run(run.id, patience=LOCK_STEP_S, **fields)
                liveness.clear_outcome(folder)
            return
        run.status = "interrupted"
        run.message = ("The process training this run stopped without finishing (closed, killed or crashed); "
                       "Resume continues from its last checkpoint.")

    def is_run_alive(self, run_id: str) -> bool:
        return liveness.is_alive(self.run_dir(run_id))

    def get_run(self, run_id: str) -> Run:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run '{display_path(run_id)}' in {display_path(self.path)}")
        return self._run(row)

    def runs(self) -> list[Run]:
        return [self._run(r) for r in self._conn.execute("SELECT * FROM runs ORDER BY created_at DESC")]

    def delete_run(self, run_id: str) -> None:
        """Delete a run's row and its folder; never anything outside the project's runs/ folder."""
        if self.is_run_alive(run_id):
            raise ProjectError(f"Run {run_id} is training now; stop it before deleting it")
        with self.transaction() as c:
            c.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        try:
            remove_tree_inside(self.run_dir(run_id), self.runs_dir)
        except ValueError as exc:
            raise ProjectError(f"The run's record was deleted, but not its folder: {exc}") from None

    def run_dir(self, run_id: str) -> Path:
        return run_folder(self.runs_dir, run_id)

    # -- backups --------------------------------------------------------------------

    @property
    def backups_dir(self) -> Path:
        return self.path / BACKUPS_DIR

    def backup(self, keep: int = BACKUPS_KEPT) -> Path:
        """A snapshot of project.db taken with SQLite's online backup (consistent while
        the project is open and being written) into backups/, keeping the newest ``keep``."""
        self.backups_dir.mkdir(exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        final = self.backups_dir / f"project-{stamp}.db"
        tmp = self.backups_dir / f".{final.name}.tmp"
        try:
            dest = sqlite3.connect(tmp)
            try:
                self._wait_for(lambda: self._conn.backup(dest), "take a backup")
            finally:
                dest.close()
            os.replace(tmp, final)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(exc, (OSError, sqlite3.Error)) and is_disk_full(exc):
                raise ProjectError(disk_full_message(
                    "a backup of the project", self.backups_dir, self.db_path.stat().st_size,
                    "The project itself is unchanged; older backups are kept.")) from None
            raise
        for old in list_backups(self.path)[keep:]:
            with contextlib.suppress(OSError):
                old.unlink()
        return final

    def backup_if_due(self, interval_s: float = BACKUP_INTERVAL_S) -> Path | None:
        """Take a backup when the newest one is older than ``interval_s`` and the
        database changed after it."""
        backups = list_backups(self.path)
        if backups:
            newest = backups[0].stat().st_mtime
            changed = max((p.stat().st_mtime for p in (self.db_path, Path(f"{self.db_path}-wal")) if p.exists()),
                          default=0.0)
            if time.time() - newest < interval_s or changed <= newest:
                return None
        return self.backup()

    def restore(self, backup_file: Path) -> None:
        """Put the contents of ``backup_file`` into project.db (through SQLite's backup, so
        other readers see it whole). The current state is backed up first."""
        source = _open_backup(backup_file)
        try:
            self.backup(keep=BACKUPS_KEPT + 1)  # the state being replaced stays restorable
            self._wait_for(lambda: source.backup(self._conn), "restore the backup")
        finally:
            source.close()
        if self.schema_version < SCHEMA_VERSION:
            self._migrate()


def list_backups(project_dir: Path) -> list[Path]:
    """The project's backups, newest first."""
    folder = Path(project_dir) / BACKUPS_DIR
    try:
        return sorted(folder.glob("project-*.db"), key=lambda p: p.name, reverse=True)
    except OSError:
        return []


def backup_example_count(path: Path) -> int:
    """The live examples in a backup of project.db, opened read-only. Raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM examples WHERE deleted = 0").fetchone()[0])
    finally:
        conn.close()


def _backup_time(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")


def _open_backup(backup_file: Path) -> sqlite3.Connection:
    try:
        source = sqlite3.connect(f"file:{Path(backup_file).resolve()}?mode=ro", uri=True)
        check = source.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"{display_path(backup_file)} cannot be read as a backup ({exc}); choose another one")
    if check != "ok":
        source.close()
        raise ProjectError(f"{display_path(backup_file)} is damaged too ({check}); choose an older backup")
    return source


def restore_damaged(project_dir: Path, backup_file: Path) -> Path:
    """Replace a damaged project.db (which cannot be opened) with ``backup_file``. The
    damaged file is kept beside it as project.db.damaged-<time>; returns that path."""
    project_dir = Path(project_dir)
    source = _open_backup(backup_file)
    db = project_dir / DB_NAME
    aside = project_dir / f"{DB_NAME}.damaged-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    try:
        if db.exists():
            os.replace(db, aside)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{db}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{aside}{suffix}"))
        dest = sqlite3.connect(db)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()
    return aside
