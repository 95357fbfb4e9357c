"""The auto-fit plan: micro-batches and checkpointing chosen so the run fits the device,
the optimiser step untouched, and a suggestion (never applied) when nothing fits."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from ftstudio.core.config import PRESETS, preset
from ftstudio.engine.estimate import GIB, DeviceBudget, estimate_memory, known_model, model_shape
from ftstudio.engine.fit import RunPlan, micro_batch_choices, plan_run


def card(gigabytes: float, name: str = "NVIDIA GeForce RTX 4070") -> DeviceBudget:
    return DeviceBudget("cuda", name, int(gigabytes * GIB), int(gigabytes * GIB), cores=8, bf16=True)


LLAMA_8B = model_shape("meta-llama/Llama-3.1-8B-Instruct")  # from the shipped table: nothing downloaded
LLAMA_1B = model_shape("meta-llama/Llama-3.2-1B-Instruct")
QWEN_05B = model_shape("Qwen/Qwen2.5-0.5B-Instruct")


def test_the_shapes_come_from_the_shipped_table():
    assert LLAMA_8B.source == "table" and LLAMA_8B.vocab_size == 128256 and LLAMA_8B.num_layers == 32
    assert LLAMA_8B.total_params == pytest.approx(8.03e9, rel=0.01)
    assert LLAMA_1B.total_params == pytest.approx(1.236e9, rel=0.01)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_fits_8b_qlora_on_12_gb(name):
    plan = plan_run(preset(name, method="qlora"), LLAMA_8B, card(12))
    assert plan.fits, plan.text
    assert plan.suggestion is None
    assert plan.estimate.total <= 12 * GIB


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_fits_1b_lora_on_8_gb(name):
    plan = plan_run(preset(name, method="lora"), LLAMA_1B, card(8, "NVIDIA GeForce RTX 4060"))
    assert plan.fits, plan.text
    assert plan.estimate.total <= 8 * GIB


def test_the_plan_keeps_the_optimiser_step_and_splits_only_the_batch():
    cfg = preset("best", method="qlora", grad_accum=2)
    plan = plan_run(cfg, LLAMA_8B, card(12))
    assert plan.batch_tokens == cfg.batch_tokens and plan.grad_accum == 2  # the update is the user's
    assert plan.micro_batch_tokens in micro_batch_choices(cfg.batch_tokens, cfg.max_length)
    assert plan.micro_batch_tokens >= cfg.max_length  # the longest example fits one micro-batch
    assert plan.micro_batches * plan.micro_batch_tokens == cfg.batch_tokens
    assert plan.micro_batches_per_step == 2 * plan.micro_batches
    # the estimate at the plan is the estimate of one micro-batch, not of the packed batch
    whole = estimate_memory(
        replace(cfg, gradient_checkpointing=plan.gradient_checkpointing), LLAMA_8B, card(12)
    )
    assert plan.micro_batches > 1 and plan.estimate.activations < whole.activations


def test_a_roomy_device_runs_the_batch_in_one_pass_without_checkpointing():
    plan = plan_run(preset("balanced"), QWEN_05B, card(80, "NVIDIA H100 80GB HBM3"))
    assert plan.micro_batches == 1 and not plan.gradient_checkpointing
    assert plan.text.startswith("4,096 tokens per batch in one pass, checkpointing off: fits 80 GB with ")


def test_splitting_comes_before_checkpointing_and_checkpointing_before_giving_up():
    cfg = preset("balanced", method="qlora")
    roomy, tight = plan_run(cfg, LLAMA_8B, card(24)), plan_run(cfg, LLAMA_8B, card(12))
    assert not roomy.gradient_checkpointing and roomy.micro_batches > 1  # split, no recomputing
    assert tight.gradient_checkpointing  # only checkpointing fits 12 GB
    # a smaller card never gets a larger micro-batch
    sizes = [plan_run(cfg, LLAMA_8B, card(g)) for g in (80, 40, 24, 16, 12)]
    assert all(a.estimate.activations >= b.estimate.activations for a, b in zip(sizes, sizes[1:]))


def test_the_text_says_the_plan_and_the_room_left():
    plan = plan_run(preset("best", method="qlora"), LLAMA_8B, card(24))
    spare = plan.estimate.spare or 0
    assert plan.text.endswith(f": fits 24 GB with {spare / GIB:.1f} GB to spare".replace(".0 GB", " GB"))
    assert ("checkpointing on" if plan.gradient_checkpointing else "checkpointing off") in plan.text


def test_a_checkpointing_setting_that_is_on_stays_on():
    plan = plan_run(preset("balanced", gradient_checkpointing=True), QWEN_05B, card(80))
    assert plan.gradient_checkpointing


def test_the_ceiling_from_an_earlier_out_of_memory_caps_the_micro_batch():
    cfg = preset("best")
    free = plan_run(cfg, QWEN_05B, card(80))
    capped = plan_run(cfg, QWEN_05B, card(80), micro_batch_ceiling=2048)
    assert free.micro_batch_tokens == 8192
    assert capped.micro_batch_tokens == 2048 and capped.micro_batches == 4
    assert any("ran out of memory" in note for note in capped.notes)
    # a ceiling below the context still leaves the longest example one micro-batch
    assert plan_run(cfg, QWEN_05B, card(80), micro_batch_ceiling=100).micro_batch_tokens == cfg.max_length


def test_when_nothing_fits_the_smallest_change_is_suggested_not_applied():
    cfg = preset("balanced", method="lora")
    plan = plan_run(cfg, LLAMA_8B, card(12))
    assert not plan.fits
    assert plan.suggestion is not None and plan.suggestion.words == "switch to QLoRA"
    assert plan.suggestion.changes == {"method": "qlora"}
    assert plan.suggestion.plan.fits and plan.suggestion.plan.estimate.total <= 12 * GIB
    assert "switch to QLoRA to fit" in plan.text
    assert cfg.method == "lora"  # nothing was changed
    # already QLoRA and still too big: a shorter context, with its own estimate
    tight = plan_run(preset("balanced", method="qlora"), LLAMA_8B, card(8))
    assert tight.suggestion is not None and "shorten the context" in tight.suggestion.words
    shorter = tight.suggestion.changes["max_length"]
    assert shorter < 1024
    assert plan_run(preset("balanced", method="qlora", max_length=shorter), LLAMA_8B, card(8)).fits
    assert not plan_run(preset("balanced", method="qlora", max_length=shorter * 2), LLAMA_8B, card(8)).fits


def test_a_model_far_too_big_gets_no_suggestion():
    huge = model_shape("meta-llama/Llama-3.1-70B-Instruct")
    plan = plan_run(preset("quick", method="qlora"), huge, card(8))
    assert not plan.fits and plan.suggestion is None
    assert plan.text.endswith("choose a smaller model")


def test_the_plan_is_a_plain_dict_for_json():
    import json

    plan = plan_run(preset("balanced", method="lora"), LLAMA_8B, card(12))
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["fits"] is False and data["suggestion"]["changes"] == {"method": "qlora"}
    assert data["memory"]["total"] == plan.estimate.total
    assert isinstance(plan, RunPlan)


def test_the_cpu_plan_prefers_a_shorter_context_to_qlora():
    laptop = DeviceBudget("cpu", "laptop", 8 * GIB, 3 * GIB, 4, False)
    plan = plan_run(preset("best", method="lora"), model_shape("meta-llama/Llama-3.2-1B"), laptop)
    if plan.suggestion is not None:  # QLoRA is several times slower on a CPU
        assert not plan.suggestion.words.startswith("switch to QLoRA")


def test_known_models_are_found_in_any_letter_case():
    assert known_model("qwen/qwen2.5-0.5b-instruct") == known_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert known_model("nobody/nothing") is None


def test_the_plan_needs_no_torch():
    code = (
        "import sys; from ftstudio.engine.fit import plan_run; from ftstudio.engine.estimate import "
        "model_shape, cpu_budget; from ftstudio.core.config import TrainConfig;"
        "plan_run(TrainConfig(), model_shape('meta-llama/Llama-3.1-8B'), cpu_budget());"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_knob_stays_overridable():
    cfg = preset("best", method="qlora")
    # a fixed micro-batch is kept (and estimated as it is) even where the plan would choose another
    fixed = plan_run(replace(cfg, micro_batch_tokens=4096), LLAMA_8B, card(24))
    assert fixed.micro_batch_tokens == 4096 and fixed.micro_batches == 2 and not fixed.auto
    # auto-fit off: the settings as they are, one pass per batch, checkpointing as set; a suggestion if too big
    manual = plan_run(replace(cfg, auto_fit=False), LLAMA_8B, card(12))
    assert manual.micro_batch_tokens == cfg.batch_tokens and not manual.gradient_checkpointing
    assert not manual.fits and manual.suggestion is not None and manual.suggestion.changes["auto_fit"] is True
    on = plan_run(
        replace(cfg, auto_fit=False, gradient_checkpointing=True, micro_batch_tokens=2048), LLAMA_8B, card(12)
    )
    assert on.gradient_checkpointing and on.micro_batch_tokens == 2048 and on.fits


def test_the_gpu_compute_paths_change_the_estimate_the_way_they_should():
    cfg = preset("balanced", method="qlora")
    base = estimate_memory(cfg, LLAMA_8B, card(24), micro_batch_tokens=4096)
    varlen = estimate_memory(replace(cfg, varlen_attention=True), LLAMA_8B, card(24), micro_batch_tokens=4096)
    autocast = estimate_memory(replace(cfg, bf16_autocast=True), LLAMA_8B, card(24), micro_batch_tokens=4096)
    fused = estimate_memory(replace(cfg, fused_loss=True), LLAMA_8B, card(24), micro_batch_tokens=4096)
    # no T x T mask per layer, no copies of the grouped k and v: 4,096 tokens x 2 bytes x 32 layers less per token
    assert base.activations - varlen.activations >= 4096 * 4096 * 2 * 32
    assert autocast.activations < base.activations * 0.8  # no fp32 copy of every add-on's input
    assert fused.logits < base.logits / 2 and fused.activations == base.activations
    # on the CPU the GPU-only paths change nothing
    cpu = DeviceBudget("cpu", "test CPU", 64 * GIB, 64 * GIB, 2, False)
    assert (
        estimate_memory(replace(cfg, varlen_attention=True, fused_loss=True), LLAMA_8B, cpu).total
        == estimate_memory(cfg, LLAMA_8B, cpu).total
    )


def test_the_ceiling_caps_a_fixed_micro_batch_and_a_plan_with_auto_fit_off():
    cfg = preset("best", micro_batch_tokens=8192)
    assert plan_run(cfg, QWEN_05B, card(80), micro_batch_ceiling=4096).micro_batch_tokens == 4096
    manual = replace(cfg, auto_fit=False, micro_batch_tokens=0)
    assert plan_run(manual, QWEN_05B, card(80), micro_batch_ceiling=2048).micro_batch_tokens == 2048


def test_offloaded_checkpoints_are_the_last_way_to_fit_and_only_when_allowed():
    # 8B QLoRA with a long context on a 12 GB card: the checkpoints (32 layers x tokens x 4,096
    # x 2 bytes) do not fit on the card beside the weights, in host memory they do.
    cfg = preset("balanced", method="qlora", max_length=8192, batch_tokens=8192)
    on_card = plan_run(cfg, LLAMA_8B, card(12))
    assert not on_card.fits and not on_card.offload_checkpoints
    allowed = plan_run(replace(cfg, offload_checkpoints=True), LLAMA_8B, card(12))
    assert allowed.fits and allowed.gradient_checkpointing and allowed.offload_checkpoints
    assert allowed.estimate.offloaded == 8192 * 32 * 4096 * 2
    assert "checkpoints offloaded to RAM" in allowed.text and "GB of checkpoints in RAM" in allowed.text
    assert allowed.to_dict()["offload_checkpoints"] is True
    assert allowed.to_dict()["memory"]["offloaded_to_host"] == allowed.estimate.offloaded
    # copies each way make it slower than keeping the checkpoints on a card that has room
    roomy_on, roomy_off = (
        plan_run(
            replace(cfg, offload_checkpoints=o, gradient_checkpointing=True, auto_fit=False),
            LLAMA_8B,
            card(80),
        )
        for o in (False, True)
    )
    assert roomy_off.offload_checkpoints and not roomy_on.offload_checkpoints
    assert roomy_off.tokens_per_s < roomy_on.tokens_per_s
    # where checkpointing on the card fits, the plan keeps it there even when offloading is allowed
    fits_anyway = plan_run(preset("balanced", method="qlora", offload_checkpoints=True), LLAMA_8B, card(12))
    assert fits_anyway.fits and not fits_anyway.offload_checkpoints


def test_the_cpu_never_offloads_checkpoints():
    laptop = DeviceBudget("cpu", "laptop", 8 * GIB, 3 * GIB, 4, False)
    cfg = preset("best", method="lora", offload_checkpoints=True, gradient_checkpointing=True)
    plan = plan_run(cfg, LLAMA_1B, laptop)
    assert not plan.offload_checkpoints and plan.estimate.offloaded == 0
    fixed = plan_run(replace(cfg, auto_fit=False), LLAMA_1B, laptop)
    assert not fixed.offload_checkpoints and "checkpointing on" in fixed.text
