"""Checkpoints that survive what happens to them: a manifest written last, resume
falling back to the newest whole checkpoint (saying so), temporary folders a kill left
behind removed, and a full disk while writing said in words with the run recorded as
failed, not left running."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from ftstudio.core import runs
from ftstudio.core.config import TrainConfig
from ftstudio.core.events import Failed, Log
from ftstudio.core.examples import PreparedData
from ftstudio.engine import checkpoints
from ftstudio.engine.training import train


def data() -> PreparedData:
    conv = [
        [
            {"role": "user", "content": f"Which colour is item {i}?"},
            {"role": "assistant", "content": ["red", "blue", "green"][i % 3]},
        ]
        for i in range(12)
    ]
    return PreparedData(conv, conv[:2])


def cfg_for(model_dir: Path, steps: int = 3) -> TrainConfig:
    return TrainConfig(
        model=str(model_dir),
        max_steps=steps,
        batch_tokens=96,
        max_length=64,
        eval_every=0,
        samples=0,
        checkpoint_every=1,
        keep_checkpoints=5,
        seed=3,
    )


@pytest.fixture
def three_checkpoints(tiny_model_dir, tmp_path) -> Path:
    run_dir = tmp_path / "run"
    stops = []
    result = train(
        cfg_for(tiny_model_dir, steps=4),
        data(),
        lambda e: stops.append(e) if isinstance(e, Log) else None,
        lambda: len(list((run_dir / "checkpoints").glob("step-*"))) >= 3,
        run_dir=run_dir,
    )
    assert result.status == "stopped"
    assert [p.name for p in checkpoints.list_checkpoints(run_dir)] == ["step-1", "step-2", "step-3"]
    return run_dir


@pytest.mark.slow
def test_a_checkpoint_has_a_manifest_and_damage_is_found(three_checkpoints):
    ckpt = three_checkpoints / "checkpoints" / "step-3"
    assert (ckpt / checkpoints.MANIFEST_FILE).is_file()
    assert checkpoints.checkpoint_problem(ckpt) is None
    optimizer = ckpt / "optimizer.pt"
    raw = bytearray(optimizer.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    optimizer.write_bytes(bytes(raw))
    assert "optimizer.pt is damaged" in checkpoints.checkpoint_problem(ckpt)
    older = three_checkpoints / "checkpoints" / "step-2"
    (older / "rng.pt").unlink()
    assert checkpoints.checkpoint_problem(older) == "rng.pt is missing"
    assert checkpoints.newest_complete(three_checkpoints)[0].name == "step-1"


@pytest.mark.slow
def test_resume_falls_back_to_the_newest_whole_checkpoint(three_checkpoints, tiny_model_dir):
    run_dir = three_checkpoints
    (run_dir / "checkpoints" / "step-3" / "adapter_model.safetensors").unlink()
    raw = bytearray((run_dir / "checkpoints" / "step-2" / "optimizer.pt").read_bytes())
    raw[-10] ^= 0xFF
    (run_dir / "checkpoints" / "step-2" / "optimizer.pt").write_bytes(bytes(raw))
    events = []
    result = train(
        cfg_for(tiny_model_dir, steps=4), data(), events.append, lambda: False, run_dir=run_dir, resume=True
    )
    assert result.status == "finished" and result.steps == 4
    warnings = [e.message for e in events if isinstance(e, Log) and e.level == "warning"]
    assert any(
        "step-3 cannot be used (adapter_model.safetensors is missing)" in w and "step-1" in w
        for w in warnings
    ), warnings
    assert any("step-2 cannot be used (optimizer.pt is damaged" in w for w in warnings), warnings
    assert any(isinstance(e, Log) and "Resuming from step 1 of 4 (step-1)" in e.message for e in events)


@pytest.mark.slow
def test_temporary_folders_left_by_a_kill_are_removed_on_resume(three_checkpoints, tiny_model_dir):
    run_dir = three_checkpoints
    # What a process killed inside a checkpoint write and inside the adapter write leaves.
    for stale in (
        run_dir / "checkpoints" / ".tmp-step-4-99999",
        run_dir / ".tmp-adapter-99999",
        run_dir / "checkpoints" / ".old-step-2-99999",
    ):
        stale.mkdir()
        (stale / "adapter_model.safetensors").write_bytes(b"\0" * 1024)
    events = []
    result = train(
        cfg_for(tiny_model_dir, steps=4), data(), events.append, lambda: False, run_dir=run_dir, resume=True
    )
    assert result.status == "finished"
    left = [
        p.name for p in [*run_dir.iterdir(), *(run_dir / "checkpoints").iterdir()] if p.name.startswith(".")
    ]
    assert left == [] or all(not n.startswith((".tmp-", ".old-")) for n in left), left
    assert any(isinstance(e, Log) and "Removed 3 unfinished temporary folders" in e.message for e in events)


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_is_said_and_the_run_is_recorded_failed(
    project, tiny_model_dir, monkeypatch
):
    real = checkpoints._write_checkpoint_files
    calls = []

    def fill_up(tmp, *args, **kwargs):  # stands for the disk filling up during the second checkpoint
        calls.append(tmp)
        real(tmp, *args, **kwargs)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "_write_checkpoint_files", fill_up)
    project.add_examples([])
    for conv in data().train:
        project.add_example(conv, split="train")
    plan = runs.plan_new(project, cfg_for(tiny_model_dir))
    run_id = runs.begin(project, plan)
    run_dir = project.run_dir(run_id)
    events = []
    result = train(plan.config, plan.data, events.append, lambda: False, run_dir=run_dir)
    runs.record_outcome(project, run_id, result)
    failure = next(e for e in events if isinstance(e, Failed))
    assert failure.kind == "disk"
    assert "The disk is full: the checkpoint at step 2" in failure.message
    assert "is free" in failure.message and "Kept: the checkpoint at step-1" in failure.message
    assert "please report" not in failure.message
    assert failure.last_checkpoint.endswith("step-1")
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    run = project.get_run(run_id)
    assert run.status == "failed" and "disk is full" in run.message
    assert runs.can_resume(project, run)


def test_an_adapter_export_to_a_full_disk_says_so_and_leaves_nothing(
    tmp_path, monkeypatch, lora_adapter, tiny_model_dir
):
    from ftstudio.engine import export

    adapter = tmp_path / "adapter"
    lora_adapter(tiny_model_dir, adapter, seed=1)

    def full(adapter_dir, tmp):  # stands for the disk filling up halfway through the copy
        tmp.mkdir()
        (tmp / "adapter_model.safetensors").write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "_copy_adapter", full)
    with pytest.raises(export.ExportError) as caught:
        export.export_adapter(adapter, tmp_path / "out")
    text = str(caught.value)
    assert (
        "The disk is full: exporting out" in text and "needs about" in text and "Nothing was exported" in text
    )
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
