"""Nothing lost, nobody let out: run ids that would leave the project, deletes that
stay inside it, writers that wait for a lock (and say so), runs whose process died,
migrations from two processes at once, a full disk, a damaged database, backups and
restore, and the range of the held-out share."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ftstudio import cli
from ftstudio.core import liveness
from ftstudio.core import project as project_module
from ftstudio.core.formats import import_dataset
from ftstudio.core.project import (
    MIGRATIONS,
    SCHEMA_VERSION,
    DamagedProject,
    Project,
    ProjectError,
    list_backups,
    restore_damaged,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"model": "bundled:SmolLM2-135M-Instruct", "method": "lora"}


def _examples(n: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    ]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- run ids and deletes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["../../outside/name", "/some/other/folder", "..", ".hidden", "a/b", "x\\y", "a" * 101]
)
def test_a_run_id_that_would_leave_the_project_is_refused(project, tmp_path, bad):
    with pytest.raises(ProjectError, match="cannot be a run id"):
        project.create_run(CONFIG, run_id=bad)
    assert project.runs() == []
    assert not (tmp_path / "outside").exists()


def test_the_command_line_refuses_a_run_id_outside_the_project(project, tmp_path, capsys):
    project.add_examples([])  # nothing needed: the id is checked before any training
    outside = tmp_path / "elsewhere"
    for bad in (str(outside), "../../elsewhere/x"):
        code = cli.main(["train", str(project.path), "--run-id", bad])
        assert code == 1
        assert "cannot be a run id" in capsys.readouterr().err
    assert not outside.exists()
    assert project.runs() == []


def test_deleting_an_old_row_whose_id_climbs_out_leaves_the_outside_alone(project, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    rel = os.path.relpath(victim, project.runs_dir)
    stamp = project_module.now()
    with project.transaction() as c:  # a row as an older version could have written it
        c.execute(
            "INSERT INTO runs (id, created_at, updated_at, status, model, method, config) "
            "VALUES (?, ?, ?, 'finished', 'm', 'lora', '{}')",
            (rel, stamp, stamp),
        )
    assert project.run_dir(rel).parent == project.runs_dir
    project.delete_run(rel)
    assert (victim / "precious.txt").read_text() == "keep me"
    assert [r.id for r in project.runs()] == []


def test_deleting_a_run_folder_that_is_a_link_removes_only_the_link(project, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    run_id = project.create_run(CONFIG, run_id="linked")
    folder = project.run_dir(run_id)
    shutil.rmtree(folder)
    folder.symlink_to(victim, target_is_directory=True)
    project.delete_run(run_id)
    assert not folder.exists() and not folder.is_symlink()
    assert (victim / "precious.txt").read_text() == "keep me"


def test_deleting_a_run_removes_its_folder(project):
    run_id = project.create_run(CONFIG)
    (project.run_dir(run_id) / "adapter").mkdir()
    project.delete_run(run_id)
    assert not project.run_dir(run_id).exists()


# -- locks ------------------------------------------------------------------------------


@pytest.fixture
def quick_locks(monkeypatch):
    # Each SQLite wait is 0.2 s instead of 2 s, so a test waits through several attempts quickly.
    monkeypatch.setattr(project_module, "LOCK_STEP_S", 0.2)


def _hold_write_lock(db: Path, seconds: float) -> threading.Thread:
    """Another program holding the write lock (a real second connection) for ``seconds``."""
    ready = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    return thread


def test_a_second_writer_waits_saying_so_and_then_writes(quick_locks, tmp_path):
    project = Project.create(tmp_path / "p")
    said: list[str] = []
    project.on_wait = said.append
    holder = _hold_write_lock(project.db_path, 1.5)
    started = time.monotonic()
    project.set_setting("name", "after the wait")
    waited = time.monotonic() - started
    holder.join()
    assert waited >= 1.0
    assert len(said) == 1 and "Waiting for another program" in said[0] and "project.db" in said[0]
    assert project.setting("name") == "after the wait"


def test_a_writer_that_waits_too_long_gives_up_in_words(quick_locks, tmp_path):
    project = Project.create(tmp_path / "p")
    project.on_wait = lambda message: None
    holder = _hold_write_lock(project.db_path, 2.0)
    with pytest.raises(ProjectError, match="another program has been writing"):
        with project.transaction(patience=0.5):
            pass
    holder.join()


def test_a_run_s_final_status_survives_a_locked_database(quick_locks, tmp_path):
    project = Project.create(tmp_path / "p")
    project.on_wait = lambda message: None
    run_id = project.create_run(CONFIG)
    project.update_run(run_id, status="running")
    holder = _hold_write_lock(project.db_path, 1.0)
    project.finish_run(run_id, status="finished", steps=12, train_loss=0.5)  # waits, then writes
    holder.join()
    with Project.open(project.path) as again:
        run = again.get_run(run_id)
        assert (run.status, run.steps, run.train_loss) == ("finished", 12, 0.5)


def test_an_outcome_left_beside_a_run_is_applied_by_the_next_reader(project):
    # The process ended (killed while waiting for the lock) after writing its outcome file.
    run_id = project.create_run(CONFIG)
    project.update_run(run_id, status="running")
    liveness.write_outcome(project.run_dir(run_id), {"status": "finished", "steps": 7, "train_loss": 0.25})
    run = project.get_run(run_id)
    assert (run.status, run.steps) == ("finished", 7)
    row = project.execute("SELECT status, steps FROM runs WHERE id = ?", (run_id,)).fetchone()
    assert tuple(row) == ("finished", 7)
    assert not (project.run_dir(run_id) / liveness.OUTCOME_FILE).exists()


# -- runs whose process died ------------------------------------------------------------

HOLDER_SCRIPT = """
import sys, time
from ftstudio.core.liveness import RunLock
RunLock(sys.argv[1]).acquire()
print("ready", flush=True)
time.sleep(120)
"""


def test_a_running_run_whose_process_was_killed_shows_as_interrupted(project, capsys):
    run_id = project.create_run(CONFIG)
    project.update_run(run_id, status="running")
    trainer = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(project.run_dir(run_id))],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert trainer.stdout.readline().strip() == "ready"
        assert project.get_run(run_id).status == "running"
        assert cli.main(["runs", str(project.path)]) == 0
        assert "running" in capsys.readouterr().out
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    run = project.get_run(run_id)
    assert run.status == "interrupted" and "Resume" in run.message
    assert cli.main(["runs", str(project.path)]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out and "--resume RUN_ID" in out


def test_a_run_trained_in_this_process_is_alive(project):
    run_id = project.create_run(CONFIG)
    project.update_run(run_id, status="running")
    with liveness.RunLock(project.run_dir(run_id)):
        assert project.get_run(run_id).status == "running"
        with pytest.raises(ProjectError, match="training now"):
            project.delete_run(run_id)
        with pytest.raises(liveness.RunBusy):
            liveness.RunLock(project.run_dir(run_id)).acquire()
    assert project.get_run(run_id).status == "interrupted"


# -- migrations -------------------------------------------------------------------------

OPEN_SCRIPT = """
import sys
from ftstudio.core.project import Project
Project.open(sys.argv[1]).close()
"""


def _old_project(folder: Path, version: int) -> None:
    folder.mkdir(parents=True)
    (folder / "runs").mkdir()
    conn = sqlite3.connect(folder / "project.db", isolation_level=None)
    for script in MIGRATIONS[:version]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def test_two_processes_upgrading_one_project_at_once_both_succeed(tmp_path):
    for trial in range(6):
        folder = tmp_path / f"old{trial}"
        _old_project(folder, 1)
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_SCRIPT, str(folder)], cwd=REPO, stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        results = [(p.wait(), p.stderr.read()) for p in openers]
        assert all(code == 0 for code, _ in results), results
        with Project.open(folder) as p:
            assert p.schema_version == SCHEMA_VERSION


# -- full disk --------------------------------------------------------------------------


def test_an_import_into_a_full_disk_says_so_and_keeps_the_project(project, tmp_path):
    project.add_examples([])
    before = project.count_examples()
    # SQLite reports a full disk when the file may not grow: the same error as a full disk.
    pages = project.execute("PRAGMA page_count").fetchone()[0]
    project.execute(f"PRAGMA max_page_count = {pages + 2}")
    rows = [
        {"messages": [{"role": "user", "content": "x" * 2000}, {"role": "assistant", "content": "y"}]}
    ] * 200
    with pytest.raises(ProjectError) as caught:
        import_dataset(project, _write_jsonl(tmp_path / "big.jsonl", rows))
    text = str(caught.value)
    assert "disk is full" in text and "Nothing of this change was saved" in text
    assert "cannot rollback" not in text
    assert project.count_examples() == before


def test_an_export_to_a_full_disk_says_so(project, tmp_path, monkeypatch, capsys):
    import_dataset(project, _write_jsonl(tmp_path / "a.jsonl", _examples(3)))
    real_fsync = os.fsync

    def full(fd: int) -> None:  # stands for the disk filling up while the file is written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code = cli.main(["export", str(project.path), "--dataset", str(tmp_path / "out.jsonl")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    err = capsys.readouterr().err
    assert code == 1 and "The disk is full" in err and "is free" in err and "Nothing was written" in err
    assert not (tmp_path / "out.jsonl").exists()
    assert not list(tmp_path.glob(".out.jsonl.*"))


# -- damage, backups, restore -----------------------------------------------------------


def _damage(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(page, len(data), page):  # every page after the first: the tables' pages
        data[start : start + 64] = b"\xde\xad\xbe\xef" * 16
    db.write_bytes(bytes(data))


def test_a_damaged_database_is_said_in_words(tmp_path, capsys):
    project = Project.create(tmp_path / "p")
    import_dataset(project, _write_jsonl(tmp_path / "a.jsonl", _examples(50)))
    project.close()
    _damage(tmp_path / "p" / "project.db")
    with pytest.raises(DamagedProject, match="is damaged"):
        Project.open(tmp_path / "p")
    assert cli.main(["runs", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "is damaged" in err and "Traceback" not in err


def test_backups_rotate_and_restore_round_trips(tmp_path):
    project = Project.create(tmp_path / "p")
    import_dataset(project, _write_jsonl(tmp_path / "a.jsonl", _examples(10)))
    first = project.backup()
    import_dataset(project, _write_jsonl(tmp_path / "b.jsonl", _examples(5)))
    assert project.count_examples() == 15
    project.restore(first)
    assert project.count_examples() == 10
    # The state that was replaced is itself a backup: restoring it brings the 15 back.
    newest = list_backups(project.path)[0]
    assert newest != first
    project.restore(newest)
    assert project.count_examples() == 15
    for _ in range(8):
        project.backup()
    assert len(list_backups(project.path)) == project_module.BACKUPS_KEPT


def test_a_backup_taken_while_another_process_writes_is_whole(tmp_path):
    project = Project.create(tmp_path / "p")
    import_dataset(project, _write_jsonl(tmp_path / "a.jsonl", _examples(200)))
    other = Project.open(tmp_path / "p")
    writer = threading.Thread(
        target=lambda: [other.add_example([{"role": "user", "content": "w"}]) for _ in range(50)]
    )
    writer.start()
    backup = project.backup()
    writer.join()
    other.close()
    check = sqlite3.connect(backup)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 200 <= check.execute("SELECT COUNT(*) FROM examples").fetchone()[0] <= 250


def test_a_damaged_project_is_restored_from_its_newest_backup(tmp_path, capsys):
    project = Project.create(tmp_path / "p")
    import_dataset(project, _write_jsonl(tmp_path / "a.jsonl", _examples(30)))
    project.backup()
    project.close()
    _damage(tmp_path / "p" / "project.db")
    with pytest.raises(DamagedProject, match="Restore the newest backup"):
        Project.open(tmp_path / "p")
    assert cli.main(["restore", str(tmp_path / "p")]) == 0
    assert "damaged database is kept" in capsys.readouterr().out
    with Project.open(tmp_path / "p") as again:
        assert again.count_examples() == 30
    assert list((tmp_path / "p").glob("project.db.damaged-*"))


def test_restore_damaged_keeps_the_damaged_file(tmp_path):
    project = Project.create(tmp_path / "p")
    project.add_example([{"role": "user", "content": "x"}])
    backup = project.backup()
    project.close()
    aside = restore_damaged(tmp_path / "p", backup)
    assert aside.exists()
    with Project.open(tmp_path / "p") as again:
        assert again.count_examples() == 1


def test_backup_if_due_only_when_changed_and_old_enough(project):
    assert project.backup_if_due(interval_s=3600) is not None  # no backup yet
    assert project.backup_if_due(interval_s=3600) is None  # too recent
    assert project.backup_if_due(interval_s=0) is None  # nothing changed since
    time.sleep(0.05)
    project.add_example([{"role": "user", "content": "x"}])
    assert project.backup_if_due(interval_s=0) is not None


# -- held-out share ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nan", "-1", "5", "inf", "x"])
def test_the_evaluation_fraction_is_checked_on_the_command_line(project, tmp_path, capsys, bad):
    path = _write_jsonl(tmp_path / "a.jsonl", _examples(3))
    with pytest.raises(SystemExit) as caught:
        cli.main(["import", str(project.path), str(path), "--eval-fraction", bad])
    assert caught.value.code == 2
    assert "evaluation fraction" in capsys.readouterr().err
    assert project.count_examples() == 0
    assert project.setting("eval_fraction") == 0.1


def test_a_bad_fraction_stored_by_an_older_version_does_not_break_imports(project, tmp_path):
    with project.transaction() as c:
        c.execute("INSERT INTO settings (key, value) VALUES ('eval_fraction', 'NaN')")
    import_dataset(project, _write_jsonl(tmp_path / "a.jsonl", _examples(20)))
    assert project.count_examples() == 20
    with pytest.raises(ValueError, match="evaluation fraction"):
        project.add_examples([], eval_fraction=float("nan"))


def test_opening_a_project_removes_temporary_folders_of_runs_nobody_trains(project):
    idle = project.run_dir(project.create_run(CONFIG))
    busy_id = project.create_run(CONFIG)
    busy = project.run_dir(busy_id)
    for folder in (
        idle / "checkpoints" / ".tmp-step-3-4242",
        idle / ".tmp-adapter-4242",
        busy / ".tmp-adapter-7",
    ):
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    with liveness.RunLock(busy):  # a run training now keeps its temporary folder
        Project.open(project.path).close()
    assert (
        not (idle / "checkpoints" / ".tmp-step-3-4242").exists() and not (idle / ".tmp-adapter-4242").exists()
    )
    assert (busy / ".tmp-adapter-7").exists()
