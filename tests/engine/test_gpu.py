"""The GPU compute paths on a real GPU: each against today's path, on the tiny model.

Every test here needs CUDA and is skipped without it (CI has no GPU). They are what
``benchmarks/gpu_visit.sh`` runs on a GPU machine before the benchmark: a path that
fails here stays off (TrainConfig's settings default to off until these pass and
bench_gpu shows the path faster).
"""

from __future__ import annotations

import pytest
import torch

from ftstudio.engine.kernels import liger_problem
from ftstudio.engine.packing import collate
from ftstudio.engine.tokenize import encode_conversation
from tests.engine.test_packing import conversations

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
needs_liger = pytest.mark.skipif(liger_problem() is not None, reason=f"liger-kernel: {liger_problem()}")


def _lora_model(model_dir, dtype=torch.bfloat16):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=dtype, attn_implementation="sdpa"
    ).cuda()
    model = get_peft_model(
        model,
        LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"),
        autocast_adapter_dtype=True,
    )
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    return model


def _batch(model_dir, n=6, seed=4):
    from ftstudio.engine.models import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    examples = [encode_conversation(tokenizer, c, "all") for c in conversations(n, seed=seed)]
    return tokenizer, examples, collate(examples, range(n))


def _inputs(batch):
    return dict(
        input_ids=batch.input_ids.cuda(),
        position_ids=batch.position_ids.cuda(),
        loss_positions=batch.loss_positions.cuda(),
        targets=batch.targets.cuda(),
        segments=batch.lengths,
    )


def _loss_and_grads(model, module, batch):
    model.zero_grad()
    loss, _ = module(**_inputs(batch))
    loss.backward()
    return loss.detach().float(), [p.grad.float().clone() for p in model.parameters() if p.requires_grad]


def _close_grads(got, want, rel=0.05):
    for g, w in zip(got, want):
        assert (g - w).norm() <= rel * w.norm() + 1e-6, ((g - w).norm(), w.norm())


def test_varlen_attention_equals_per_example_logits_on_the_gpu(tiny_model_dir):
    from ftstudio.engine.loss import packed_loss_module
    from ftstudio.engine.packing import VARLEN_ATTENTION, enable_varlen_attention

    model = _lora_model(tiny_model_dir)
    _tok, examples, batch = _batch(tiny_model_dir)
    module = packed_loss_module(model)
    masked_loss, masked_grads = _loss_and_grads(model, module, batch)  # transformers' dense mask
    with torch.no_grad():
        alone = [
            model(input_ids=torch.tensor([e.input_ids]).cuda(), use_cache=False).logits[0].float()
            for e in examples
        ]
    assert enable_varlen_attention(model) and model.config._attn_implementation == VARLEN_ATTENTION
    with torch.no_grad():
        packed = (
            model(
                input_ids=batch.input_ids.cuda(),
                position_ids=batch.position_ids.cuda(),
                use_cache=False,
                segments=batch.lengths,
            )
            .logits[0]
            .float()
        )
    start = 0
    for e, want in zip(examples, alone):
        torch.testing.assert_close(packed[start : start + len(e.input_ids)], want, atol=3e-2, rtol=3e-2)
        start += len(e.input_ids)
    varlen_loss, varlen_grads = _loss_and_grads(model, module, batch)
    torch.testing.assert_close(varlen_loss, masked_loss, rtol=1e-2, atol=1e-2)
    _close_grads(varlen_grads, masked_grads)


@needs_liger
def test_the_fused_loss_equals_the_chunked_loss_on_the_gpu(tiny_model_dir):
    from ftstudio.engine.kernels import ComputePaths
    from ftstudio.engine.loss import packed_loss_module

    model = _lora_model(tiny_model_dir)
    _tok, _examples, batch = _batch(tiny_model_dir)
    chunked, chunked_grads = _loss_and_grads(model, packed_loss_module(model), batch)
    fused, fused_grads = _loss_and_grads(
        model, packed_loss_module(model, ComputePaths(fused_loss=True)), batch
    )
    torch.testing.assert_close(fused, chunked, rtol=1e-2, atol=1e-2)
    _close_grads(fused_grads, chunked_grads)


def test_bf16_autocast_follows_the_default_loss_on_the_gpu(tiny_model_dir):
    from ftstudio.engine.kernels import ComputePaths
    from ftstudio.engine.loss import packed_loss_module

    model = _lora_model(tiny_model_dir)
    _tok, _examples, batch = _batch(tiny_model_dir)
    plain, plain_grads = _loss_and_grads(model, packed_loss_module(model), batch)
    auto, auto_grads = _loss_and_grads(
        model, packed_loss_module(model, ComputePaths(bf16_autocast=True)), batch
    )
    torch.testing.assert_close(auto, plain, rtol=2e-2, atol=2e-2)
    _close_grads(auto_grads, plain_grads, rel=0.1)


@needs_liger
def test_liger_layer_kernels_keep_the_logits(tiny_model_dir):
    from ftstudio.engine.kernels import apply_liger_kernels

    model = _lora_model(tiny_model_dir)
    ids = torch.tensor([[1, 5, 9, 14, 2, 7, 3, 11]]).cuda()
    with torch.no_grad():
        before = model(input_ids=ids, use_cache=False).logits.float()
    assert "kernels are on" in apply_liger_kernels(model)
    with torch.no_grad():
        after = model(input_ids=ids, use_cache=False).logits.float()
    torch.testing.assert_close(after, before, atol=5e-2, rtol=5e-2)


def test_a_training_run_with_every_path_on_finishes_on_the_gpu(tiny_model_dir, tmp_path):
    from ftstudio.core.events import StepMetrics
    from tests.engine.test_training import memorise_data, run, tiny_cfg

    on = dict(varlen_attention=True, bf16_autocast=True)
    if liger_problem() is None:
        on.update(fused_loss=True, liger_kernels=True)
    common = dict(max_steps=6, eval_every=3, samples=1, checkpoint_every=0, device="cuda")
    plain, plain_events = run(tiny_cfg(tiny_model_dir, **common), memorise_data(12, 2), tmp_path / "plain")
    fast, fast_events = run(tiny_cfg(tiny_model_dir, **on, **common), memorise_data(12, 2), tmp_path / "fast")
    assert plain.status == fast.status == "finished", (plain.failure, fast.failure)
    a = [e.loss for e in plain_events if isinstance(e, StepMetrics)]
    b = [e.loss for e in fast_events if isinstance(e, StepMetrics)]
    for x, y in zip(a, b):
        assert y == pytest.approx(x, rel=0.03), (a, b)


def test_a_qlora_run_answers_in_4bit_on_the_gpu(tiny_model_dir, tmp_path):
    import bitsandbytes as bnb

    from ftstudio.engine.inference import Generator
    from ftstudio.engine.training import train
    from tests.engine.test_qlora import data, qlora_cfg

    cfg = qlora_cfg(tiny_model_dir, max_steps=2, samples=0, device="cuda")
    result = train(cfg, data(), lambda e: None, lambda: False, run_dir=tmp_path / "run")
    assert result.status == "finished", result.failure
    gen = Generator(str(tiny_model_dir), device="cuda", four_bit=True)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in gen.base.modules())
    gen.add_adapter("run", result.adapter_dir)
    sums = gen.loss_sums(data().eval, model="run", max_length=cfg.max_length)
    loss = sum(s for s, _ in sums) / sum(n for _, n in sums)
    assert loss == pytest.approx(result.eval_loss, rel=2e-2)
