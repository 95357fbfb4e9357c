"""The optional GPU compute paths: which of them a run uses, and the packages they need.

TrainConfig has four settings for them (``fused_loss``, ``varlen_attention``,
``bf16_autocast``, ``liger_kernels``). Each is off by default: none has run
on a GPU yet, and a path that has not been shown equal to the default one and
faster on a GPU does not become the default. This module decides, once per
run, which of the asked-for paths apply on the device (a GPU-only kernel on
the CPU is left out with a note, not an error) and refuses, in words, a path
whose package is missing on the GPU. The paths themselves live where their
work is: the fused loss and the bf16 autocast in ``engine/loss.py``, the
varlen attention in ``engine/packing.py``, Liger's layer kernels here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftstudio.core.config import TrainConfig

if TYPE_CHECKING:
    import torch

LIGER_INSTALL = "pip install liger-kernel"


@dataclass(frozen=True)
class ComputePaths:
    """What a run computes with: every flag False is today's default path."""

    fused_loss: bool = False
    varlen_attention: bool = False
    bf16_autocast: bool = False
    liger_kernels: bool = False
    notes: tuple[str, ...] = ()  # asked-for paths this device leaves out, and why


class KernelUnavailable(RuntimeError):
    """A path asked for on the GPU whose package is missing: ``str(exc)`` says which and what to do."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def liger_problem() -> str | None:
    """Why liger-kernel cannot be used here, or None when it imports (with Triton)."""
    try:
        importlib.import_module("liger_kernel.transformers")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "liger_kernel"
        if missing.split(".")[0] == "liger_kernel":
            return "the liger-kernel package is not installed"
        return f"liger-kernel is installed but cannot load ({missing} is missing: {exc})"
    return None


def varlen_problem() -> str | None:
    """Why PyTorch's variable-length attention cannot be used here, or None."""
    try:
        importlib.import_module("torch.nn.attention.varlen")
    except ImportError:
        import torch

        return f"PyTorch {torch.__version__} has no variable-length attention (torch.nn.attention.varlen, 2.9 and later)"
    return None


def compute_paths(cfg: TrainConfig, device_type: str) -> ComputePaths:
    """The paths of ``cfg`` that run on ``device_type`` ("cuda", "cpu", ...).

    Raises KernelUnavailable when a path asked for on a GPU lacks its package.
    """
    notes: list[str] = []
    gpu = device_type == "cuda"
    fused = varlen = liger = False
    if cfg.fused_loss or cfg.liger_kernels:
        asked = " and ".join(
            n for n, on in (("fused_loss", cfg.fused_loss), ("liger_kernels", cfg.liger_kernels)) if on
        )
        if not gpu:
            notes.append(
                f"{asked}: liger-kernel's kernels run on an NVIDIA GPU only; this run uses the usual path"
            )
        else:
            problem = liger_problem()
            if problem:
                raise KernelUnavailable(
                    f"{asked} is on, but {problem}.",
                    f"Install it ({LIGER_INSTALL}: a wheel, nothing to compile) or turn {asked} off.",
                )
            fused, liger = cfg.fused_loss, cfg.liger_kernels
    if cfg.varlen_attention:
        if not gpu:
            notes.append(
                "varlen_attention: a GPU kernel; on the CPU attention goes example by example as always"
            )
        else:
            problem = varlen_problem()
            if problem:
                raise KernelUnavailable(
                    f"varlen_attention is on, but {problem}.",
                    "Update PyTorch (2.9 or later) or turn varlen_attention off.",
                )
            varlen = True
    autocast = cfg.bf16_autocast
    if cfg.objective != "sft" and (fused or autocast):
        # Preference tuning's loss (engine/preference.py) needs each token's log-probability.
        asked = " and ".join(n for n, on in (("fused_loss", fused), ("bf16_autocast", autocast)) if on)
        notes.append(f"{asked}: used by SFT runs only; {cfg.objective.upper()} computes its loss as usual")
        fused = autocast = False
    if autocast and gpu:
        import torch

        if not torch.cuda.is_bf16_supported():
            notes.append(
                "bf16_autocast: this GPU has no bf16 (it needs NVIDIA Ampere or later); computing as usual"
            )
            autocast = False
    return ComputePaths(fused, varlen, autocast, liger, tuple(notes))


def apply_liger_kernels(model: torch.nn.Module) -> str:
    """Put liger-kernel's RMSNorm, SwiGLU and RoPE into ``model`` (a causal LM, PEFT-wrapped or not).

    Returns what was done, in words. The loss stays ours (``engine/loss.py``),
    so Liger's cross-entropy patches are not applied. Liger patches the RoPE
    function of the architecture's module, so later models of the same
    architecture in this process use it too.
    """
    from liger_kernel.transformers import _apply_liger_kernel_to_instance
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    model_type = getattr(base.config, "model_type", "")
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        return f"liger_kernels: liger-kernel has no kernels for {model_type or 'this architecture'}; computing as usual"
    _apply_liger_kernel_to_instance(
        model=base,
        rope=True,
        rms_norm=True,
        swiglu=True,
        cross_entropy=False,
        fused_linear_cross_entropy=False,
    )
    return f"Liger's RMSNorm, SwiGLU and RoPE kernels are on ({model_type})"


def fused_linear_cross_entropy_sum(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None
) -> torch.Tensor:
    """Sum of cross-entropies of ``hidden @ weight.T`` against ``targets``, without storing the logits.

    liger-kernel's fused linear cross-entropy (CUDA, Triton): the logits are
    made and consumed block by block in the forward pass, and their gradient
    is folded into the input's and weight's gradients there too.
    """
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    out: Any = liger_fused_linear_cross_entropy(
        hidden, weight, targets, reduction="sum", softcap=softcap or None
    )
    return out.float()
