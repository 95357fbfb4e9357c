"""Trains the tiny model in every process of a torchrun launch (used by test_distributed.py).

    torchrun --standalone --nproc_per_node 2 tests/engine/distributed_run.py MODEL_DIR RUN_DIR \
        [--grad-accum N] [--out-of-memory-run RUN_DIR2]
    torchrun --standalone --nproc_per_node 2 tests/engine/distributed_run.py MODEL_DIR OUT_DIR --preference

``--out-of-memory-run`` trains the same run a second time, in the same processes, into
RUN_DIR2 with a memory fault in rank 1 only (see ``rank_one_holds_less``). ``--preference``
trains a DPO run three times into OUT_DIR (``preference_runs``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import torch

from ftstudio.core.config import TrainConfig
from ftstudio.core.examples import PreparedData
from ftstudio.engine.device import memory_fault
from ftstudio.engine.training import train

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird"]
# From this optimiser step (0-based) on, rank 1 cannot hold a pass of more than this many
# tokens: its batches (about 85-130 tokens) run out, one example (at most 48) fits.
FAULT_FROM_STEP = 2
FAULT_TOKENS = 64


def data() -> PreparedData:
    def conv(i):
        return [
            {"role": "user", "content": f"Item {i}: " + " ".join(WORDS[: 1 + i % 6]) + "?"},
            {"role": "assistant", "content": " ".join(WORDS[i % 10 :: 4])},
        ]

    return PreparedData([conv(i) for i in range(20)], [conv(i) for i in range(100, 104)])


def config(model_dir: str, grad_accum: int = 1) -> TrainConfig:
    return TrainConfig(
        model=model_dir,
        max_steps=6,
        batch_tokens=128,
        max_length=128,
        grad_accum=grad_accum,
        learning_rate=5e-3,
        lora_dropout=0.0,
        warmup_ratio=0.0,
        eval_every=2,
        samples=1,
        sample_max_new_tokens=2,
        checkpoint_every=2,
        seed=1,
    )


def rank_one_holds_less(where: str, step: int, tokens: int, rows: int) -> None:
    """The fault of the out-of-memory run, installed in rank 1 only: stands for one GPU of a
    data-parallel run with less free memory than the others (another program on it), whose
    caching allocator cannot find room for a training or held-out pass above FAULT_TOKENS
    from FAULT_FROM_STEP on; it raises the error torch raises then."""
    if where in ("train", "eval") and step >= FAULT_FROM_STEP and tokens > FAULT_TOKENS:
        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {tokens} tokens' activations")


def run(model_dir: str, run_dir: Path, grad_accum: int, rank: int) -> bool:
    result = train(config(model_dir, grad_accum), data(), lambda e: None, lambda: False, run_dir=run_dir)
    (run_dir / f"result-rank{rank}.json").write_text(
        json.dumps(
            {
                "status": result.status,
                "steps": result.steps,
                "train_loss": result.train_loss,
                "eval_loss": result.eval_loss,
                "failure": result.failure and result.failure.message,
                "micro_batch_ceiling": result.micro_batch_ceiling,
            }
        )
    )
    return result.status == "finished"


def preference_config(model_dir: str, objective: str = "dpo") -> TrainConfig:
    # rows of up to 256 tokens hold several answers (a few dozen tokens each) in the passes
    # without gradients
    return TrainConfig(
        model=model_dir,
        objective=objective,
        max_steps=4,
        batch_tokens=512,
        micro_batch_tokens=256,
        auto_fit=False,
        max_length=64,
        learning_rate=1e-2,
        lora_dropout=0.0,
        warmup_ratio=0.0,
        eval_every=2,
        samples=0,
        checkpoint_every=0,
        seed=5,
        beta=0.5,
    )


FAULTS: list[str] = []  # the passes a preference run's fault made run out of memory


def rank_one_measures_less(where: str, step: int, tokens: int, rows: int) -> None:
    """The fault of the preference run with out of memory, in rank 1 only: stands for one GPU
    with less free memory than the other, on which a reference pass above 200 tokens and a
    held-out pass above 64 do not fit."""
    if (where == "reference" and tokens > 200) or (where == "eval" and tokens > 64):
        FAULTS.append(where)
        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {tokens} tokens' activations")


def rank_one_cannot_measure(where: str, step: int, tokens: int, rows: int) -> None:
    """In rank 1 only: stands for a GPU on which no reference pass fits, not even one sequence."""
    if where == "reference":
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")


def rank_one_kl_holds_less(where: str, step: int, tokens: int, rows: int) -> None:
    """In rank 1 only: stands for a GPU on which, from the second step on, KTO's pass of the
    step's mismatched answers does not fit above 100 tokens."""
    if where == "kl" and step >= 1 and tokens > 100:
        FAULTS.append(where)
        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {tokens} tokens' activations")


def preference_runs(model_dir: str, out: Path, rank: int) -> bool:
    """In the same processes: a DPO run plain, with rank 1 running out of memory in the
    reference and held-out passes, and with rank 1 unable to measure one sequence; a KTO run
    plain and with rank 1 running out of memory in the KL pass. Twelve held-out pairs, so that
    both processes have a share of the held-out set."""
    from tests.engine.test_preference_training import pref_data

    statuses = []
    for name, objective, fault in (
        ("plain", "dpo", None),
        ("recovered", "dpo", rank_one_measures_less),
        ("never", "dpo", rank_one_cannot_measure),
        ("kto-plain", "kto", None),
        ("kto-recovered", "kto", rank_one_kl_holds_less),
    ):
        run_dir = out / name
        FAULTS.clear()
        with memory_fault(fault) if fault is not None and rank == 1 else contextlib.nullcontext():
            result = train(
                preference_config(model_dir, objective),
                pref_data(n_eval=12),
                lambda e: None,
                lambda: False,
                run_dir=run_dir,
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"result-rank{rank}.json").write_text(
            json.dumps(
                {
                    "status": result.status,
                    "steps": result.steps,
                    "kind": result.failure and result.failure.kind,
                    "failure": result.failure and result.failure.message,
                    "micro_batch_ceiling": result.micro_batch_ceiling,
                    "ran_out_in": sorted(set(FAULTS)),
                }
            )
        )
        statuses.append(result.status)
    return statuses == ["finished", "finished", "failed", "finished", "finished"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--out-of-memory-run", type=Path)
    parser.add_argument("--preference", action="store_true", help="the preference runs into RUN_DIR instead")
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    if args.preference:
        return 0 if preference_runs(args.model_dir, args.run_dir, rank) else 1
    ok = run(args.model_dir, args.run_dir, args.grad_accum, rank)
    if ok and args.out_of_memory_run:
        if rank == 1:
            with memory_fault(rank_one_holds_less):
                ok = run(args.model_dir, args.out_of_memory_run, args.grad_accum, rank)
        else:
            ok = run(args.model_dir, args.out_of_memory_run, args.grad_accum, rank)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
