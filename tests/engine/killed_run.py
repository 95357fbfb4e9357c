"""Trains the tiny model as test_resume.py does and SIGKILLs itself at a named point
(used by test_resume.py's kill tests).

    python killed_run.py MODEL_DIR RUN_DIR mid-step|mid-checkpoint

``mid-step``: in the middle of step 6, after its first micro-batch's backward pass
(before its second micro-batch goes to the model). ``mid-checkpoint``: while the
checkpoint of step 6 is written, after the adapter weights and before the
optimiser state. Both stand for the power going off or the kernel killing the process
for memory: nothing gets the chance to clean up.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

import ftstudio.engine.training as training  # noqa: E402
from ftstudio.core.events import Progress  # noqa: E402
from test_resume import KILL_CHECKPOINT_EVERY, cfg_for, data  # noqa: E402

KILL_STEP = 6


def main() -> int:
    model_dir, run_dir, where = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    seen = {"step": 0, "inputs_since": 0}

    def sink(event: Any) -> None:
        if isinstance(event, Progress):
            seen["step"], seen["inputs_since"] = event.step, 0

    if where == "mid-step":
        real_inputs = training._inputs

        def inputs(*args: Any, **kwargs: Any) -> Any:
            # grad_accum=2: once step KILL_STEP - 1 is done, the second batch in is step KILL_STEP's second
            # micro-batch, its first one already through forward and backward.
            if seen["step"] == KILL_STEP - 1:
                seen["inputs_since"] += 1
                if seen["inputs_since"] == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_inputs(*args, **kwargs)

        training._inputs = inputs
    elif where == "mid-checkpoint":
        real_save = torch.save

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
            path = str(f)
            if f"step-{KILL_STEP}" in path and path.endswith("optimizer.pt"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *args, **kwargs)

        torch.save = save
    else:
        raise SystemExit(f"unknown kill point {where}")
    cfg = dataclasses.replace(cfg_for(Path(model_dir)), checkpoint_every=KILL_CHECKPOINT_EVERY)
    training.train(cfg, data(), sink, lambda: False, run_dir=run_dir)
    return 0  # not reached: the process kills itself first


if __name__ == "__main__":
    sys.exit(main())
