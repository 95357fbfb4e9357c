"""Events the training engine emits.

The same small frozen dataclasses go to the GUI (through a QThread's signals),
to ``runs/<id>/metrics.jsonl`` and to the terminal in headless mode, so each
one turns into a JSON object and back without loss.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    epoch: float
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class StepMetrics:
    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens_per_s: float
    # Bytes, from torch.cuda; zero on the CPU.
    vram_allocated: int = 0
    vram_reserved: int = 0
    vram_peak: int = 0
    vram_total: int = 0
    # Percent, from NVML where present; None where it is not.
    gpu_util: float | None = None
    tokens: int = 0
    # Bytes: the most the caching allocator has held since the run (session) started, which is
    # what the card must have; vram_peak is peak allocated. Zero on the CPU and in older files.
    vram_peak_reserved: int = 0


@dataclass(frozen=True)
class EvalMetrics:
    step: int
    eval_loss: float
    eval_tokens: int = 0


@dataclass(frozen=True)
class PreferenceMetrics:
    """What preference tuning (DPO/KTO) measured over a log window ("train") or the held-out
    units ("eval"). Rewards are beta times the log-ratio of policy to reference; reward
    accuracy is the share of pairs whose chosen answer has the higher reward (KTO: answers
    whose reward has the right sign); log-probabilities are summed over an answer's tokens."""

    step: int
    split: str  # "train" | "eval"
    loss: float
    reward_accuracy: float
    reward_margin: float | None
    chosen_reward: float | None
    rejected_reward: float | None
    chosen_logp: float | None
    rejected_logp: float | None
    units: int = 0  # pairs (DPO) or answers (KTO) measured


@dataclass(frozen=True)
class FitPlan:
    """How the run fits the device: the micro-batch each packed batch is split into and whether
    gradient checkpointing is on. Emitted once when the run starts ("plan", or "resume": the
    checkpoint's micro-batch) and again each time running out of memory halved the micro-batch
    ("out_of_memory", at the step that was redone)."""

    step: int
    micro_batch_tokens: int
    micro_batches: int  # per packed batch: batch_tokens / micro_batch_tokens rounded up (1: one pass);
    # a batch can take more, as its examples are never cut
    gradient_checkpointing: bool
    estimated_bytes: int  # the plan's estimated peak; 0 when there is no estimate
    text: str  # one line, for the dashboard and the log
    reason: str = "plan"  # "plan" | "resume" | "out_of_memory"
    offload_checkpoints: bool = False  # the checkpoints wait in the computer's memory (older runs: False)


@dataclass(frozen=True)
class Sample:
    step: int
    prompt: str
    output: str
    reference: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: str


@dataclass(frozen=True)
class Log:
    message: str
    level: str = "info"  # "info" | "warning" | "error"


@dataclass(frozen=True)
class Finished:
    steps: int
    adapter_path: str
    train_loss: float | None
    eval_loss: float | None
    stopped_early: bool = False  # True when should_stop() ended the run


@dataclass(frozen=True)
class Failed:
    # "oom" | "nan" | "data" | "model" | "config" | "disk" | "internal"
    kind: str
    message: str
    suggestion: str = ""
    last_checkpoint: str | None = None


Event = (
    Progress
    | StepMetrics
    | EvalMetrics
    | PreferenceMetrics
    | FitPlan
    | Sample
    | Checkpoint
    | Log
    | Finished
    | Failed
)

EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Progress,
        StepMetrics,
        EvalMetrics,
        PreferenceMetrics,
        FitPlan,
        Sample,
        Checkpoint,
        Log,
        Finished,
        Failed,
    )
}


def event_to_dict(event: Event) -> dict[str, Any]:
    return {"event": type(event).__name__, **dataclasses.asdict(event)}


def event_from_dict(data: dict[str, Any]) -> Event:
    data = dict(data)
    cls = EVENT_TYPES[data.pop("event")]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def event_to_json(event: Event) -> str:
    return json.dumps(event_to_dict(event), ensure_ascii=False)


def read_events(path: Path | str) -> list[Event]:
    """Read a metrics.jsonl file back; a torn last line (crash mid-write) is skipped."""
    events: list[Event] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(event_from_dict(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return events


class EventSink(Protocol):
    def __call__(self, event: Event) -> None: ...


@dataclass
class FanOut:
    """An EventSink that passes every event to several sinks in turn."""

    sinks: list[Callable[[Event], None]] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)


class JsonlSink:
    """Appends each event as one JSON line, flushed at once so a crash keeps every line written."""

    def __init__(self, path: Path | str) -> None:
        self._fh = open(path, "a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self._fh.write(event_to_json(event) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
