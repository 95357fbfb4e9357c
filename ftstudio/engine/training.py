"""The training loop: LoRA/QLoRA on packed batches, with checkpoints, resume,
evaluation, samples and failures reported as events.

``train()`` is the one entry point. It never raises for expected failures
(bad config, missing model, no data, NaN loss, out of memory): it emits
``Failed`` and returns ``TrainResult(status="failed")``.

Speed comes from three things: packed rows (no padding), the output layer
applied only to the positions that carry loss (most prompt tokens never go
through the vocabulary-sized matmul), and one host-device sync per
optimiser step. The same code runs data parallel under ``accelerate launch``
or ``torchrun``: every process builds the same batch plan and takes its own
share of each step, and the processes sum their gradients once per step
(``_Run._sum_gradients``), where they also agree on whether any of them
ran out of memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ftstudio.core.config import TrainConfig, validate
from ftstudio.core.events import (
    Checkpoint, EvalMetrics, Event, EventSink, Failed, FanOut, Finished, FitPlan, JsonlSink, Log, Progress, Sample,
    StepMetrics, event_to_json,
)
from ftstudio.core.examples import PreparedData
from ftstudio.core.preferences import PreferenceData
from ftstudio.core.fileio import DiskFullError, disk_full_message, is_disk_full, remove_stale_temp_dirs
from ftstudio.engine import checkpoints
from ftstudio.engine.device import NO_MEMORY_FIGURES, check_memory, fitting_pieces, free_memory, is_out_of_memory
from ftstudio.engine.fit import checkpointing_words
from ftstudio.engine.loss import packed_loss_module
from ftstudio.engine.models import stop_token_ids
from ftstudio.engine.packing import PackedBatch, collate, enable_segment_attention, enable_varlen_attention, epoch_batches, pack
from ftstudio.engine.tokenize import IGNORE_INDEX, EncodedExample, encode_conversation, encode_prompt, fit_length

if TYPE_CHECKING:
    import torch

MAX_GRAD_NORM = 1.0
# Out of memory inside a step halves the micro-batch and redoes the step, at most this
# many times in a run (1/32 of the plan's micro-batch); one more ends the run.
MAX_MEMORY_HALVINGS = 5
# What a process tells the others after a pass that may have run out of memory (_ran_out).
_FITTED, _RAN_OUT, _SINGLE = 0, 1, 2
# Test mode: every process writes a digest of its trained weights into the run folder.
DIGEST_ENV = "FTSTUDIO_WRITE_WEIGHT_DIGESTS"


@dataclass
class TrainResult:
    status: str  # "finished" | "stopped" | "failed"
    steps: int
    adapter_dir: Path | None
    last_checkpoint: Path | None
    train_loss: float | None
    eval_loss: float | None
    failure: Failed | None = None
    # The micro-batch (tokens) this run came down to after running out of memory; None when it
    # never did. core/runs.py keeps it so the project's next runs start from it.
    micro_batch_ceiling: int | None = None


class _Abort(Exception):
    """An expected failure, carrying the Failed event that describes it."""

    def __init__(self, failure: Failed) -> None:
        super().__init__(failure.message)
        self.failure = failure


class _NoRoom(Exception):
    """A sequence did not fit alone in a pass without gradients of a data-parallel run (the
    processes agree, in agree_on_memory, before the run ends)."""


# -- data -------------------------------------------------------------------------------


@dataclass
class _Encoded:
    examples: list[EncodedExample]
    source: list[int]  # index of each kept example in the conversation list
    dropped: int = 0
    truncated: int = 0
    no_loss: int = 0


def _encode_all(tokenizer: Any, conversations: Sequence[list[dict]], cfg: TrainConfig) -> _Encoded:
    out = _Encoded([], [])
    for i, conv in enumerate(conversations):
        ex = encode_conversation(tokenizer, conv, cfg.train_on)
        if ex.loss_tokens == 0:
            out.no_loss += 1
            continue
        fitted = fit_length(ex, cfg.max_length, cfg.overlength)
        if fitted is None:
            out.dropped += 1
            continue
        if fitted.truncated:
            out.truncated += 1
        out.examples.append(fitted)
        out.source.append(i)
    return out


def _describe_encoding(enc: _Encoded, cfg: TrainConfig, split: str) -> list[str]:
    lines = []
    if enc.dropped:
        lines.append(f"Dropped {enc.dropped} {split} example{'s' * (enc.dropped != 1)} longer than "
                     f"{cfg.max_length} tokens (raise max_length or set overlength to truncate to keep them)")
    if enc.truncated:
        lines.append(f"Truncated {enc.truncated} {split} example{'s' * (enc.truncated != 1)} to {cfg.max_length} tokens")
    if enc.no_loss:
        lines.append(f"Skipped {enc.no_loss} {split} example{'s' * (enc.no_loss != 1)} with no answer tokens to learn from")
    return lines


@dataclass(frozen=True)
class _Step:
    epoch: int
    index: int  # within the epoch
    per_epoch: int
    batches: tuple[tuple[int, ...], ...]  # micro-batch m of process r is batches[m * world + r]
    tokens: int
    loss_tokens: int


def _plan(lengths: list[int], trained: list[int], cfg: TrainConfig, world: int) -> list[_Step]:
    """Every optimiser step of the run, in order (same on every process).

    ``lengths`` are the tokens of each example, ``trained`` what its loss is averaged over
    (answer tokens for SFT, one per pair or rated answer for preference tuning).
    """
    per_step = world * cfg.grad_accum
    steps: list[_Step] = []
    epoch = 0
    whole_epochs = math.ceil(cfg.epochs) if cfg.max_steps <= 0 else None
    while True:
        if cfg.max_steps > 0 and len(steps) >= cfg.max_steps:
            break
        if whole_epochs is not None and epoch >= whole_epochs:
            break
        batches = epoch_batches(lengths, cfg.batch_tokens, cfg.seed, epoch, parts=world)
        count = math.ceil(len(batches) / per_step)
        if whole_epochs is not None and epoch == whole_epochs - 1 and cfg.epochs < whole_epochs:
            count = max(1, round(count * (cfg.epochs - epoch)))
        for k in range(count):
            group = tuple(tuple(b) for b in batches[k * per_step : (k + 1) * per_step])
            steps.append(_Step(epoch, k, count, group, sum(lengths[i] for b in group for i in b),
                               sum(trained[i] for b in group for i in b)))
        epoch += 1
    if cfg.max_steps > 0:
        steps = steps[: cfg.max_steps]
    return steps


def split_batch(idx: Sequence[int], lengths: Sequence[int], cap: int) -> list[list[int]]:
    """A packed batch as micro-batches of at most ``cap`` tokens, in the batch's order.

    An example longer than ``cap`` is a micro-batch of its own (an example is never cut)."""
    out: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in idx:
        n = lengths[i]
        if current and used + n > cap:
            out.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        out.append(current)
    return out


def _fingerprint(examples: list[EncodedExample]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(len(e.input_ids).to_bytes(4, "little"))
        h.update(bytes(str(e.input_ids[:32]), "ascii"))
    return h.hexdigest()[:16]


# -- schedule ---------------------------------------------------------------------------


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# -- files ------------------------------------------------------------------------------


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the trainable weights (names and exact bytes)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# -- the run ----------------------------------------------------------------------------


@dataclass
class _State:
    step: int = 0  # optimiser steps done
    losses: list[float] = field(default_factory=list)  # per step
    elapsed_before: float = 0.0  # seconds spent in earlier sessions of this run
    eval_loss: float | None = None
    last_checkpoint: Path | None = None
    checkpointed_step: int = -1


class _Run:
    # data: PreparedData here, PreferenceData in a PreferenceRun (engine/preference.py)
    # What the last pass without gradients met (_FITTED, _RAN_OUT or _SINGLE), for the
    # processes of a data-parallel run to agree on (agree_on_memory).
    pass_ran_out = _FITTED

    def __init__(self, cfg: TrainConfig, data: Any, emit: EventSink, should_stop: Callable[[], bool],
                 run_dir: Path,
                 resume: bool, main: bool, cpu_threads: int | None = None,
                 micro_batch_ceiling: int | None = None) -> None:
        self.cfg = cfg
        self.data = data
        self.emit = emit
        self.should_stop = should_stop
        self.run_dir = run_dir
        self.resume = resume
        self.main = main
        self.cpu_threads = cpu_threads
        self.state = _State()
        self.adapter_dir: Path | None = None
        self.micro_batch_ceiling = micro_batch_ceiling
        # How each packed batch runs (choose_plan): micro-batches of micro_tokens tokens,
        # gradient checkpointing on or off; out of memory halves micro_tokens.
        self.micro_tokens = cfg.batch_tokens
        self.checkpointing = cfg.gradient_checkpointing
        self.offload_checkpoints = False  # the checkpoints wait in host memory (a GPU only)
        self.plan_text = ""
        self.estimated_bytes = 0
        self.memory_halvings = 0
        # Passes without gradients (the held-out loss; preference tuning's reference, held-out
        # and KL passes), halved on their own.
        self.eval_micro_tokens: int | None = None
        self.sample_batch: int | None = None  # sample answers per generation batch, halved on its own

    # -- setup ----------------------------------------------------------------------

    def setup(self) -> None:
        import torch

        from ftstudio.engine import device as devmod
        from ftstudio.engine.models import ModelError, load_tokenizer, resolve_model

        cfg = self.cfg
        problems = validate(cfg)
        if problems:
            raise _Abort(Failed("config", "The configuration has problems: " + "; ".join(str(p) for p in problems),
                                "Fix the settings named above and start again."))
        try:
            device = devmod.choose_device(cfg.device)
        except ValueError as exc:
            raise _Abort(Failed("config", str(exc), "Set device to auto or cpu.")) from None
        if cfg.method == "qlora" and device == "cpu":
            self.emit(Log("QLoRA on the CPU is slow; LoRA needs more memory but trains several times faster here",
                          "warning"))

        try:
            model_dir = resolve_model(cfg.model)
            self.tokenizer = load_tokenizer(model_dir)
        except ModelError as exc:
            raise _Abort(Failed("model", str(exc), "Choose another model on the Train page.")) from None
        self.model_dir = model_dir

        t0 = time.perf_counter()
        self.encode_data()

        from accelerate import Accelerator

        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            # accelerate keeps its device choice for the whole process; a run on the
            # CPU after one on the GPU (the app, a test session) must start afresh.
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        self.accelerator = Accelerator(cpu=(device == "cpu"))
        acc = self.accelerator
        self.world = acc.num_processes
        self.rank = acc.process_index
        self.device = acc.device
        if self.device.type == "cpu":
            local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            if self.cpu_threads:
                torch.set_num_threads(self.cpu_threads)
            else:
                torch.set_num_threads(min(torch.get_num_threads(), devmod.cpu_threads(local)) if local > 1
                                      else devmod.cpu_threads(1))

        from ftstudio.engine.kernels import KernelUnavailable, compute_paths

        try:
            self.paths = compute_paths(cfg, self.device.type)
        except KernelUnavailable as exc:
            raise _Abort(Failed("config", str(exc), exc.fix)) from None
        for note in self.paths.notes:
            self.emit(Log(note, "warning"))

        _seed_everything(cfg.seed)
        from ftstudio.engine.loading import load_for_training, trainable_parameters

        self.choose_plan(model_dir)
        try:
            self.model = load_for_training(
                dataclasses.replace(cfg, gradient_checkpointing=self.checkpointing,
                                    offload_checkpoints=self.offload_checkpoints),
                model_dir, self.device)
        except (OSError, ValueError) as exc:
            raise _Abort(Failed("model", f"Could not load the model from {model_dir}: {exc}",
                                "Check that the folder holds a complete Hugging Face causal language model.")) from None
        if self.paths.liger_kernels:
            from ftstudio.engine.kernels import apply_liger_kernels

            self.emit(Log(apply_liger_kernels(self.model)))
        if self.paths.varlen_attention:
            # One variable-length kernel per layer fed with the examples' lengths: no T x T mask.
            if not enable_varlen_attention(self.model):
                self.emit(Log("varlen_attention: this model does not use sdpa attention; using its own", "warning"))
        elif self.device.type != "cuda":
            # On the CPU, attention example by example costs the sum of the examples'
            # squares instead of the row's. On a GPU those many small kernels are far
            # slower (measured on an H100: 1,070 against 7,146 tokens/s on the
            # benchmark's tiny model); there transformers builds the block-diagonal
            # mask from the restarting position ids, one kernel per layer.
            enable_segment_attention(self.model)
        self.params = trainable_parameters(self.model)
        self.loss_module = self.make_loss_module()
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                           **({"fused": True} if fused else {}))
        lengths, trained = self.unit_sizes(self.train_enc.examples)
        self.train_lengths = lengths
        self.steps = _plan(lengths, trained, cfg, self.world)
        self.total = len(self.steps)
        warmup = int(round(cfg.warmup_ratio * self.total))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.total, warmup, cfg.lr_schedule))
        self.eval_batches = [list(b) for b in pack(self.unit_sizes(self.eval_enc.examples)[0], cfg.batch_tokens)]
        if cfg.eval_batches:
            self.eval_batches = self.eval_batches[: cfg.eval_batches]
        self.fingerprint = _fingerprint(self.train_enc.examples)

        trainable = sum(p.numel() for p in self.params)
        tokens = sum(len(e.input_ids) for e in self.train_enc.examples)
        self.emit(Log(
            f"Training {self.method_words()} (rank {self.model.peft_config['default'].r}, {trainable:,} trainable "
            f"weights) on {self.data_words(len(self.train_enc.examples))} ({tokens:,} tokens), "
            f"{len(self.eval_enc.examples)} held out; "
            f"{self.total} steps on {_device_words(self.device)}"
            + (f" x {self.world} processes" if self.world > 1 else "")
            + f"; prepared in {time.perf_counter() - t0:.1f} s"))
        self.prepare_objective()
        if self.resume:
            self._load_checkpoint()
        # What micro_step runs. Not wrapped in DistributedDataParallel: its all-reduce inside
        # backward() would leave the other processes waiting for one that ran out of memory.
        # The processes sum their gradients themselves once per step (_sum_gradients);
        # here they start from the main process's trainable weights, as DDP would have them.
        self.wrapped = self.loss_module
        if self.world > 1:
            self._broadcast_trainable()
        if not self.resume or self.state.step == 0:
            self.emit(Log(f"Plan: {self.plan_text}"))
            self.emit(self._fit_event(self.state.step, "plan"))

    def choose_plan(self, model_dir: Path) -> None:
        """How each packed batch runs on this device: the micro-batch and gradient checkpointing.

        With ``auto_fit`` the fit plan decides from the model's shape and the memory the
        device has now (before the model is loaded, which the estimate counts); a
        ``micro_batch_tokens`` setting fixes the micro-batch, and an earlier run of the
        project that ran out of memory caps it (``micro_batch_ceiling``).
        """
        cfg = self.cfg
        ceiling = self.micro_batch_ceiling
        micro = cfg.micro_batch_tokens or cfg.batch_tokens
        if ceiling:
            micro = min(micro, ceiling)
        self.micro_tokens, self.checkpointing = micro, cfg.gradient_checkpointing
        # Offloading moves checkpoints from the GPU to the computer's memory: nothing to gain on the CPU.
        self.offload_checkpoints = cfg.gradient_checkpointing and cfg.offload_checkpoints and self.device.type == "cuda"
        self.plan_text = self._plan_words()
        if not cfg.auto_fit:
            return
        from ftstudio.engine import estimate, fit

        try:
            shape = estimate.model_shape(str(model_dir))
        except estimate.ModelShapeError as exc:
            self.emit(Log(f"No fit plan for this model ({exc}): each batch runs as set", "warning"))
            return
        plan = fit.plan_run(cfg, shape, _device_budget(self.device), micro_batch_ceiling=ceiling)
        self.micro_tokens = plan.micro_batch_tokens
        self.checkpointing = plan.gradient_checkpointing
        self.offload_checkpoints = plan.offload_checkpoints
        self.estimated_bytes = int(plan.estimate.total)
        self.plan_text = "; ".join((plan.text, *plan.notes))
        if ceiling and ceiling < self.micro_tokens:
            # The plan keeps a micro-batch to the longest example; the run that ran out
            # of memory went below that (a micro-batch then holds one longer example alone).
            self.micro_tokens = ceiling
            self.plan_text = "; ".join((self._plan_words(), *plan.notes))

    def _plan_words(self) -> str:
        """The plan in one line, when there is no estimate to say it with."""
        head = (f"{self.cfg.batch_tokens:,} tokens per batch in one pass" if self.micro_tokens >= self.cfg.batch_tokens
                else f"at most {self.micro_tokens:,} tokens per micro-batch, {self.cfg.batch_tokens:,} per batch")
        return f"{head}, {checkpointing_words(self.checkpointing, self.offload_checkpoints)}"

    def _fit_event(self, step: int, reason: str) -> FitPlan:
        parts = max(1, math.ceil(self.cfg.batch_tokens / max(1, self.micro_tokens)))
        return FitPlan(step, self.micro_tokens, parts, self.checkpointing, self.estimated_bytes, self.plan_text,
                       reason, self.offload_checkpoints)

    # -- what the training objective decides (engine/preference.py overrides these) ----

    def encode_data(self) -> None:
        """Tokenise the training and held-out data into ``train_enc`` / ``eval_enc``."""
        cfg = self.cfg
        self.train_enc = _encode_all(self.tokenizer, self.data.train, cfg)
        self.eval_enc = _encode_all(self.tokenizer, self.data.eval, cfg)
        for line in _describe_encoding(self.train_enc, cfg, "training") + _describe_encoding(self.eval_enc, cfg, "held-out"):
            self.emit(Log(line, "warning"))
        if not self.train_enc.examples:
            why = "there are no training examples" if not self.data.train else \
                "every training example was dropped (see the messages above)"
            raise _Abort(Failed("data", f"Nothing to train on: {why}.",
                                "Add examples with answers, or raise max_length / set overlength to truncate."))

    def unit_sizes(self, examples: Sequence[Any]) -> tuple[list[int], list[int]]:
        """(tokens, loss units) of each encoded example; see ``_plan``."""
        lengths = [len(e.input_ids) for e in examples]
        # The first token of each example is never a target (see packing.collate).
        trained = [sum(1 for t in e.labels[1:] if t != IGNORE_INDEX) for e in examples]
        return lengths, trained

    def make_loss_module(self) -> Any:
        return packed_loss_module(self.model, self.paths)

    def prepare_objective(self) -> None:
        """Work that needs the loaded model before the first step (or a checkpoint) is taken."""

    def micro_step(self, idx: Sequence[int]) -> Any:
        """The summed loss of one micro-batch of training examples, ready for backward()."""
        batch = collate(self.train_enc.examples, idx)
        loss_sum, _ = self.wrapped(**_inputs(batch, self.device))
        return loss_sum

    def window_metrics(self, step: int) -> None:
        """Report what the objective measured since the last report, beside StepMetrics."""

    def method_words(self) -> str:
        return self.cfg.method.upper()

    def data_words(self, n: int) -> str:
        return f"{n} example{'s' * (n != 1)}"

    def sample_conversations(self) -> list[list[dict[str, Any]]]:
        """Held-out conversations whose prompts are answered as samples (the last answer is the reference)."""
        return [self.data.eval[i] for i in self.eval_enc.source[: self.cfg.samples]]

    # -- checkpoints ------------------------------------------------------------------

    def _load_checkpoint(self) -> None:
        """Resume from the newest whole checkpoint, saying which newer ones were passed over and why."""
        ckpt, passed = checkpoints.newest_complete(self.run_dir)
        while True:
            for bad, problem in passed:
                self.emit(Log(f"Checkpoint {bad.name} cannot be used ({problem}); "
                              + (f"resuming from {ckpt.name} instead" if ckpt else "no older checkpoint is whole"),
                              "warning"))
            passed = []
            if ckpt is None:
                self.emit(Log("No checkpoint to resume from in this run: starting from the beginning", "warning"))
                return
            try:
                meta = checkpoints.read_state(ckpt)
                checkpoints.restore_checkpoint(ckpt, self.model, self.optimizer, self.scheduler, self.device)
                break
            except Exception as exc:  # a file that matches its manifest but still will not load
                older = [c for c in checkpoints.list_checkpoints(self.run_dir) if c.name != ckpt.name
                         and int(c.name[5:]) < int(ckpt.name[5:]) and checkpoints.checkpoint_problem(c) is None]
                passed = [(ckpt, f"it cannot be loaded: {type(exc).__name__}: {exc}")]
                ckpt = older[-1] if older else None
        if meta.get("data") != self.fingerprint or meta.get("total_steps") != self.total:
            self.emit(Log("The training data or settings changed since this run was stopped: the resumed run "
                          "will not follow the same order", "warning"))
        st = self.state
        st.step = int(meta["step"])
        st.losses = [float(x) for x in meta["losses"]]
        st.elapsed_before = float(meta.get("elapsed_s", 0.0))
        st.eval_loss = meta.get("eval_loss")
        st.last_checkpoint = ckpt
        st.checkpointed_step = st.step
        self.emit(Log(f"Resuming from step {st.step} of {self.total} ({ckpt.name})"))
        # The same micro-batches as before the stop, so the resumed steps add up their
        # gradients in the same order (a checkpoint from before micro-batches ran whole batches).
        micro = int(meta.get("micro_batch_tokens") or self.cfg.batch_tokens)
        self.memory_halvings = int(meta.get("memory_halvings", 0))
        if micro != self.micro_tokens:
            self.micro_tokens = micro
            self.estimated_bytes = 0
            self.plan_text = self._plan_words() + " (as before the stop)"
        self.emit(Log(f"Plan: {self.plan_text}"))
        self.emit(self._fit_event(st.step, "resume"))

    def save_checkpoint(self, elapsed: float) -> None:
        st = self.state
        if st.checkpointed_step == st.step:
            return
        if self.main:
            where = self.steps[st.step] if st.step < self.total else None
            meta = {
                "step": st.step, "total_steps": self.total,
                "epoch": where.epoch if where else (self.steps[-1].epoch + 1 if self.steps else 0),
                "batch_in_epoch": where.index * self.world * self.cfg.grad_accum if where else 0,
                "losses": st.losses, "eval_loss": st.eval_loss, "elapsed_s": elapsed,
                "data": self.fingerprint, "world_size": self.world, "seed": self.cfg.seed,
                "micro_batch_tokens": self.micro_tokens, "memory_halvings": self.memory_halvings,
            }
            st.last_checkpoint = checkpoints.write_checkpoint(
                self.run_dir, st.step, self.model, self.optimizer, self.scheduler, self.device, meta,
                keep=self.cfg.keep_checkpoints)
            self.emit(Checkpoint(st.step, str(st.last_checkpoint)))
        else:
            st.last_checkpoint = self.run_dir / "checkpoints" / f"step-{st.step}"
        st.checkpointed_step = st.step

    def save_adapter(self) -> None:
        if self.main:
            checkpoints.write_adapter(self.run_dir, self.model, self.tokenizer)
        self.adapter_dir = self.run_dir / "adapter"

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self) -> float | None:
        import torch

        if not self.eval_batches:
            return None
        module = self.loss_module
        lengths = self.unit_sizes(self.eval_enc.examples)[0]

        def tokens(idx: list[int]) -> int:
            return sum(lengths[i] for i in idx)

        def measure(idx: list[int]) -> tuple[torch.Tensor, int]:
            return module(**_inputs(collate(self.eval_enc.examples, idx), self.device))

        # Sums over the batches' micro-batches: the same loss whatever the split.
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        self.model.eval()
        try:
            with torch.no_grad():
                for _idx, (loss_sum, n) in self.recovering_pass(
                    self.eval_batches[self.rank :: self.world],
                    measure,
                    "eval",
                    tokens,
                    split=lambda idx, cap: split_batch(idx, lengths, cap),
                    size=tokens,
                    agreed=self.world > 1,
                ):
                    total += loss_sum.double()
                    count += n
        finally:
            self.model.train()
        if self.world > 1:
            total, count = self.agree_on_memory("eval", [total.reshape(1), count.reshape(1)])
        n = float(count.item())
        loss = float(total.item()) / n if n else None
        self.state.eval_loss = loss
        if loss is not None:
            self.emit(EvalMetrics(self.state.step, loss, int(n)))
        return loss

    # -- passes without gradients that recover from running out of memory -----------------

    def pass_words(self, where: str) -> str:
        """What the pass ``where`` is doing, for the messages."""
        return f"measuring the held-out loss at step {self.state.step}"

    def recovering_pass(
        self,
        groups: Sequence[Sequence[int]],
        run: Callable[[list[int]], Any],
        where: str,
        tokens: Callable[[list[int]], int],
        *,
        split: Callable[[list[int], int], list[list[int]]],
        size: Callable[[list[int]], int],
        agreed: bool,
    ) -> Iterator[tuple[list[int], Any]]:
        """``device.fitting_pieces`` for a pass without gradients of this run, in pieces of at most
        ``eval_micro_tokens`` (else the micro-batch) tokens: out of memory halves them for the rest
        of the pass and for the run's later passes, with one warning per halving; a sequence that
        does not fit alone ends the run naming the pass.

        ``agreed``: the processes of a data-parallel run call ``agree_on_memory`` after the pass,
        which then says the halving once and ends the run in all of them when one cannot go on.
        Without it a data-parallel pass (KTO's KL point, inside a step) raises out of memory
        for a sequence that does not fit, which the step's own recovery has every process handle.
        """
        import torch

        def halved(before: int, after: int, failed: list[int]) -> None:
            self.eval_micro_tokens = after
            if agreed:
                self.pass_ran_out = max(self.pass_ran_out, _RAN_OUT)
                return  # said once, by the main process, naming the ranks (agree_on_memory)
            rank = f" in rank {self.rank} of {self.world} processes" if self.world > 1 else ""
            self.emit(Log(f"Out of memory {self.pass_words(where)}{rank} with rows of {before:,} tokens: "
                          f"measured the rest with rows of {after:,}", "warning"))

        def one_sequence_too_many(failed: list[int]) -> BaseException:
            words = self.pass_words(where)
            if agreed:
                return _NoRoom()
            if self.world > 1:  # the step's out of memory, which the processes agree on
                return torch.OutOfMemoryError(f"{words.capitalize()} ran out of memory even one sequence at a time")
            return _Abort(_oom_failure(
                self.cfg, self.state.last_checkpoint,
                f"{words.capitalize()} ran out of memory even one sequence ({tokens(failed):,} tokens) at a time.",
                self.checkpointing))

        try:
            yield from fitting_pieces(
                groups, run, where, tokens, step=self.state.step, cap=self.eval_micro_tokens or self.micro_tokens,
                split=split, size=size, on_halved=halved, cannot_fit=one_sequence_too_many)
        except _NoRoom:
            self.pass_ran_out = _SINGLE

    def agree_on_memory(self, where: str, sums: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """After the pass ``where`` of a data-parallel run, in every process: ``sums`` (1-d tensors of
        one dtype) summed over the processes, and in the same all-reduce whether any process ran
        out of memory in the pass. One that could not measure a sequence alone ends the run in all
        of them; a halving is said once, naming the ranks."""
        import torch

        parts = sums or [torch.zeros(0, dtype=torch.float64, device=self.device)]
        ran_out, self.pass_ran_out = self.pass_ran_out, _FITTED
        summed, flags = self._sum_over_processes(parts, ran_out)
        ran_out_on = [int(f) for f in flags.tolist()]
        words, ranks = self.pass_words(where), self._where_words(ran_out_on)
        if _SINGLE in ran_out_on:
            raise _Abort(_oom_failure(
                self.cfg, self.state.last_checkpoint,
                f"{words.capitalize()} ran out of memory even one sequence at a time{ranks}.", self.checkpointing))
        if any(ran_out_on):
            self.emit(Log(f"Out of memory {words}{ranks}: measured the rest in smaller rows", "warning"))
        out, offset = [], 0
        for part in sums or []:
            out.append(summed[offset : offset + part.numel()].view_as(part))
            offset += part.numel()
        return out

    def samples(self) -> None:
        from ftstudio.engine.batch_generation import greedy_generate

        if not self.main or self.cfg.samples <= 0 or not self.eval_enc.examples:
            return
        tok = self.tokenizer
        self.model.eval()
        try:
            # One batch for all samples (left padding, KV cache): the same answers as one at a time, sooner;
            # halved when it runs out of memory.
            convs = self.sample_conversations()
            prompts = [encode_prompt(tok, c) for c in convs]
            stops = stop_token_ids(self.model, tok)
            size = self.sample_batch or len(prompts)
            batches = [list(range(k, min(k + size, len(prompts)))) for k in range(0, len(prompts), size)]

            def answer(batch: list[int]) -> list[str]:
                return greedy_generate(self.model, tok, [prompts[i] for i in batch], stops,
                                       self.cfg.sample_max_new_tokens)

            def halved(before: int, rows: int, failed: list[int]) -> None:
                self.sample_batch = rows
                self.emit(Log(f"Out of memory answering the sample prompts: answering {rows} at a time", "warning"))

            def kv_tokens(batch: list[int]) -> int:
                return len(batch) * (max(len(prompts[i]) for i in batch) + self.cfg.sample_max_new_tokens)

            answers = [""] * len(prompts)
            for batch, out in fitting_pieces(batches, answer, "generate", kv_tokens, on_halved=halved):
                for i, text in zip(batch, out):
                    answers[i] = text
            for conv, answer_text in zip(convs, answers):
                user = next((m.get("content") for m in reversed(conv) if m.get("role") == "user"), "") or ""
                reference = next((m.get("content") for m in reversed(conv) if m.get("role") == "assistant"), None)
                self.emit(Sample(self.state.step, str(user), answer_text, reference))
        finally:
            self.model.train()

    # -- the loop ------------------------------------------------------------------------

    def stop_requested(self) -> bool:
        flag = bool(self.should_stop()) if self.main or self.world == 1 else False
        if self.world > 1:
            import torch

            t = torch.tensor([1.0 if flag else 0.0], device=self.device)
            flag = bool(self.accelerator.reduce(t, "sum").item() > 0)
        return flag

    def loop(self) -> str:
        import torch

        from ftstudio.engine.device import gpu_utilisation, memory_snapshot

        cfg, st = self.cfg, self.state
        self.model.train()
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start_step = st.step
        t_start = time.perf_counter()
        window_t = t_start
        window_tokens = 0
        window_loss = 0.0
        window_loss_tokens = 0
        status = "finished"
        while st.step < self.total:
            if self.stop_requested():
                status = "stopped"
                break
            plan = self.steps[st.step]
            loss_total, norm = self._forward_backward(plan)
            loss = loss_total / max(1, plan.loss_tokens)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                self.optimizer.zero_grad(set_to_none=True)
                what = "loss" if not math.isfinite(loss) else "gradient"
                raise _Abort(Failed(
                    "nan",
                    f"Training broke down at step {st.step + 1}: the {what} became "
                    f"{'not a number' if math.isnan(loss if what == 'loss' else norm) else 'infinite'}. "
                    "The model stopped learning anything useful, so no update from this step was kept.",
                    "Lower the learning rate (for example to a third of it), or check the examples "
                    "around this point for unusual content; then start again or resume from the last checkpoint.",
                    str(st.last_checkpoint) if st.last_checkpoint else None))
            lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            st.step += 1
            st.losses.append(loss)
            window_tokens += plan.tokens
            window_loss += loss_total
            window_loss_tokens += plan.loss_tokens

            now = time.perf_counter()
            done = st.step - start_step
            eta = (now - t_start) / done * (self.total - st.step)
            self.emit(Progress(st.step, self.total, plan.epoch + (plan.index + 1) / plan.per_epoch,
                               st.elapsed_before + now - t_start, eta))
            if st.step % cfg.log_every == 0 or st.step == self.total:
                mem = memory_snapshot(self.device) if cuda else NO_MEMORY_FIGURES
                self.emit(StepMetrics(
                    st.step, window_loss / max(1, window_loss_tokens), lr, norm,
                    window_tokens / max(1e-9, now - window_t), mem["allocated"], mem["reserved"], mem["peak"],
                    mem["total"], gpu_utilisation() if cuda else None, plan.tokens, mem["peak_reserved"]))
                self.window_metrics(st.step)
                window_t, window_tokens, window_loss, window_loss_tokens = now, 0, 0.0, 0
            last = st.step == self.total
            if (cfg.eval_every and st.step % cfg.eval_every == 0) and not last:
                self.evaluate()
                self.samples()
                window_t = time.perf_counter()  # evaluation time is not training time
            if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0 and not last:
                self.save_checkpoint(st.elapsed_before + time.perf_counter() - t_start)
                window_t = time.perf_counter()
        self.elapsed = st.elapsed_before + time.perf_counter() - t_start
        if status == "finished":
            self.evaluate()
            self.samples()
        self.save_checkpoint(self.elapsed)
        self.save_adapter()
        return status

    def _forward_backward(self, plan: _Step) -> tuple[float, float]:
        """Step ``plan``'s gradient, the same on every process, clipped; returns the step's
        summed loss over every process and the gradient norm before clipping (the step's one
        host sync).

        Each process takes its share of the step: every packed batch split into micro-batches,
        forward and backward on each, gradients added up; then the processes sum them
        (``_sum_gradients``). Out of memory on the way, in any process, drops the step's
        partial gradients in every process, halves the micro-batch and does the step again on
        the same examples from the same random state, so the update is the one a run with the
        smaller micro-batch makes. The processes learn that in the collective that sums the
        gradients, which each reaches whether it ran out or not, so none waits for another."""
        import torch

        st = self.state
        local = plan.batches[self.rank :: self.world]
        # Summed over processes, gradients scaled by 1 / the step's loss tokens are the
        # token-weighted mean of the step.
        scale = 1.0 / max(1, plan.loss_tokens)
        while True:
            torch.manual_seed(_step_seed(self.cfg.seed, st.step, self.rank))
            micro = [mb for idx in local for mb in split_batch(idx, self.train_lengths, self.micro_tokens)]
            saved = self.save_step_state()
            loss_acc = torch.zeros((), dtype=torch.float32, device=self.device)
            loss_sum = None
            ran_out = _FITTED
            try:
                for idx in micro:
                    check_memory("train", st.step, sum(self.train_lengths[i] for i in idx), len(idx))
                    loss_sum = self.micro_step(idx)
                    (loss_sum * scale).backward()
                    loss_acc += loss_sum.detach()
                    loss_sum = None
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                ran_out = _ran_out(micro)
            if ran_out:
                # Out of the except block, so the error's frames (and the activations they
                # hold) are gone before the memory is given back.
                self.optimizer.zero_grad(set_to_none=True)
                loss_sum = None
                free_memory()
            ran_out_on = [ran_out]
            if self.world > 1 or not ran_out:
                flags = loss_acc.new_zeros(0)
                if self.world > 1:
                    loss_acc, flags = self._sum_gradients(loss_acc, ran_out)
                # Clipped even when a process ran out (the step is then dropped): the norm
                # goes to the host with the flags, in the one sync.
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
                loss_total, norm, *flag_values = torch.cat(
                    [loss_acc.reshape(1).float(), grad_norm.reshape(1).float().to(loss_acc.device),
                     flags.float()]).tolist()
                ran_out_on = [int(f) for f in flag_values]
                if not any(ran_out_on):
                    return loss_total, norm
            self.optimizer.zero_grad(set_to_none=True)
            self.restore_step_state(saved)
            self._halve_micro_batch(plan, ran_out_on)

    def _sum_gradients(self, loss_acc: torch.Tensor, ran_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum this process's gradients and summed loss with the other processes' in one
        all-reduce; afterwards every trainable weight's gradient is the sum (a view of the
        reduced buffer). Returns the summed loss and each process's out-of-memory flag
        (``_ran_out``). A process that ran out of memory sends zeros (the step is redone)."""
        import torch

        params = self.params
        dtype = torch.float32
        for p in params:
            dtype = torch.promote_types(dtype, p.dtype)
        count = sum(p.numel() for p in params)
        if ran_out:
            parts = [torch.zeros(count + 1, dtype=dtype, device=self.device)]
        else:
            parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dtype) for p in params]
            parts.append(loss_acc.reshape(1).to(dtype))
        summed, flags = self._sum_over_processes(parts, ran_out)
        offset = 0
        for p in params:
            p.grad = summed[offset : offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
        return summed[count], flags

    def _sum_over_processes(self, parts: list[torch.Tensor], ran_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``parts`` (1-d, one dtype) concatenated and summed over the processes, and each
        process's out-of-memory flag, in one all-reduce that every process must reach."""
        import torch
        import torch.distributed as dist

        flags = torch.zeros(self.world, dtype=parts[0].dtype, device=parts[0].device)
        flags[self.rank] = ran_out
        buffer = torch.cat([*parts, flags])
        dist.all_reduce(buffer)
        return buffer[: -self.world], buffer[-self.world :]

    def _broadcast_trainable(self) -> None:
        """Give every process the main process's trainable weights (one broadcast)."""
        import torch
        import torch.distributed as dist

        dtype = torch.float32
        for p in self.params:
            dtype = torch.promote_types(dtype, p.dtype)
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1).to(dtype) for p in self.params])
            dist.broadcast(flat, src=0)
            offset = 0
            for p in self.params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def _where_words(self, ran_out_on: list[int]) -> str:
        """Which processes ran out of memory, for a message ("" in a one-process run)."""
        if self.world == 1:
            return ""
        ranks = [str(r) for r, flag in enumerate(ran_out_on) if flag]
        return f" in {'rank' if len(ranks) == 1 else 'ranks'} {', '.join(ranks)} of {self.world} processes"

    def _halve_micro_batch(self, plan: _Step, ran_out_on: list[int]) -> None:
        """After out of memory at step ``plan`` (``ran_out_on``: each process's ``_ran_out``
        flag, the same list in every process): halve the micro-batch, or end the run when it
        cannot go lower (a process that ran out had one example per micro-batch, or
        MAX_MEMORY_HALVINGS reached). Every process decides the same."""
        st, before = self.state, self.micro_tokens
        single = _SINGLE in ran_out_on
        where = self._where_words(ran_out_on)
        if single or self.memory_halvings >= MAX_MEMORY_HALVINGS:
            why = ("each micro-batch was already a single example" if single
                   else f"after halving the micro-batch {_times(self.memory_halvings)}")
            raise _Abort(_oom_failure(
                self.cfg, st.last_checkpoint,
                f"The run ran out of memory at step {st.step + 1}{where} with micro-batches of {before:,} tokens "
                f"(checkpointing {'on' if self.checkpointing else 'off'}), and {why}.",
                self.checkpointing))
        self.memory_halvings += 1
        self.micro_tokens = max(1, before // 2)
        self.estimated_bytes = 0
        self.plan_text = self._plan_words()
        self.emit(Log(f"Out of memory at step {st.step + 1}{where} with micro-batches of {before:,} tokens: redid "
                      f"the step with {self.micro_tokens:,} ({self.plan_text}); the same examples and the same "
                      "update. This project's next runs start from this size.", "warning"))
        self.emit(self._fit_event(st.step, "out_of_memory"))

    def lowered_ceiling(self) -> int | None:
        """The micro-batch this run came down to, when running out of memory lowered it."""
        return self.micro_tokens if self.memory_halvings else None

    def save_step_state(self) -> Any:
        """What micro_step adds to during a step, as it was before it (an out-of-memory redo restores it)."""
        return None

    def restore_step_state(self, saved: Any) -> None:
        """Put back what ``save_step_state`` returned."""

    def train_loss(self) -> float | None:
        recent = self.state.losses[-10:]
        return sum(recent) / len(recent) if recent else None


# The run of each training objective. Preference tuning registers DPO and KTO here
# (engine/preference.py, imported by the engine package), so the loop does not import it.
RUN_CLASSES: dict[str, type[_Run]] = {"sft": _Run}


def _inputs(batch: PackedBatch, device: torch.device) -> dict[str, Any]:
    nb = device.type == "cuda"
    return {
        "input_ids": batch.input_ids.to(device, non_blocking=nb),
        "position_ids": batch.position_ids.to(device, non_blocking=nb),
        "loss_positions": batch.loss_positions.to(device, non_blocking=nb),
        "targets": batch.targets.to(device, non_blocking=nb),
        "segments": batch.lengths,
    }


def _ran_out(micro: list[list[int]]) -> int:
    """The flag of a pass of ``micro`` that ran out of memory: _SINGLE when it cannot go lower
    (every micro-batch one example), else _RAN_OUT."""
    return _SINGLE if all(len(mb) == 1 for mb in micro) else _RAN_OUT


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:
        pass
    torch.manual_seed(seed)


def _device_words(device: torch.device) -> str:
    if device.type == "cuda":
        import torch

        return f"GPU {torch.cuda.get_device_name(device)}"
    import torch

    return f"CPU ({torch.get_num_threads()} threads)"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _device_budget(device: torch.device) -> Any:
    """The fit plan's DeviceBudget of ``device``: the GPU's free memory now, or this machine's RAM."""
    from ftstudio.engine.device import device_info
    from ftstudio.engine.estimate import DeviceBudget, cpu_budget

    if device.type == "cuda":
        return DeviceBudget.from_info(device_info(device.index))
    return cpu_budget()


def _oom_failure(cfg: TrainConfig, last_checkpoint: Path | None, message: str = "",
                 checkpointing: bool | None = None) -> Failed:
    tips = [f"lower max_length (now {cfg.max_length})"]
    if not message:
        tips.insert(0, f"lower batch_tokens (now {cfg.batch_tokens})")
    if not (cfg.gradient_checkpointing if checkpointing is None else checkpointing):
        tips.append("turn on gradient checkpointing")
    if cfg.method == "lora":
        tips.append("switch to QLoRA")
    return Failed("oom", message or "The run ran out of memory: the model and a batch did not fit on the device.",
                  "Try: " + "; ".join(tips) + ". Then start again" + (" or resume." if last_checkpoint else "."),
                  str(last_checkpoint) if last_checkpoint else None)


def _disk_full_failure(exc: BaseException, run_dir: Path, last_checkpoint: Path | None) -> Failed:
    """The disk filled up while the run wrote its files: where, how much, and what was kept."""
    if isinstance(exc, DiskFullError):
        message = exc.message
    else:
        kept = (f"Kept: the checkpoint at {last_checkpoint.name}; Resume continues from it." if last_checkpoint
                else "No checkpoint of this run was kept.")
        message = disk_full_message("the run's files", run_dir, None, kept)
    return Failed("disk", message, "Free some space on that disk, then Resume the run.",
                  str(last_checkpoint) if last_checkpoint else None)


def train(cfg: TrainConfig, data: PreparedData | PreferenceData, sink: EventSink, should_stop: Callable[[], bool], *,
          run_dir: Path, resume: bool = False, cpu_threads: int | None = None,
          micro_batch_ceiling: int | None = None) -> TrainResult:
    """Fine-tune ``cfg.model`` on ``data``, writing everything into ``run_dir``; see the module doc.

    ``cpu_threads`` caps torch's threads on the CPU (None: every usable core);
    the app leaves a core free so its window stays responsive. ``micro_batch_ceiling``
    caps the micro-batch (tokens): an earlier run of the project ran out of memory above it
    (``TrainResult.micro_batch_ceiling``, kept by core/runs.py).
    """
    run_dir = Path(run_dir)
    main = int(os.environ.get("RANK", "0")) == 0
    closers = []
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = JsonlSink(run_dir / "metrics.jsonl")
        samples_file = open(run_dir / "samples.jsonl", "a", encoding="utf-8")
        closers = [metrics.close, samples_file.close]

        def samples_sink(event: Event) -> None:
            if isinstance(event, Sample):
                samples_file.write(event_to_json(event) + "\n")
                samples_file.flush()

        emit: EventSink = FanOut([metrics, samples_sink, sink])
        # A process killed while writing a checkpoint or the adapter leaves its temporary
        # folder behind; whoever trains the run next (a resume, a rerun) removes it.
        stale = remove_stale_temp_dirs(run_dir)
        if stale:
            emit(Log(f"Removed {len(stale)} unfinished temporary folder{'s' if len(stale) != 1 else ''} left by "
                     "an earlier interrupted write"))
        try:
            cfg.save(run_dir / "config.yaml")
        except Exception as exc:  # a config that cannot even be written is reported by validate below
            emit(Log(f"Could not write config.yaml: {exc}", "warning"))
    else:
        def emit(event: Event) -> None:
            return None

    run_class = RUN_CLASSES[cfg.objective] if cfg.objective in RUN_CLASSES else _Run
    run = run_class(cfg, data, emit, should_stop, run_dir, resume, main, cpu_threads, micro_batch_ceiling)
    failure: Failed | None = None
    status = "failed"
    try:
        run.setup()
        status = run.loop()
    except _Abort as exc:
        failure = exc.failure
    except Exception as exc:  # noqa: BLE001 - every failure becomes an event, never a crash
        last = run.state.last_checkpoint
        if is_out_of_memory(exc):
            failure = _oom_failure(cfg, last)
        elif is_disk_full(exc):
            failure = _disk_full_failure(exc, run_dir, last)
        else:
            emit(Log("".join(traceback.format_exception(exc)), "error"))
            failure = Failed("internal", f"Training stopped on an unexpected error: {type(exc).__name__}: {exc}",
                             "The details are in the run's log; please report them.",
                             str(last) if last else None)
        del exc
    if failure is not None:
        # Drop every tensor the run holds before reporting, so a caller that
        # starts another run (after out of memory, say) gets the memory back.
        for name in ("wrapped", "loss_module", "optimizer", "scheduler", "model", "params"):
            if hasattr(run, name):
                delattr(run, name)
        free_memory()
        emit(failure)
        result = TrainResult("failed", run.state.step, None, run.state.last_checkpoint,
                             run.train_loss(), run.state.eval_loss, failure, run.lowered_ceiling())
    else:
        if os.environ.get(DIGEST_ENV):
            (run_dir / f"weights-rank{run.rank}.sha256").write_text(weights_digest(run.model))
        emit(Finished(run.state.step, str(run.adapter_dir), run.train_loss(), run.state.eval_loss,
                      stopped_early=(status == "stopped")))
        result = TrainResult(status, run.state.step, run.adapter_dir, run.state.last_checkpoint,
                             run.train_loss(), run.state.eval_loss, None, run.lowered_ceiling())
        if run.world > 1:
            run.accelerator.wait_for_everyone()
    for close in closers:
        close()
    return result
