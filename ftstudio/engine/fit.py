"""The auto-fit plan: how to run a training configuration on a device so that it fits.

What the user chooses stays as chosen: a packed batch of ``batch_tokens`` tokens,
``grad_accum`` of them per optimiser step, the context size, the rank. Data order
and updates are therefore the same on any device. The plan decides only how the
engine runs each packed batch:

- **micro-batches**: the packed batch is split into micro-batches of
  ``micro_batch_tokens`` (the whole batch, a half, a quarter ... never below
  ``max_length``, so the longest example still fits one), run one after
  another with their gradients added up;
- **gradient checkpointing**: turned on when no split fits without it;
- **offloaded checkpoints**: with the ``offload_checkpoints`` setting on a GPU,
  the checkpoints wait in the computer's memory when nothing fits with them on
  the GPU (slower again: a copy each way per layer).

Among the plans that fit, the one the time model says is fastest wins: on a GPU
splitting costs little (a few kernel launches per micro-batch) while
checkpointing recomputes the forward pass, so a split without checkpointing is
tried before checkpointing. When nothing fits, the plan says the smallest change
that would (QLoRA, a shorter context), with that change's own plan and estimate;
it never applies it.

Like ``engine/estimate.py`` this is arithmetic on the model's shape: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ftstudio.core.config import TrainConfig
from ftstudio.engine.estimate import (
    DeviceBudget,
    MemoryEstimate,
    ModelShape,
    estimate_memory,
    gb,
    offloads_checkpoints,
    tokens_per_second,
)

# A shorter context is suggested down to this many tokens, no further.
SHORTEST_SUGGESTED_CONTEXT = 256


@dataclass(frozen=True)
class Suggestion:
    """A change to the settings that makes the run fit, with the plan it would get."""

    words: str  # "switch to QLoRA", "shorten the context to 1,024 tokens"
    changes: dict[str, Any]  # the TrainConfig fields to change, {"method": "qlora"}
    plan: "RunPlan"


@dataclass(frozen=True)
class RunPlan:
    """How the engine runs ``cfg`` on ``device``, with the memory it needs that way."""

    micro_batch_tokens: int  # tokens per forward pass
    micro_batches: int  # per packed batch
    gradient_checkpointing: bool  # in effect (the setting, or turned on by the plan)
    estimate: MemoryEstimate  # at this plan
    tokens_per_s: float  # the time model's speed at this plan (a rule of thumb, not a measurement)
    batch_tokens: int
    grad_accum: int
    device: DeviceBudget
    auto: bool = True  # chosen by the plan (False: fixed by the settings)
    suggestion: Suggestion | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)  # why, when it is not the obvious plan
    offload_checkpoints: bool = False  # the checkpoints wait in host memory (checkpointing on, a GPU)

    @property
    def fits(self) -> bool:
        return bool(self.estimate.fits is not False)

    def applied_to(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` as the engine runs it with this plan (checkpointing as the plan has it), for the
        estimates that depend on it, such as the time."""
        return replace(
            cfg,
            gradient_checkpointing=self.gradient_checkpointing,
            offload_checkpoints=self.offload_checkpoints,
        )

    @property
    def micro_batches_per_step(self) -> int:
        return self.micro_batches * self.grad_accum

    def shape_text(self) -> str:
        """ "4,096 tokens per micro-batch × 4, checkpointing on" """
        n = self.micro_batches_per_step
        if n == 1:
            head = f"{self.micro_batch_tokens:,} tokens per batch in one pass"
        else:
            head = f"{self.micro_batch_tokens:,} tokens per micro-batch \u00d7 {n}"
        return f"{head}, {checkpointing_words(self.gradient_checkpointing, self.offload_checkpoints)}"

    @property
    def text(self) -> str:
        """One line: the plan, and whether it fits the device ("... fits 24 GB with 3.1 GB to spare")."""
        est = self.estimate
        have = gb(self.device.available)
        if est.fits is None:
            return f"{self.shape_text()}: needs about {gb(est.total)} GB"
        if est.fits:
            line = f"{self.shape_text()}: fits {have} GB with {gb(est.spare or 0)} GB to spare"
            if est.offloaded:
                line += f" ({gb(est.offloaded)} GB of checkpoints in RAM)"
            return line
        line = f"{self.shape_text()}: needs {gb(est.total)} GB, {self.device.memory_name} has {have}"
        if self.suggestion is not None:
            s = self.suggestion
            line += f"; {s.words} to fit, with {gb(s.plan.estimate.spare or 0)} GB to spare"
        else:
            line += "; choose a smaller model"
        return line

    def to_dict(self) -> dict[str, Any]:
        """For ``ftstudio estimate --json`` and the run's log."""
        est = self.estimate
        out: dict[str, Any] = {
            "micro_batch_tokens": self.micro_batch_tokens,
            "micro_batches": self.micro_batches,
            "micro_batches_per_step": self.micro_batches_per_step,
            "batch_tokens": self.batch_tokens,
            "grad_accum": self.grad_accum,
            "gradient_checkpointing": self.gradient_checkpointing,
            "offload_checkpoints": self.offload_checkpoints,
            "auto": self.auto,
            "fits": est.fits,
            "memory": {
                "total": est.total,
                "available": est.available,
                "spare": est.spare,
                "weights": est.weights,
                "adapter": est.adapter,
                "activations": est.activations,
                "logits": est.logits,
                "overhead": est.overhead,
                "offloaded_to_host": est.offloaded,
            },
            "trainable_params": est.trainable_params,
            "total_params": est.total_params,
            "estimated_tokens_per_s": round(self.tokens_per_s, 1),
            "device": {
                "kind": self.device.kind,
                "name": self.device.name,
                "available": self.device.available,
            },
            "notes": list(self.notes),
            "text": self.text,
        }
        if self.suggestion is not None:
            out["suggestion"] = {
                "words": self.suggestion.words,
                "changes": self.suggestion.changes,
                "plan": self.suggestion.plan.to_dict(),
            }
        return out


def checkpointing_words(on: bool, offloaded: bool = False) -> str:
    """ "checkpointing on", "checkpointing off", "checkpoints offloaded to RAM" """
    if on and offloaded:
        return "checkpoints offloaded to RAM"
    return f"checkpointing {'on' if on else 'off'}"


def micro_batch_choices(batch_tokens: int, max_length: int, ceiling: int | None = None) -> list[int]:
    """The micro-batch sizes a packed batch can run as, largest first: the batch, its half,
    its quarter ... none below ``max_length`` (the longest example) and none above ``ceiling``."""
    sizes = []
    size = batch_tokens
    while size >= max_length:
        sizes.append(size)
        if size % 2:
            break
        size //= 2
    if not sizes:
        sizes = [batch_tokens]
    if ceiling:
        capped = [s for s in sizes if s <= ceiling]
        sizes = capped or sizes[-1:]  # the smallest allowed when the cap is below max_length
    return sizes


def _one_plan(
    cfg: TrainConfig,
    shape: ModelShape,
    device: DeviceBudget,
    micro: int,
    checkpointing: bool,
    auto: bool,
    offload: bool = False,
) -> RunPlan:
    run_cfg = replace(cfg, gradient_checkpointing=checkpointing, offload_checkpoints=offload)
    offload = offloads_checkpoints(run_cfg, device)
    est = estimate_memory(run_cfg, shape, device, micro_batch_tokens=micro)
    speed = tokens_per_second(run_cfg, shape, device, micro_batch_tokens=micro)
    parts = -(-cfg.batch_tokens // micro)
    return RunPlan(
        micro,
        parts,
        checkpointing,
        est,
        speed,
        cfg.batch_tokens,
        max(1, cfg.grad_accum),
        device,
        auto,
        offload_checkpoints=offload,
    )


def _candidates(
    cfg: TrainConfig, shape: ModelShape, device: DeviceBudget, micro_batch_ceiling: int | None
) -> list[RunPlan]:
    fixed = cfg.micro_batch_tokens
    if fixed and micro_batch_ceiling:  # the ceiling caps a fixed size too, as the engine does
        fixed = min(fixed, max(cfg.max_length, micro_batch_ceiling))
    if not cfg.auto_fit:
        micro = fixed or cfg.batch_tokens
        if micro_batch_ceiling:
            micro = min(micro, max(cfg.max_length, micro_batch_ceiling))
        return [
            _one_plan(
                cfg,
                shape,
                device,
                micro,
                cfg.gradient_checkpointing,
                auto=False,
                offload=cfg.offload_checkpoints,
            )
        ]
    sizes = [fixed] if fixed else micro_batch_choices(cfg.batch_tokens, cfg.max_length, micro_batch_ceiling)
    # (checkpointing, offloaded): the ways each micro-batch can keep what backward needs.
    ways = [(True, False)] if cfg.gradient_checkpointing else [(False, False), (True, False)]
    if offloads_checkpoints(replace(cfg, gradient_checkpointing=True), device):
        ways.append((True, True))
    return [_one_plan(cfg, shape, device, m, c, auto=not fixed, offload=o) for c, o in ways for m in sizes]


def _best(plans: list[RunPlan]) -> RunPlan | None:
    """The fastest plan that fits; ties go to the larger micro-batch (fewer passes)."""
    fitting = [p for p in plans if p.estimate.fits is not False]
    if not fitting:
        return None
    return max(
        fitting,
        key=lambda p: (
            round(p.tokens_per_s, 6),
            not p.gradient_checkpointing,
            not p.offload_checkpoints,
            p.micro_batch_tokens,
        ),
    )


def _plan_or_smallest(
    cfg: TrainConfig, shape: ModelShape, device: DeviceBudget, micro_batch_ceiling: int | None
) -> RunPlan:
    plans = _candidates(cfg, shape, device, micro_batch_ceiling)
    best = _best(plans)
    if best is not None:
        return best
    return min(plans, key=lambda p: p.estimate.total)  # the closest miss


def _changes_to_try(cfg: TrainConfig, device: DeviceBudget) -> list[tuple[str, dict[str, Any]]]:
    """Smallest changes first: auto-fit where it is off, QLoRA (same context), then a shorter context, then both."""
    moves: list[tuple[str, dict[str, Any]]] = []
    qlora: dict[str, Any] = {}
    if cfg.method == "lora":
        qlora = {"method": "qlora"}
        if cfg.precision == "fp32":
            qlora["precision"] = "auto"
    contexts = []
    length = cfg.max_length // 2
    while length >= min(SHORTEST_SUGGESTED_CONTEXT, cfg.max_length // 2) and length >= 16:
        contexts.append(length)
        length //= 2
    shorter = [(f"shorten the context to {n:,} tokens", {"max_length": n}) for n in contexts]
    if qlora:
        both = [
            (f"switch to QLoRA and shorten the context to {n:,} tokens", {**qlora, "max_length": n})
            for n in contexts
        ]
        first = [("switch to QLoRA", qlora)]
        # QLoRA saves memory on the CPU too, but is several times slower there: offer it after the context.
        moves = shorter + first + both if device.kind == "cpu" else first + shorter + both
    else:
        moves = shorter
    if not cfg.auto_fit:
        # Splitting the batch and checkpointing change no result: try them before anything that does.
        moves.insert(
            0, ("turn on fitting to the device (auto_fit)", {"auto_fit": True, "micro_batch_tokens": 0})
        )
    return moves


def plan_run(
    cfg: TrainConfig, shape: ModelShape, device: DeviceBudget, micro_batch_ceiling: int | None = None
) -> RunPlan:
    """How to run ``cfg`` on ``device``: the micro-batch size, whether checkpointing is on, the
    memory that takes, and when nothing fits the smallest change that would.

    ``micro_batch_ceiling`` caps the micro-batch (the engine passes it when an earlier
    run of the project ran out of memory at a larger one). With ``auto_fit`` off, the
    plan is the settings as they are (``micro_batch_tokens`` or the whole batch, the
    checkpointing setting), still with a suggestion when they do not fit.
    """
    plan = _plan_or_smallest(cfg, shape, device, micro_batch_ceiling)
    notes: list[str] = []
    if (
        micro_batch_ceiling
        and plan.micro_batch_tokens < cfg.batch_tokens
        and micro_batch_choices(cfg.batch_tokens, cfg.max_length)[0] > micro_batch_ceiling
    ):
        notes.append(
            f"micro-batches of at most {micro_batch_ceiling:,} tokens: an earlier run ran out of memory "
            "with larger ones"
        )
    if plan.fits:
        return replace(plan, notes=tuple(notes))
    for words, changes in _changes_to_try(cfg, device):
        changed = replace(cfg, **changes)
        if changed.batch_tokens < changed.max_length:
            continue
        alternative = _best(_candidates(changed, shape, device, micro_batch_ceiling))
        if alternative is not None:
            return replace(plan, suggestion=Suggestion(words, changes, alternative), notes=tuple(notes))
    return replace(plan, notes=tuple(notes))
