"""Padding-free batches: variable-length examples packed side by side in one row.

Each micro-batch is one row of at most ``budget`` tokens. Position ids restart
at 0 for every example; with ``attention_mask=None`` transformers reads the
example boundaries from them and builds a block-diagonal causal mask, so no
example attends to another. The label of each example's first token is
masked, so the last token of one example never learns to predict the start
of the next.

The order is a seeded shuffle per epoch, so the batch list of an epoch is a
pure function of (lengths, budget, seed, epoch, world size): a resumed run
sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ftstudio.engine.tokenize import IGNORE_INDEX, EncodedExample

if TYPE_CHECKING:
    import torch

# Batches still open for filling while packing in shuffled order: enough to
# fill rows well, few enough that the order stays close to the shuffle.
OPEN_BATCHES = 4


@dataclass(frozen=True)
class PackedBatch:
    input_ids: "torch.Tensor"  # (1, T) long
    position_ids: "torch.Tensor"  # (1, T) long
    labels: "torch.Tensor"  # (1, T) long, Hugging Face convention (not shifted)
    # Positions t whose next token carries loss, and those next tokens: what
    # the loss needs, worked out here so the training step never has to ask
    # the device how many there are.
    loss_positions: "torch.Tensor"  # (N,) long
    targets: "torch.Tensor"  # (N,) long
    examples: tuple[int, ...]  # indices into the example list
    lengths: tuple[int, ...]  # token count of each example, in row order
    num_tokens: int
    num_loss_tokens: int


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A shuffle of range(n) fixed by (seed, epoch)."""
    order = list(range(n))
    random.Random(f"ftstudio-order:{seed}:{epoch}").shuffle(order)
    return order


def pack(lengths: Sequence[int], budget: int, order: Sequence[int] | None = None) -> list[list[int]]:
    """Group example indices (taken in ``order``) into batches of at most ``budget`` tokens.

    First fit over the few most recent open batches: rows come out nearly
    full while the batch order follows the given order.
    """
    order = range(len(lengths)) if order is None else order
    closed: list[list[int]] = []
    open_batches: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        if n > budget:
            raise ValueError(f"example {i} has {n} tokens, more than the batch budget of {budget}")
        for b, free in enumerate(room):
            if n <= free:
                open_batches[b].append(i)
                room[b] -= n
                break
        else:
            open_batches.append([i])
            room.append(budget - n)
            if len(open_batches) > OPEN_BATCHES:
                closed.append(open_batches.pop(0))
                room.pop(0)
        # A batch that nothing could still fit into is done.
        while open_batches and room[0] == 0:
            closed.append(open_batches.pop(0))
            room.pop(0)
    closed.extend(open_batches)
    return closed


def balance(batches: list[list[int]], lengths: Sequence[int], parts: int) -> list[list[int]]:
    """The batches, split until their count is a multiple of ``parts`` (each process
    then gets the same number); every example still appears exactly once.

    When no batch can be split any more (fewer examples than processes), the
    first batches are repeated.
    """
    batches = [list(b) for b in batches]
    if parts <= 1:
        return batches
    while len(batches) % parts:
        splittable = [i for i, b in enumerate(batches) if len(b) > 1]
        if not splittable:
            batches.extend(batches[: parts - len(batches) % parts])
            break
        i = max(splittable, key=lambda j: (sum(lengths[k] for k in batches[j]), -j))
        half = len(batches[i]) // 2
        batches[i : i + 1] = [batches[i][:half], batches[i][half:]]
    return batches


def epoch_batches(lengths: Sequence[int], budget: int, seed: int, epoch: int, parts: int = 1) -> list[list[int]]:
    """The micro-batches of one epoch, in training order."""
    batches = pack(lengths, budget, epoch_order(len(lengths), seed, epoch))
    return balance(batches, lengths, parts)


def collate(examples: Sequence[EncodedExample], indices: Sequence[int]) -> PackedBatch:
    """One row holding the examples ``indices``, with restarting position ids and masked boundaries."""
    import torch

    input_ids: list[int] = []
    positions: list[int] = []
    labels: list[int] = []
    for i in indices:
        ex = examples[i]
        input_ids.extend(ex.input_ids)
        positions.extend(range(len(ex.input_ids)))
        labels.append(IGNORE_INDEX)  # the first token is never predicted from the previous example
        labels.extend(ex.labels[1:])
    loss_positions = [t for t in range(len(labels) - 1) if labels[t + 1] != IGNORE_INDEX]
    targets = [labels[t + 1] for t in loss_positions]
    return PackedBatch(
        input_ids=torch.tensor([input_ids], dtype=torch.long),
        position_ids=torch.tensor([positions], dtype=torch.long),
        labels=torch.tensor([labels], dtype=torch.long),
        loss_positions=torch.tensor(loss_positions, dtype=torch.long),
        targets=torch.tensor(targets, dtype=torch.long),
        examples=tuple(indices),
        lengths=tuple(len(examples[i].input_ids) for i in indices),
        num_tokens=len(input_ids),
        num_loss_tokens=len(targets),
    )


# -- attention that computes each example on its own ---------------------------------------

SEGMENT_ATTENTION = "ftstudio_segments"


def _packed_row_segments(module: Any, query: torch.Tensor, key: torch.Tensor,
                         segments: Sequence[int] | None) -> Sequence[int] | None:
    """The row's example lengths when this call is over one packed row, else None: plain sdpa.

    A packed row is one row (batch 1) with as many keys as queries (no cache,
    so not generation) whose example lengths are given, in a layer without a
    sliding window (per-example causal attention would not apply the window).
    The per-example and varlen kinds both compute only such rows.
    """
    if segments is None or query.shape[0] != 1 or query.shape[2] != key.shape[2] \
            or getattr(module, "sliding_window", None):
        return None
    return segments


def _segment_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                       is_causal: bool | None = None, segments: Sequence[int] | None = None,
                       **kwargs: Any) -> tuple[torch.Tensor, None]:
    """sdpa over each packed example separately when the row's example lengths are given.

    The block-diagonal mask gives the same result, but costs the full T x T
    attention of the row (and rules out sdpa's grouped-query path); per
    example it is the sum of the examples' squares, a fraction of that.
    Without ``segments`` (evaluation with padding, generation with a cache)
    this is plain sdpa with the mask transformers built.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = _packed_row_segments(module, query, key, segments)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    outputs = []
    start = 0
    for length in segments:
        end = start + length
        out, _ = sdpa_attention_forward(module, query[:, :, start:end], key[:, :, start:end],
                                        value[:, :, start:end], None, dropout=dropout, scaling=scaling,
                                        is_causal=True, **kwargs)
        outputs.append(out)
        start = end
    return (outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)), None


def _switch_attention(model: Any, name: str, attention: Any, mask: Any) -> bool:
    """Register ``attention`` and its ``mask`` function as ``name`` and switch a model that uses
    sdpa to it; False if the model does not use sdpa or cannot switch."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(name, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, mask)
    try:
        model.set_attn_implementation(name)
    except (ValueError, AttributeError):
        return False
    return True


def enable_segment_attention(model: Any) -> bool:
    """Switch a model that uses sdpa to per-example attention for packed rows; False if it cannot."""
    from transformers.masking_utils import sdpa_mask

    return _switch_attention(model, SEGMENT_ATTENTION, _segment_attention, sdpa_mask)


# -- attention with a variable-length kernel (GPU; TrainConfig.varlen_attention) -----------

VARLEN_ATTENTION = "ftstudio_varlen"


def _torch_varlen_attn(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seq_q: torch.Tensor,
                       cu_seq_k: torch.Tensor, max_q: int, max_k: int, *, scale: float | None,
                       window_size: tuple[int, int], enable_gqa: bool) -> torch.Tensor:
    from torch.nn.attention.varlen import varlen_attn

    out: Any = varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, scale=scale,
                           window_size=window_size, enable_gqa=enable_gqa)
    return out


# The kernel the varlen attention calls, with torch.nn.attention.varlen.varlen_attn's
# signature: (total tokens, heads, head dim) tensors and cumulative example lengths.
# It runs on CUDA only; tests on the CPU put a reference kernel here.
VARLEN_KERNEL: list[Any] = [_torch_varlen_attn]

_CU_SEQLENS: dict[tuple[tuple[int, ...], str], torch.Tensor] = {}


def cumulative_lengths(segments: Sequence[int], device: torch.device) -> torch.Tensor:
    """(0, n0, n0+n1, ...) as int32 on ``device``, made once per row: every layer reads the same one."""
    import torch

    key = (tuple(segments), str(device))
    cached = _CU_SEQLENS.get(key)
    if cached is None:
        bounds = [0]
        for n in segments:
            bounds.append(bounds[-1] + n)
        cached = torch.tensor(bounds, dtype=torch.int32).to(device, non_blocking=True)
        _CU_SEQLENS.clear()  # one row at a time: keep only the newest
        _CU_SEQLENS[key] = cached
    return cached


def _varlen_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, segments: Sequence[int] | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Causal attention within each packed example, one variable-length kernel call per layer.

    The example lengths come from the host (``segments``, what collate already
    knows), so nothing asks the device for them and no T x T mask exists.
    Without segments (generation, padded evaluation) or in a sliding-window
    layer this is sdpa with the mask transformers built (``_varlen_mask``
    builds one for those). A packed row the kernel cannot take (soft-capped
    scores, attention dropout, fp32 on a GPU: flash attention computes in
    fp16/bf16) has no mask, so it goes example by example (``_segment_attention``).
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = _packed_row_segments(module, query, key, segments)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    half = query.dtype in (torch.float16, torch.bfloat16)
    if kwargs.get("softcap") or (dropout and module.training) or (query.device.type == "cuda" and not half):
        return _segment_attention(module, query, key, value, None, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, segments=segments, **kwargs)
    # (1, heads, T, dim) -> (T, heads, dim), the kernel's layout
    q = query[0].transpose(0, 1).contiguous()
    k = key[0].transpose(0, 1).contiguous()
    v = value[0].transpose(0, 1).contiguous()
    cu = cumulative_lengths(segments, query.device)
    longest = max(segments)
    out = VARLEN_KERNEL[0](q, k, v, cu, cu, longest, longest, scale=scaling, window_size=(-1, 0),
                           enable_gqa=q.shape[1] != k.shape[1])
    return out.unsqueeze(0), None  # (1, T, heads, dim), as transformers' attention functions return it


def _varlen_mask(*args: Any, attention_mask: torch.Tensor | None = None, local_size: int | None = None,
                 **kwargs: Any) -> torch.Tensor | None:
    """No dense mask for an unpadded full-attention row: the varlen kernel has the example lengths.

    A padded batch (generation, evaluation with padding) or a sliding-window
    layer still gets sdpa's mask, for the sdpa fallback above.
    """
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None and local_size is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, local_size=local_size, **kwargs)


def enable_varlen_attention(model: Any) -> bool:
    """Switch a model that uses sdpa to the varlen kernel for packed rows; False if it cannot."""
    return _switch_attention(model, VARLEN_ATTENTION, _varlen_attention, _varlen_mask)
