"""A run's life cycle (core/runs.py), as ``ftstudio train`` and the Train page both go through it:
checks before anything is written, the row with its settings, the outcome, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftstudio.core import runs
from ftstudio.core.config import TrainConfig, preset
from ftstudio.core.events import Failed
from ftstudio.core.examples import NewExample
from ftstudio.core.project import Project
from ftstudio.engine.training import TrainResult


def _project(tmp_path: Path, examples: int = 4) -> Project:
    project = Project.create(tmp_path / "p.ftstudio")
    project.add_examples(
        [
            NewExample(
                messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
            )
            for i in range(examples)
        ],
        actor="test",
    )
    return project


def _result(status: str, steps: int = 3, failure: Failed | None = None) -> TrainResult:
    return TrainResult(status, steps, None, None, 1.25, 1.5, failure)


def test_nothing_is_written_until_a_plan_begins(tmp_path):
    empty = Project.create(tmp_path / "empty.ftstudio")
    with pytest.raises(runs.RunProblem) as no_data:
        runs.plan_new(empty, preset("quick"))
    assert no_data.value.kind == "no_data"

    project = _project(tmp_path)
    with pytest.raises(runs.RunProblem) as bad:
        runs.plan_new(project, preset("quick", learning_rate=-1.0))
    assert bad.value.kind == "config" and [p.field for p in bad.value.problems] == ["learning_rate"]

    plan = runs.plan_new(project, preset("quick"))
    assert project.runs() == [] and len(plan.data.train) == 4
    run_id = runs.begin(project, plan)
    run = project.get_run(run_id)
    assert run.status == "running" and run.config == preset("quick").to_dict()


def test_the_run_folder_settings_are_written_from_the_row_and_cannot_disagree(tmp_path):
    project = _project(tmp_path)
    cfg = preset("quick", lora_rank=4, seed=7)
    run_id = runs.begin(project, runs.plan_new(project, cfg))
    config_file = project.run_dir(run_id) / runs.CONFIG_FILE
    assert TrainConfig.load(config_file) == runs.run_config(project, run_id) == cfg

    # Settings never change after the run is created: the row refuses, so the file stays true.
    with pytest.raises(ValueError, match="config"):
        project.update_run(run_id, config=preset("quick", lora_rank=64).to_dict())
    assert TrainConfig.load(config_file) == runs.run_config(project, run_id)

    # Resume reads the row: a hand-edited file does not change what the run trains with.
    config_file.write_text(preset("quick", lora_rank=64).to_yaml(), encoding="utf-8")
    runs.record_outcome(project, run_id, _result("stopped"))
    assert runs.plan_resume(project, run_id).config == cfg


def test_outcomes_are_kept_with_a_word_about_each(tmp_path):
    project = _project(tmp_path)
    plan = runs.plan_new(project, preset("quick"))

    finished = runs.begin(project, plan)
    assert runs.record_outcome(project, finished, _result("finished", steps=10)) == "finished"
    row = project.get_run(finished)
    assert (row.status, row.steps, row.train_loss, row.eval_loss, row.message) == (
        "finished",
        10,
        1.25,
        1.5,
        None,
    )

    stopped = runs.begin(project, plan)
    runs.record_outcome(project, stopped, _result("stopped", steps=3))
    assert project.get_run(stopped).message == "Stopped at step 3; resume to continue"

    failed = runs.begin(project, plan)
    runs.record_outcome(
        project, failed, _result("failed", failure=Failed("nan", "The loss became NaN at step 2"))
    )
    assert (project.get_run(failed).status, project.get_run(failed).message) == (
        "failed",
        "The loss became NaN at step 2",
    )

    crashed = runs.begin(project, plan)
    runs.record_crash(project, crashed, "RuntimeError: boom")
    assert project.get_run(crashed).message == "Training stopped on an unexpected error: RuntimeError: boom"


def test_resume_needs_a_checkpoint_and_marks_the_run_running_again(tmp_path):
    project = _project(tmp_path)
    run_id = runs.begin(project, runs.plan_new(project, preset("quick")))
    runs.record_outcome(project, run_id, _result("stopped"))
    assert not runs.can_resume(project, project.get_run(run_id))

    checkpoint = project.run_dir(run_id) / "checkpoints" / "step-3"
    checkpoint.mkdir(parents=True)
    assert not runs.can_resume(project, project.get_run(run_id))  # a half-written checkpoint
    (checkpoint / "state.json").write_text("{}", encoding="utf-8")
    assert runs.can_resume(project, project.get_run(run_id))

    plan = runs.plan_resume(project, run_id)
    assert plan.resume and runs.begin(project, plan) == run_id
    row = project.get_run(run_id)
    assert row.status == "running" and row.message is None
    with pytest.raises(runs.RunProblem) as unknown:
        runs.plan_resume(project, "no-such-run")
    assert unknown.value.kind == "no_run"


def test_a_secondary_process_only_makes_the_folder(tmp_path):
    project = _project(tmp_path)
    plan = runs.plan_new(project, preset("quick"), run_id="shared-name")
    assert runs.begin(project, plan, record=False) == "shared-name"
    assert project.run_dir("shared-name").is_dir() and project.runs() == []


def test_a_run_that_ran_out_of_memory_lowers_the_next_runs_micro_batch(tmp_path):
    project = _project(tmp_path)
    cfg = preset("quick")
    assert runs.plan_new(project, cfg).micro_batch_ceiling is None
    first = runs.begin(project, runs.plan_new(project, cfg))
    halved = TrainResult("finished", 10, None, None, 1.25, 1.5, None, micro_batch_ceiling=128)
    runs.record_outcome(project, first, halved)
    assert runs.plan_new(project, cfg).micro_batch_ceiling == 128
    assert runs.plan_resume(project, first).micro_batch_ceiling == 128
    # the size belongs to the model and method that ran out of memory, not to every run
    assert runs.plan_new(project, preset("quick", method="qlora")).micro_batch_ceiling is None
    assert runs.plan_new(project, preset("quick", model="/elsewhere")).micro_batch_ceiling is None
    # a run that did not run out of memory leaves it as it was; the project remembers it when reopened
    second = runs.begin(project, runs.plan_new(project, cfg))
    runs.record_outcome(project, second, _result("finished"))
    path = project.path
    project.close()
    reopened = Project.open(path)
    assert runs.plan_new(reopened, cfg).micro_batch_ceiling == 128
    reopened.close()
