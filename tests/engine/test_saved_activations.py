"""The estimate's activation term against what autograd really keeps, on real shapes.

Each model is built from its real config.json (resources/model_shapes.json) with
one and with two blocks and random weights; the difference is what one block
keeps per token (tests/engine/saved_activations.py measures it with saved-tensor
hooks through the engine's own loading and loss). The estimate must be within 10%
of it, with and without checkpointing, with LoRA and QLoRA (bitsandbytes 4-bit on
the CPU), with and without dropout, computing in bf16 as on a GPU, in fp32 as on
the CPU, and under bf16 autocast. This is the CPU path (attention example by
example); the CUDA-only terms (the dense mask, expanded k and v, Liger's kernels,
the fused loss) are not measured here.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ftstudio.core.config import TrainConfig
from ftstudio.engine.estimate import GIB, DeviceBudget, _memory_parts, known_model, offloaded_bytes

from tests.engine import saved_activations as saved

CPU = DeviceBudget("cpu", "test CPU", 64 * GIB, 64 * GIB, 2, False)
SEGMENTS = (96, 160)  # one packed row of two examples
TOLERANCE = 0.10


def _config(repo: str) -> dict:
    import json

    from ftstudio.paths import resource

    for entry in json.loads(resource("model_shapes.json").read_text())["models"]:
        if repo in entry["ids"]:
            return entry["config"]
    raise KeyError(repo)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Model folders of one and two blocks, built once per model for the module."""
    folders: dict[tuple[str, int], object] = {}

    def get(repo: str, layers: int):
        if (repo, layers) not in folders:
            folder = tmp_path_factory.mktemp(repo.replace("/", "_") + f"-{layers}")
            folders[repo, layers] = saved.build_model_dir(_config(repo), layers, folder)
        return folders[repo, layers]

    return get


def _estimated_per_layer(repo: str, cfg: TrainConfig) -> float:
    shape = known_model(repo)
    assert shape is not None
    tokens = sum(SEGMENTS)
    one = _memory_parts(cfg, replace(shape, num_layers=1), CPU, tokens)["activations"]
    two = _memory_parts(cfg, replace(shape, num_layers=2), CPU, tokens)["activations"]
    return (two - one) / tokens


def _measured_per_layer(built, repo: str, cfg: TrainConfig) -> float:
    one = saved.saved_bytes(built(repo, 1), cfg, SEGMENTS)
    two = saved.saved_bytes(built(repo, 2), cfg, SEGMENTS)
    return (two - one) / sum(SEGMENTS)


def _check(built, repo: str, **settings) -> None:
    cfg = TrainConfig(train_on="all", batch_tokens=sum(SEGMENTS), max_length=sum(SEGMENTS), **settings)
    measured = _measured_per_layer(built, repo, cfg)
    estimated = _estimated_per_layer(repo, cfg)
    assert measured > 0
    assert estimated == pytest.approx(measured, rel=TOLERANCE), (
        f"{repo} {settings}: estimated {estimated:,.0f} bytes per token per block, measured {measured:,.0f}"
    )


# Fast: the Qwen2.5-0.5B and Gemma 3 1B shapes with the defaults (dropout on); the rest is slow.
@pytest.mark.parametrize("checkpointing", [False, True])
def test_lora_activations_in_bf16(built, checkpointing):
    _check(built, "Qwen/Qwen2.5-0.5B", method="lora", precision="bf16", gradient_checkpointing=checkpointing)


def test_gemma_activations_four_norms_and_qk_norms(built):
    _check(built, "google/gemma-3-1b-it", method="lora", precision="bf16")


@pytest.mark.slow
@pytest.mark.parametrize("repo", ["Qwen/Qwen2.5-0.5B", "google/gemma-3-1b-it"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_lora_activations_without_dropout(built, repo, checkpointing):
    _check(
        built, repo, method="lora", precision="bf16", gradient_checkpointing=checkpointing, lora_dropout=0.0
    )


def test_lora_activations_in_fp32_as_on_the_cpu(built):
    _check(built, "Qwen/Qwen2.5-0.5B", method="lora", precision="fp32", lora_dropout=0.0)
    _check(built, "Qwen/Qwen2.5-0.5B", method="lora", precision="fp32", lora_dropout=0.05)


def test_bf16_autocast_keeps_the_add_ons_inputs_in_bf16(built):
    _check(built, "Qwen/Qwen2.5-0.5B", method="lora", precision="bf16", bf16_autocast=True)


@pytest.mark.slow
@pytest.mark.parametrize("dropout", [0.0, 0.05])
def test_bf16_autocast_over_fp32_weights(built, dropout):
    _check(
        built, "Qwen/Qwen2.5-0.5B", method="lora", precision="fp32", bf16_autocast=True, lora_dropout=dropout
    )


@pytest.mark.slow
def test_a_rank_and_layer_choice_changes_the_activations_as_measured(built):
    _check(
        built,
        "Qwen/Qwen2.5-0.5B",
        method="lora",
        precision="bf16",
        lora_rank=64,
        target_modules=["q_proj", "v_proj"],
        lora_dropout=0.0,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "repo",
    ["Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B", "google/gemma-3-1b-it"],
)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_qlora_activations(built, repo, checkpointing):
    _check(
        built, repo, method="qlora", precision="bf16", gradient_checkpointing=checkpointing, lora_dropout=0.05
    )


@pytest.mark.slow
@pytest.mark.parametrize("repo", ["meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_lora_activations_of_the_llamas(built, repo, checkpointing):
    _check(
        built, repo, method="lora", precision="bf16", gradient_checkpointing=checkpointing, lora_dropout=0.05
    )


# Offloading is for GPUs (the estimate counts it on CUDA only); the mechanism is the same
# saved-tensor hooks on the CPU, so what stays and what goes to host memory is measured here.
GPU = DeviceBudget("cuda", "NVIDIA GeForce RTX 4070", 12 * GIB, 12 * GIB, 8, True)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_offloaded_checkpoints_leave_no_block_input_on_the_device(built, method):
    repo = "Qwen/Qwen2.5-0.5B"
    tokens = sum(SEGMENTS)
    cfg = TrainConfig(
        train_on="all",
        batch_tokens=tokens,
        max_length=tokens,
        method=method,
        precision="bf16",
        gradient_checkpointing=True,
        offload_checkpoints=True,
    )
    one = saved.kept_and_offloaded(built(repo, 1), cfg, SEGMENTS)
    two = saved.kept_and_offloaded(built(repo, 2), cfg, SEGMENTS)
    shape = known_model(repo)
    assert shape is not None
    # What went to host memory: each block's input, bf16, exactly what the estimate says.
    for layers, (_, host) in ((1, one), (2, two)):
        assert host == offloaded_bytes(cfg, replace(shape, num_layers=layers), GPU, tokens)
        assert host == layers * tokens * shape.hidden_size * 2
    # What a block adds on the device: nothing (checkpointing on the device keeps its input).
    on_device = saved.saved_bytes(built(repo, 2), replace(cfg, offload_checkpoints=False), SEGMENTS)
    assert two[0] - one[0] == 0
    assert on_device - two[0] == 2 * tokens * shape.hidden_size * 2
    # The estimate's device term grows by nothing per block either.
    estimated = [_memory_parts(cfg, replace(shape, num_layers=n), GPU, tokens)["activations"] for n in (1, 2)]
    assert estimated[1] == estimated[0]
