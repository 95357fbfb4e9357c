"""The training configuration: one dataclass, its presets, and validate().

Each field carries a plain-language explanation (``help``) and a longer one
(``detail``) in its metadata, so the Train page can show them beside the field
and the headless command can print them. ``validate`` returns every problem at
once, each tied to its field, instead of stopping at the first.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUNDLED_MODEL = "bundled:SmolLM2-135M-Instruct"


def _f(default: Any, help: str, detail: str = "", advanced: bool = False, **kw: Any) -> Any:
    meta = {"help": help, "detail": detail or help, "advanced": advanced}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class TrainConfig:
    model: str = _f(
        BUNDLED_MODEL,
        "Which model to fine-tune.",
        "The bundled offline model, a local Hugging Face model folder, a model in "
        "the local Hugging Face cache, or a hub id (downloaded only when you ask).",
    )
    method: str = _f(
        "lora",
        "LoRA trains small add-on weights; QLoRA also stores the model in 4 bits to save memory.",
        "QLoRA keeps the frozen model in 4-bit NF4 with double quantisation "
        "(bitsandbytes): about a quarter of the memory, somewhat slower.",
    )
    lora_rank: int = _f(16, "Size of the add-on weights: higher learns more, uses more memory.")
    lora_alpha: int = _f(32, "Strength of the add-on weights; usually twice the rank.")
    lora_dropout: float = _f(0.05, "Randomly drops add-on inputs while training, against overfitting.", advanced=True)
    target_modules: list[str] = _f(
        ["all-linear"],
        "Which layers get add-on weights ('all-linear' is every linear layer but the output).",
        advanced=True,
    )
    learning_rate: float = _f(2e-4, "How big each update step is.")
    warmup_ratio: float = _f(
        0.05, "Share of the steps over which the learning rate ramps up from zero.", advanced=True
    )
    lr_schedule: str = _f("cosine", "How the learning rate falls after warm-up: cosine, linear or constant.", advanced=True)
    weight_decay: float = _f(0.0, "Pulls weights towards zero; rarely needed for LoRA.", advanced=True)
    epochs: float = _f(1.0, "How many times to go through the training examples.")
    max_steps: int = _f(0, "Stop after this many optimiser steps (0: use epochs instead).")
    batch_tokens: int = _f(
        2048,
        "Tokens per batch: examples are packed together up to this budget.",
        "Examples of different lengths are packed side by side without padding, "
        "up to this many tokens per forward pass.",
    )
    grad_accum: int = _f(1, "Batches added up before each update (a larger effective batch).", advanced=True)
    max_length: int = _f(512, "Longest example, in tokens (the context size).")
    overlength: str = _f("drop", "What to do with longer examples: drop or truncate.", advanced=True)
    train_on: str = _f(
        "assistant",
        "Which tokens the model learns from: the assistant's answers only, or the whole conversation.",
        advanced=True,
    )
    gradient_checkpointing: bool = _f(
        False,
        "Saves memory by recomputing activations; about 30% slower.",
        "On: always. Off: only when the run would not fit without it and 'Fit to the device' (auto_fit) is on.",
        advanced=True,
    )
    offload_checkpoints: bool = _f(
        False,
        "GPU: keep gradient checkpoints in the computer's memory when the GPU is too small even with them.",
        "With gradient checkpointing each layer keeps its input for the backward pass (layers x tokens x "
        "hidden size, the largest part of the memory at long contexts). With this on, those inputs wait in "
        "the computer's RAM instead and come back one layer at a time: the GPU needs less memory, and each "
        "step is slower by a copy each way. With 'Fit to the device' on, the plan uses it only when nothing "
        "else fits; with it off, whenever checkpointing is on. Ignored on the CPU. Not yet measured on a GPU, "
        "so off by default.",
        advanced=True,
    )
    auto_fit: bool = _f(
        True,
        "FT Studio picks the micro-batch and gradient checkpointing so the run fits the device; the update "
        "per step stays the same.",
        "Each batch (batch_tokens) is split into micro-batches that fit the GPU's memory, and their gradients "
        "are added up before the update, so the learning is the same as with one big batch; gradient "
        "checkpointing is turned on only when the run would not fit without it. If the device runs out of "
        "memory anyway, the micro-batch is halved and the step redone, and the project's next runs start "
        "from the smaller size. Off: each batch is one forward pass, as set.",
        advanced=True,
    )
    micro_batch_tokens: int = _f(
        0,
        "Tokens per forward pass (0: chosen by the plan); a batch is split into micro-batches of this size.",
        "Fixes the micro-batch instead of letting the plan choose it. The update per step is the same either "
        "way (batch_tokens); a smaller micro-batch uses less memory and is somewhat slower. When set it must "
        "hold the longest example (max_length) and be at most batch_tokens.",
        advanced=True,
    )
    precision: str = _f("auto", "Number format for the frozen weights: auto, bf16 or fp32.", advanced=True)
    device: str = _f("auto", "Where to train: auto (GPU when there is one), cuda or cpu.", advanced=True)

    # -- GPU compute paths. Each is off until a GPU run has shown it equal to the
    # default path and faster; on the CPU each keeps today's path (bf16_autocast
    # also works there, but is rarely faster).
    fused_loss: bool = _f(
        False,
        "GPU: the output layer and the loss in one fused kernel (liger-kernel), so the logits are never stored.",
        "Computes the output layer and the cross-entropy of the answer tokens together in blocks "
        "(liger-kernel's fused linear cross-entropy), instead of writing the logits out in chunks: less "
        "memory for models with large vocabularies. Needs the liger-kernel package (pip install "
        "liger-kernel) and an NVIDIA GPU; on the CPU the chunked loss is used. Not yet measured on a GPU, "
        "so off by default.",
        advanced=True,
    )
    varlen_attention: bool = _f(
        False,
        "GPU: attention over packed examples with PyTorch's variable-length kernel, without a T x T mask.",
        "Packed examples are told apart by their lengths (torch.nn.attention.varlen, built into PyTorch "
        "2.9 and later, flash attention underneath), so no block-diagonal mask is built or kept per layer "
        "and grouped key/value heads are not copied. Sliding-window layers keep a mask. On the CPU "
        "attention goes example by example as always. Not yet measured on a GPU, so off by default.",
        advanced=True,
    )
    bf16_autocast: bool = _f(
        False,
        "Compute in bf16, add-on (LoRA) layers included; their weights and the optimiser stay fp32.",
        "Runs the forward pass under bf16 autocast and lets the LoRA layers take their bf16 input as it is, "
        "so no fp32 copy of every layer's input is kept for the backward pass. The LoRA weights and the "
        "optimiser's state stay fp32, so updates are as exact as before. Meant for GPUs with bf16 (NVIDIA "
        "Ampere and later); it works on the CPU too, where it is rarely faster. Not yet measured on a GPU, "
        "so off by default.",
        advanced=True,
    )
    liger_kernels: bool = _f(
        False,
        "GPU: liger-kernel's fused RMSNorm, SwiGLU and RoPE for the architectures it supports.",
        "Replaces the model's RMSNorm, SwiGLU MLP and rotary embedding with liger-kernel's Triton kernels "
        "(Llama, Mistral, Qwen2/3, Gemma, Phi-3 ...): less memory and time per layer. Needs the liger-kernel "
        "package and an NVIDIA GPU; ignored on the CPU. Not yet measured on a GPU, so off by default.",
        advanced=True,
    )
    seed: int = _f(42, "Makes a run repeatable: same seed, same data order, same result.")
    log_every: int = _f(1, "Report training metrics every this many steps.", advanced=True)
    eval_every: int = _f(50, "Measure the held-out loss every this many steps (0: only at the end).")
    eval_batches: int = _f(0, "Held-out batches per evaluation (0: all of them).", advanced=True)
    samples: int = _f(3, "Held-out prompts answered at each evaluation, so you see the model learn.")
    sample_max_new_tokens: int = _f(48, "Longest sample answer, in tokens.", advanced=True)
    checkpoint_every: int = _f(100, "Save a checkpoint every this many steps (0: only at the end).", advanced=True)
    keep_checkpoints: int = _f(2, "How many recent checkpoints to keep on disk.", advanced=True)

    # -- preference tuning (DPO, KTO) ---------------------------------------------------
    objective: str = _f(
        "sft",
        "What the model learns from: example answers (sft), preference pairs (dpo) or answers rated good "
        "or bad (kto).",
        "sft copies the answers of your examples. dpo learns from pairs of a better and a worse answer "
        "to the same prompt (your blind votes, or an imported file): use it after an SFT run, when the "
        "answers are right but you prefer one way of giving them. kto learns from single answers marked "
        "good or bad, for when you have verdicts rather than pairs ('both bad' votes count).",
    )
    start_from: str = _f(
        "",
        "The adapter training starts from (a run's adapter folder); empty: the base model.",
        "Preference tuning usually starts from an SFT run, so the model already knows the task. The "
        "starting adapter is trained further; the reference the preferences are measured against is the "
        "model as it was at the start.",
    )
    beta: float = _f(
        0.1,
        "How far preference tuning may move the model from where it started: lower moves further.",
        "DPO/KTO's beta. Around 0.1 is usual; raise it (0.3-0.5) if the answers drift or get worse in "
        "ways the pairs do not ask for, lower it (0.05) if the model barely changes.",
    )
    loss_type: str = _f(
        "sigmoid",
        "DPO's loss: sigmoid (the original DPO) or ipo (steadier when the pairs are very easy to tell apart).",
        "sigmoid is DPO as published. ipo (Identity Preference Optimisation) aims for a fixed margin "
        "instead of an ever larger one, which overfits less on small or very clear-cut data.",
        advanced=True,
    )
    desirable_weight: float = _f(
        0.0,
        "KTO: weight of the good answers (0: set from the data so good and bad count the same).",
        "KTO works best when weight x count of the good answers is about the bad ones' (up to 4:3). "
        "0 sets it from your data: the bad answers' count over the good answers' count.",
        advanced=True,
    )
    undesirable_weight: float = _f(1.0, "KTO: weight of the bad answers.", advanced=True)

    # -- conversion -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError([Problem(k, f"unknown setting '{k}'") for k in sorted(unknown)])
        return cls(**{k: _coerce(k, v) for k, v in data.items()})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, source: str = "config") -> "TrainConfig":
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([Problem("", f"{source}: not valid YAML ({exc})")]) from None
        if not isinstance(data, dict):
            raise ConfigError([Problem("", f"{source}: expected a mapping of setting: value")])
        return cls.from_dict(data)

    def save(self, path: Path) -> None:
        from ftstudio.core.fileio import write_text_atomic

        write_text_atomic(Path(path), self.to_yaml())

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"), source=str(path))

    def with_overrides(self, pairs: list[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (from ``--set``), parsing each value as YAML."""
        data = self.to_dict()
        problems = []
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep:
                problems.append(Problem(key, f"'{pair}' is not key=value"))
                continue
            if key not in data:
                problems.append(Problem(key, f"unknown setting '{key}'"))
                continue
            value = yaml.safe_load(raw) if raw.strip() else ""
            if key == "method" and value in OBJECTIVES:
                # 'method=dpo' is how people say it: the objective changes, LoRA/QLoRA stays.
                key = "objective"
            if isinstance(data[key], list) and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            data[key] = _coerce(key, value)
        if problems:
            raise ConfigError(problems)
        return TrainConfig(**data)


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Numbers as YAML 1.1 leaves them ('1e-3' is a string there) become numbers;
    anything that doesn't convert is left for validate() to name."""
    kind = _FIELD_TYPES.get(name)
    if kind in ("float", float) and not isinstance(value, bool):
        if isinstance(value, int) or isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
    if kind in ("int", int) and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def field_help(name: str) -> tuple[str, str, bool]:
    """(one-line help, longer detail, advanced?) for a TrainConfig field."""
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    return f.metadata["help"], f.metadata["detail"], f.metadata["advanced"]


# Presets change only what differs from the defaults. Quick is tuned so the
# bundled model learns the demo task on a 2-core CPU; its epochs here are for an
# unknown dataset size (see quick_epochs for how they follow the data).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(
        lora_rank=16, lora_alpha=32, lora_dropout=0.0, learning_rate=1e-3, epochs=1.0,
        batch_tokens=512, max_length=256, eval_every=25, samples=3, checkpoint_every=50,
        warmup_ratio=0.05,
    ),
    "balanced": dict(
        lora_rank=16, lora_alpha=32, learning_rate=3e-4, epochs=2.0, batch_tokens=4096,
        max_length=1024, eval_every=50, checkpoint_every=100,
    ),
    "best": dict(
        lora_rank=64, lora_alpha=128, learning_rate=1e-4, epochs=3.0, batch_tokens=8192,
        max_length=2048, eval_every=100, checkpoint_every=200, lora_dropout=0.1,
    ),
}
PRESET_TITLES = {"quick": "Quick", "balanced": "Balanced", "best": "Best quality"}


# Quick scales its epochs to the data: it shows the model at least QUICK_MIN_SEEN
# examples (small data is gone through several times, up to QUICK_MAX_EPOCHS, so a
# few hundred short examples get the optimiser steps they need to learn the task)
# and at most QUICK_MAX_SEEN (a large dataset takes part of an epoch, not hours).
# 100 examples: 8 epochs (800 seen); 270 (the demo): 4.4 (1,200); 1,000: 1.2 (1,200);
# 1,200-5,000: 1; 10,000: 0.5 (5,000 seen).
QUICK_MIN_SEEN = 1200
QUICK_MAX_SEEN = 5000
QUICK_MAX_EPOCHS = 8.0


def quick_epochs(train_examples: int) -> float:
    """The Quick preset's epochs for ``train_examples`` training examples (see QUICK_MIN_SEEN)."""
    if train_examples <= 0:
        return 1.0
    epochs = min(QUICK_MAX_EPOCHS, max(1.0, QUICK_MIN_SEEN / train_examples))
    if train_examples * epochs > QUICK_MAX_SEEN:
        epochs = QUICK_MAX_SEEN / train_examples
    return round(epochs, 3)


def preset_values(name: str, train_examples: int | None = None) -> dict[str, Any]:
    """What preset ``name`` sets; Quick's epochs follow ``train_examples`` when it is known."""
    if name not in PRESETS:
        raise ConfigError([Problem("preset", f"unknown preset '{name}' (choose {', '.join(PRESETS)})")])
    values = dict(PRESETS[name])
    if name == "quick" and train_examples:
        values["epochs"] = quick_epochs(train_examples)
    return values


def preset(name: str, train_examples: int | None = None, **overrides: Any) -> TrainConfig:
    return TrainConfig(**{**preset_values(name, train_examples), **overrides})


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ConfigError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


OBJECTIVES = ("sft", "dpo", "kto")
PREFERENCE_OBJECTIVES = ("dpo", "kto")

_CHOICES = {
    "method": ("lora", "qlora"),
    "objective": OBJECTIVES,
    "loss_type": ("sigmoid", "ipo"),
    "lr_schedule": ("cosine", "linear", "constant"),
    "overlength": ("drop", "truncate"),
    "train_on": ("assistant", "all"),
    "precision": ("auto", "bf16", "fp32"),
    "device": ("auto", "cuda", "cpu"),
}


# Upper bounds in validate(): beyond them a value is a typo, and planning or seeding
# would fail (a plan of 10^8 steps needs gigabytes; seeds are 32-bit).
MAX_STEPS = 1_000_000
MAX_EPOCHS = 10_000
MAX_TOKENS = 1_048_576
MAX_BATCH_TOKENS = 16_777_216
MAX_SEED = 2**32 - 1


def validate(cfg: TrainConfig) -> list[Problem]:
    """Every problem with ``cfg``, each tied to its field; empty when it can run."""
    problems: list[Problem] = []

    def need(cond: bool, name: str, message: str) -> None:
        if not cond:
            problems.append(Problem(name, message))

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        expected = f.type if isinstance(f.type, type) else None
        if f.type in ("int", int):
            need(isinstance(value, int) and not isinstance(value, bool), f.name, "must be a whole number")
        elif f.type in ("float", float):
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), f.name,
                 "must be a number")
        elif f.type in ("bool", bool):
            need(isinstance(value, bool), f.name, "must be true or false")
        elif f.type in ("str", str):
            need(isinstance(value, str), f.name, "must be text")
        del expected
    if problems:
        return problems  # range checks below assume the right types

    for name, choices in _CHOICES.items():
        need(getattr(cfg, name) in choices, name, f"must be one of: {', '.join(choices)}")
    need(bool(cfg.model.strip()), "model", "choose a model")
    need(1 <= cfg.lora_rank <= 1024, "lora_rank", "must be between 1 and 1024")
    need(cfg.lora_alpha > 0, "lora_alpha", "must be above 0")
    need(0.0 <= cfg.lora_dropout < 1.0, "lora_dropout", "must be at least 0 and below 1")
    need(
        isinstance(cfg.target_modules, list) and bool(cfg.target_modules)
        and all(isinstance(m, str) and m for m in cfg.target_modules),
        "target_modules", "name at least one layer, or 'all-linear'",
    )
    need(0 < cfg.learning_rate <= 1.0, "learning_rate", "must be above 0 and at most 1 (typical: 1e-4 to 1e-3)")
    need(0.0 <= cfg.warmup_ratio < 1.0, "warmup_ratio", "must be at least 0 and below 1")
    need(cfg.weight_decay >= 0, "weight_decay", "must not be negative")
    need(cfg.epochs > 0 or cfg.max_steps > 0, "epochs", "must be above 0 (or set max_steps)")
    need(cfg.epochs <= MAX_EPOCHS, "epochs", f"must be at most {MAX_EPOCHS:,}")
    need(cfg.max_steps >= 0, "max_steps", "must not be negative")
    need(cfg.max_steps <= MAX_STEPS, "max_steps", f"must be at most {MAX_STEPS:,} (0: use epochs)")
    need(not cfg.start_from or (Path(cfg.start_from).expanduser() / "adapter_config.json").is_file(), "start_from",
         f"{cfg.start_from} holds no adapter (no adapter_config.json); choose a finished run")
    need(cfg.beta > 0, "beta", "must be above 0 (typical: 0.1)")
    need(cfg.desirable_weight >= 0, "desirable_weight", "must not be negative (0: from the data)")
    need(cfg.undesirable_weight > 0, "undesirable_weight", "must be above 0")
    need(cfg.max_length >= 16, "max_length", "must be at least 16 tokens")
    need(cfg.max_length <= MAX_TOKENS, "max_length", f"must be at most {MAX_TOKENS:,} tokens")
    need(cfg.batch_tokens >= cfg.max_length, "batch_tokens",
         f"must be at least max_length ({cfg.max_length}) so the longest example fits a batch")
    need(cfg.batch_tokens <= MAX_BATCH_TOKENS, "batch_tokens", f"must be at most {MAX_BATCH_TOKENS:,}")
    need(cfg.micro_batch_tokens >= 0, "micro_batch_tokens", "must not be negative (0: chosen by the plan)")
    if cfg.micro_batch_tokens > 0:
        need(cfg.micro_batch_tokens >= cfg.max_length, "micro_batch_tokens",
             f"must be at least max_length ({cfg.max_length}) so the longest example fits, or 0 for the plan's choice")
        need(cfg.micro_batch_tokens <= cfg.batch_tokens, "micro_batch_tokens",
             f"must be at most batch_tokens ({cfg.batch_tokens}), or 0 for the plan's choice")
    need(cfg.grad_accum >= 1, "grad_accum", "must be at least 1")
    need(cfg.grad_accum <= 4096, "grad_accum", "must be at most 4,096")
    need(0 <= cfg.seed <= MAX_SEED, "seed", f"must be a whole number from 0 to {MAX_SEED:,}")
    need(cfg.log_every >= 1, "log_every", "must be at least 1")
    need(cfg.eval_every >= 0, "eval_every", "must not be negative")
    need(cfg.eval_batches >= 0, "eval_batches", "must not be negative")
    need(cfg.samples >= 0, "samples", "must not be negative")
    need(cfg.samples <= 100, "samples", "must be at most 100")
    need(cfg.sample_max_new_tokens >= 1, "sample_max_new_tokens", "must be at least 1")
    need(cfg.sample_max_new_tokens <= MAX_TOKENS, "sample_max_new_tokens", f"must be at most {MAX_TOKENS:,}")
    need(cfg.checkpoint_every >= 0, "checkpoint_every", "must not be negative")
    need(cfg.keep_checkpoints >= 1, "keep_checkpoints", "must be at least 1")
    need(cfg.keep_checkpoints <= 1000, "keep_checkpoints", "must be at most 1,000")
    for name in ("log_every", "eval_every", "eval_batches", "checkpoint_every"):
        need(getattr(cfg, name) <= MAX_STEPS, name, f"must be at most {MAX_STEPS:,}")
    need(cfg.lora_alpha <= 1_000_000, "lora_alpha", "must be at most 1,000,000")
    need(not (cfg.method == "qlora" and cfg.precision == "fp32"), "precision",
         "QLoRA computes in bf16 or auto; choose one of those, or switch to LoRA")
    return problems
