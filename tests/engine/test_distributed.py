"""Data parallel training: two CPU processes (gloo) under torchrun end with
identical adapters, only the main process writes the run folder, and the
result equals one process accumulating the same two micro-batches per step.
When one process runs out of memory, both halve the micro-batch and redo the
step together: no hang, the same steps, the same update."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ftstudio.core.events import (
    Checkpoint,
    EvalMetrics,
    Finished,
    FitPlan,
    Log,
    Progress,
    StepMetrics,
    read_events,
)

HERE = Path(__file__).parent
SCRIPT = HERE / "distributed_run.py"
ROOT = HERE.parents[1]
HANG_S = 900  # only catches a launch that hangs; never a speed check


def _env() -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        FTSTUDIO_WRITE_WEIGHT_DIGESTS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    # The processes import the ftstudio under test (this checkout), not whichever one is installed.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _same_curves(events: list, reference: list, eval_losses: bool = True) -> None:
    """The training losses (and the held-out losses) of two runs' events agree."""
    kinds = [(StepMetrics, "loss")] + ([(EvalMetrics, "eval_loss")] if eval_losses else [])
    for kind, field in kinds:
        torch.testing.assert_close(
            torch.tensor([getattr(e, field) for e in events if isinstance(e, kind)]),
            torch.tensor([getattr(e, field) for e in reference if isinstance(e, kind)]),
            rtol=1e-5,
            atol=1e-6,
        )


def _same_adapter(run: Path, reference: Path) -> None:
    a = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(reference / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on CPU")
@pytest.mark.slow
def test_two_processes_agree_and_match_gradient_accumulation(tiny_model_dir, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    two = tmp_path / "two"
    oom = tmp_path / "two-out-of-memory"
    # One launch, two runs: the plain one, then the same one with rank 1 running out of memory.
    _run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            str(SCRIPT),
            str(tiny_model_dir),
            str(two),
            "--out-of-memory-run",
            str(oom),
        ],
        HERE,
    )

    results = [json.loads((two / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["status"] == "finished" and r["steps"] == 6 for r in results), results
    assert results[0]["train_loss"] == results[1]["train_loss"]
    assert results[0]["eval_loss"] == results[1]["eval_loss"]
    digests = [(two / f"weights-rank{r}.sha256").read_text() for r in (0, 1)]
    assert len(digests[0]) == 64 and digests[0] == digests[1]

    # Only the main process wrote events: each step once, one Finished.
    events = read_events(two / "metrics.jsonl")
    assert [e.step for e in events if isinstance(e, Progress)] == list(range(1, 7))
    assert sum(isinstance(e, Finished) for e in events) == 1
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [2, 4, 6]
    assert (two / "adapter" / "adapter_model.safetensors").is_file()

    # One process with two accumulated micro-batches per step sees the same
    # batches per step: the gradients and so the weights must agree.
    one = tmp_path / "one"
    _run([sys.executable, str(SCRIPT), str(tiny_model_dir), str(one), "--grad-accum", "2"], HERE)
    single = read_events(one / "metrics.jsonl")
    _same_curves(events, single)
    _same_adapter(two, one)

    # Rank 1 ran out of memory in the held-out pass at step 2 and in training step 3
    # (distributed_run.rank_one_holds_less); rank 0 never did. Both halved and went on.
    results = [json.loads((oom / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert all(
        r["status"] == "finished" and r["steps"] == 6 and r["micro_batch_ceiling"] == 64 for r in results
    ), results
    digests = [(oom / f"weights-rank{r}.sha256").read_text() for r in (0, 1)]
    assert len(digests[0]) == 64 and digests[0] == digests[1]
    oom_events = read_events(oom / "metrics.jsonl")
    assert [e.step for e in oom_events if isinstance(e, Progress)] == list(range(1, 7))
    warnings = [e.message for e in oom_events if isinstance(e, Log) and "Out of memory" in e.message]
    assert len(warnings) == 2, warnings  # said once each, by the main process only
    assert "held-out loss" in warnings[0] and "in rank 1 of 2 processes" in warnings[0]
    assert warnings[1].startswith(
        "Out of memory at step 3 in rank 1 of 2 processes with micro-batches of 128"
    )
    assert [(p.reason, p.step, p.micro_batch_tokens) for p in oom_events if isinstance(p, FitPlan)] == [
        ("plan", 0, 128),
        ("out_of_memory", 2, 64),
    ]
    # Halving changes how the step's gradient is added up, not what it is: the same
    # curve, held-out losses and adapter as the plain run.
    assert [e.tokens for e in oom_events if isinstance(e, StepMetrics)] == [
        e.tokens for e in events if isinstance(e, StepMetrics)
    ]
    _same_curves(oom_events, events)
    _same_adapter(oom, two)


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on CPU")
@pytest.mark.slow
def test_preference_passes_without_gradients_recover_in_one_process_and_end_in_all(tiny_model_dir, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    out = tmp_path / "dpo"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(tiny_model_dir), str(out)]
    _run([*cmd, "--preference"], HERE)

    def results(name: str) -> list[dict]:
        return [json.loads((out / name / f"result-rank{r}.json").read_text()) for r in (0, 1)]

    assert all(r["status"] == "finished" and r["steps"] == 4 for r in results("plain")), results("plain")
    # Rank 1 ran out of memory in the reference pass and in the held-out pass at step 2
    # (distributed_run.rank_one_measures_less) and went on alone in smaller rows; rank 0 never
    # did. The run is the plain one's, and the main process says so once per pass.
    recovered_results = results("recovered")
    assert all(r["status"] == "finished" and r["steps"] == 4 for r in recovered_results), recovered_results
    assert [r["ran_out_in"] for r in recovered_results] == [[], ["eval", "reference"]]
    plain = read_events(out / "plain" / "metrics.jsonl")
    recovered = read_events(out / "recovered" / "metrics.jsonl")
    _same_curves(recovered, plain)
    assert len([e for e in plain if isinstance(e, EvalMetrics)]) == 2
    warnings = [e.message for e in recovered if isinstance(e, Log) and "Out of memory" in e.message]
    assert warnings == [
        "Out of memory computing the reference log-probabilities in rank 1 of 2 processes: "
        "measured the rest in smaller rows",
        "Out of memory measuring the held-out metrics at step 2 in rank 1 of 2 processes: "
        "measured the rest in smaller rows",
    ]
    # Rank 1 could not measure one sequence: both processes end (no hang), naming the rank.
    never = results("never")
    assert all(r["status"] == "failed" and r["kind"] == "oom" for r in never), never
    assert all(
        r["failure"]
        == "Computing the reference log-probabilities ran out of memory even one sequence at a time "
        "in rank 1 of 2 processes."
        for r in never
    ), never

    # KTO: rank 1 ran out of memory in the step's KL pass (a pass of many sequences, in a step
    # whose share on rank 1 was one answer) and measured it in smaller rows alone: the step was
    # neither halved nor redone, and the run is the plain one's.
    kto = results("kto-recovered")
    assert all(
        r["status"] == "finished" and r["steps"] == 4 and r["micro_batch_ceiling"] is None for r in kto
    ), kto
    assert [r["ran_out_in"] for r in kto] == [[], ["kl"]]
    kto_plain = read_events(out / "kto-plain" / "metrics.jsonl")
    kto_recovered = read_events(out / "kto-recovered" / "metrics.jsonl")
    _same_curves(kto_recovered, kto_plain, eval_losses=False)
    assert [p.reason for p in kto_recovered if isinstance(p, FitPlan)] == ["plan"]


def test_the_batch_plan_splits_evenly_for_this_check(tiny_model_dir):
    """The comparison above needs each epoch to hold an even number of batches
    (otherwise two processes split one batch that one process keeps whole)."""
    sys.path.insert(0, str(HERE))
    try:
        from distributed_run import config, data
    finally:
        sys.path.remove(str(HERE))
    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.packing import epoch_batches
    from ftstudio.engine.tokenize import encode_conversation

    cfg = config(str(tiny_model_dir))
    tokenizer = load_tokenizer(tiny_model_dir)
    lengths = [len(encode_conversation(tokenizer, c).input_ids) for c in data().train]
    for epoch in range(2):
        assert len(epoch_batches(lengths, cfg.batch_tokens, cfg.seed, epoch)) % 2 == 0
