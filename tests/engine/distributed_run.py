"""Trains the tiny model in every process of a torchrun launch (used by test_distributed.py).

    torchrun --standalone --nproc_per_node 2 tests/engine/distributed_run.py MODEL_DIR RUN_DIR [GRAD_ACCUM]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ftstudio.core.config import TrainConfig
from ftstudio.core.examples import PreparedData
from ftstudio.engine.training import train

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird"]


def data() -> PreparedData:
    def conv(i):
        return [{"role": "user", "content": f"Item {i}: " + " ".join(WORDS[: 1 + i % 6]) + "?"},
                {"role": "assistant", "content": " ".join(WORDS[i % 10 :: 4])}]

    return PreparedData([conv(i) for i in range(20)], [conv(i) for i in range(100, 104)])


def config(model_dir: str, grad_accum: int = 1) -> TrainConfig:
    return TrainConfig(model=model_dir, max_steps=6, batch_tokens=128, max_length=128, grad_accum=grad_accum,
                       learning_rate=5e-3, lora_dropout=0.0, warmup_ratio=0.0, eval_every=2, samples=1,
                       sample_max_new_tokens=2, checkpoint_every=2, seed=1)


def main() -> int:
    model_dir, run_dir = sys.argv[1], Path(sys.argv[2])
    grad_accum = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    result = train(config(model_dir, grad_accum), data(), lambda e: None, lambda: False, run_dir=run_dir)
    rank = int(os.environ.get("RANK", "0"))
    (run_dir / f"result-rank{rank}.json").write_text(json.dumps(
        {"status": result.status, "steps": result.steps, "train_loss": result.train_loss,
         "eval_loss": result.eval_loss, "failure": result.failure and result.failure.message}))
    return 0 if result.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
