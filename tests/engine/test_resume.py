"""A run stopped and resumed follows the same loss curve, and ends with the
same adapter, as a run that was never interrupted: after a cooperative stop,
and after the process is SIGKILLed in the middle of a step or in the middle of
writing a checkpoint."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import Checkpoint, EvalMetrics, Finished, Log, Progress, StepMetrics, read_events
from ftstudio.core.examples import PreparedData
from ftstudio.engine.training import train

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird"]


def data() -> PreparedData:
    def conv(i):
        return [{"role": "user", "content": f"Item {i}: " + " ".join(WORDS[: 1 + i % 7]) + "?"},
                {"role": "assistant", "content": " ".join(WORDS[i % 10 :: 3])}]

    return PreparedData([conv(i) for i in range(24)], [conv(i) for i in range(100, 104)])


def cfg_for(model_dir: Path) -> TrainConfig:
    # Dropout on (resume must restore the random state), two accumulated
    # micro-batches per step, and more steps than one epoch (resume must
    # rebuild the next epoch's shuffle).
    return TrainConfig(model=str(model_dir), max_steps=9, batch_tokens=160, max_length=128, grad_accum=2,
                       learning_rate=5e-3, lora_dropout=0.2, warmup_ratio=0.2, eval_every=4, samples=1,
                       sample_max_new_tokens=3, checkpoint_every=0, seed=11)


def step_losses(events) -> dict[int, float]:
    return {e.step: e.loss for e in events if isinstance(e, StepMetrics)}


def adapter_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


@pytest.mark.parametrize("stop_after", [3, 6])
@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(tiny_model_dir, tmp_path, stop_after):
    cfg = cfg_for(tiny_model_dir)
    straight_events = []
    straight = train(cfg, data(), straight_events.append, lambda: False, run_dir=tmp_path / "straight")
    assert straight.status == "finished" and straight.steps == 9
    epochs = [e.epoch for e in straight_events if isinstance(e, Progress)]
    assert epochs[-1] > 1.0  # the run crosses an epoch boundary

    run_dir = tmp_path / "resumed"
    done = []
    first = train(cfg, data(), lambda e: done.append(e.step) if isinstance(e, Progress) else None,
                  lambda: len(done) >= stop_after, run_dir=run_dir)
    assert first.status == "stopped" and first.steps == stop_after
    assert (run_dir / "checkpoints" / f"step-{stop_after}").is_dir()

    resumed_events = []
    second = train(cfg, data(), resumed_events.append, lambda: False, run_dir=run_dir, resume=True)
    assert second.status == "finished" and second.steps == 9
    assert any(isinstance(e, Log) and e.message.startswith(f"Resuming from step {stop_after} of 9")
               for e in resumed_events)
    assert [e.step for e in resumed_events if isinstance(e, Progress)] == list(range(stop_after + 1, 10))

    # metrics.jsonl holds both sessions: the whole curve, each step once
    all_events = read_events(run_dir / "metrics.jsonl")
    resumed_curve = step_losses(all_events)
    straight_curve = step_losses(straight_events)
    assert sorted(resumed_curve) == list(range(1, 10))
    torch.testing.assert_close(torch.tensor([resumed_curve[s] for s in range(1, 10)]),
                               torch.tensor([straight_curve[s] for s in range(1, 10)]), rtol=1e-5, atol=1e-6)
    assert sum(isinstance(e, Finished) for e in all_events) == 2  # stopped early, then finished

    # the evaluation after resuming matches too, and so do the final weights
    straight_evals = {e.step: e.eval_loss for e in straight_events if isinstance(e, EvalMetrics)}
    resumed_evals = {e.step: e.eval_loss for e in all_events if isinstance(e, EvalMetrics)}
    assert resumed_evals.keys() == straight_evals.keys() == {4, 8, 9}
    for step in straight_evals:
        assert resumed_evals[step] == pytest.approx(straight_evals[step], rel=1e-5)
    a, b = adapter_weights(tmp_path / "straight"), adapter_weights(run_dir)
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)
    assert second.train_loss == pytest.approx(straight.train_loss, rel=1e-5)


@pytest.mark.slow
def test_resume_without_a_checkpoint_starts_from_the_beginning(tiny_model_dir, tmp_path):
    cfg = TrainConfig(model=str(tiny_model_dir), max_steps=2, batch_tokens=160, max_length=128, eval_every=0,
                      samples=0, checkpoint_every=0)
    events = []
    result = train(cfg, data(), events.append, lambda: False, run_dir=tmp_path / "run", resume=True)
    assert result.status == "finished" and result.steps == 2
    assert any(isinstance(e, Log) and e.level == "warning" and "starting from the beginning" in e.message
               for e in events)
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [2]


KILL_CHECKPOINT_EVERY = 2
HANG_S = 900  # only catches a child that hangs; never a speed check


@pytest.mark.parametrize("where", ["mid-step", "mid-checkpoint"])
@pytest.mark.slow
def test_resume_after_the_process_is_killed(tiny_model_dir, tmp_path, where):
    cfg = dataclasses.replace(cfg_for(tiny_model_dir), checkpoint_every=KILL_CHECKPOINT_EVERY)
    straight_events = []
    straight = train(cfg, data(), straight_events.append, lambda: False, run_dir=tmp_path / "straight")
    assert straight.status == "finished" and straight.steps == 9

    run_dir = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.run([sys.executable, str(Path(__file__).with_name("killed_run.py")), str(tiny_model_dir),
                            str(run_dir), where], env=env, capture_output=True, text=True, timeout=HANG_S)
    assert child.returncode == -9, child.stderr[-3000:]  # SIGKILL, at the point named
    # killed in step 6, steps 1-5 were logged; killed writing step 6's checkpoint, step 6 too.
    # Either way step 4's checkpoint is the newest complete one, whatever of step 6's was written.
    killed_curve = step_losses(read_events(run_dir / "metrics.jsonl"))
    assert sorted(killed_curve) == list(range(1, 6 if where == "mid-step" else 7))
    if where == "mid-checkpoint":
        assert any(p.name.startswith(".tmp-step-6") for p in (run_dir / "checkpoints").iterdir())
    assert not (run_dir / "checkpoints" / "step-6").exists()

    resumed_events = []
    second = train(cfg, data(), resumed_events.append, lambda: False, run_dir=run_dir, resume=True)
    assert second.status == "finished" and second.steps == 9
    assert any(isinstance(e, Log) and e.message.startswith("Resuming from step 4 of 9") for e in resumed_events)
    assert [e.step for e in resumed_events if isinstance(e, Progress)] == list(range(5, 10))
    # the whole curve, the resumed steps replacing the killed session's, equals the uninterrupted run
    curve = step_losses(read_events(run_dir / "metrics.jsonl"))
    straight_curve = step_losses(straight_events)
    assert sorted(curve) == list(range(1, 10))
    torch.testing.assert_close(torch.tensor([curve[s] for s in range(1, 10)]),
                               torch.tensor([straight_curve[s] for s in range(1, 10)]), rtol=1e-5, atol=1e-6)
    a, b = adapter_weights(tmp_path / "straight"), adapter_weights(run_dir)
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)
    assert (run_dir / "checkpoints" / "step-8" / "state.json").exists()
