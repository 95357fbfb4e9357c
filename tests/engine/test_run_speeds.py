"""The time estimate's measured speed: what an earlier run of the project measured on this
device, read from its metrics.jsonl (as the engine writes it) and used for the next estimate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ftstudio.core.events import JsonlSink, read_events
from ftstudio.core.run_speeds import run_speed, speed_history
from ftstudio.engine.estimate import (
    GIB,
    DeviceBudget,
    estimate_time,
    measured_flops,
    measured_speeds,
    model_shape,
    tokens_per_second,
)
from ftstudio.engine.training import train
from tests.engine.test_training import memorise_data, tiny_cfg


@pytest.fixture(scope="module")
def trained_project(tiny_model_dir, tmp_path_factory):
    """A project with one finished run of the tiny model on the CPU (two threads)."""
    import torch

    from ftstudio.core.project import Project

    project = Project.create(tmp_path_factory.mktemp("speeds") / "p.ftstudio")
    cfg = tiny_cfg(tiny_model_dir, max_steps=4, eval_every=0, samples=0, device="cpu")
    run_id = project.create_run(cfg.to_dict())
    run_dir = project.run_dir(run_id)
    sink = JsonlSink(run_dir / "metrics.jsonl")
    before = torch.get_num_threads()
    try:
        result = train(cfg, memorise_data(), sink, lambda: False, run_dir=run_dir, cpu_threads=2)
    finally:
        sink.close()
        torch.set_num_threads(before)
    assert result.status == "finished"
    yield project, run_id, cfg
    project.close()


def test_a_run_s_speed_and_device_are_read_from_what_the_engine_wrote(trained_project):
    project, run_id, cfg = trained_project
    events = read_events(project.run_dir(run_id) / "metrics.jsonl")
    speed = run_speed(run_id, cfg, list(events))
    assert speed is not None
    assert speed.device_kind == "cpu" and speed.threads == 2 and speed.device_name == ""
    measured = sorted(e.tokens_per_s for e in events if type(e).__name__ == "StepMetrics")[1:]
    assert min(measured) <= speed.tokens_per_s <= max(measured)  # the median, the first step left out
    assert speed_history(project)[0].run_id == run_id


def test_the_next_estimate_on_the_same_device_uses_the_measured_speed(trained_project):
    project, _, cfg = trained_project
    history = measured_speeds(speed_history(project))
    assert len(history) == 1
    two_cores = DeviceBudget("cpu", "this CPU", 16 * GIB, 8 * GIB, 2, False)
    shape = model_shape(cfg.model)
    measured = estimate_time(cfg, shape, 10_000, two_cores, history=history)
    assert measured.basis == "measured" and "earlier runs on this device" in measured.text
    # the same run's settings come back at the speed it measured
    assert measured.tokens_per_s == pytest.approx(speed_history(project)[0].tokens_per_s, rel=1e-6)
    # another model on the same device: the measured FLOP/s, at that model's work per token
    bigger = model_shape("Qwen/Qwen2.5-0.5B-Instruct")
    other = estimate_time(
        replace(cfg, model="Qwen/Qwen2.5-0.5B-Instruct"), bigger, 10_000, two_cores, history=history
    )
    assert other.basis == "measured" and other.tokens_per_s < measured.tokens_per_s / 10
    flops = measured_flops(history, cfg, two_cores)
    assert other.tokens_per_s == pytest.approx(
        tokens_per_second(cfg, bigger, two_cores, flops=flops), rel=0.01
    )
    # four cores: twice the measured two
    four = estimate_time(cfg, shape, 10_000, replace(two_cores, cores=4), history=history)
    assert four.tokens_per_s == pytest.approx(2 * measured.tokens_per_s, rel=1e-6)


def test_without_a_run_on_the_device_the_estimate_says_where_its_speed_comes_from(trained_project):
    project, _, cfg = trained_project
    history = measured_speeds(speed_history(project))
    shape = model_shape(cfg.model)
    gpu = DeviceBudget("cuda", "NVIDIA GeForce RTX 4090", 24 * GIB, 24 * GIB, 16, True)
    guess = estimate_time(cfg, shape, 10_000, gpu, history=history)  # measured on the CPU only
    assert guess.basis == "guess" and "a guess until a run has measured this GPU" in guess.text
    calibrated = estimate_time(
        replace(cfg, method="qlora"),
        shape,
        10_000,
        DeviceBudget("cpu", "this CPU", 16 * GIB, 8 * GIB, 2, False),
        history=history,
    )
    assert calibrated.basis == "calibrated"  # no QLoRA run measured: the CPU constant
