"""Measure the bytes a training forward pass keeps for the backward pass, on the CPU.

``saved_tensors_hooks`` sees every tensor autograd saves; the model is built from
a real config.json with 1 or 2 layers and random weights, loaded through the
engine's own ``load_for_training`` (LoRA or QLoRA with bitsandbytes, bf16 compute
as on a GPU) and run through the engine's packed loss, as a training step runs it.
Parameters are not counted (the estimate counts them as weights), and tensors
that share storage count once.

With gradient checkpointing, non-reentrant checkpointing keeps each block's inputs
itself (not through saved-tensor hooks, whose inner hooks it installs); a forward
pre-hook on the blocks counts those. With the checkpoints offloaded, the blocks'
inputs are saved through the engine's host hooks instead (inner to the measuring
ones): they are not kept on the device, and ``offloaded_bytes`` says what went to
host memory.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import torch

from ftstudio.core.config import TrainConfig
from ftstudio.engine.kernels import compute_paths
from ftstudio.engine.loading import load_for_training
from ftstudio.engine.loss import packed_loss_module
from ftstudio.engine.packing import enable_segment_attention

# Small vocabulary for the per-block measurement: what a block keeps does not
# depend on it, and a real one (128k-256k rows) would only make building slow.
MEASURE_VOCAB = 1024


def build_model_dir(config: dict[str, Any], layers: int, folder: Path, vocab: int = MEASURE_VOCAB) -> Path:
    """A model folder of ``config``'s shape with ``layers`` blocks and random bf16 weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(config.get("text_config", config)) if "text_config" in config else dict(config)
    cfg["model_type"] = cfg.get("model_type", config.get("model_type"))
    cfg.update(num_hidden_layers=layers, vocab_size=vocab, max_position_embeddings=4096)
    if "layer_types" in cfg or cfg["model_type"] in ("gemma2", "gemma3_text"):
        cfg["layer_types"] = ["full_attention"] * layers  # the packed CPU path attends example by example
    hf_config = AutoConfig.for_model(**cfg)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    (folder / "ftstudio-shape.json").write_text(json.dumps(cfg))
    return folder


def saved_bytes(
    model_dir: Path,
    cfg: TrainConfig,
    segments: tuple[int, ...],
    details: list[tuple[tuple[int, ...], str, int]] | None = None,
) -> int:
    """Bytes kept for backward by one forward pass of the engine's loss over one packed row;
    ``details`` (when given) receives (shape, dtype, storage bytes) of each tensor counted."""
    return kept_and_offloaded(model_dir, cfg, segments, details)[0]


def kept_and_offloaded(
    model_dir: Path,
    cfg: TrainConfig,
    segments: tuple[int, ...],
    details: list[tuple[tuple[int, ...], str, int]] | None = None,
) -> tuple[int, int]:
    """(bytes kept on the device for backward, bytes the offloaded checkpoints put in host memory)."""
    model = load_for_training(cfg, model_dir, "cpu")
    enable_segment_attention(model)
    loss_module = packed_loss_module(model, compute_paths(cfg, "cpu"))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    params |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    kept: dict[int, int] = {}

    def keep(t: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr and ptr not in params:
            if details is not None and ptr not in kept:
                details.append((tuple(t.shape), str(t.dtype).removeprefix("torch."), storage.nbytes()))
            kept[ptr] = max(kept.get(ptr, 0), storage.nbytes())

    def pack(t: torch.Tensor) -> torch.Tensor:
        keep(t)
        return t

    handles = []
    if cfg.gradient_checkpointing and not cfg.offload_checkpoints:
        base = model.get_base_model()
        blocks = base.model.layers if hasattr(base.model, "layers") else base.model.language_model.layers

        def block_input(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs.get("hidden_states")
            keep(hidden)

        handles = [b.register_forward_pre_hook(block_input, with_kwargs=True) for b in blocks]
    total = sum(segments)
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, MEASURE_VOCAB, (1, total), generator=generator)
    positions = torch.cat([torch.arange(n) for n in segments]).unsqueeze(0)
    loss_positions = torch.arange(total)
    targets = torch.randint(0, MEASURE_VOCAB, (total,), generator=generator)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = loss_module(
            input_ids=input_ids,
            position_ids=positions,
            loss_positions=loss_positions,
            targets=targets,
            segments=segments,
        )
    for h in handles:
        h.remove()
    host = getattr(model, "ftstudio_host_checkpoints", None)
    offloaded = host.offloaded if host is not None else 0
    del loss, loss_module, model
    gc.collect()  # the graph and the model hold hundreds of MB on real shapes: free them before the next
    return sum(kept.values()), offloaded
