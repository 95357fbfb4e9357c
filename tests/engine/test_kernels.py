"""The optional compute paths (TrainConfig fused_loss, varlen_attention, bf16_autocast,
liger_kernels): which apply where, the plain message when a package is missing,
and, on the CPU, everything of them the CPU can run: the varlen attention's
plumbing and masks (with a reference kernel standing in for the CUDA one), and
bf16 autocast, whose loss curve must follow the fp32 one."""

from __future__ import annotations

import pytest
import torch

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import Failed, Log, StepMetrics
from ftstudio.engine import packing
from ftstudio.engine.kernels import ComputePaths, KernelUnavailable, compute_paths, liger_problem
from ftstudio.engine.packing import collate, enable_varlen_attention
from ftstudio.engine.tokenize import encode_conversation
from tests.engine.test_packing import conversations
from tests.engine.test_training import memorise_data, run, tiny_cfg

ALL_ON = dict(fused_loss=True, varlen_attention=True, bf16_autocast=True, liger_kernels=True)


def test_every_path_is_off_by_default():
    assert compute_paths(TrainConfig(), "cpu") == ComputePaths()
    assert compute_paths(TrainConfig(), "cuda") == ComputePaths()


def test_the_cpu_leaves_out_the_gpu_kernels_with_a_note():
    paths = compute_paths(TrainConfig(**ALL_ON), "cpu")
    assert (paths.fused_loss, paths.varlen_attention, paths.liger_kernels) == (False, False, False)
    assert paths.bf16_autocast  # CPU autocast exists
    words = " ".join(paths.notes)
    assert "fused_loss and liger_kernels" in words and "varlen_attention" in words


def test_preference_runs_keep_their_own_loss():
    paths = compute_paths(TrainConfig(objective="dpo", bf16_autocast=True), "cpu")
    assert not paths.bf16_autocast and "DPO" in " ".join(paths.notes)


@pytest.mark.skipif(liger_problem() is None, reason="liger-kernel is installed here")
def test_a_missing_liger_kernel_is_said_plainly_on_a_gpu(tiny_model_dir, tmp_path):
    with pytest.raises(KernelUnavailable) as caught:
        compute_paths(TrainConfig(fused_loss=True), "cuda")
    assert str(caught.value) == "fused_loss is on, but the liger-kernel package is not installed."
    assert "pip install liger-kernel" in caught.value.fix and "turn fused_loss off" in caught.value.fix
    # varlen attention is in PyTorch itself (2.9+): nothing to install
    assert compute_paths(TrainConfig(varlen_attention=True), "cuda").varlen_attention


# -- varlen attention ---------------------------------------------------------------------


def _reference_varlen_attn(
    query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale, window_size, enable_gqa
):
    """torch.nn.attention.varlen.varlen_attn's contract, on the CPU: causal sdpa per example.

    Stands in for the CUDA kernel (flash attention has no CPU build), so the
    layout, the lengths and the GQA flag the engine hands it are checked here.
    """
    assert window_size == (-1, 0)  # causal, no window
    assert query.dim() == 3 and query.shape[0] == int(cu_seq_q[-1]) and cu_seq_q.dtype == torch.int32
    assert max_q == max(int(b - a) for a, b in zip(cu_seq_q[:-1], cu_seq_q[1:]))
    outs = []
    for a, b in zip(cu_seq_q.tolist()[:-1], cu_seq_q.tolist()[1:]):
        q, k, v = (t[a:b].transpose(0, 1)[None] for t in (query, key, value))
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=scale, enable_gqa=enable_gqa
        )
        outs.append(out[0].transpose(0, 1))
    return torch.cat(outs)


@pytest.fixture
def reference_kernel(monkeypatch):
    calls = []

    def kernel(*args, **kwargs):
        calls.append(kwargs["enable_gqa"])
        return _reference_varlen_attn(*args, **kwargs)

    monkeypatch.setattr(packing, "VARLEN_KERNEL", [kernel])
    return calls


def test_varlen_attention_gives_each_packed_example_its_own_logits(tiny_model_dir, reference_kernel):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.loss import packed_loss_module
    from ftstudio.engine.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir), dtype=torch.float32, attn_implementation="sdpa"
    )
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    examples = [encode_conversation(tokenizer, c) for c in conversations(5, seed=11)]
    batch = collate(examples, range(5))
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0] for e in examples]
    module = packed_loss_module(model)
    inputs = dict(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        loss_positions=batch.loss_positions,
        targets=batch.targets,
        segments=batch.lengths,
    )

    def loss_and_grads():
        model.zero_grad()
        loss, _ = module(**inputs)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    masked_loss, masked_grads = loss_and_grads()  # transformers' block-diagonal mask
    assert enable_varlen_attention(model)
    assert model.config._attn_implementation == packing.VARLEN_ATTENTION
    with torch.no_grad():
        packed = model(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            use_cache=False,
            segments=batch.lengths,
        ).logits[0]
    # two layers, grouped heads (4 query, 2 key/value): one kernel call per layer, told it is GQA
    assert reference_kernel == [True, True]
    start = 0
    for ex, want in zip(examples, alone):
        torch.testing.assert_close(packed[start : start + len(ex.input_ids)], want, atol=1e-4, rtol=1e-4)
        start += len(ex.input_ids)
    varlen_loss, varlen_grads = loss_and_grads()
    torch.testing.assert_close(varlen_loss, masked_loss, rtol=1e-5, atol=1e-4)
    for got, want in zip(varlen_grads, masked_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)

    # generation (a cache, padding) goes through sdpa with its mask, and still works
    from ftstudio.engine.batch_generation import greedy_generate
    from ftstudio.engine.tokenize import encode_prompt

    calls_before = len(reference_kernel)
    prompts = [encode_prompt(tokenizer, c[:1]) for c in conversations(3, seed=2)]
    model.eval()
    answers = greedy_generate(model, tokenizer, prompts, [tokenizer.eos_token_id], 4)
    assert len(answers) == 3 and len(reference_kernel) == calls_before


def test_no_dense_mask_is_built_for_a_packed_row():
    """The mask function of the varlen attention: None for an unpadded row, sdpa's mask for a padded one."""
    from transformers.masking_utils import causal_mask_function

    assert (
        packing._varlen_mask(
            batch_size=1, q_length=64, kv_length=64, mask_function=causal_mask_function, attention_mask=None
        )
        is None
    )
    padding = torch.ones(2, 8, dtype=torch.bool)
    padding[0, :3] = False
    mask = packing._varlen_mask(
        batch_size=2,
        q_length=8,
        kv_length=8,
        mask_function=causal_mask_function,
        attention_mask=padding,
        allow_is_causal_skip=False,
    )
    assert mask is not None and mask.shape[-2:] == (8, 8) and not mask[0, 0, 5, 0]


def test_cumulative_lengths_are_made_once_per_row():
    first = packing.cumulative_lengths((3, 5, 2), torch.device("cpu"))
    assert first.tolist() == [0, 3, 8, 10] and first.dtype == torch.int32
    assert packing.cumulative_lengths((3, 5, 2), torch.device("cpu")) is first  # every layer: the same tensor
    assert packing.cumulative_lengths((4,), torch.device("cpu")).tolist() == [0, 4]


# -- bf16 compute --------------------------------------------------------------------------


def test_bf16_lora_layers_take_their_input_as_it_is(tiny_model_dir):
    """With bf16 frozen weights, PEFT casts each LoRA input to fp32 (a copy kept for backward); under
    bf16_compute the LoRA layers see the bf16 input itself, and their weights stay fp32."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.loss import bf16_compute

    model = AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir), dtype=torch.bfloat16, attn_implementation="sdpa"
    )
    model = get_peft_model(
        model,
        LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
        autocast_adapter_dtype=True,
    )
    seen: list[torch.dtype] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
        for n, m in model.named_modules()
        if n.endswith("lora_A.default")
    ]
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    model(input_ids=ids, use_cache=False)
    assert seen and set(seen) == {torch.float32}  # the fp32 copies the setting removes
    seen.clear()
    with bf16_compute(model, "cpu", True):
        model(input_ids=ids, use_cache=False).logits.sum().backward()
    assert seen and set(seen) == {torch.bfloat16}
    lora = [p for p in model.parameters() if p.requires_grad]
    assert all(
        p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32 for p in lora
    )
    # outside the block the casts are back (generation needs them with fp32 add-on weights)
    seen.clear()
    model(input_ids=ids, use_cache=False)
    assert set(seen) == {torch.float32}
    for h in hooks:
        h.remove()


def test_bf16_autocast_follows_the_fp32_loss_curve(tiny_model_dir, tmp_path):
    """The same run with bf16 autocast on: each step's loss within 2% of the fp32 run's, the adapter
    stays fp32. The GPU-only paths asked for too are left out on the CPU, with a note, not a failure."""
    data = memorise_data(12, 2)
    common = dict(max_steps=6, eval_every=0, samples=0, checkpoint_every=0, learning_rate=5e-3)
    fp32, fp32_events = run(tiny_cfg(tiny_model_dir, **common), data, tmp_path / "fp32")
    bf16, bf16_events = run(tiny_cfg(tiny_model_dir, **ALL_ON, **common), data, tmp_path / "bf16")
    assert fp32.status == bf16.status == "finished", (fp32.failure, bf16.failure)
    a = [e.loss for e in fp32_events if isinstance(e, StepMetrics)]
    b = [e.loss for e in bf16_events if isinstance(e, StepMetrics)]
    assert len(a) == len(b) == 6
    assert a[-1] < a[0]  # it learns, so the curves are compared while moving
    for x, y in zip(a, b):
        assert y == pytest.approx(x, rel=0.02), (a, b)
    assert a != b  # bf16 really computed differently
    from safetensors.torch import load_file

    adapter = load_file(str(tmp_path / "bf16" / "adapter" / "adapter_model.safetensors"))
    assert all(t.dtype == torch.float32 for t in adapter.values())
    warnings = [e.message for e in bf16_events if isinstance(e, Log) and e.level == "warning"]
    assert any("liger-kernel's kernels run on an NVIDIA GPU only" in w for w in warnings)
    assert any(w.startswith("varlen_attention: a GPU kernel") for w in warnings)
    assert not any(isinstance(e, Failed) for e in bf16_events)


def test_sliding_window_layers_keep_a_mask_and_their_examples_apart(reference_kernel):
    """A Qwen2 with one full and one sliding-window layer: the full layer goes to the kernel, the
    sliding one to sdpa with the (block-diagonal, windowed) mask built for it; packed logits still
    equal per-example logits."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        use_sliding_window=True,
        sliding_window=6,
        max_window_layers=1,
        max_position_embeddings=256,
        attn_implementation="sdpa",
    )
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(config).eval()
    assert [getattr(layer.self_attn, "sliding_window", None) for layer in model.model.layers] == [None, 6]
    rng = torch.Generator().manual_seed(3)
    examples = [torch.randint(3, 128, (n,), generator=rng) for n in (9, 14, 5)]
    with torch.no_grad():
        alone = [model(input_ids=e[None], use_cache=False).logits[0] for e in examples]
        assert enable_varlen_attention(model)
        packed = model(
            input_ids=torch.cat(examples)[None],
            position_ids=torch.cat([torch.arange(len(e)) for e in examples])[None],
            use_cache=False,
            segments=tuple(len(e) for e in examples),
        ).logits[0]
    assert reference_kernel == [True]  # the full-attention layer only
    start = 0
    for e, want in zip(examples, alone):
        torch.testing.assert_close(packed[start : start + len(e)], want, atol=1e-4, rtol=1e-4)
        start += len(e)
