"""A run folder's files: checkpoints to resume from and the finished adapter.

A checkpoint is a folder ``checkpoints/step-N`` holding the add-on weights
(PEFT's ``save_pretrained``), the optimiser and scheduler states, the random
number generators and ``state.json`` (the step, the losses so far, the data
fingerprint), and last of all ``manifest.json``: every other file's size and
SHA-256. Every folder is written under a temporary name and moved into place
whole, so a crash mid-write never leaves a checkpoint that looks complete; only
the newest ``keep`` checkpoints stay. Resume verifies a checkpoint against its
manifest and falls back to the newest one that is whole (a file lost or damaged
later, by a disk error or a hand, does not block it).

Temporary folders (``.tmp-*``, ``.old-*``) that a killed process left behind
are removed when a run starts or resumes (``remove_stale_temp_dirs``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio.core.fileio import (
    TEMP_DIR_PREFIXES,
    DiskFullError,
    disk_full_message,
    display_path,
    is_disk_full,
    tree_size,
)

if TYPE_CHECKING:
    import torch

STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"
# What a checkpoint cannot resume without (checked for checkpoints older than manifests).
REQUIRED_FILES = ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", STATE_FILE)


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
        old = target.with_name(f"{TEMP_DIR_PREFIXES[1]}{target.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fresh_tmp(parent: Path, name: str) -> Path:
    """An empty temporary folder beside where ``name`` will go."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f"{TEMP_DIR_PREFIXES[0]}{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """``manifest.json``: the size and SHA-256 of every other file in ``folder`` (written last)."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    }
    with open(folder / MANIFEST_FILE, "w", encoding="utf-8") as fh:
        json.dump({"files": files}, fh)
        fh.flush()
        os.fsync(fh.fileno())


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What is wrong with ``checkpoint`` (a file missing, cut short or changed), or None when it is whole."""
    manifest = checkpoint / MANIFEST_FILE
    if not manifest.exists():
        # Written before manifests: whole if every file a resume reads is there and state.json parses.
        missing = [name for name in REQUIRED_FILES if not (checkpoint / name).is_file()]
        if missing:
            return f"{missing[0]} is missing"
        try:
            read_state(checkpoint)
        except (OSError, ValueError) as exc:
            return f"{STATE_FILE} cannot be read ({exc})"
        return None
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{MANIFEST_FILE} cannot be read ({exc})"
    for name, expected in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected.get("size"):
            return f"{name} is {path.stat().st_size:,} bytes, not {expected.get('size'):,}"
        if _sha256(path) != expected.get("sha256"):
            return f"{name} is damaged (its contents changed after it was written)"
    return None


def newest_complete(run_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint that is whole, and the newer ones passed over with what is wrong with each."""
    passed: list[tuple[Path, str]] = []
    for checkpoint in reversed(list_checkpoints(run_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint, passed
        passed.append((checkpoint, problem))
    return None, passed


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

    folder = run_dir / "checkpoints"
    name = f"step-{step}"
    tmp = fresh_tmp(folder, name)
    try:
        _write_checkpoint_files(tmp, model, optimizer, scheduler, device, state)
        write_manifest(tmp)  # last: a checkpoint with a manifest is whole
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise DiskFullError(_checkpoint_disk_full(run_dir, step)) from exc
        raise
    replace_dir(tmp, folder / name)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder / name


def _write_checkpoint_files(
    tmp: Path,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    state: dict[str, Any],
) -> None:
    """Everything a resume reads, into the temporary folder ``tmp``."""
    import torch

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


def _checkpoint_disk_full(run_dir: Path, step: int) -> str:
    existing = list_checkpoints(run_dir)
    needed = tree_size(existing[-1]) if existing else None
    if existing:
        kept = (
            f"Kept: the checkpoint at {existing[-1].name} ({display_path(existing[-1])}); Resume continues "
            "from it, and the partly written one was removed."
        )
    else:
        kept = "No checkpoint of this run was written yet; the partly written one was removed."
    return disk_full_message(f"the checkpoint at step {step}", run_dir / "checkpoints", needed, kept)


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
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            existing = list_checkpoints(run_dir)
            kept = (
                f"Kept: the checkpoint at {existing[-1].name}; Resume finishes the run from it."
                if existing
                else "No checkpoint was kept; the run has to start again."
            )
            raise DiskFullError(
                disk_full_message(
                    "the finished adapter", run_dir, tree_size(existing[-1]) if existing else None, kept
                )
            ) from exc
        raise
    replace_dir(tmp, run_dir / "adapter")
    return run_dir / "adapter"
