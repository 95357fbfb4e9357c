"""A training run's life cycle, shared by ``ftstudio train`` and the Train page.

A run is a row in the project's ``runs`` table and a folder ``runs/<id>/``.
Its settings live in the row (``Run.config``); the folder's ``config.yaml`` is
written from the row whenever the row is written, for people and tools that
read the folder, and nothing reads it back. So resume, export and evaluate
all see the same settings.

The steps, in order, for either front end:

1. ``plan_new(project, cfg)`` or ``plan_resume(project, run_id)``: checks the
   settings and the data and returns a ``RunPlan`` (nothing written yet), or
   raises ``RunProblem`` saying what is wrong, for the front end to word.
2. ``begin(project, plan)``: the row is created (or marked running again), and
   this process takes the run's liveness lock (core/liveness.py): while it is
   held the run reads as running; once the process is gone without an outcome
   it reads as interrupted.
3. The engine trains (``engine.training.train``) on the plan's data into
   ``plan.run_dir``.
4. ``record_outcome(project, run_id, result)`` or ``record_crash(...)``: the
   outcome is kept beside the run first and then written to the row, waiting for
   a locked database as long as it takes; then the liveness lock is let go.
   A run that ran out of memory and went on with a smaller micro-batch leaves
   that size in the project (``micro_batch_ceiling``), and the next plans of the
   same model and method start from it.

The front end in between owns what is particular to it: the terminal's
Ctrl+C and progress bar, or the page's thread, device lock and dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ftstudio.core import liveness
from ftstudio.core.config import PREFERENCE_OBJECTIVES, ConfigError, Problem, TrainConfig, validate
from ftstudio.core.examples import PreparedData
from ftstudio.core.preferences import PreferenceData, preference_data

if TYPE_CHECKING:
    from ftstudio.core.project import Project, Run

CONFIG_FILE = "config.yaml"
# A run in one of these states can be continued from its last checkpoint
# ("interrupted": the process that trained it ended without saying how; "running"
# rows whose process is gone read as interrupted).
RESUMABLE = ("stopped", "failed", "interrupted")
# Project setting: {"<model>|<method>": tokens}, the micro-batch runs of that model and
# method came down to after running out of memory (see micro_batch_ceiling).
CEILINGS_SETTING = "micro_batch_ceilings"


class RunProblem(Exception):
    """Why a run cannot start: ``kind`` is "config", "no_data", "no_run" or "busy" (another
    process trains it now); ``problems`` the
    settings' problems (for "config")."""

    def __init__(
        self, kind: str, message: str, problems: list[Problem] | None = None, objective: str = "sft"
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.problems = problems or []
        self.objective = objective  # what the missing data is for ("no_data")


class Outcome(Protocol):
    """What the engine's TrainResult tells about how a run ended."""

    @property
    def status(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def train_loss(self) -> float | None: ...
    @property
    def eval_loss(self) -> float | None: ...
    @property
    def failure(self) -> object | None: ...

    # and, when running out of memory lowered it, ``micro_batch_ceiling`` (tokens)


@dataclass(frozen=True)
class RunPlan:
    """A run about to train: its settings, its data and where it goes. ``run_id`` is None for a
    new run that ``begin`` names."""

    config: TrainConfig
    data: PreparedData | PreferenceData
    resume: bool
    run_id: str | None = None
    # The largest micro-batch (tokens) earlier runs of this model and method fitted after
    # running out of memory; the engine's plan starts at or below it. None: no such run.
    micro_batch_ceiling: int | None = None


def run_config(project: Project, run_id: str) -> TrainConfig:
    """The run's settings (from its row: the one source of truth). Raises ConfigError."""
    return TrainConfig.from_dict(project.get_run(run_id).config)


def _ceiling_key(cfg: TrainConfig) -> str:
    return f"{cfg.model}|{cfg.method}"


def micro_batch_ceiling(project: Project, cfg: TrainConfig) -> int | None:
    """The micro-batch (tokens) an earlier run of ``cfg``'s model and method came down to
    after running out of memory, or None."""
    stored = project.setting(CEILINGS_SETTING) or {}
    value = stored.get(_ceiling_key(cfg)) if isinstance(stored, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _keep_ceiling(project: Project, run_id: str, tokens: int) -> None:
    cfg = run_config(project, run_id)
    stored = project.setting(CEILINGS_SETTING) or {}
    stored = dict(stored) if isinstance(stored, dict) else {}
    stored[_ceiling_key(cfg)] = int(tokens)
    project.set_setting(CEILINGS_SETTING, stored)


def has_checkpoint(run_dir: Path) -> bool:
    """Whether the run folder holds a complete checkpoint to resume from."""
    folder = Path(run_dir) / "checkpoints"
    return folder.is_dir() and any((p / "state.json").exists() for p in folder.glob("step-*"))


def can_resume(project: Project, run: Run) -> bool:
    return run.status in RESUMABLE and has_checkpoint(project.run_dir(run.id))


def _check(cfg: TrainConfig, project: Project) -> PreparedData | PreferenceData:
    problems = validate(cfg)
    if problems:
        raise RunProblem("config", "; ".join(str(p) for p in problems), problems)
    if cfg.objective in PREFERENCE_OBJECTIVES:
        prefs = preference_data(project)
        if not prefs.train:
            raise RunProblem(
                "no_data", f"{project.path} has no preference pairs for training yet", objective=cfg.objective
            )
        return prefs
    data = project.prepared_data()
    if not data.train:
        raise RunProblem("no_data", f"{project.path} has no training examples with answers yet")
    return data


def plan_new(project: Project, cfg: TrainConfig, run_id: str | None = None) -> RunPlan:
    """A new run of ``cfg`` on the project's data (``run_id``: a name chosen by the caller)."""
    return _plan(project, cfg, run_id, resume=False)


def _plan(project: Project, cfg: TrainConfig, run_id: str | None, resume: bool) -> RunPlan:
    """The plan of a new or resumed run: its data checked, the project's micro-batch ceiling."""
    return RunPlan(
        cfg,
        _check(cfg, project),
        resume=resume,
        run_id=run_id,
        micro_batch_ceiling=micro_batch_ceiling(project, cfg),
    )


def plan_resume(project: Project, run_id: str) -> RunPlan:
    """Continue run ``run_id`` from its last checkpoint, with its own settings."""
    try:
        cfg = run_config(project, run_id)
    except KeyError:
        raise RunProblem("no_run", f"There is no run {run_id} in {project.path}") from None
    except ConfigError as exc:
        raise RunProblem(
            "config", "its settings cannot be read: " + "; ".join(map(str, exc.problems)), exc.problems
        ) from None
    return _plan(project, cfg, run_id, resume=True)


def begin(project: Project, plan: RunPlan, record: bool = True) -> str:
    """Create the run's row (or mark a resumed one running again); returns the run id.

    ``record`` False: a secondary process of a distributed run, which only
    needs the folder (the main process keeps the row)."""
    if not record:
        if plan.run_id is None:
            raise ValueError("a secondary process needs the run id the main process uses")
        project.run_dir(plan.run_id).mkdir(parents=True, exist_ok=True)
        return plan.run_id
    if plan.resume:
        assert plan.run_id is not None  # plan_resume always names the run
        _hold(project, plan.run_id)
        project.update_run(plan.run_id, status="running", message=None)
        return plan.run_id
    run_id = project.create_run(plan.config.to_dict(), run_id=plan.run_id)
    _hold(project, run_id)
    project.update_run(run_id, status="running")
    return run_id


def _hold(project: Project, run_id: str) -> None:
    """Take the run's liveness lock, held until its outcome is recorded."""
    try:
        liveness.RunLock(project.run_dir(run_id)).acquire()
    except liveness.RunBusy as exc:
        raise RunProblem(
            "busy", f"Run {run_id} cannot start: {exc}; wait for it to finish or stop it first"
        ) from None


def let_go(project: Project, run_id: str) -> None:
    """Release the run's liveness lock without recording anything (a front end that gives up
    before training starts)."""
    liveness.release(project.run_dir(run_id))


def outcome_message(outcome: Outcome) -> str | None:
    """The word a run's row keeps about how it ended."""
    failure = outcome.failure
    if failure is not None:
        return str(getattr(failure, "message", failure))
    if outcome.status == "stopped":
        return f"Stopped at step {outcome.steps}; resume to continue"
    return None


def record_outcome(project: Project, run_id: str, outcome: Outcome) -> str:
    """Keep how the run ended (status, steps, losses, a word) in its row, and the micro-batch it
    came down to after running out of memory in the project; returns the status."""
    try:
        project.finish_run(
            run_id,
            status=outcome.status,
            steps=outcome.steps,
            train_loss=outcome.train_loss,
            eval_loss=outcome.eval_loss,
            message=outcome_message(outcome),
        )
        ceiling = getattr(outcome, "micro_batch_ceiling", None)
        if ceiling:
            _keep_ceiling(project, run_id, ceiling)
    finally:
        let_go(project, run_id)
    return outcome.status


def record_crash(project: Project, run_id: str, error: str) -> str:
    """The training process failed outside the engine's own reporting; returns the message kept."""
    message = f"Training stopped on an unexpected error: {error or 'unknown'}"
    try:
        project.finish_run(run_id, status="failed", message=message)
    finally:
        let_go(project, run_id)
    return message
