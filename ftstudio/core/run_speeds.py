"""How fast a project's earlier runs trained, and where: the measured speed the time
estimate starts from (``engine.estimate.measured_flops``), instead of a guess.

Read from each run's ``metrics.jsonl``: the median tokens/s of its first steps (the
first step, which pays for warming up, left out) and the device the engine named in its
first log line ("... 120 steps on GPU NVIDIA GeForce RTX 4090; prepared in 3.1 s").
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ftstudio.core.config import ConfigError, TrainConfig
from ftstudio.core.events import Log, StepMetrics, event_from_dict

if TYPE_CHECKING:
    from ftstudio.core.project import Project

# engine/training.py's opening line: "... N steps on GPU <name>" or "... on CPU (<n> threads)".
_DEVICE = re.compile(r" steps? on (GPU (?P<gpu>[^;]+)|CPU \((?P<threads>\d+) threads?\))")


@dataclass(frozen=True)
class RunSpeed:
    run_id: str
    config: TrainConfig
    device_kind: str  # "cuda" | "cpu"
    device_name: str  # the GPU's name; "" on the CPU
    threads: int  # CPU threads (0 on a GPU)
    tokens_per_s: float  # median over the run's steps
    steps: int  # steps measured


def run_speed(run_id: str, config: TrainConfig, metrics: list[object]) -> RunSpeed | None:
    """The speed of one run from its events, or None when it measured no step or named no device."""
    kind = name = ""
    threads = 0
    for event in metrics:
        if isinstance(event, Log):
            found = _DEVICE.search(event.message)
            if found:
                kind = "cuda" if found.group("gpu") else "cpu"
                name = (found.group("gpu") or "").strip()
                threads = int(found.group("threads") or 0)
                break
    speeds = [e.tokens_per_s for e in metrics if isinstance(e, StepMetrics) and e.tokens_per_s > 0]
    if len(speeds) > 1:
        speeds = speeds[1:]  # the first step warms up (allocations, kernel choice)
    if not kind or not speeds:
        return None
    return RunSpeed(run_id, config, kind, name, threads, statistics.median(speeds), len(speeds))


# Steps read from each run: enough for a steady median, and a run of 100,000 steps costs
# no more to read than one of a hundred (the Train page reads them when runs change).
STEPS_READ = 64


def _first_events(path: Path, steps: int = STEPS_READ) -> list[object]:
    """The run's events up to its ``steps``-th StepMetrics (damaged lines skipped)."""
    events: list[object] = []
    counted = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if '"StepMetrics"' not in line and '"Log"' not in line:
                continue  # only these two are read; the others are not even parsed
            try:
                event = event_from_dict(json.loads(line))
            except (ValueError, TypeError, KeyError):
                continue
            events.append(event)
            if isinstance(event, StepMetrics):
                counted += 1
                if counted >= steps:
                    break
    return events


def speed_history(project: Project, limit: int = 10) -> list[RunSpeed]:
    """The measured speeds of the project's most recent runs that trained at least one step, newest first."""
    found: list[RunSpeed] = []
    for run in sorted(project.runs(), key=lambda r: r.created_at, reverse=True):
        if len(found) >= limit:
            break
        path = project.run_dir(run.id) / "metrics.jsonl"
        if not path.is_file():
            continue
        try:
            config = TrainConfig.from_dict(run.config)
            events = _first_events(path)
        except (ConfigError, TypeError, OSError, ValueError):
            continue  # a run of an older version, or an unreadable file: no speed from it
        speed = run_speed(run.id, config, events)
        if speed is not None:
            found.append(speed)
    return found
