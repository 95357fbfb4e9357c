"""The training loss on packed rows: the output layer applied only where a token carries loss.

Most prompt tokens never go through the vocabulary-sized matmul; when the
loss rows' fp32 logits would pass ``LOSS_CHUNK_BYTES`` the rows are taken in
chunks of ``loss_chunk_rows(vocab)`` whose logits are recomputed in the
backward pass instead of kept, so the loss's peak is the same for any model. Training runs this module
(its processes sum the gradients once per step); evaluation calls it for the held-out loss, so both
measure the same thing.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Iterator, Sequence

from ftstudio.engine.tokenize import IGNORE_INDEX

if TYPE_CHECKING:
    import torch

    from ftstudio.engine.kernels import ComputePaths

# The most bytes one chunk's fp32 logits may take (rows x vocabulary x 4).
# The cross-entropy of a chunk holds about three such tensors at its peak (the
# upcast logits, their log-softmax and, in the backward pass, its gradient), so
# the loss adds at most about 0.75 GiB over the model for any vocabulary:
# 440 rows of Qwen2.5's 152k vocabulary, 1,360 of SmolLM2's 49k.
LOSS_CHUNK_BYTES = 256 * 1024 * 1024
# Chunks are a multiple of this many rows (matmul tiles), unless a vocabulary
# is so large that one such group alone passes the budget.
LOSS_CHUNK_ALIGN = 8


def loss_chunk_rows(vocab_size: int) -> int:
    """Loss rows per chunk for a ``vocab_size`` output layer: their fp32 logits fit ``LOSS_CHUNK_BYTES``.

    Torch-free, so the memory estimate counts the same chunk the loss takes.
    """
    rows = LOSS_CHUNK_BYTES // (4 * max(1, vocab_size))
    if rows >= LOSS_CHUNK_ALIGN:
        rows -= rows % LOSS_CHUNK_ALIGN
    return max(1, rows)


def _model_parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, float | None]:
    """(transformer body, output layer, logit soft-cap or None) of a (PEFT-wrapped) causal LM."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(lm, lm.base_model_prefix)
    head = lm.get_output_embeddings()
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    return body, head, softcap


def _head_loss_sum(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, softcap: float | None
) -> torch.Tensor:
    import torch.nn.functional as F

    logits = head(hidden).float()
    if softcap:
        logits = softcap * (logits / softcap).tanh()
    return F.cross_entropy(logits, targets, reduction="sum")


@contextlib.contextmanager
def bf16_compute(model: torch.nn.Module, device_type: str, on: bool) -> Iterator[None]:
    """bf16 autocast over ``model``'s forward, with PEFT's casts of each LoRA input to fp32 off.

    The LoRA weights stay fp32 (the optimiser updates them exactly); under
    autocast their matmuls take the layer's bf16 input as it is, so no fp32
    copy of it is made and kept for the backward pass. Off: nothing changes.
    """
    if not on:
        yield
        return
    import torch
    from peft.helpers import disable_input_dtype_casting

    with torch.autocast(device_type=device_type, dtype=torch.bfloat16), disable_input_dtype_casting(model):
        yield


def _fused_head(head: torch.nn.Module) -> bool:
    """Whether the output layer is a plain linear layer the fused loss can read the weight of."""
    import torch

    return type(head) is torch.nn.Linear and head.bias is None


@functools.cache
def _build_loss_module() -> type[torch.nn.Module]:
    import torch
    from torch import nn
    from torch.utils.checkpoint import checkpoint

    class _PackedCausalLMLoss(nn.Module):
        """forward(input_ids, position_ids, labels) -> (sum of token losses, number of loss tokens).

        Runs the transformer body, picks the hidden states whose next token
        carries loss, and applies the output layer and an fp32 cross-entropy
        to those rows only. Every micro-batch of a training step runs it.
        """

        def __init__(
            self, model: torch.nn.Module, fused_loss: bool = False, bf16_autocast: bool = False
        ) -> None:
            super().__init__()
            self.model = model
            self.fused_loss = fused_loss
            self.bf16_autocast = bf16_autocast

        def forward(
            self,
            input_ids: torch.Tensor,
            position_ids: torch.Tensor,
            labels: torch.Tensor | None = None,
            loss_positions: torch.Tensor | None = None,
            targets: torch.Tensor | None = None,
            segments: Sequence[int] | None = None,
        ) -> tuple[torch.Tensor, int]:
            with bf16_compute(self.model, input_ids.device.type, self.bf16_autocast):
                return self._loss(input_ids, position_ids, labels, loss_positions, targets, segments)

        def _loss(
            self,
            input_ids: torch.Tensor,
            position_ids: torch.Tensor,
            labels: torch.Tensor | None,
            loss_positions: torch.Tensor | None,
            targets: torch.Tensor | None,
            segments: Sequence[int] | None,
        ) -> tuple[torch.Tensor, int]:
            body, head, softcap = _model_parts(self.model)
            extra = {"segments": tuple(segments)} if segments is not None else {}
            hidden = body(
                input_ids=input_ids, position_ids=position_ids, attention_mask=None, use_cache=False, **extra
            ).last_hidden_state
            hidden = hidden.reshape(-1, hidden.shape[-1])
            if loss_positions is None or targets is None:
                if labels is None:
                    raise ValueError("the loss needs labels, or loss positions with their targets")
                # Shift within each row; the last position of a row predicts nothing.
                shifted = torch.full_like(labels, IGNORE_INDEX)
                shifted[:, :-1] = labels[:, 1:]
                shifted = shifted.reshape(-1)
                loss_positions = (shifted != IGNORE_INDEX).nonzero().squeeze(-1)
                targets = shifted.index_select(0, loss_positions)
            rows = hidden.index_select(0, loss_positions)
            n = targets.shape[0]
            if self.fused_loss and _fused_head(head):
                from ftstudio.engine.kernels import fused_linear_cross_entropy_sum

                return fused_linear_cross_entropy_sum(
                    rows.to(head.weight.dtype), head.weight, targets, softcap
                ), n
            chunk = loss_chunk_rows(head.weight.shape[0])
            if n <= chunk:
                return _head_loss_sum(head, rows, targets, softcap), n
            total = rows.new_zeros((), dtype=torch.float32)
            for start in range(0, n, chunk):
                part = slice(start, start + chunk)
                if torch.is_grad_enabled():
                    total = total + checkpoint(
                        _head_loss_sum, head, rows[part], targets[part], softcap, use_reentrant=False
                    )
                else:
                    total = total + _head_loss_sum(head, rows[part], targets[part], softcap)
            return total, n

    return _PackedCausalLMLoss


def packed_loss_module(model: torch.nn.Module, paths: ComputePaths | None = None) -> torch.nn.Module:
    """The loss module around ``model`` (see _PackedCausalLMLoss), with the compute paths of ``paths``."""
    if paths is None:
        return _build_loss_module()(model)
    return _build_loss_module()(model, fused_loss=paths.fused_loss, bf16_autocast=paths.bf16_autocast)
