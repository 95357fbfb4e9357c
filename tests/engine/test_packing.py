"""Packed batches: one row per budget, no example sees another, boundaries
masked, every example once per epoch, and a loss equal to Hugging Face's."""

from __future__ import annotations

import random

import pytest
import torch

from ftstudio.engine.packing import balance, collate, epoch_batches, epoch_order, pack
from ftstudio.engine.tokenize import IGNORE_INDEX, EncodedExample, encode_conversation

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird", "rain", "stone"]


def conversations(n: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
        out.append([{"role": "user", "content": f"{i}: {question}?"}, {"role": "assistant", "content": answer}])
    return out


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32,
                                                 attn_implementation="sdpa")
    model.eval()
    return tokenizer, model


def test_batches_stay_within_budget_and_hold_every_example_once():
    rng = random.Random(1)
    lengths = [rng.randint(5, 200) for _ in range(500)]
    for epoch in range(3):
        batches = epoch_batches(lengths, 512, seed=7, epoch=epoch)
        assert all(sum(lengths[i] for i in b) <= 512 for b in batches)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(500))
        # rows come out well filled: few more batches than the bound
        assert len(batches) <= sum(lengths) / 512 * 1.15 + 1
    assert epoch_batches(lengths, 512, 7, 0) == epoch_batches(lengths, 512, 7, 0)
    assert epoch_batches(lengths, 512, 7, 0) != epoch_batches(lengths, 512, 7, 1)
    assert epoch_batches(lengths, 512, 7, 0) != epoch_batches(lengths, 512, 8, 0)
    assert epoch_order(50, 3, 2) == epoch_order(50, 3, 2)


def test_an_example_over_the_budget_is_refused():
    with pytest.raises(ValueError, match="more than the batch budget"):
        pack([10, 600], 512)


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_balance_gives_every_process_the_same_number_of_batches(parts):
    lengths = [100] * 10 + [30] * 7
    batches = pack(lengths, 256)
    balanced = balance(batches, lengths, parts)
    assert len(balanced) % parts == 0
    assert sorted(i for b in balanced for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 256 for b in balanced)


def test_balance_with_fewer_examples_than_processes_repeats_batches():
    balanced = balance([[0]], [10], 2)
    assert balanced == [[0], [0]]


def test_collate_restarts_positions_and_masks_each_boundary():
    a = EncodedExample([1, 2, 3], [1, 2, 3])  # everything trained, as with train_on="all"
    b = EncodedExample([4, 5], [4, 5])
    batch = collate([a, b], [0, 1])
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1]]
    # token 4 (first of b) must not be learnt from token 3 (last of a)
    assert batch.labels.tolist() == [[IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5]]
    assert batch.loss_positions.tolist() == [0, 1, 3]
    assert batch.targets.tolist() == [2, 3, 5]
    assert batch.num_tokens == 5 and batch.num_loss_tokens == 3 and batch.examples == (0, 1)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_each_example_run_alone(tiny, attn):
    tokenizer, model = tiny
    model.config._attn_implementation = attn
    try:
        examples = [encode_conversation(tokenizer, c) for c in conversations(5)]
        batch = collate(examples, range(5))
        with torch.no_grad():
            packed = model(input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=None,
                           use_cache=False).logits[0]
            start = 0
            for ex in examples:
                alone = model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0]
                part = packed[start : start + len(ex.input_ids)]
                torch.testing.assert_close(part, alone, atol=1e-4, rtol=1e-4)
                start += len(ex.input_ids)
            # and it really is the mask doing it: without restarting positions the
            # later examples see the earlier ones and their logits change
            joined = model(input_ids=batch.input_ids, use_cache=False).logits[0]
        last = examples[-1]
        assert not torch.allclose(joined[-len(last.input_ids):], packed[-len(last.input_ids):], atol=1e-3)
    finally:
        model.config._attn_implementation = "sdpa"


def test_loss_module_equals_the_standard_loss(tiny):
    from ftstudio.engine.loss import packed_loss_module

    tokenizer, model = tiny
    module = packed_loss_module(model)
    examples = [encode_conversation(tokenizer, c) for c in conversations(4, seed=3)]
    with torch.no_grad():
        expected_sum, expected_n = 0.0, 0
        for ex in examples:
            ids = torch.tensor([ex.input_ids])
            labels = torch.tensor([ex.labels])
            hf_loss = model(input_ids=ids, labels=labels, use_cache=False).loss
            own_sum, own_n = module(ids, torch.arange(len(ex.input_ids))[None], labels=labels)
            n = sum(1 for t in ex.labels[1:] if t != IGNORE_INDEX)
            assert own_n == n
            assert own_sum.item() / own_n == pytest.approx(hf_loss.item(), rel=1e-5)
            expected_sum += hf_loss.item() * n
            expected_n += n
        batch = collate(examples, range(4))
        packed_sum, packed_n = module(batch.input_ids, batch.position_ids, loss_positions=batch.loss_positions,
                                      targets=batch.targets)
        # the same from labels alone (the module shifts them itself)
        from_labels, _ = module(batch.input_ids, batch.position_ids, labels=batch.labels)
    assert packed_n == expected_n
    assert packed_sum.item() == pytest.approx(expected_sum, rel=1e-4)
    assert from_labels.item() == pytest.approx(packed_sum.item(), rel=1e-6)


def test_per_example_attention_equals_the_block_mask(tiny_model_dir):
    """The engine's per-example attention gives the same loss and gradients as
    transformers' block-diagonal mask, and generation still works after it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.packing import SEGMENT_ATTENTION, enable_segment_attention
    from ftstudio.engine.loss import packed_loss_module

    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32,
                                                 attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)  # a trained-looking adapter, not the zero start
    examples = [encode_conversation(tokenizer, c) for c in conversations(7, seed=9)]
    batch = collate(examples, range(7))
    assert sum(batch.lengths) == batch.num_tokens and len(batch.lengths) == 7
    module = packed_loss_module(model)
    inputs = dict(input_ids=batch.input_ids, position_ids=batch.position_ids, loss_positions=batch.loss_positions,
                  targets=batch.targets)

    def loss_and_grads(**extra):
        model.zero_grad()
        loss, _ = module(**inputs, **extra)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    masked_loss, masked_grads = loss_and_grads()
    assert enable_segment_attention(model)
    assert model.config._attn_implementation == SEGMENT_ATTENTION
    segment_loss, segment_grads = loss_and_grads(segments=batch.lengths)
    torch.testing.assert_close(segment_loss, masked_loss, rtol=1e-5, atol=1e-5)
    for a, b in zip(segment_grads, masked_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # without segment lengths (evaluation, generation) the model falls back to the mask
    fallback_loss, _ = loss_and_grads()
    torch.testing.assert_close(fallback_loss, masked_loss, rtol=1e-5, atol=1e-5)
    model.eval()
    ids = torch.tensor([examples[0].input_ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == ids.shape[1] + 3
