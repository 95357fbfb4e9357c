"""The memory and time estimate: read from config.json alone, and it moves the
way the settings say it should."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from ftstudio.core.config import TrainConfig, preset
from ftstudio.engine.estimate import (
    BUNDLED_CONFIG, GIB, DeviceBudget, ModelShape, ModelShapeError, cpu_budget, duration, estimate_memory,
    estimate_time, gb, lora_parameters, model_shape, with_preference_passes,
)

SMOL = ModelShape.from_config(BUNDLED_CONFIG)
# Llama-2-7B's config.json
LLAMA7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
           "tie_word_embeddings": False}
GPU8 = DeviceBudget("cuda", "NVIDIA GeForce RTX 4060", 8 * GIB, 8 * GIB, cores=8, bf16=True)
GPU24 = DeviceBudget("cuda", "NVIDIA GeForce RTX 4090", 24 * GIB, 24 * GIB, cores=16, bf16=True)
CPU = DeviceBudget("cpu", "test CPU (2 cores)", 16 * GIB, 12 * GIB, cores=2, bf16=False)


def test_parameter_counts_match_the_known_models():
    assert SMOL.total_params == pytest.approx(134.5e6, rel=0.01)  # SmolLM2-135M
    assert ModelShape.from_config(LLAMA7B).total_params == pytest.approx(6.74e9, rel=0.01)  # Llama-2-7B
    # LoRA rank 16 on every linear layer of SmolLM2-135M: 4,884,480 trainable weights, as peft counts them
    assert lora_parameters(SMOL, TrainConfig(lora_rank=16)) == 4_884_480
    assert lora_parameters(SMOL, TrainConfig(lora_rank=16, target_modules=["q_proj", "v_proj"])) < 4_884_480 / 3
    assert lora_parameters(SMOL, TrainConfig(lora_rank=32)) == 2 * 4_884_480


def test_a_model_known_only_by_its_size_gets_a_plausible_shape():
    shape = ModelShape.from_param_count(7e9)
    assert shape.total_params == pytest.approx(7e9, rel=0.25)
    assert estimate_memory(TrainConfig(), 7e9, GPU24).total == pytest.approx(
        estimate_memory(TrainConfig(), LLAMA7B, GPU24).total, rel=0.35)


def test_qlora_needs_less_memory_than_lora():
    for device in (GPU8, GPU24, CPU):
        lora = estimate_memory(TrainConfig(method="lora"), LLAMA7B, device)
        qlora = estimate_memory(TrainConfig(method="qlora"), LLAMA7B, device)
        assert qlora.weights < lora.weights / 3
        assert qlora.total < lora.total
        assert qlora.adapter == lora.adapter  # the add-on weights are the same either way


def test_weights_in_bf16_take_half_of_fp32():
    bf16 = estimate_memory(TrainConfig(precision="bf16"), SMOL, GPU24)
    fp32 = estimate_memory(TrainConfig(precision="fp32"), SMOL, GPU24)
    auto_gpu = estimate_memory(TrainConfig(precision="auto"), SMOL, GPU24)
    auto_cpu = estimate_memory(TrainConfig(precision="auto"), SMOL, CPU)
    assert fp32.weights == 2 * bf16.weights
    assert auto_gpu.weights == bf16.weights  # a bf16-capable GPU
    assert auto_cpu.weights == fp32.weights  # the CPU trains in fp32


def test_gradient_checkpointing_lowers_activations():
    cfg = TrainConfig(batch_tokens=4096, max_length=1024)
    plain = estimate_memory(cfg, LLAMA7B, GPU24)
    saved = estimate_memory(replace(cfg, gradient_checkpointing=True), LLAMA7B, GPU24)
    assert saved.activations < plain.activations / 4
    assert saved.weights == plain.weights and saved.adapter == plain.adapter


def test_a_bigger_batch_raises_activations_in_proportion():
    small = estimate_memory(TrainConfig(batch_tokens=1024, max_length=512), SMOL, CPU)
    big = estimate_memory(TrainConfig(batch_tokens=4096, max_length=512), SMOL, CPU)
    assert big.activations == pytest.approx(4 * small.activations, rel=0.02)
    assert big.total > small.total
    # accumulation runs micro-batches one after another: no more memory
    accumulated = estimate_memory(TrainConfig(batch_tokens=1024, max_length=512, grad_accum=4), SMOL, GPU24)
    assert accumulated.total == estimate_memory(TrainConfig(batch_tokens=1024, max_length=512), SMOL, GPU24).total
    # on CUDA the packed row's dense mask grows with its square: more than in proportion
    gpu_small = estimate_memory(TrainConfig(batch_tokens=1024, max_length=512), SMOL, GPU24)
    gpu_big = estimate_memory(TrainConfig(batch_tokens=4096, max_length=512), SMOL, GPU24)
    assert gpu_big.activations > 4.2 * gpu_small.activations


def test_higher_rank_costs_more_optimiser_memory():
    r8 = estimate_memory(TrainConfig(lora_rank=8), LLAMA7B, GPU24)
    r64 = estimate_memory(TrainConfig(lora_rank=64), LLAMA7B, GPU24)
    assert r64.adapter == 8 * r8.adapter
    assert r8.adapter == r8.trainable_params * 16  # fp32 weight, gradient, two AdamW moments


def test_fitting_run_says_how_much_is_spare():
    est = estimate_memory(preset("quick"), SMOL, GPU24)
    assert est.fits is True
    assert est.spare == est.available - est.total > 0
    assert est.text == f"fits with {gb(est.spare)} GB to spare"
    assert est.advice == ()


def test_advice_to_switch_to_qlora_when_lora_does_not_fit():
    # Llama-2-7B in bf16 is ~12.6 GB of weights: LoRA cannot fit a 12 GB card, QLoRA can.
    card = DeviceBudget("cuda", "NVIDIA GeForce RTX 4070 Ti", 12 * GIB, 12 * GIB, 8, True)
    cfg = TrainConfig(method="lora", batch_tokens=1024, max_length=512, gradient_checkpointing=True)
    est = estimate_memory(cfg, LLAMA7B, card)
    assert est.fits is False
    assert est.advice[0] == "switch to QLoRA"
    assert est.text.startswith(f"needs {gb(est.total)} GB, you have 12: switch to QLoRA")
    assert estimate_memory(replace(cfg, method="qlora"), LLAMA7B, card).fits


def test_advice_to_halve_the_batch_when_only_activations_overflow():
    cfg = TrainConfig(method="qlora", batch_tokens=16384, max_length=1024, gradient_checkpointing=True)
    card = DeviceBudget("cuda", "NVIDIA GeForce RTX 4070 Ti", 12 * GIB, 12 * GIB, 8, True)
    est = estimate_memory(cfg, LLAMA7B, card)
    assert est.fits is False
    assert "halve the batch" in est.advice
    assert "switch to QLoRA" not in est.text  # already QLoRA
    # with a batch far too big, the advice names how far to cut it: to a batch that fits,
    # and not to one needlessly small (twice the advised batch does not fit)
    tight = estimate_memory(cfg, LLAMA7B, GPU8)
    (advice,) = tight.advice
    match = re.fullmatch(r"cut the batch to ([\d,]+) tokens", advice)
    assert match, advice
    advised = int(match.group(1).replace(",", ""))
    assert advised < cfg.batch_tokens
    assert estimate_memory(replace(cfg, batch_tokens=advised), LLAMA7B, GPU8).fits
    assert not estimate_memory(replace(cfg, batch_tokens=advised * 2), LLAMA7B, GPU8).fits


def test_advice_combines_changes_or_asks_for_a_smaller_model():
    est = estimate_memory(TrainConfig(method="lora", batch_tokens=4096, max_length=1024), LLAMA7B, GPU8)
    assert est.fits is False
    assert len(est.advice) == 1
    assert "QLoRA" in est.advice[0] and "gradient checkpointing" in est.advice[0]
    huge = {**LLAMA7B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80}  # ~70B
    assert estimate_memory(TrainConfig(method="qlora"), huge, GPU8).advice == ("choose a smaller model",)


def test_cpu_advice_prefers_cheaper_moves_to_qlora():
    small_ram = DeviceBudget("cpu", "laptop", 8 * GIB, 2 * GIB, 4, False)
    est = estimate_memory(TrainConfig(batch_tokens=8192, max_length=2048), SMOL, small_ram)
    assert est.fits is False
    assert not est.advice[0].startswith("switch to QLoRA")  # several times slower on a CPU


def test_memory_names_its_parts():
    est = estimate_memory(preset("balanced"), SMOL, GPU24)
    parts = dict(est.parts())
    assert sum(parts.values()) == est.total
    assert set(parts) == {"Model weights", "Add-on weights and optimiser", "Activations", "Runtime"}


def test_time_on_the_cpu_is_calibrated_on_the_bundled_model():
    cfg = preset("quick", batch_tokens=1024)
    t = estimate_time(cfg, SMOL, train_tokens=17_000, device=CPU, examples=270)
    # How close the speed is to what the engine really reaches is a measurement, not a
    # test: benchmarks/bench_training.py prints measured / estimated tokens per second.
    assert t.steps == 18  # 17,000 tokens in batches of ~970
    assert t.tokens == 18 * int(1024 * 0.95)
    # the time is the tokens at that speed, plus the sample answers of each evaluation
    assert t.seconds >= t.tokens / t.tokens_per_s
    twice_the_cores = estimate_time(cfg, SMOL, train_tokens=17_000, device=replace(CPU, cores=4), examples=270)
    assert twice_the_cores.tokens_per_s > t.tokens_per_s and twice_the_cores.seconds < t.seconds
    assert "on this CPU" in t.text and "18 steps" in t.text


def test_time_grows_with_model_size_epochs_and_qlora_on_the_cpu():
    cfg = preset("quick")
    small = estimate_time(cfg, SMOL, 50_000, CPU)
    big = estimate_time(cfg, LLAMA7B, 50_000, CPU)
    assert big.tokens_per_s < small.tokens_per_s / 20
    assert estimate_time(replace(cfg, epochs=3.0), SMOL, 50_000, CPU).steps == 3 * small.steps
    assert estimate_time(replace(cfg, method="qlora"), SMOL, 50_000, CPU).seconds > small.seconds
    assert estimate_time(replace(cfg, max_steps=7), SMOL, 50_000, CPU).steps == 7
    gpu = estimate_time(cfg, SMOL, 50_000, GPU24)
    assert gpu.tokens_per_s > 10 * small.tokens_per_s
    checkpointed = estimate_time(replace(cfg, gradient_checkpointing=True), LLAMA7B, 50_000, GPU24)
    assert checkpointed.seconds > estimate_time(cfg, LLAMA7B, 50_000, GPU24).seconds


def test_preference_tuning_adds_its_forward_passes_without_gradients():
    cfg = preset("quick", objective="dpo")
    steps = estimate_time(cfg, SMOL, 20_000, CPU, examples=200)
    dpo = with_preference_passes(steps, "dpo", reference_tokens=24_000)
    # the reference pass over every training and held-out pair: a forward pass, a third of a trained token
    assert dpo.seconds - steps.seconds == pytest.approx(24_000 / 3 / steps.tokens_per_s)
    assert (dpo.steps, dpo.tokens, dpo.tokens_per_s) == (steps.steps, steps.tokens, steps.tokens_per_s)
    # KTO also puts each step's mismatched answers forward, about as many tokens as it trains
    kto = with_preference_passes(steps, "kto", reference_tokens=24_000)
    assert kto.seconds - dpo.seconds == pytest.approx(steps.tokens / 3 / steps.tokens_per_s)


def test_durations_read_like_words():
    assert duration(4) == "a few seconds"
    assert duration(44) == "40 seconds"
    assert duration(300) == "5 minutes"
    assert duration(60 * 60 * 3 + 600) == "3 hours 10 minutes"
    assert duration(86400 * 5) == "5 days"
    assert gb(3.14 * GIB) == "3.1" and gb(9 * GIB) == "9" and gb(24 * GIB) == "24"


def test_model_shape_reads_config_json_of_a_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA7B))
    shape = model_shape(str(tmp_path))
    assert shape.hidden_size == 4096 and shape.num_layers == 32 and not shape.tie_word_embeddings
    assert model_shape("bundled:SmolLM2-135M-Instruct").hidden_size == 576


def test_model_shape_says_what_is_wrong(tmp_path):
    with pytest.raises(ModelShapeError, match="no config.json"):
        model_shape(str(tmp_path))
    with pytest.raises(ModelShapeError, match="does not exist"):
        model_shape(str(tmp_path / "missing"))
    with pytest.raises(ModelShapeError, match="not in the local Hugging Face cache"):
        model_shape("nobody/no-such-model-here")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelShapeError, match="cannot be read"):
        model_shape(str(tmp_path))


def test_plain_mlp_models_have_two_mlp_matrices():
    gpt2 = ModelShape.from_config({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
                                   "vocab_size": 50257})
    assert not gpt2.gated_mlp and gpt2.intermediate_size == 3072
    assert gpt2.total_params == pytest.approx(124e6, rel=0.03)


def test_the_estimate_needs_no_torch():
    code = ("import sys; from ftstudio.engine.estimate import estimate_memory, estimate_time, model_shape, cpu_budget;"
            "from ftstudio.core.config import TrainConfig; s = model_shape('bundled');"
            "estimate_memory(TrainConfig(), s, cpu_budget()); estimate_time(TrainConfig(), s, 1000);"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cpu_budget_reads_this_machine():
    budget = cpu_budget()
    assert budget.kind == "cpu" and budget.total_bytes > GIB and budget.cores >= 1


def test_device_budget_from_the_engine_device_info():
    from ftstudio.engine.device import DeviceInfo

    gpu = DeviceBudget.from_info(DeviceInfo("cuda", "NVIDIA H100 80GB HBM3", 80 * GIB, 79 * GIB))
    assert gpu.kind == "cuda" and gpu.bf16 and gpu.available == 79 * GIB and gpu.memory_name == "GPU memory"
    assert not DeviceBudget.from_info(DeviceInfo("cuda", "Tesla T4", 16 * GIB, 15 * GIB)).bf16
    # an H100 trains a 7B model far faster than a T4
    t4 = DeviceBudget.from_info(DeviceInfo("cuda", "Tesla T4", 16 * GIB, 15 * GIB))
    cfg = TrainConfig(method="qlora")
    assert estimate_time(cfg, LLAMA7B, 10**6, gpu).seconds < estimate_time(cfg, LLAMA7B, 10**6, t4).seconds / 5


def test_a_config_fetched_from_the_hub_gives_an_estimate_offline_afterwards(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from ftstudio.engine import estimate

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    fetched: list[str] = []

    def hub_answers(spec: str):
        # Fault-injection point for the network: the hub's answer to hf_hub_download,
        # written where huggingface_hub's cache keeps it (refs/main -> snapshots/<commit>/).
        fetched.append(spec)
        repo = cache / ("models--" + spec.replace("/", "--"))
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0123abcd")
        snapshot = repo / "snapshots" / "0123abcd"
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps(LLAMA7B))
        return snapshot / "config.json"

    with pytest.raises(ModelShapeError, match="fetch its config.json"):
        model_shape("someone/llama-7b-finetune")
    assert fetched == []  # nothing touches the network unless asked
    monkeypatch.setattr(estimate, "_download_hub_config", hub_answers)
    shape = estimate.fetch_model_config("someone/llama-7b-finetune")
    assert fetched == ["someone/llama-7b-finetune"]
    assert shape.source == "config" and shape.hidden_size == 4096 and shape.num_layers == 32
    # later, offline: found in the cache without asking the hub again
    again = model_shape("someone/llama-7b-finetune")
    assert again.source == "config" and again.total_params == shape.total_params and len(fetched) == 1


def test_fetching_a_config_that_fails_says_why(monkeypatch):
    from ftstudio.engine import estimate

    def offline(spec: str):
        # stands for huggingface_hub's error when the hub cannot be reached
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(estimate, "_download_hub_config", offline)
    with pytest.raises(ModelShapeError, match="offline or the hub cannot be reached"):
        estimate.fetch_model_config("someone/some-model")
    with pytest.raises(ModelShapeError, match="not a hub model id"):
        estimate.fetch_model_config("/a/folder")


def test_the_shipped_table_holds_the_popular_families_with_real_vocabularies():
    from ftstudio.engine.estimate import known_model, known_model_ids

    ids = known_model_ids()
    for family in ("Llama-3.1", "Llama-3.2", "Qwen2.5", "Qwen3", "gemma-2", "gemma-3", "Mistral-7B", "Phi-3",
                   "phi-4", "SmolLM2"):
        assert any(family.lower() in i.lower() for i in ids), family
    assert known_model("Qwen/Qwen2.5-7B-Instruct").vocab_size == 152064
    assert known_model("google/gemma-2-2b-it").vocab_size == 256000
    assert known_model("google/gemma-3-4b-it").vocab_size == 262208  # read from its text_config
    for i in ids:
        shape = known_model(i)
        assert shape.download_bytes >= 2 * shape.total_params * 0.99, i  # bf16 weights at least
