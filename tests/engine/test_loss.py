"""The packed loss's chunks: sized from the vocabulary to a fixed byte budget,
and equal, loss and gradients, to the plain cross-entropy over every loss row."""

from __future__ import annotations

import pytest
import torch

from ftstudio.engine import loss as loss_module
from ftstudio.engine.packing import collate
from ftstudio.engine.tokenize import encode_conversation
from tests.engine.test_packing import conversations


@pytest.mark.parametrize("vocab", [1, 7, 32_000, 49_152, 128_256, 151_936, 152_064, 256_000, 262_144, 10**9])
def test_a_chunk_is_the_most_rows_whose_fp32_logits_fit_the_budget(vocab):
    rows = loss_module.loss_chunk_rows(vocab)
    budget = loss_module.LOSS_CHUNK_BYTES
    align = loss_module.LOSS_CHUNK_ALIGN
    assert rows >= 1
    if rows * vocab * 4 > budget:
        assert rows == 1  # a vocabulary too large even for one row: one row at a time
    else:
        assert rows % align == 0 or rows < align
        # one more aligned group would pass the budget: the chunk is as large as it may be
        assert (rows + (align if rows >= align else 1)) * vocab * 4 > budget


def test_the_budget_is_the_same_for_every_vocabulary():
    """The point of sizing from the vocabulary: Qwen's 152k and SmolLM2's 49k chunks take the same bytes."""
    sizes = {v: loss_module.loss_chunk_rows(v) * v * 4 for v in (49_152, 128_256, 152_064, 256_000)}
    budget = loss_module.LOSS_CHUNK_BYTES
    assert all(budget * 0.95 <= s <= budget for s in sizes.values()), sizes
    assert loss_module.loss_chunk_rows(152_064) == 440  # was 2,048 rows (1.2 GiB of fp32 logits)


def _plain_loss(model, batch):
    """The cross-entropy over every loss row at once from the model's own logits: no chunks, no row picking."""
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits[0]
    return torch.nn.functional.cross_entropy(
        logits[batch.loss_positions].float(), batch.targets, reduction="sum"
    )


def test_chunked_loss_and_gradients_equal_the_plain_loss(tiny_model_dir, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir), dtype=torch.float32, attn_implementation="sdpa"
    )
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)  # a trained-looking adapter, so its gradients are not trivial
    examples = [encode_conversation(tokenizer, c, "all") for c in conversations(6, seed=5)]
    batch = collate(examples, range(6))
    vocab = model.get_output_embeddings().weight.shape[0]
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in params]

    plain, plain_grads = loss_and_grads(lambda: _plain_loss(model, batch))

    # A budget of 16 rows for this vocabulary: the loss rows go through the head in several chunks.
    monkeypatch.setattr(loss_module, "LOSS_CHUNK_BYTES", 16 * vocab * 4)
    assert loss_module.loss_chunk_rows(vocab) == 16
    head_calls = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: head_calls.append(o.shape[0]))
    module = loss_module.packed_loss_module(model)
    try:
        chunked, chunked_grads = loss_and_grads(
            lambda: module(
                batch.input_ids,
                batch.position_ids,
                loss_positions=batch.loss_positions,
                targets=batch.targets,
            )[0]
        )
    finally:
        hook.remove()
    n = batch.num_loss_tokens
    chunks = -(-n // 16)
    assert chunks >= 3
    # each chunk once forward and once more when the backward pass recomputes it; never all rows at once
    assert len(head_calls) == 2 * chunks and max(head_calls) == 16
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-4)
    for got, want in zip(chunked_grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)

    # without gradients (evaluation) the chunks give the same sum and are not recomputed
    with torch.no_grad():
        evaluated, _ = module(
            batch.input_ids, batch.position_ids, loss_positions=batch.loss_positions, targets=batch.targets
        )
    torch.testing.assert_close(evaluated, plain, rtol=1e-5, atol=1e-4)


def test_preference_log_probabilities_chunk_the_same_way(tiny_model_dir, monkeypatch):
    """engine/preference.py sizes its chunks with the same function: per-sequence sums do not change."""
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.preference import segment_logps_module

    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir), dtype=torch.float32, attn_implementation="sdpa"
    )
    examples = [encode_conversation(tokenizer, c, "all") for c in conversations(5, seed=8)]
    batch = collate(examples, range(5))
    target_segment = torch.tensor(
        [sum(1 for s in _ends(batch.lengths) if s <= t) for t in batch.loss_positions]
    )
    module = segment_logps_module(model)

    def per_sequence():
        model.zero_grad()
        sums = module(
            batch.input_ids,
            batch.position_ids,
            batch.loss_positions,
            batch.targets,
            target_segment,
            batch.lengths,
        )
        sums.sum().backward()
        return sums.detach(), model.get_input_embeddings().weight.grad.clone()

    whole, whole_grad = per_sequence()
    vocab = model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(loss_module, "LOSS_CHUNK_BYTES", 8 * vocab * 4)
    chunked, chunked_grad = per_sequence()
    assert batch.num_loss_tokens > 3 * 8
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(chunked_grad, whole_grad, rtol=1e-4, atol=1e-6)


def _ends(lengths):
    out, end = [], 0
    for n in lengths:
        end += n
        out.append(end)
    return out
