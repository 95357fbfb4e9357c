"""Sample runs, written as the Train page leaves them, for the staged (quick)
screenshots of the Train and Runs pages that tests take without training a
model. Their figures are made up: the pictures in docs/screenshots are real
(``python -m ftstudio.gui.screenshots`` trains a run for them).

``stage_sample_runs(project)`` adds the runs of ``SAMPLE_RUNS`` (when not
there yet): a run row, ``config.yaml``, ``metrics.jsonl`` with plausible
curves, ``samples.jsonl`` and, for finished runs, an adapter folder holding
only its config (nothing loads it). It writes into the project: use it on a
throwaway copy.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from ftstudio.core.config import preset
from ftstudio.core.events import (
    Checkpoint, EvalMetrics, Finished, FitPlan, JsonlSink, Log, Progress, Sample, StepMetrics, event_to_json,
    read_events,
)
from ftstudio.core.project import Project

# (run id, preset, overrides, steps trained, of steps, final train loss, status)
# (run id, preset, config overrides, steps logged, max steps, final loss, status)
SAMPLE_RUNS: list[tuple[str, str, dict[str, Any], int, int, float, str]] = [
    ("20250612-093015-a41c", "quick", {"max_steps": 300}, 300, 300, 0.21, "finished"),
    ("20250612-101742-5be0", "quick", {"max_steps": 300, "learning_rate": 3e-4, "lora_rank": 32,
                                       "lora_alpha": 64}, 300, 300, 0.34, "finished"),
    ("20250612-110208-c97d", "balanced", {"max_steps": 300}, 140, 300, 0.45, "stopped"),
]
TICKETS = [
    ("my card was charged twice for the same order, please help", "billing"),
    ("The app crashes every time I open the settings page.", "technical"),
    ("Where is my parcel? It has been two weeks.", "shipping"),
]


def _started(run_id: str) -> str:
    d, t = run_id.split("-")[:2]
    return f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}.000+00:00"


def _curve(step: int, total: int, floor: float, rng: random.Random) -> float:
    return floor + 2.6 * math.exp(-step / (total / 9)) + 0.45 * math.exp(-step / (total / 2)) + rng.gauss(0, 0.06)


def stage_sample_runs(project: Project) -> list[str]:
    """Add the sample runs not in the project yet; returns the ids added."""
    known = {r.id for r in project.runs()}
    added = []
    for n, (run_id, preset_name, overrides, steps, total, floor, status) in enumerate(SAMPLE_RUNS):
        if run_id in known:
            continue
        cfg = preset(preset_name, **overrides)
        project.create_run(cfg.to_dict(), run_id=run_id, created_at=_started(run_id))  # started when its id says
        folder = project.run_dir(run_id)
        rng = random.Random(n)
        sink = JsonlSink(folder / "metrics.jsonl")
        sink(Log(f"Training {cfg.method.upper()} (rank {cfg.lora_rank}) on 270 examples, 30 held out; "
                 f"{total} steps"))
        plan = (f"{cfg.batch_tokens:,} tokens per batch in one pass, checkpointing off: fits 16 GB with "
                f"{14.2 - n * 0.4:.1f} GB to spare")
        sink(Log(f"Plan: {plan}"))
        sink(FitPlan(0, cfg.batch_tokens, 1, False, int((1.8 + n * 0.4) * 1024**3), plan))
        warmup = max(1, int(cfg.warmup_ratio * total))
        losses, eval_loss = [], None
        for step in range(1, steps + 1):
            lr = cfg.learning_rate * (step / warmup if step <= warmup else
                                      0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))))
            loss = max(0.05, _curve(step, total, floor, rng))
            losses.append(loss)
            sink(Progress(step, total, step / 35, step * 1.9, (total - step) * 1.9))
            sink(StepMetrics(step, loss, lr, 0.35 + abs(rng.gauss(0, 0.25)) + 2.0 * math.exp(-step / 12),
                             520 + rng.gauss(0, 25), tokens=1000))
            if step % cfg.eval_every == 0 or step == total:
                eval_loss = max(0.05, _curve(step, total, floor + 0.07, random.Random(step)) + 0.02)
                sink(EvalMetrics(step, eval_loss, 1900))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                sink(Checkpoint(step, str(folder / "checkpoints" / f"step-{step}")))
            if step in (steps // 2, steps):
                for prompt, label in TICKETS:
                    right = step == steps or rng.random() < 0.5
                    sink(Sample(step, prompt, label if right else "account", label))
        stopped = status == "stopped"
        sink(Finished(steps, str(folder / "adapter"), sum(losses[-10:]) / 10, eval_loss, stopped_early=stopped))
        sink.close()
        with open(folder / "samples.jsonl", "w", encoding="utf-8") as fh:  # the engine writes them to both
            for e in read_events(folder / "metrics.jsonl"):
                if isinstance(e, Sample):
                    fh.write(event_to_json(e) + "\n")
        if stopped:
            ckpt = folder / "checkpoints" / f"step-{steps}"
            ckpt.mkdir(parents=True, exist_ok=True)
            (ckpt / "state.json").write_text(json.dumps({"step": steps, "total_steps": total}))
        else:
            (folder / "adapter").mkdir(exist_ok=True)
            (folder / "adapter" / "adapter_config.json").write_text(json.dumps(
                {"peft_type": "LORA", "r": cfg.lora_rank, "lora_alpha": cfg.lora_alpha}))
        project.update_run(run_id, status=status, steps=steps, train_loss=sum(losses[-10:]) / 10,
                           eval_loss=eval_loss,
                           message=f"Stopped at step {steps}; resume to continue" if stopped else None)
        added.append(run_id)
    return added


def remove_sample_runs(project: Project) -> None:
    known = {r.id for r in project.runs()}
    for run_id, *_ in SAMPLE_RUNS:
        if run_id in known:
            project.delete_run(run_id)
