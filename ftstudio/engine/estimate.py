"""How much memory a run will need, and about how long it will take, before it starts.

Everything here is arithmetic on the model's ``config.json`` (hidden size,
layers, vocabulary, MLP width, attention heads) and the TrainConfig: no torch,
no weights loaded, so the Train page can recompute it on every keystroke.

Memory is the sum of
- the frozen weights: bf16 or fp32 (LoRA), or 4-bit NF4 with double
  quantisation for the linear layers (QLoRA; embeddings stay in the compute
  dtype);
- the add-on weights with their gradients and two AdamW moments, all fp32
  (16 bytes per trainable weight);
- the activations kept for the backward pass, for one micro-batch of
  ``batch_tokens`` packed tokens (only each layer's input with gradient
  checkpointing, plus one layer being recomputed; with the checkpoints
  offloaded, those inputs wait in the computer's memory and only the layer
  being recomputed is on the GPU);
- the logits, which the engine computes only at positions that carry loss,
  in chunks of ``engine.loss.loss_chunk_rows(vocab)`` rows;
- a fixed overhead (CUDA context and allocator slack, or the Python runtime
  on the CPU).

Time follows the usual rule of thumb: a LoRA step costs about three forward
passes of matmul work (forward, input gradients, the small add-on gradients),
``2 x weights`` FLOPs per token each, plus attention over the packed segment
length; divided by an effective speed for the device. That speed is measured
where it can be: the tokens/s of the project's earlier runs on the same device
(``core.runs.speed_history``), turned into FLOP/s by the same rule, so a run
of one model tells the speed for another. Without one, the CPU speed is
calibrated on the bundled 135M model with the engine (the Quick preset on the
demo project trains at about 150 tokens/s on one core and about 240 on two:
fp32, packed batches, loss only on the answers); a GPU's is a guess, a share
of its peak, and the text says so.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio.core.config import BUNDLED_MODEL, TrainConfig
from ftstudio.core.machine import system_memory, usable_cores
from ftstudio.engine.loss import loss_chunk_rows

if TYPE_CHECKING:
    from ftstudio.core.run_speeds import RunSpeed
    from ftstudio.engine.device import DeviceInfo

GIB = 1024**3

# Effective fp32 training speed of one CPU core, in FLOP/s (see the module doc).
CPU_FLOPS_PER_CORE = 90e9
# bf16 on the CPU is emulated on most machines, and bitsandbytes' 4-bit CPU
# kernels de-quantise every matmul: both are much slower than fp32.
CPU_BF16_SLOWDOWN = 2.0
CPU_QLORA_SLOWDOWN = 3.5
# QLoRA on a GPU de-quantises each weight block before its matmul.
GPU_QLORA_SLOWDOWN = 1.35
# Gradient checkpointing recomputes the forward pass: about 30% slower.
CHECKPOINTING_SLOWDOWN = 1.33
# Offloaded checkpoints cross PCIe twice per step (to pinned host memory in the forward pass,
# back in the backward), on the compute stream: bytes per second of those copies (a PCIe 4.0
# x16 slot moves about 25 GB/s at best; copies that wait for each layer reach about half).
HOST_COPY_BYTES_PER_S = 12e9
# Share of a GPU's dense bf16 peak a fine-tuning run reaches.
GPU_UTILISATION = 0.3
# Fixed cost per layer and pass (kernel launches, Python), in seconds.
GPU_LAYER_OVERHEAD_S = 0.2e-3
CPU_LAYER_OVERHEAD_S = 0.5e-3
# Characters per token for the rough size of a project's data before it is tokenised
# (Project.trainable_sizes counts the JSON of the messages, template included).
CHARS_PER_TOKEN = 4.2
# How full packed batches are on average.
PACK_FILL = 0.95
# Share of tokens that carry loss when training on the assistant's answers only
# (for the logits; the true share depends on the data).
ASSISTANT_LOSS_SHARE = 0.5
# What the runtime itself takes.
CUDA_OVERHEAD = int(0.6 * GIB)
CPU_OVERHEAD = int(0.9 * GIB)
# The allocator never packs perfectly.
CUDA_FRAGMENTATION = 0.08
# NF4: 4 bits per weight, plus an 8-bit absmax per block of 64 quantised again
# in blocks of 256 (double quantisation): about 4.127 bits per weight.
NF4_BITS = 4.127

# Dense bf16 (fp16 where the card has no bf16) tensor-core peaks, in FLOP/s.
GPU_PEAK_FLOPS = {
    "h200": 989e12, "h100": 989e12, "gh200": 989e12, "a100": 312e12, "a800": 312e12, "l40s": 362e12,
    "l40": 181e12, "l4": 121e12, "a10": 125e12, "a6000": 155e12, "6000 ada": 364e12, "5090": 209e12,
    "4090": 165e12, "4080": 97e12, "4070": 58e12, "4060": 30e12, "3090": 71e12, "3080": 59e12, "3070": 40e12,
    "3060": 25e12, "a4000": 77e12, "t4": 65e12, "v100": 125e12, "mi300": 1300e12, "mi250": 362e12,
}
DEFAULT_GPU_PEAK_FLOPS = 60e12

# SmolLM2-135M-Instruct, so the bundled model has an estimate before it has been unpacked.
BUNDLED_CONFIG = {
    "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
    "tie_word_embeddings": True,
}

# Model types whose MLP has two matrices (up, down) instead of three (gate, up, down).
PLAIN_MLP_TYPES = {"gpt2", "gpt_neox", "gptj", "opt", "phi", "falcon", "bloom", "gpt_bigcode", "starcoder2",
                   "codegen", "biogpt", "xglm"}


class ModelShapeError(Exception):
    """The model's shape cannot be read (no config.json, not in the cache), in words a user can act on."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model's config.json."""

    hidden_size: int
    num_layers: int
    vocab_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tie_word_embeddings: bool = True
    gated_mlp: bool = True
    name: str = ""
    # Where the shape was read: "bundled", "folder", "cache" (a downloaded model), "config"
    # (the hub's config.json alone, fetched on request) or "table" (resources/model_shapes.json).
    source: str = ""
    download_bytes: int = 0  # the weights' size to download, where known (0: unknown)
    norms_per_layer: int = 2  # RMSNorms in each block (Gemma 2/3 have four)
    qk_norm: bool = False  # q and k are normed per head (Qwen3, Gemma 3)

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str = "", source: str = "") -> "ModelShape":
        """Read a Hugging Face ``config.json`` (also multimodal ones with a ``text_config``)."""
        text_config = config.get("text_config")
        cfg: dict[str, Any] = text_config if isinstance(text_config, dict) else config

        def pick(*keys: str, default: int | None = None) -> int:
            for k in keys:
                v = cfg.get(k, config.get(k))
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                    return int(v)
            if default is None:
                raise ModelShapeError(f"config.json has none of {', '.join(keys)}")
            return default

        hidden = pick("hidden_size", "n_embd", "d_model", "dim")
        layers = pick("num_hidden_layers", "n_layer", "num_layers", "n_layers")
        vocab = pick("vocab_size", "padded_vocab_size")
        heads = pick("num_attention_heads", "n_head", "num_heads", "n_heads", default=max(1, hidden // 64))
        kv = pick("num_key_value_heads", "num_kv_heads", "n_kv_heads", default=heads)
        head_dim = pick("head_dim", default=max(1, hidden // heads))
        inter = pick("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", default=4 * hidden)
        model_type = str(config.get("model_type", cfg.get("model_type", ""))).lower()
        tie = cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", model_type in PLAIN_MLP_TYPES))
        norms = 4 if model_type.startswith(("gemma2", "gemma3")) else 2
        qk_norm = model_type.startswith(("qwen3", "gemma3", "olmo2"))
        return cls(hidden, layers, vocab, inter, heads, kv, head_dim, bool(tie),
                   model_type not in PLAIN_MLP_TYPES, name, source, 0, norms, qk_norm)

    @classmethod
    def from_param_count(cls, params: float, vocab_size: int = 32000, name: str = "") -> "ModelShape":
        """A plausible Llama-like shape for a model known only by its number of weights."""
        body = max(1.0, params - vocab_size * 512)
        # body ~ 12 * layers * hidden^2 with layers ~ hidden / 64
        hidden = max(64, int(round((body * 64 / 12) ** (1 / 3) / 64)) * 64)
        layers = max(1, int(round(body / (12 * hidden * hidden))))
        heads = max(1, hidden // 64)
        return cls(hidden, layers, vocab_size, int(hidden * 8 / 3), heads, heads, 64, True, True, name)

    # -- sizes ----------------------------------------------------------------------

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(inputs, outputs) of each linear layer inside one transformer block, by Llama name."""
        h, i = self.hidden_size, self.intermediate_size
        shapes = {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                  "o_proj": (self.q_dim, h), "up_proj": (h, i), "down_proj": (i, h)}
        if self.gated_mlp:
            shapes["gate_proj"] = (h, i)
        return shapes

    @property
    def linear_params(self) -> int:
        """Weights in the blocks' linear layers (what QLoRA stores in 4 bits)."""
        return self.num_layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def other_params(self) -> int:
        return (2 * self.num_layers + 1) * self.hidden_size  # norms

    @property
    def total_params(self) -> int:
        return self.linear_params + self.embedding_params + self.other_params


# Other names for the same layers, so target_modules from other model families count too.
_ALIASES = {
    "q": "q_proj", "query": "q_proj", "wq": "q_proj", "k": "k_proj", "key": "k_proj", "wk": "k_proj",
    "v": "v_proj", "value": "v_proj", "wv": "v_proj", "o": "o_proj", "out_proj": "o_proj", "wo": "o_proj",
    "dense": "o_proj", "c_proj": "o_proj", "gate": "gate_proj", "w1": "gate_proj", "up": "up_proj",
    "w3": "up_proj", "fc1": "up_proj", "c_fc": "up_proj", "dense_h_to_4h": "up_proj", "down": "down_proj",
    "w2": "down_proj", "fc2": "down_proj", "dense_4h_to_h": "down_proj",
}
_FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "c_attn": ("q_proj", "k_proj", "v_proj"),
          "query_key_value": ("q_proj", "k_proj", "v_proj"), "Wqkv": ("q_proj", "k_proj", "v_proj"),
          "gate_up_proj": ("gate_proj", "up_proj")}


def targeted_layers(shape: ModelShape, target_modules: list[str] | str) -> list[tuple[int, int]]:
    """(inputs, outputs) of every linear layer in one block that gets add-on weights."""
    return [(a, b) for _, a, b in _targeted(shape, target_modules)]


# Which tensor each layer reads: layers reading the same one share their input.
_INPUT_OF = {"q_proj": "attention", "k_proj": "attention", "v_proj": "attention", "o_proj": "attention output",
             "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp product"}


def _targeted(shape: ModelShape, target_modules: list[str] | str) -> list[tuple[str, int, int]]:
    """(name of the tensor it reads, inputs, outputs) of every targeted linear layer in one block."""
    shapes = shape.linear_shapes()
    modules = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    if "all-linear" in modules:
        return [(_INPUT_OF[name], a, b) for name, (a, b) in shapes.items()]
    chosen: list[tuple[str, int, int]] = []
    for name in modules:
        if name in _FUSED:
            parts = [p for p in _FUSED[name] if p in shapes]
            if parts:
                chosen.append((_INPUT_OF[parts[0]], shapes[parts[0]][0], sum(shapes[p][1] for p in parts)))
            continue
        key = name if name in shapes else _ALIASES.get(name, _ALIASES.get(name.lower()))
        if key in shapes:
            chosen.append((_INPUT_OF[key], *shapes[key]))
        elif key == "gate_proj":  # named gate on a model without one
            continue
        else:  # an unknown name: assume one hidden x hidden layer reading its own input
            chosen.append((name, shape.hidden_size, shape.hidden_size))
    return chosen


def lora_parameters(shape: ModelShape, cfg: TrainConfig) -> int:
    """Number of add-on weights: rank x (inputs + outputs) for each targeted layer of each block."""
    return shape.num_layers * sum(cfg.lora_rank * (a + b) for a, b in targeted_layers(shape, cfg.target_modules))


# -- the device -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceBudget:
    """The memory and speed the estimate is measured against."""

    kind: str  # "cuda" | "cpu"
    name: str
    total_bytes: int
    free_bytes: int
    cores: int = 1
    bf16: bool = True  # the GPU computes in bf16 (precision "auto")

    @property
    def available(self) -> int:
        return self.free_bytes if self.free_bytes > 0 else self.total_bytes

    @property
    def memory_name(self) -> str:
        return "GPU memory" if self.kind == "cuda" else "RAM"

    @classmethod
    def from_info(cls, info: DeviceInfo) -> "DeviceBudget":
        """From ftstudio.engine.device.DeviceInfo."""
        cores = _cores()
        if info.kind == "cuda":
            name = info.name.lower()
            bf16 = not any(old in name for old in ("v100", "t4", "p100", "p40", "1080", "2080", "titan"))
            return cls("cuda", info.name, int(info.total_bytes), int(info.free_bytes), cores, bf16)
        return cls("cpu", info.name, int(info.total_bytes), int(info.free_bytes), cores, False)


def _cores() -> int:
    return usable_cores()  # what a run's CPU threads are sized by (engine/device.cpu_threads)


def cpu_budget() -> DeviceBudget:
    """This machine's CPU and RAM, read without importing torch."""
    from ftstudio.engine.device import _cpu_name

    total, free = system_memory()
    cores = _cores()
    return DeviceBudget("cpu", f"{_cpu_name()} ({cores} cores)", total, free, cores, False)


def _compute_bytes(cfg: TrainConfig, device: DeviceBudget) -> int:
    if cfg.precision == "fp32":
        return 4
    if cfg.precision == "bf16":
        return 2
    return 2 if device.kind == "cuda" and device.bf16 else 4


# -- memory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int  # frozen model weights
    adapter: int  # add-on weights + gradients + AdamW moments
    activations: int  # kept for the backward pass, one micro-batch
    logits: int  # output layer at the loss positions
    overhead: int  # runtime, allocator slack
    available: int | None
    device_kind: str
    trainable_params: int
    total_params: int
    advice: tuple[str, ...] = field(default_factory=tuple)
    offloaded: int = 0  # gradient checkpoints kept in host memory, not counted in total

    @property
    def total(self) -> int:
        return self.weights + self.adapter + self.activations + self.logits + self.overhead

    @property
    def fits(self) -> bool | None:
        return None if self.available is None else self.total <= self.available

    @property
    def spare(self) -> int | None:
        return None if self.available is None else self.available - self.total

    def parts(self) -> list[tuple[str, int]]:
        return [("Model weights", self.weights), ("Add-on weights and optimiser", self.adapter),
                ("Activations", self.activations + self.logits), ("Runtime", self.overhead)]

    @property
    def text(self) -> str:
        """One line: "fits with 3.1 GB to spare" / "needs 9 GB, you have 8: switch to QLoRA or halve the batch"."""
        if self.available is None:
            return f"needs about {gb(self.total)} GB"
        if self.total <= self.available:
            return f"fits with {gb(self.available - self.total)} GB to spare"
        line = f"needs {gb(self.total)} GB, you have {gb(self.available)}"
        if self.advice:
            line += ": " + " or ".join(self.advice)
        return line


def gb(n: float) -> str:
    """Bytes as GB for people: one decimal below 10, none above; never "0" for something non-zero."""
    value = n / GIB
    if 0 < value < 0.005:
        return "<0.01"
    if value >= 9.95:
        return f"{value:.0f}"
    if 0 < abs(value) < 0.1:
        return f"{value:.2f}"
    return f"{value:.1f}".removesuffix(".0")


def _as_shape(model: ModelShape | dict | int | float) -> ModelShape:
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, dict):
        return ModelShape.from_config(model)
    return ModelShape.from_param_count(float(model))


def _micro_tokens(cfg: TrainConfig, micro_batch_tokens: int | None) -> int:
    """Tokens in one forward pass: the plan's micro-batch, else the setting's, else the whole packed batch."""
    micro = micro_batch_tokens or cfg.micro_batch_tokens
    if micro:
        return max(1, min(int(micro), cfg.batch_tokens))
    return max(1, cfg.batch_tokens)


def _paths(cfg: TrainConfig, device: DeviceBudget) -> tuple[bool, bool, bool, bool]:
    """(bf16 autocast, varlen attention, fused loss, Liger's kernels) as ``engine.kernels.compute_paths``
    applies them on ``device``: the GPU-only ones on CUDA only, autocast and the fused loss for SFT only."""
    gpu = device.kind == "cuda"
    sft = cfg.objective == "sft"
    autocast = cfg.bf16_autocast and sft and (not gpu or device.bf16)
    return autocast, cfg.varlen_attention and gpu, cfg.fused_loss and gpu and sft, cfg.liger_kernels and gpu


def offloads_checkpoints(cfg: TrainConfig, device: DeviceBudget) -> bool:
    """Whether the run keeps its gradient checkpoints in host memory: only with checkpointing on,
    on a GPU (``engine.loading`` offloads exactly then; the engine never asks it on the CPU)."""
    return cfg.gradient_checkpointing and cfg.offload_checkpoints and device.kind == "cuda"


def offloaded_bytes(cfg: TrainConfig, shape: ModelShape, device: DeviceBudget,
                    micro_batch_tokens: int | None = None) -> int:
    """Host memory the offloaded checkpoints of one micro-batch take: each block's input (0 when
    the run does not offload)."""
    if not offloads_checkpoints(cfg, device):
        return 0
    tokens = _micro_tokens(cfg, micro_batch_tokens)
    return tokens * shape.num_layers * shape.hidden_size * _compute_bytes(cfg, device)


def activation_bytes_per_token(cfg: TrainConfig, shape: ModelShape, device: DeviceBudget, row_tokens: int) -> int:
    """Bytes one block keeps per token for the backward pass, without checkpointing.

    What autograd saves in the engine's path, measured with saved-tensor hooks on the CPU
    (tests/engine/test_saved_activations.py checks this within 10% on real shapes):
    - every RMSNorm keeps its input upcast to fp32 (2 per block, 4 in Gemma 2/3; Qwen3 and
      Gemma 3 also norm q and k per head);
    - attention keeps q, k, v and its output, and its log-sum-exp in fp32;
    - the gated MLP keeps the gate's output, the activation's and the up projection's;
      a plain MLP only the first layer's output;
    - the frozen layers keep nothing (their weights need no gradient), but each add-on
      keeps its input and its rank-sized intermediate: in fp32, a copy per layer, when the
      model computes in bf16 (PEFT casts the input to the add-on's dtype); the one tensor
      the layers share when the model computes in fp32, or under bf16 autocast (in bf16);
    - with dropout, each add-on's dropped-out input and the dropout mask (of the input's
      dtype on the CPU, one byte per element on CUDA, where torch's fused dropout keeps a
      boolean mask).
    bf16 autocast computes attention and the MLP in bf16 too.

    Not measured (CUDA only): on CUDA a packed row attends through a dense block-diagonal
    mask unless ``varlen_attention`` is on: sdpa expands the grouped k and v to every head
    and keeps the mask as a bias of the compute dtype, one row of ``row_tokens`` per token
    (the issue's measurement). Liger's kernels keep the norms' inputs in the compute dtype
    and recompute the MLP's activation.
    """
    autocast, varlen, _, liger = _paths(cfg, device)
    b = 2 if autocast else _compute_bytes(cfg, device)
    h, q, kv, inter = shape.hidden_size, shape.q_dim, shape.kv_dim, shape.intermediate_size
    norm = b if liger else 4
    per_token = shape.norms_per_layer * norm * h
    if shape.qk_norm:
        per_token += norm * (q + kv)
    per_token += b * (2 * q + 2 * kv) + 4 * shape.num_heads
    if device.kind == "cuda" and not varlen:
        per_token += b * 2 * (q - kv) + b * row_tokens
    per_token += b * ((2 if liger else 3) * inter if shape.gated_mlp else inter)
    layers = _targeted(shape, cfg.target_modules)
    lora_in = b if autocast else 4  # the add-on's input: as it is under autocast, else cast to fp32
    if cfg.lora_dropout > 0:
        mask = 1 if device.kind == "cuda" else lora_in
        per_token += sum((lora_in + mask) * a for _, a, _ in layers)
    elif autocast or b == 4:
        per_token += lora_in * sum(dict((group, a) for group, a, _ in layers).values())
    else:
        per_token += 4 * sum(a for _, a, _ in layers)
    per_token += lora_in * cfg.lora_rank * len(layers)
    return per_token


def autocast_copies_per_layer(cfg: TrainConfig, shape: ModelShape, device: DeviceBudget) -> int:
    """Bytes of bf16 weight copies one block keeps under bf16 autocast, whatever the tokens: its
    add-on weights (fp32) and, when the frozen weights are fp32 too, those (0 without autocast)."""
    if not _paths(cfg, device)[0]:
        return 0
    copies = cfg.lora_rank * sum(a + o for _, a, o in _targeted(shape, cfg.target_modules))
    if _compute_bytes(cfg, device) == 4:
        copies += shape.linear_params // max(1, shape.num_layers)
    return 2 * copies


def _memory_parts(cfg: TrainConfig, shape: ModelShape, device: DeviceBudget,
                  micro_batch_tokens: int | None = None) -> dict[str, int]:
    b = _compute_bytes(cfg, device)
    h, L = shape.hidden_size, shape.num_layers
    if cfg.method == "qlora":
        weights = shape.linear_params * NF4_BITS / 8 + (shape.embedding_params + shape.other_params) * b
    else:
        weights = shape.total_params * b
    trainable = lora_parameters(shape, cfg)
    adapter = trainable * 16

    # One micro-batch: the micro-batches of a packed batch, and accumulation, run one after another.
    tokens = _micro_tokens(cfg, micro_batch_tokens)
    per_layer = activation_bytes_per_token(cfg, shape, device, tokens)
    copies = autocast_copies_per_layer(cfg, shape, device)
    if offloads_checkpoints(cfg, device):
        # The blocks' inputs wait in host memory; the one being recomputed is back on the
        # device with its activations, and the final norm keeps its fp32 input.
        activations = tokens * (h * b + per_layer + 4 * h) + copies
    elif cfg.gradient_checkpointing:
        # Each block's input is kept; the block being recomputed in the backward pass holds
        # its own activations once more, and the final norm keeps its fp32 input.
        activations = tokens * (L * h * b + per_layer + 4 * h) + copies
    else:
        activations = tokens * L * per_layer + L * copies

    share = 1.0 if cfg.train_on == "all" else ASSISTANT_LOSS_SHARE
    loss_rows = int(tokens * share)
    if _paths(cfg, device)[2]:
        # liger-kernel's fused linear cross-entropy: chunks of about as many logits as the
        # rows have hidden values, the gradient of the rows computed in the forward pass.
        logits = loss_rows * h * (2 * b + 2 * 4)
    else:
        rows = min(loss_rows, loss_chunk_rows(shape.vocab_size))  # the loss's chunk (engine/loss.py)
        logits = rows * shape.vocab_size * 4 * 3 + loss_rows * h * b  # logits, log-softmax, their gradient

    if device.kind == "cuda":
        overhead = CUDA_OVERHEAD + CUDA_FRAGMENTATION * (weights + adapter + activations + logits)
    else:
        overhead = CPU_OVERHEAD
    return {"weights": int(weights), "adapter": int(adapter), "activations": int(activations),
            "logits": int(logits), "overhead": int(overhead), "trainable": int(trainable)}


def _total(cfg: TrainConfig, shape: ModelShape, device: DeviceBudget, micro_batch_tokens: int | None = None) -> int:
    p = _memory_parts(cfg, shape, device, micro_batch_tokens)
    return p["weights"] + p["adapter"] + p["activations"] + p["logits"] + p["overhead"]


def _advice(cfg: TrainConfig, shape: ModelShape, device: DeviceBudget) -> tuple[str, ...]:
    """What to change so the run fits, cheapest changes first."""
    room = device.available

    def fits(c: TrainConfig) -> bool:
        return _total(c, shape, device) <= room

    half = max(16, cfg.batch_tokens // 2)
    halved = replace(cfg, batch_tokens=half, max_length=min(cfg.max_length, half))
    halve_words = "halve the batch" if half >= cfg.max_length else "halve the batch and the context size"
    moves: list[tuple[str, TrainConfig]] = []
    if cfg.method == "lora":
        moves.append(("switch to QLoRA", replace(cfg, method="qlora", precision="auto"
                                                 if cfg.precision == "fp32" else cfg.precision)))
    moves.append((halve_words, halved))
    if not cfg.gradient_checkpointing:
        moves.append(("turn on gradient checkpointing", replace(cfg, gradient_checkpointing=True)))
    if device.kind == "cpu" and cfg.method == "lora":
        # QLoRA saves memory on the CPU too, but is several times slower there: offer it last.
        moves.append(moves.pop(0))
    single = [words for words, c in moves if fits(c)]
    if single:
        return tuple(single[:2])
    combined = replace(halved, gradient_checkpointing=True)
    if cfg.method == "lora":
        combined = replace(combined, method="qlora", precision="auto" if cfg.precision == "fp32" else cfg.precision)
    for _ in range(4):  # keep halving the batch
        if fits(combined):
            words = [w for w, _ in moves if not w.startswith("halve")]
            if combined.batch_tokens >= half:
                words.append(halve_words)
            elif combined.max_length < cfg.max_length:
                words.append(f"cut the batch and the context size to {combined.batch_tokens:,} tokens")
            else:
                words.append(f"cut the batch to {combined.batch_tokens:,} tokens")
            return (", ".join(words[:-1]) + " and " + words[-1],) if len(words) > 1 else tuple(words)
        smaller = max(16, combined.batch_tokens // 2)
        combined = replace(combined, batch_tokens=smaller, max_length=min(combined.max_length, smaller))
    return ("choose a smaller model",)


def estimate_memory(cfg: TrainConfig, model: ModelShape | dict | int | float,
                    device: DeviceBudget | None = None, micro_batch_tokens: int | None = None) -> MemoryEstimate:
    """Memory the run needs on ``device`` (the CPU's RAM when None), with advice when it does not fit.

    ``model`` is a ModelShape, a config.json dict, or a number of weights. The activations are
    those of one forward pass of ``micro_batch_tokens`` tokens (None: the whole packed batch);
    ``engine.fit.plan_run`` chooses it.
    """
    shape = _as_shape(model)
    device = device or cpu_budget()
    p = _memory_parts(cfg, shape, device, micro_batch_tokens)
    est = MemoryEstimate(p["weights"], p["adapter"], p["activations"], p["logits"], p["overhead"],
                         device.available, device.kind, p["trainable"], shape.total_params,
                         offloaded=offloaded_bytes(cfg, shape, device, micro_batch_tokens))
    if est.fits is False:
        est = replace(est, advice=_advice(cfg, shape, device))
    return est


# -- time -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeEstimate:
    steps: int
    tokens: int  # trained tokens over the whole run
    tokens_per_s: float
    seconds: float
    device_kind: str
    # Where the speed comes from: "measured" (earlier runs of the project on this device),
    # "calibrated" (the CPU constant, measured on the bundled model) or "guess" (a share of
    # the GPU's peak: no run on this GPU yet).
    basis: str = "guess"

    @property
    def text(self) -> str:
        where = "on this GPU" if self.device_kind == "cuda" else "on this CPU"
        basis = {"measured": "the speed of earlier runs on this device",
                 "calibrated": "the CPU speed calibrated on the bundled model",
                 "guess": "a guess until a run has measured this GPU"}.get(self.basis, self.basis)
        return (f"about {duration(self.seconds)} {where} ({self.steps:,} steps, "
                f"~{self.tokens_per_s:,.0f} tokens/s: {basis})")


def duration(seconds: float) -> str:
    """A rough duration in words: "40 seconds", "12 minutes", "3 hours 10 minutes"."""
    s = max(0.0, seconds)
    if s < 90:
        return f"{max(10, int(round(s / 10.0)) * 10)} seconds" if s >= 10 else "a few seconds"
    minutes = s / 60
    if minutes < 90:
        m = int(round(minutes))
        return f"{m} minute{'s' * (m != 1)}"
    hours = int(minutes // 60)
    rest = int(round((minutes - hours * 60) / 10.0)) * 10
    if rest == 60:
        hours, rest = hours + 1, 0
    if hours >= 48:
        return f"{s / 86400:.0f} days"
    return f"{hours} hour{'s' * (hours != 1)}" + (f" {rest} minutes" if rest else "")


def _gpu_peak(name: str) -> float:
    lowered = name.lower()
    for key in sorted(GPU_PEAK_FLOPS, key=len, reverse=True):
        if key in lowered:
            return GPU_PEAK_FLOPS[key]
    return DEFAULT_GPU_PEAK_FLOPS


def _flops_speed(cfg: TrainConfig, device: DeviceBudget) -> float:
    """Effective FLOP/s of ``device`` for this run's number format and method."""
    if device.kind == "cuda":
        speed = _gpu_peak(device.name) * GPU_UTILISATION
        if _compute_bytes(cfg, device) == 4:
            speed /= 8  # fp32 runs without tensor cores (tf32 at best)
        if cfg.method == "qlora":
            speed /= GPU_QLORA_SLOWDOWN
        return speed
    speed = CPU_FLOPS_PER_CORE * max(1, device.cores)
    if _compute_bytes(cfg, device) == 2:
        speed /= CPU_BF16_SLOWDOWN
    if cfg.method == "qlora":
        speed /= CPU_QLORA_SLOWDOWN
    return speed


def _layer_overhead(device: DeviceBudget) -> float:
    return GPU_LAYER_OVERHEAD_S if device.kind == "cuda" else CPU_LAYER_OVERHEAD_S


def training_flops_per_token(cfg: TrainConfig, shape: ModelShape, mean_length: float | None = None) -> float:
    """Matmul work of one trained token: about three forward passes (forward, input gradients,
    the small add-on gradients) of ``2 x weights``, the output layer where loss is taken, and
    causal attention over the segment; a third more when checkpointing recomputes the forward."""
    share = 1.0 if cfg.train_on == "all" else ASSISTANT_LOSS_SHARE * 0.4
    segment = min(cfg.max_length, mean_length or cfg.max_length / 2)
    forward = 2 * (shape.linear_params + share * shape.vocab_size * shape.hidden_size)
    forward += 4 * shape.num_layers * shape.q_dim * segment / 2
    per_token = 3 * forward
    if cfg.gradient_checkpointing:
        per_token *= CHECKPOINTING_SLOWDOWN
    return per_token


@dataclass(frozen=True)
class MeasuredSpeed:
    """An earlier run's measured training speed, as ``core.runs.speed_history`` reads it."""

    device_kind: str  # "cuda" | "cpu"
    device_name: str  # the GPU's name; "" on the CPU
    threads: int  # CPU threads the run used (0 on a GPU)
    method: str
    tokens_per_s: float
    flops_per_token: float  # training_flops_per_token of that run's model and settings


def measured_speeds(history: list[RunSpeed]) -> list[MeasuredSpeed]:
    """Earlier runs' speeds (``core.run_speeds.speed_history``) with the work per token of each
    run's model, read from its config.json; runs whose model cannot be read are left out."""
    speeds = []
    for run in history:
        try:
            shape = model_shape(run.config.model)
        except ModelShapeError:
            continue
        speeds.append(MeasuredSpeed(run.device_kind, run.device_name, run.threads, run.config.method,
                                    run.tokens_per_s, training_flops_per_token(run.config, shape)))
    return speeds


def measured_flops(history: list[MeasuredSpeed], cfg: TrainConfig, device: DeviceBudget) -> float | None:
    """The effective FLOP/s earlier runs reached on ``device`` with ``cfg``'s method (the most
    recent ones first), or None when none ran there."""
    for run in history:
        if run.device_kind != device.kind or run.method != cfg.method or run.tokens_per_s <= 0:
            continue
        if device.kind == "cuda" and run.device_name.lower() not in device.name.lower():
            continue
        speed = run.tokens_per_s * run.flops_per_token
        if device.kind == "cpu" and run.threads > 0:
            speed = speed / run.threads * max(1, device.cores)
        return speed
    return None


def tokens_per_second(cfg: TrainConfig, model: ModelShape | dict | int | float,
                      device: DeviceBudget | None = None, mean_length: float | None = None,
                      micro_batch_tokens: int | None = None, flops: float | None = None) -> float:
    """Training tokens per second the run should reach on ``device`` (a rule of thumb), when each
    packed batch runs as micro-batches of ``micro_batch_tokens`` (None: in one pass); ``flops`` is a
    measured effective speed (``measured_flops``) to use instead of the device's rule of thumb."""
    shape = _as_shape(model)
    device = device or cpu_budget()
    if flops:
        return flops / training_flops_per_token(cfg, shape, mean_length)
    per_token = training_flops_per_token(cfg, shape, mean_length)
    step_tokens = max(1, cfg.batch_tokens)
    passes = math.ceil(step_tokens / _micro_tokens(cfg, micro_batch_tokens))  # each pays the per-layer overhead
    step_s = step_tokens * per_token / _flops_speed(cfg, device) + passes * 3 * shape.num_layers * _layer_overhead(device)
    if offloads_checkpoints(cfg, device):
        step_s += 2 * step_tokens * shape.num_layers * shape.hidden_size * _compute_bytes(cfg, device) / HOST_COPY_BYTES_PER_S
    return step_tokens / step_s


def generation_seconds(cfg: TrainConfig, model: ModelShape | dict | int | float,
                       device: DeviceBudget | None = None) -> float:
    """Seconds to write the sample answers of one evaluation (one token per forward pass)."""
    shape = _as_shape(model)
    device = device or cpu_budget()
    per_token = 2 * (shape.linear_params + shape.vocab_size * shape.hidden_size) / _flops_speed(cfg, device)
    per_token += shape.num_layers * _layer_overhead(device)
    return cfg.samples * cfg.sample_max_new_tokens * per_token


def estimate_time(cfg: TrainConfig, model: ModelShape | dict | int | float, train_tokens: int,
                  device: DeviceBudget | None = None, examples: int | None = None,
                  micro_batch_tokens: int | None = None, history: list[MeasuredSpeed] | None = None) -> TimeEstimate:
    """How long the run takes, given ``train_tokens`` tokens of training data (one epoch's worth).

    The speed is the one earlier runs measured on this device (``history``, newest first) where
    there are any; else the CPU's calibrated constant, or on a GPU a guess from its peak."""
    shape = _as_shape(model)
    device = device or cpu_budget()
    flops = measured_flops(history or [], cfg, device)
    basis = "measured" if flops else "calibrated" if device.kind == "cpu" else "guess"
    train_tokens = max(1, int(train_tokens))
    mean_length = train_tokens / examples if examples else None
    per_step = max(1, int(cfg.batch_tokens * PACK_FILL)) * max(1, cfg.grad_accum)
    per_epoch = max(1, math.ceil(train_tokens / per_step))
    if cfg.max_steps > 0:
        steps = cfg.max_steps
    else:
        steps = max(1, round(per_epoch * cfg.epochs)) if cfg.epochs > 0 else per_epoch
    tokens = int(steps * min(per_step, train_tokens))
    speed = tokens_per_second(cfg, shape, device, mean_length, micro_batch_tokens, flops)
    seconds = tokens / speed
    evaluations = (steps // cfg.eval_every if cfg.eval_every > 0 else 0) + 1
    seconds += evaluations * generation_seconds(cfg, shape, device)
    return TimeEstimate(steps, tokens, speed, seconds, device.kind, basis)


def with_preference_passes(est: TimeEstimate, objective: str, reference_tokens: int) -> TimeEstimate:
    """``est`` (a DPO or KTO run's steps) plus what goes through the model without gradients: the
    reference log-probabilities of every training and held-out unit once before the first step
    (``reference_tokens``, both sequences of each), and for KTO each step's mismatched answers
    (about as many tokens again as the step trains). A forward pass alone is about a third of a
    trained token's work (see the module doc)."""
    forward = max(0, reference_tokens) + (est.tokens if objective == "kto" else 0)
    return replace(est, seconds=est.seconds + forward / 3 / max(est.tokens_per_s, 1e-9))


# -- reading a model's config.json ------------------------------------------------------


def model_shape(spec: str) -> ModelShape:
    """The shape of the model ``spec`` names, from its config.json only; ModelShapeError when it cannot be found.

    In order: the bundled model, a folder, a complete download in the local Hugging Face
    cache, the hub's config.json fetched earlier (``fetch_model_config``), and the table of
    popular models shipped in ``resources/model_shapes.json``. Nothing here touches the network.
    """
    from ftstudio.engine.models import ModelError, bundled_model_dir, cached_model_dir

    spec = (spec or "").strip()
    if not spec:
        raise ModelShapeError("Choose a model first")
    if spec in (BUNDLED_MODEL, "bundled"):
        try:
            path = bundled_model_dir(convert=False) / "config.json"
            return replace(_read_shape(path, "SmolLM2-135M-Instruct"), source="bundled")
        except (ModelError, ModelShapeError):
            return ModelShape.from_config(BUNDLED_CONFIG, "SmolLM2-135M-Instruct", source="bundled")
    path = Path(spec).expanduser()
    if path.is_dir():
        return replace(_read_shape(path / "config.json", path.name), source="folder")
    if spec.startswith(("/", ".", "~")) or path.suffix == ".json":
        raise ModelShapeError(f"The folder {spec} does not exist")
    known = known_model(spec)
    download = known.download_bytes if known else 0
    # The same complete-snapshot check training makes: a download cut short, or the
    # config.json fetched alone, has no weights yet and must not look ready.
    folder = cached_model_dir(spec)
    if folder is not None:
        return replace(_read_shape(folder / "config.json", spec), source="cache")
    fetched = _cached_hub_config(spec)
    if fetched is not None:
        return replace(_read_shape(fetched, spec), source="config", download_bytes=download)
    if known is not None:
        return known
    raise ModelShapeError(f"'{spec}' is not in the local Hugging Face cache yet, and its shape is not in FT Studio's "
                          "table of popular models: fetch its config.json (a few KB) for an estimate, or download it")


# -- models known before they are downloaded -----------------------------------------------

MODEL_TABLE = "model_shapes.json"


@functools.cache
def _model_table() -> dict[str, ModelShape]:
    """resources/model_shapes.json by lower-case hub id (base and instruct models share a shape)."""
    from ftstudio.paths import resource

    data = json.loads(resource(MODEL_TABLE).read_text(encoding="utf-8"))
    table: dict[str, ModelShape] = {}
    for entry in data["models"]:
        for repo in entry["ids"]:
            shape = ModelShape.from_config(entry["config"], repo, source="table")
            table[repo.lower()] = replace(shape, download_bytes=int(entry.get("download_bytes", 0)))
    return table


def known_model(spec: str) -> ModelShape | None:
    """The shipped shape of hub model ``spec`` (any letter case), or None when it is not in the table."""
    return _model_table().get(spec.strip().lower())


def known_model_ids() -> list[str]:
    """Every hub id in the shipped table, in the table's order."""
    return [shape.name for shape in _model_table().values()]


def _cached_hub_config(spec: str) -> Path | None:
    """The config.json of ``spec`` that ``fetch_model_config`` put in the Hugging Face cache, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec, "config.json")
    except Exception:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None


def _download_hub_config(spec: str) -> Path:
    """Fetch only ``spec``'s config.json from the hub into the Hugging Face cache (the network call)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(spec, "config.json"))


def fetch_model_config(spec: str) -> ModelShape:
    """Download ``spec``'s config.json alone (a few KB, never the weights) and read its shape.

    Only when the user asks (the Train page's "Fetch config.json", ``ftstudio estimate
    --fetch-config``); later ``model_shape`` finds it in the cache offline.
    """
    from ftstudio.engine.models import looks_like_hub_id

    spec = (spec or "").strip()
    if not looks_like_hub_id(spec) or Path(spec).expanduser().is_dir():
        raise ModelShapeError(f"'{spec}' is not a hub model id (like Qwen/Qwen2.5-0.5B-Instruct)")
    try:
        path = _download_hub_config(spec)
    except Exception as exc:  # offline, no such repository, a gated model
        from ftstudio.engine.models import hub_problem

        raise ModelShapeError(hub_problem(spec, exc, "fetch the config.json of")) from None
    known = known_model(spec)
    return replace(_read_shape(path, spec), source="config", download_bytes=known.download_bytes if known else 0)


def _read_shape(path: Path, name: str) -> ModelShape:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelShapeError(f"{path.parent} has no config.json: choose a folder holding a Hugging Face model") \
            from None
    except (OSError, ValueError) as exc:
        raise ModelShapeError(f"{path} cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise ModelShapeError(f"{path} does not describe a model")
    return ModelShape.from_config(config, name)
