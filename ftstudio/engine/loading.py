"""The base model with LoRA or QLoRA add-on weights, ready to train.

LoRA keeps the frozen weights in bf16 on a GPU that supports it (fp32 on
the CPU); QLoRA stores them as 4-bit NF4 with double quantisation
(bitsandbytes) and computes in bf16 (fp32 on a CPU without fast bf16).
The add-on weights themselves are always fp32, so AdamW updates them exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio.core.config import TrainConfig

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig, PeftModel


def compute_dtype(cfg: TrainConfig, device: str) -> torch.dtype:
    """The dtype the frozen weights (LoRA) or the 4-bit matmuls (QLoRA) work in."""
    import torch

    if cfg.precision == "fp32":
        return torch.float32
    if cfg.precision == "bf16":
        return torch.bfloat16
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def lora_config(cfg: TrainConfig) -> LoraConfig:
    from peft import LoraConfig

    modules = cfg.target_modules
    target = "all-linear" if modules == ["all-linear"] or modules == "all-linear" else list(modules)
    return LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=target, bias="none", task_type="CAUSAL_LM",
    )


def _from_pretrained(model_dir: Path, **kwargs: Any) -> Any:
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as exc:
        if "sdpa" not in str(exc).lower() and "attention" not in str(exc).lower():
            raise
        # Architectures without an sdpa path fall back to eager attention,
        # which reads packed sequences from position ids just the same.
        return AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager", **kwargs)


def four_bit_kwargs(dtype: torch.dtype, device: torch.device | str) -> dict[str, Any]:
    """from_pretrained's arguments for QLoRA's 4-bit base: NF4, double quantisation, ``dtype`` matmuls.

    Training and generation after a QLoRA run (``inference.Generator``) load the
    base with these same settings, so the adapter answers from the weights it learned on.
    """
    import torch
    from transformers import BitsAndBytesConfig

    device = torch.device(device)
    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_storage=torch.uint8,
    )
    device_map = {"": device.index if device.type == "cuda" and device.index is not None else device.type}
    if device.type == "cuda" and device.index is None:
        device_map = {"": torch.cuda.current_device()}
    return {"dtype": dtype, "quantization_config": quant, "device_map": device_map}


class HostCheckpoints:
    """Saved-tensor hooks that keep what autograd saves in host memory (pinned on a GPU) and
    bring it back to its device when the backward pass asks for it; ``offloaded`` counts the
    bytes it took. Around a non-reentrant checkpoint the only tensors autograd saves are the
    block's inputs (the checkpoint keeps everything inside the block through hooks of its own),
    so exactly the checkpoints wait in host memory. ``torch.autograd.graph.save_on_cpu`` does the
    same without the count; this copy also works where pinned memory does not exist (the CPU)."""

    def __init__(self) -> None:
        self.offloaded = 0

    def hooks(self) -> Any:
        import torch

        def pack(tensor: torch.Tensor) -> tuple[torch.device, torch.Tensor]:
            pin = tensor.device.type == "cuda"
            host = torch.empty(tensor.size(), dtype=tensor.dtype, layout=tensor.layout, pin_memory=pin)
            host.copy_(tensor)
            self.offloaded += host.untyped_storage().nbytes()
            return tensor.device, host

        def unpack(packed: tuple[torch.device, torch.Tensor]) -> torch.Tensor:
            device, host = packed
            return host.to(device, non_blocking=host.is_pinned())

        return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


def offload_checkpoints(model: Any) -> HostCheckpoints:
    """Make the model's gradient checkpoints wait in host memory (checkpointing already on)."""
    from torch.utils.checkpoint import checkpoint

    host = HostCheckpoints()

    def checkpoint_to_host(function: Any, *args: Any, **kwargs: Any) -> Any:
        with host.hooks():
            return checkpoint(function, *args, use_reentrant=False, **kwargs)

    # transformers calls each checkpointing layer's _gradient_checkpointing_func (set by
    # gradient_checkpointing_enable); the same function with the hooks around it.
    replaced = 0
    for module in model.modules():
        if getattr(module, "gradient_checkpointing", False) and hasattr(module, "_gradient_checkpointing_func"):
            module._gradient_checkpointing_func = checkpoint_to_host
            replaced += 1
    if not replaced:
        raise ValueError(f"{type(model).__name__} has no checkpointed layers whose checkpoints could be offloaded")
    model.ftstudio_host_checkpoints = host
    return host


def load_for_training(cfg: TrainConfig, model_dir: Path, device: torch.device | str) -> PeftModel:
    """A PeftModel on ``device`` whose only trainable weights are the LoRA add-ons."""
    import torch
    from peft import get_peft_model

    device = torch.device(device)
    dtype = compute_dtype(cfg, device.type)
    if cfg.method == "qlora":
        model = _from_pretrained(model_dir, **four_bit_kwargs(dtype, device))
    else:
        model = _from_pretrained(model_dir, dtype=dtype)
        model.to(device)
    model.config.use_cache = False
    for param in model.parameters():
        param.requires_grad_(False)
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad, and
        # works with DDP and frozen embeddings.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.offload_checkpoints:
            offload_checkpoints(model)
    if cfg.start_from:
        from peft import PeftModel

        # Go on training an earlier run's adapter (its rank and layers, not cfg's).
        peft_model = PeftModel.from_pretrained(model, cfg.start_from, is_trainable=True, autocast_adapter_dtype=True)
    else:
        peft_model = get_peft_model(model, lora_config(cfg), autocast_adapter_dtype=True)
    for name, param in peft_model.named_parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    return peft_model


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
