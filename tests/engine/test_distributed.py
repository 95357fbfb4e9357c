"""Data parallel training: two CPU processes (gloo) under torchrun end with
identical adapters, only the main process writes the run folder, and the
result equals one process accumulating the same two micro-batches per step."""

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

from ftstudio.core.events import Checkpoint, EvalMetrics, Finished, Progress, StepMetrics, read_events

HERE = Path(__file__).parent
SCRIPT = HERE / "distributed_run.py"
HANG_S = 900  # only catches a launch that hangs; never a speed check


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", FTSTUDIO_WRITE_WEIGHT_DIGESTS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on CPU")
@pytest.mark.slow
def test_two_processes_agree_and_match_gradient_accumulation(tiny_model_dir, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    two = tmp_path / "two"
    _run([torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(tiny_model_dir), str(two)], HERE)

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
    _run([sys.executable, str(SCRIPT), str(tiny_model_dir), str(one), "2"], HERE)
    single = read_events(one / "metrics.jsonl")
    torch.testing.assert_close(torch.tensor([e.loss for e in events if isinstance(e, StepMetrics)]),
                               torch.tensor([e.loss for e in single if isinstance(e, StepMetrics)]),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor([e.eval_loss for e in events if isinstance(e, EvalMetrics)]),
                               torch.tensor([e.eval_loss for e in single if isinstance(e, EvalMetrics)]),
                               rtol=1e-5, atol=1e-6)
    a = load_file(str(two / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(one / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


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
