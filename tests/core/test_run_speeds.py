"""Reading the earlier runs' speeds stays cheap for long runs and skips what it cannot read."""

from __future__ import annotations

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import JsonlSink, Log, StepMetrics
from ftstudio.core.run_speeds import STEPS_READ, speed_history


def test_a_long_run_is_read_only_as_far_as_its_first_steps(project):
    run_id = project.create_run(TrainConfig().to_dict())
    path = project.run_dir(run_id) / "metrics.jsonl"
    sink = JsonlSink(path)
    sink(
        Log(
            "Training LoRA (rank 16) on 10 examples; 20,000 steps on GPU NVIDIA GeForce RTX 4090; prepared in 1 s"
        )
    )
    for step in range(1, 20_001):
        # the first steps run at 1,000 tokens/s, the rest at 10: only the first are read
        sink(StepMetrics(step, 1.0, 1e-4, 1.0, 1000.0 if step <= STEPS_READ else 10.0))
    sink.close()
    with path.open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    (speed,) = speed_history(project)
    assert speed.device_kind == "cuda" and speed.device_name == "NVIDIA GeForce RTX 4090"
    assert speed.tokens_per_s == 1000.0 and speed.steps == STEPS_READ - 1


def test_runs_without_steps_or_a_device_give_no_speed(project):
    empty = project.create_run(TrainConfig().to_dict())
    sink = JsonlSink(project.run_dir(empty) / "metrics.jsonl")
    sink(Log("Training LoRA; 3 steps on CPU (2 threads); prepared in 1 s"))
    sink.close()
    project.create_run(TrainConfig().to_dict())  # no metrics.jsonl at all
    assert speed_history(project) == []
