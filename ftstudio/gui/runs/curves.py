"""A finished (or stopped) run's curves, read back from runs/<id>/metrics.jsonl.

A run resumed after a failure may repeat steps it had logged past its last
checkpoint; the later value of each step wins, as it does on the dashboard.
Curves are cached by the file's size and modification time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftstudio.core.events import EvalMetrics, Sample, StepMetrics, read_events


@dataclass(frozen=True)
class RunCurves:
    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    eval_steps: np.ndarray
    eval_loss: np.ndarray

    @property
    def empty(self) -> bool:
        return len(self.steps) == 0 and len(self.eval_steps) == 0


def _by_step(pairs: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    latest: dict[int, float] = {}
    for step, value in pairs:
        latest[step] = value
    steps = np.array(sorted(latest), dtype=np.float64)
    return steps, np.array([latest[int(s)] for s in steps], dtype=np.float64)


def read_curves(run_dir: Path) -> RunCurves:
    events = read_events(Path(run_dir) / "metrics.jsonl")
    train = [(e.step, e.loss) for e in events if isinstance(e, StepMetrics)]
    lrs = [(e.step, e.lr) for e in events if isinstance(e, StepMetrics)]
    evals = [(e.step, e.eval_loss) for e in events if isinstance(e, EvalMetrics)]
    steps, loss = _by_step(train)
    _, lr = _by_step(lrs)
    eval_steps, eval_loss = _by_step(evals)
    return RunCurves(steps, loss, lr, eval_steps, eval_loss)


def smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """The debiased exponential moving average the dashboard draws."""
    out = np.empty_like(values)
    ema = 0.0
    for i, v in enumerate(values):
        ema = weight * ema + (1 - weight) * v
        out[i] = ema / (1 - weight ** (i + 1))
    return out


class CurveCache:
    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, int], RunCurves]] = {}

    def get(self, run_dir: Path) -> RunCurves:
        path = Path(run_dir) / "metrics.jsonl"
        try:
            st = path.stat()
            key = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            key = (0, 0)
        hit = self._cache.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        curves = read_curves(run_dir)
        self._cache[path] = (key, curves)
        return curves


def read_samples(run_dir: Path, limit_rounds: int = 5) -> list[Sample]:
    """The sample answers of the last few evaluations, newest first."""
    path = Path(run_dir) / "samples.jsonl"
    samples: list[Sample] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    data = json.loads(line)
                    data.pop("event", None)
                    samples.append(Sample(**data))
                except (ValueError, TypeError):
                    continue
    except FileNotFoundError:
        return []
    steps = sorted({s.step for s in samples}, reverse=True)[:limit_rounds]
    keep = set(steps)
    return sorted((s for s in samples if s.step in keep), key=lambda s: -s.step)
