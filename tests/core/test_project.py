"""The project database: creation, migrations, the edit journal with undo and
redo, the held-out split, runs, and durability when the process is killed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from ftstudio.core.examples import NewExample
from ftstudio.core.project import SCHEMA_VERSION, ExampleFilter, Project, ProjectError, UndoConflict


def _ex(q: str, a: str = "a", label: str | None = None, **kw) -> NewExample:
    return NewExample(messages=[{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                      label=label, **kw)


def test_create_sets_wal_foreign_keys_and_schema(tmp_path):
    p = Project.create(tmp_path / "x.ftstudio")
    assert p.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert p.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert p.schema_version == SCHEMA_VERSION
    assert p.name == "x"
    assert (tmp_path / "x.ftstudio" / "runs").is_dir()


def test_open_refuses_non_project_and_newer_schema(tmp_path):
    with pytest.raises(ProjectError, match="not an FT Studio project"):
        Project.open(tmp_path)
    p = Project.create(tmp_path / "p")
    p.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    p.close()
    with pytest.raises(ProjectError, match="newer FT Studio"):
        Project.open(tmp_path / "p")


def test_old_database_migrates_forward_keeping_examples(tmp_path):
    from ftstudio.core.project import MIGRATIONS

    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "project.db")
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute("INSERT INTO examples (messages, split, status, created_at, updated_at) "
                 "VALUES (?, 'train', 'labelled', 'now', 'now')",
                 (json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),))
    conn.commit()
    conn.close()
    p = Project.open(folder)
    assert p.schema_version == SCHEMA_VERSION
    assert p.count_examples() == 1
    tables = {r[0] for r in p.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"annotations", "votes", "evaluations"} <= tables


def test_journal_records_who_when_before_after(project):
    (eid,) = project.add_examples([_ex("q")], actor="ana")
    project.update_example(eid, actor="ben", label="billing")
    entries = project.journal(eid)
    assert [e["action"] for e in entries] == ["update", "insert"]
    assert entries[0]["actor"] == "ben" and json.loads(entries[0]["before"]) == {"label": None}
    assert json.loads(entries[0]["after"]) == {"label": "billing"}
    assert entries[1]["actor"] == "ana" and entries[0]["at"] >= entries[1]["at"]


def test_undo_redo_edits_deletes_and_imports(project):
    ids = project.add_examples([_ex(f"q{i}") for i in range(3)])
    project.update_example(ids[0], messages=[{"role": "user", "content": "new"},
                                             {"role": "assistant", "content": "a"}])
    project.delete_examples([ids[1]])
    assert project.count_examples() == 2
    assert project.undo() == [ids[1]]
    assert project.count_examples() == 3
    assert project.undo() == [ids[0]]
    assert project.get_example(ids[0]).messages[0]["content"] == "q0"
    assert project.redo() == [ids[0]]
    assert project.get_example(ids[0]).messages[0]["content"] == "new"
    # a new edit drops what could still be redone
    project.update_example(ids[2], label="x")
    assert not project.can_redo()
    project.undo()
    project.undo()
    project.undo()  # the import itself
    assert project.count_examples() == 0
    assert not project.can_undo()


def test_undo_and_redo_go_by_who_made_the_change(project):
    ids = project.add_examples([_ex(f"q{i}") for i in range(3)], actor="import")
    project.update_example(ids[0], label="billing", actor="ana")
    project.update_example(ids[1], label="technical", actor="ben")
    project.update_example(ids[2], label="account", actor="ana")
    project.update_example(ids[2], split="eval", actor="ben")  # another column of ana's example

    assert project.undo("ana") == [ids[2]]  # ana's newest, though ben's edit came after it
    assert [project.get_example(i).label for i in ids] == ["billing", "technical", None]
    assert project.get_example(ids[2]).split == "eval"  # ben's change stays
    assert project.undo("ana") == [ids[0]]
    assert not project.can_undo("ana") and project.can_undo("ben") and project.can_redo("ana")
    assert not project.can_redo("ben")
    # ben's new edit does not drop what ana can redo; ana's own does
    project.update_example(ids[1], status="flagged", actor="ben")
    assert project.redo("ana") == [ids[0]]
    assert project.get_example(ids[0]).label == "billing"
    project.update_example(ids[0], status="flagged", actor="ana")
    assert not project.can_redo("ana") and project.redo("ana") == []
    # and ben's history was never touched by ana's undo and redo
    assert project.undo("ben") == [ids[1]] and project.get_example(ids[1]).status == "labelled"
    assert project.undo("ben") == [ids[2]] and project.get_example(ids[2]).split == "train"
    assert project.undo("ben") == [ids[1]] and project.get_example(ids[1]).label is None
    assert not project.can_undo("ben")


def test_undo_refuses_to_overwrite_a_later_change_by_someone_else(project):
    (i,) = project.add_examples([_ex("q")], actor="import")
    project.update_example(i, label="billing", actor="ana")
    project.update_example(i, label="technical", actor="ben")
    journal_before = project.journal()
    with pytest.raises(UndoConflict, match="ben has changed example .* since"):
        project.undo("ana")
    assert project.get_example(i).label == "technical" and project.journal() == journal_before
    assert project.undo("ben") == [i]  # ben takes back theirs; then ana can
    assert project.undo("ana") == [i] and project.get_example(i).label is None
    # redo is held to the same rule: ben labels it again, ana's redo would overwrite that
    project.update_example(i, label="account", actor="ben")
    with pytest.raises(UndoConflict, match="ben has changed"):
        project.redo("ana")
    assert project.get_example(i).label == "account"


def test_undoing_someone_elses_change_is_its_own_action(project):
    ids = project.add_examples([_ex(f"q{i}") for i in range(2)], actor="ana")
    project.update_example(ids[0], label="billing", actor="ana")
    project.update_example(ids[1], label="technical", actor="ben")
    assert project.latest_change_by_others("ana") == ("ben", 1)
    assert project.undo_someone_elses_change("ana") == ("ben", [ids[1]])
    assert project.get_example(ids[1]).label is None and project.get_example(ids[0]).label == "billing"
    assert project.latest_change_by_others("ana") is None  # the only other change is undone
    assert project.redo("ben") == [ids[1]]  # it is ben's to redo
    assert project.get_example(ids[1]).label == "technical"


def test_undo_and_redo_work_after_the_project_is_closed_and_opened(tmp_path):
    path = tmp_path / "p.ftstudio"
    first = Project.create(path)
    ids = first.add_examples([_ex(f"q{i}") for i in range(2)], actor="import")
    first.update_example(ids[0], label="billing", actor="ana")
    first.update_example(ids[1], label="technical", actor="ben")
    first.update_example(ids[1], label="account", actor="ana")
    assert first.undo("ana") == [ids[1]]
    first.close()

    again = Project.open(path)
    assert again.can_redo("ana") and again.can_undo("ana") and again.can_undo("ben")
    assert again.redo("ana") == [ids[1]] and again.get_example(ids[1]).label == "account"
    assert again.undo("ana") == [ids[1]] and again.get_example(ids[1]).label == "technical"
    assert again.undo("ana") == [ids[0]] and again.get_example(ids[0]).label is None
    assert again.get_example(ids[1]).label == "technical"  # ben's label is still there
    again.close()


def test_bulk_changes_are_one_undo_step(project):
    ids = project.add_examples([_ex(f"q{i}", split="train") for i in range(5)])
    project.move_to_split(ids, "eval")
    assert project.count_examples(ExampleFilter(split="eval")) == 5
    project.undo()
    assert project.count_examples(ExampleFilter(split="eval")) == 0


def test_held_out_split_is_stratified_seeded_and_never_reshuffled(tmp_path):
    def build(path):
        p = Project.create(path)
        p.add_examples([_ex(f"q{i}", label=["a", "b", "c"][i % 3]) for i in range(300)], eval_fraction=0.2)
        return p

    p1, p2 = build(tmp_path / "one"), build(tmp_path / "two")
    counts = p1.label_counts()
    assert all(c == {"train": 80, "eval": 20} for c in counts.values())
    eval1 = p1.example_ids(ExampleFilter(split="eval"))
    assert eval1 == p2.example_ids(ExampleFilter(split="eval"))  # same seed, same split
    # more data later: existing examples keep their split, new ones top the fraction up
    p1.add_examples([_ex(f"later{i}", label="a") for i in range(50)])
    assert set(eval1) <= set(p1.example_ids(ExampleFilter(split="eval")))
    assert p1.label_counts()["a"] == {"train": 120, "eval": 30}


def test_filters(project):
    project.add_examples([_ex("refund please", label="billing"), _ex("app crash", label="technical"),
                          _ex("100% sure", label=None, status="unlabelled", split="eval")])
    assert project.count_examples(ExampleFilter(text="refund")) == 1
    assert project.count_examples(ExampleFilter(text="100%")) == 1
    assert project.count_examples(ExampleFilter(text="0_")) == 0
    assert project.count_examples(ExampleFilter(label="technical")) == 1
    assert project.count_examples(ExampleFilter(label="")) == 1
    assert project.count_examples(ExampleFilter(status="unlabelled", split="eval")) == 1


def test_prepared_data_skips_unanswered_and_puts_system_first(project):
    project.add_examples([
        NewExample(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                   system="Be brief.", split="train"),
        NewExample(messages=[{"role": "user", "content": "only a question"}], status="unlabelled", split="train"),
        _ex("held", split="eval"),
    ])
    data = project.prepared_data()
    assert data.train == [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"},
                           {"role": "assistant", "content": "a"}]]
    assert len(data.eval) == 1 and len(data.eval_ids) == 1


def test_runs_are_recorded(project):
    run_id = project.create_run({"model": "m", "method": "lora"})
    assert project.run_dir(run_id).is_dir()
    project.update_run(run_id, status="finished", steps=10, train_loss=1.5)
    run = project.get_run(run_id)
    assert (run.status, run.steps, run.train_loss, run.method) == ("finished", 10, 1.5, "lora")
    project.delete_run(run_id)
    assert project.runs() == [] and not project.run_dir(run_id).exists()


def test_killing_the_process_loses_nothing_a_call_returned_from(tmp_path):
    folder = tmp_path / "kill.ftstudio"
    Project.create(folder).close()
    script = textwrap.dedent(f"""
        import sys
        from ftstudio.core.project import Project
        p = Project.open({str(folder)!r})
        i = 0
        while True:
            eid = p.add_example([{{"role": "user", "content": f"q{{i}}"}}, {{"role": "assistant", "content": "a"}}])
            p.update_example(eid, label=f"L{{i}}")
            print(eid, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    confirmed = []
    for line in proc.stdout:
        confirmed.append(int(line))
        if len(confirmed) == 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Project.open(folder) as p:
        labels = {e.id: e.label for e in p.examples()}
    for eid in confirmed:
        assert eid in labels and labels[eid] is not None


def test_named_queries_for_the_pages(tmp_path):
    p = Project.create(tmp_path / "p")
    ids = p.add_examples([_ex(f"q{i}" * (6 - i), label="x" if i % 2 else None, split="eval" if i == 3 else "train")
                          for i in range(6)], actor="t", source="file.jsonl")
    p.delete_examples([ids[0]], actor="t")
    live = ids[1:]
    assert not p.example_exists(ids[0]) and all(p.example_exists(i) for i in live)
    assert p.split_counts() == {"train": 4, "eval": 1}
    assert p.trainable_sizes()["train"][0] == 4 and p.trainable_sizes()["eval"][0] == 1
    assert p.ids_from_source("file.jsonl") == live and p.ids_from_source("other") == []
    assert [r["id"] for r in p.example_rows([ids[0], live[0], live[-1], 10_000])] == [live[0], live[-1]]
    assert p.matching_ids(ExampleFilter(label="x"), ids) == {ids[1], ids[3], ids[5]}
    assert p.first_example_id() == live[0] and p.first_example_id(after=live[-1]) is None
    assert p.first_example_id(labelled_first=True) == ids[1]
