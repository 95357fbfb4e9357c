"""A run folder's files: checkpoints to resume from and the finished adapter.

A checkpoint is a folder ``checkpoints/step-N`` holding the add-on weights
(PEFT's ``save_pretrained``), the optimiser and scheduler states, the random
number generators and ``state.json`` (the step, the losses so far, the data
fingerprint). Every folder is written under a temporary name and moved into
place whole, so a crash mid-write never leaves a checkpoint that looks complete;
only the newest ``keep`` checkpoints stay.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

STATE_FILE = "state.json"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith("step-") and (p / STATE_FILE).exists():
            try:
                found.append((int(p.name[5:]), p))
            except ValueError:
                continue
    return [p for _, p in sorted(found)]


def replace_dir(tmp: Path, target: Path) -> None:
    """Put the finished folder ``tmp`` at ``target``; an old ``target`` is moved aside first."""
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fresh_tmp(parent: Path, name: str) -> Path:
    """An empty temporary folder beside where ``name`` will go."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def read_state(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's ``state.json``."""
    state: dict[str, Any] = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    return state


def write_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step-{step}`` with ``state`` (plus Python's random state) and drop all but
    the newest ``keep``; returns its folder."""
    import torch

    folder = run_dir / "checkpoints"
    name = f"step-{step}"
    tmp = fresh_tmp(folder, name)
    model.save_pretrained(str(tmp), safe_serialization=True)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    torch.save(rng, tmp / "rng.pt")
    py_state = random.getstate()
    state = {**state, "python_rng": [py_state[0], list(py_state[1]), py_state[2]]}
    (tmp / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    replace_dir(tmp, folder / name)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder / name


def restore_checkpoint(
    checkpoint: Path, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any, device: torch.device
) -> dict[str, Any]:
    """Load the checkpoint's weights, optimiser, scheduler and random states into the run; returns
    its ``state.json``."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = read_state(checkpoint)
    weights = load_file(str(checkpoint / "adapter_model.safetensors"), device=str(device))
    set_peft_model_state_dict(model, weights)
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng = torch.load(checkpoint / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and rng.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    python_rng = state["python_rng"]
    random.setstate((python_rng[0], tuple(python_rng[1]), python_rng[2]))
    return state


def write_adapter(run_dir: Path, model: Any, tokenizer: Any) -> Path:
    """The trained add-on weights with their tokenizer, in ``run_dir/adapter`` (replaced whole)."""
    tmp = fresh_tmp(run_dir, "adapter")
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    replace_dir(tmp, run_dir / "adapter")
    return run_dir / "adapter"
