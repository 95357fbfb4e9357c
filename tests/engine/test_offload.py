"""Offloaded gradient checkpoints (the ``offload_checkpoints`` setting): each block's input
waits in host memory and comes back for the backward pass. On the CPU the copies go from
RAM to RAM, which is enough to show the mechanism: the same loss and the same gradients as
checkpoints kept in place, dropout included, and exactly the blocks' inputs moved. What it
saves on a GPU is the estimate's (tests/engine/test_saved_activations.py measures the bytes);
the engine never offloads on the CPU."""

from __future__ import annotations

from pathlib import Path

import torch

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import FitPlan, Log
from ftstudio.engine.kernels import compute_paths
from ftstudio.engine.loading import load_for_training
from ftstudio.engine.loss import packed_loss_module
from ftstudio.engine.packing import enable_segment_attention

from tests.engine.test_training import memorise_data, run, tiny_cfg

SEGMENTS = (40, 24)


def _loss_and_gradients(model_dir: Path, offload: bool) -> tuple[float, list[torch.Tensor], int, int]:
    cfg = TrainConfig(
        model=str(model_dir),
        train_on="all",
        gradient_checkpointing=True,
        offload_checkpoints=offload,
        lora_dropout=0.1,  # the recomputed forward must draw the same dropout masks
    )
    torch.manual_seed(0)
    model = load_for_training(cfg, model_dir, "cpu")
    enable_segment_attention(model)
    module = packed_loss_module(model, compute_paths(cfg, "cpu"))
    total = sum(SEGMENTS)
    generator = torch.Generator().manual_seed(1)
    vocab = model.get_input_embeddings().num_embeddings
    input_ids = torch.randint(0, vocab, (1, total), generator=generator)
    targets = torch.randint(0, vocab, (total,), generator=generator)
    positions = torch.cat([torch.arange(n) for n in SEGMENTS]).unsqueeze(0)
    model.train()
    torch.manual_seed(2)
    loss, _ = module(
        input_ids=input_ids,
        position_ids=positions,
        loss_positions=torch.arange(total),
        targets=targets,
        segments=SEGMENTS,
    )
    loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters() if p.requires_grad]
    host = getattr(model, "ftstudio_host_checkpoints", None)
    config = model.get_base_model().config
    return (
        float(loss.detach()),
        grads,
        host.offloaded if host else 0,
        config.num_hidden_layers * config.hidden_size,
    )


def test_offloaded_checkpoints_give_the_same_loss_and_gradients(tiny_model_dir):
    kept_loss, kept_grads, kept_host, _ = _loss_and_gradients(tiny_model_dir, offload=False)
    off_loss, off_grads, off_host, per_token = _loss_and_gradients(tiny_model_dir, offload=True)
    assert kept_host == 0
    assert off_host == sum(SEGMENTS) * per_token * 4  # every block's fp32 input, nothing else
    assert off_loss == kept_loss
    assert len(off_grads) == len(kept_grads) > 0
    assert all(torch.equal(a, b) for a, b in zip(off_grads, kept_grads))
    assert any(g.abs().sum() > 0 for g in off_grads)


def test_the_cpu_keeps_its_checkpoints_where_they_are(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(
        tiny_model_dir,
        max_steps=1,
        eval_every=0,
        samples=0,
        checkpoint_every=0,
        auto_fit=False,
        gradient_checkpointing=True,
        offload_checkpoints=True,
        device="cpu",
    )
    result, events = run(cfg, memorise_data(4, 1), tmp_path / "run")
    assert result.status == "finished"
    [plan] = [e for e in events if isinstance(e, FitPlan)]
    assert plan.gradient_checkpointing and not plan.offload_checkpoints
    assert any(
        isinstance(e, Log) and e.message.startswith("Plan: ") and "checkpointing on" in e.message
        for e in events
    )
