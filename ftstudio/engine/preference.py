"""Preference tuning on the SFT engine: DPO on pairs, KTO on answers rated good or bad.

A *unit* is what one loss term is taken over: a pair for DPO, one rated answer
for KTO. It has two sequences: for DPO the prompt with the chosen answer and
the prompt with the rejected one, both trained, as two segments of the same
padding-free row (position ids restart, attention stays inside each segment);
for KTO the prompt with its answer, trained, and the prompt with another
unit's answer (the mismatched pair KTO's KL baseline is estimated from, as TRL
rotates them), which only goes forward, once per optimiser step for the whole
step (``PreferenceRun._step_kl``). Prompt tokens carry no loss; the output
layer is applied to answer tokens only.

The reference model is the policy as it was before the first step, the same
weights in memory: a fresh LoRA adapter adds exactly nothing (its B matrices
start at zero), and a run started from an SFT run's adapter starts as that
adapter. Its log-probabilities are computed once, before training, for every
unit (and again on resume, before the checkpoint is loaded), so no second
model and no second forward per step are needed.

Everything else (batch plan, accumulation, clipping, NaN and out-of-memory
handling, checkpoints, resume, samples, the events) is the SFT run's
(``training._Run``); this module only overrides what the objective decides.
The losses equal TRL's (1.16) DPOTrainer (sigmoid, ipo) and KTOTrainer (kto)
for the same log-probabilities; tests/engine/test_preference_loss.py checks it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

from ftstudio.core.events import EvalMetrics, Failed, Log, PreferenceMetrics
from ftstudio.core.preferences import PreferenceData
from ftstudio.engine.loss import _model_parts, loss_chunk_rows
from ftstudio.engine.training import RUN_CLASSES, _Abort, _Run

# Sums kept per log window / evaluation, in this order (one tensor, one sync).
_STATS = (
    "loss",
    "units",
    "correct",
    "n_chosen",
    "chosen_reward",
    "chosen_logp",
    "n_rejected",
    "rejected_reward",
    "rejected_logp",
)


@dataclass(frozen=True)
class PreferenceUnit:
    """Two segments of token ids, each a prompt followed by an answer."""

    segments: tuple[tuple[int, ...], tuple[int, ...]]
    prompt_lens: tuple[int, int]
    label: bool | None = None  # KTO: True for a good answer, False for a bad one; None for a DPO pair

    @property
    def input_ids(self) -> list[int]:
        return [*self.segments[0], *self.segments[1]]

    @property
    def answer_tokens(self) -> tuple[int, int]:
        return (len(self.segments[0]) - self.prompt_lens[0], len(self.segments[1]) - self.prompt_lens[1])


# -- tokenising -------------------------------------------------------------------------


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_answer(tokenizer: Any, prompt: list[dict], answer: str) -> tuple[list[int], int]:
    """(token ids of the prompt followed by the answer, number of prompt tokens).

    As TRL does it: the answer starts where the prompt rendered for generation
    and the rendered conversation part. Whitespace the template puts after the
    end-of-turn token is left off, as in SFT (it is not part of the answer).
    """
    from ftstudio.engine.tokenize import _render_ids

    prompt_ids = _render_ids(tokenizer, prompt, add_generation_prompt=True)
    full = _render_ids(
        tokenizer, [*prompt, {"role": "assistant", "content": answer}], add_generation_prompt=False
    )
    start = _common_prefix(prompt_ids, full)
    end = len(full)
    while end - 1 > start and not tokenizer.decode([full[end - 1]]).strip():
        end -= 1
    return full[:end], start


def _fit(ids: list[int], start: int, max_length: int, overlength: str) -> tuple[list[int], int] | None:
    if len(ids) <= max_length:
        return ids, start
    if overlength != "truncate" or start >= max_length:
        return None
    return ids[:max_length], start


@dataclass
class _Units:
    """The units of one split, the data row each came from, and what was left out."""

    examples: list[PreferenceUnit]
    source: list[int]
    dropped: int = 0
    truncated: int = 0
    no_loss: int = 0


def encode_units(
    tokenizer: Any, rows: list[dict], objective: str, max_length: int, overlength: str = "drop"
) -> _Units:
    """DPO: one unit per complete pair. KTO: one per answer (a pair gives a good and a bad one), each
    with the answer of the unit before it (rotating) as its mismatched KL segment."""
    out = _Units([], [])
    if objective == "dpo":
        for i, row in enumerate(rows):
            if row.get("chosen") is None or row.get("rejected") is None:
                continue
            a = _fit(*encode_answer(tokenizer, row["prompt"], row["chosen"]), max_length, overlength)
            b = _fit(*encode_answer(tokenizer, row["prompt"], row["rejected"]), max_length, overlength)
            if a is None or b is None:
                out.dropped += 1
                continue
            if a[1] >= len(a[0]) or b[1] >= len(b[0]):
                out.no_loss += 1
                continue
            out.truncated += int(len(a[0]) == max_length or len(b[0]) == max_length)
            out.examples.append(PreferenceUnit((tuple(a[0]), tuple(b[0])), (a[1], b[1])))
            out.source.append(i)
        return out
    singles: list[tuple[int, list[dict], str, bool]] = []
    for i, row in enumerate(rows):
        for answer, label in ((row.get("chosen"), True), (row.get("rejected"), False)):
            if answer is not None:
                singles.append((i, row["prompt"], answer, label))
    encoded = []
    for i, prompt, answer, label in singles:
        fitted = _fit(*encode_answer(tokenizer, prompt, answer), max_length, overlength)
        encoded.append(fitted)
    kept = [k for k, e in enumerate(encoded) if e is not None and e[1] < len(e[0])]
    out.dropped = sum(1 for e in encoded if e is None)
    for pos, k in enumerate(kept):
        ids, start = encoded[k]  # type: ignore[misc]
        other_ids, other_start = encoded[kept[pos - 1]]  # type: ignore[misc]
        kl = _fit([*ids[:start], *other_ids[other_start:]], start, max_length, "truncate")
        assert kl is not None
        out.examples.append(PreferenceUnit((tuple(ids), tuple(kl[0])), (start, kl[1]), label=singles[k][3]))
        out.source.append(singles[k][0])
    return out


# -- batches ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitBatch:
    input_ids: Any  # (1, T) long
    position_ids: Any  # (1, T) long
    loss_positions: Any  # (N,) positions whose next token is an answer token
    targets: Any  # (N,) those next tokens
    target_segment: Any  # (N,) which of the row's segments each belongs to
    segments: tuple[int, ...]  # length of each segment, in row order


def collate_segments(units: Sequence[PreferenceUnit], items: Sequence[tuple[int, int]]) -> UnitBatch:
    """One padding-free row of the sequences ``items`` names, as (unit, segment 0 or 1), in that
    order; position ids restart at each, and the module's sums come back in the same order."""
    import torch

    ids: list[int] = []
    positions: list[int] = []
    loss_positions: list[int] = []
    targets: list[int] = []
    target_segment: list[int] = []
    lengths: list[int] = []
    for i, which in items:
        seq, start = units[i].segments[which], units[i].prompt_lens[which]
        offset = len(ids)
        segment = len(lengths)
        ids.extend(seq)
        positions.extend(range(len(seq)))
        lengths.append(len(seq))
        for t in range(start, len(seq)):
            loss_positions.append(offset + t - 1)
            targets.append(seq[t])
            target_segment.append(segment)
    return UnitBatch(
        torch.tensor([ids], dtype=torch.long),
        torch.tensor([positions], dtype=torch.long),
        torch.tensor(loss_positions, dtype=torch.long),
        torch.tensor(targets, dtype=torch.long),
        torch.tensor(target_segment, dtype=torch.long),
        tuple(lengths),
    )


def collate_units(units: Sequence[PreferenceUnit], indices: Sequence[int]) -> UnitBatch:
    """One padding-free row: both segments of every unit (the sums come back as (units, 2))."""
    return collate_segments(units, [(i, which) for i in indices for which in (0, 1)])


def _batch_inputs(batch: UnitBatch, device: Any) -> dict[str, Any]:
    nb = device.type == "cuda"
    return {
        "input_ids": batch.input_ids.to(device, non_blocking=nb),
        "position_ids": batch.position_ids.to(device, non_blocking=nb),
        "loss_positions": batch.loss_positions.to(device, non_blocking=nb),
        "targets": batch.targets.to(device, non_blocking=nb),
        "target_segment": batch.target_segment.to(device, non_blocking=nb),
        "segments": batch.segments,
    }


def _token_logps(head: Any, hidden: Any, targets: Any, softcap: float | None) -> Any:
    import torch
    import torch.nn.functional as F

    logits = head(hidden)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if softcap:
        logits = softcap * (logits / softcap).tanh()
    return -F.cross_entropy(logits, targets, reduction="none")


@functools.cache
def _build_segment_module() -> type:
    import torch
    from torch import nn
    from torch.utils.checkpoint import checkpoint

    class _SegmentLogps(nn.Module):
        """forward(...) -> the summed log-probability of each segment's answer tokens (fp32).

        Like the SFT loss module, the output layer sees only the rows whose next
        token is an answer token; this is what DDP wraps.
        """

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: Any,
            position_ids: Any,
            loss_positions: Any,
            targets: Any,
            target_segment: Any,
            segments: tuple[int, ...],
        ) -> Any:
            body, head, softcap = _model_parts(self.model)
            hidden = body(
                input_ids=input_ids,
                position_ids=position_ids,
                attention_mask=None,
                use_cache=False,
                segments=tuple(segments),
            ).last_hidden_state
            rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, loss_positions)
            n = targets.shape[0]
            chunk = loss_chunk_rows(head.weight.shape[0])
            if n <= chunk:
                per_token = _token_logps(head, rows, targets, softcap)
            else:
                parts = []
                for start in range(0, n, chunk):
                    part = slice(start, start + chunk)
                    if torch.is_grad_enabled():
                        parts.append(
                            checkpoint(
                                _token_logps, head, rows[part], targets[part], softcap, use_reentrant=False
                            )
                        )
                    else:
                        parts.append(_token_logps(head, rows[part], targets[part], softcap))
                per_token = torch.cat(parts)
            sums = per_token.new_zeros(len(segments))
            return sums.index_add(0, target_segment, per_token)

    return _SegmentLogps


def segment_logps_module(model: Any) -> Any:
    return _build_segment_module()(model)


# -- the losses (TRL's formulas) -----------------------------------------------------------


def dpo_losses(
    chosen_logps: Any,
    rejected_logps: Any,
    ref_chosen_logps: Any,
    ref_rejected_logps: Any,
    beta: float,
    loss_type: str = "sigmoid",
    chosen_tokens: Any = None,
    rejected_tokens: Any = None,
) -> Any:
    """Per-pair DPO loss. sigmoid: -log sigmoid(beta * (chosen log-ratio - rejected log-ratio)).
    ipo: (the same difference per answer token - 1 / (2 beta))^2, as TRL normalises it."""
    import torch.nn.functional as F

    chosen = chosen_logps - ref_chosen_logps
    rejected = rejected_logps - ref_rejected_logps
    if loss_type == "ipo":
        delta = chosen / chosen_tokens.clamp(min=1.0) - rejected / rejected_tokens.clamp(min=1.0)
        return (delta - 1 / (2 * beta)) ** 2
    return -F.logsigmoid(beta * (chosen - rejected))


def kto_kl(kl_logps: Any, ref_kl_logps: Any) -> Any:
    """KTO's reference point: the mean log-ratio on mismatched answers, at least 0, not differentiated."""
    return (kl_logps - ref_kl_logps).mean().detach().clamp(min=0)


def kto_losses(
    logps: Any,
    ref_logps: Any,
    labels: Any,
    kl: Any,
    beta: float,
    desirable_weight: float,
    undesirable_weight: float,
) -> Any:
    """Per-answer KTO loss: good answers 1 - sigmoid(beta (log-ratio - KL)), bad ones
    1 - sigmoid(beta (KL - log-ratio)), each times its weight."""
    import torch

    ratio = logps - ref_logps
    good = desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio)))
    return torch.where(labels, good, bad)


# -- the run ----------------------------------------------------------------------------


class PreferenceRun(_Run):
    data: PreferenceData
    train_enc: _Units  # type: ignore[assignment]
    eval_enc: _Units  # type: ignore[assignment]

    def encode_data(self) -> None:
        cfg = self.cfg
        self.train_enc = encode_units(
            self.tokenizer, self.data.train, cfg.objective, cfg.max_length, cfg.overlength
        )
        self.eval_enc = encode_units(
            self.tokenizer, self.data.eval, cfg.objective, cfg.max_length, cfg.overlength
        )
        what = "pair" if cfg.objective == "dpo" else "rated answer"
        for enc, split in ((self.train_enc, "training"), (self.eval_enc, "held-out")):
            if enc.dropped:
                self.emit(
                    Log(
                        f"Dropped {enc.dropped} {split} {what}{'s' * (enc.dropped != 1)} longer than "
                        f"{cfg.max_length} tokens (raise max_length or set overlength to truncate)",
                        "warning",
                    )
                )
        if not self.train_enc.examples:
            if cfg.objective == "dpo":
                why = "there are no preference pairs for training"
                tip = (
                    "Rate answers on the Compare page's blind tab (a pick makes a pair), or import pairs on the "
                    "Data page's Preferences view; then start again."
                )
            else:
                why = "there are no rated answers for training"
                tip = (
                    "Rate answers on the Compare page's blind tab ('both bad' and picks both count), or import "
                    "answers labelled true/false on the Data page's Preferences view; then start again."
                )
            if self.data.train:
                why = f"every training {what} was dropped (see the messages above)"
                tip = "Raise max_length, or set overlength to truncate."
            raise _Abort(Failed("data", f"Nothing to train on: {why}.", tip))
        if cfg.objective == "kto":
            good = sum(1 for u in self.train_enc.examples if u.label)
            bad = len(self.train_enc.examples) - good
            self.desirable_weight = cfg.desirable_weight or (max(bad, 1) / max(good, 1))
            self.undesirable_weight = cfg.undesirable_weight
            self.emit(
                Log(
                    f"KTO on {good} good and {bad} bad answers: weights {self.desirable_weight:.3g} for good "
                    f"and {self.undesirable_weight:.3g} for bad answers"
                    + (" (set from the data's balance)" if not cfg.desirable_weight else "")
                )
            )

    def unit_sizes(self, examples: Sequence) -> tuple[list[int], list[int]]:
        """What a unit puts through the model with gradients: both answers of a DPO pair; a KTO
        answer alone (its mismatched segment goes forward once per step, see ``_step_kl``)."""
        if self.cfg.objective == "kto":
            return [len(u.segments[0]) for u in examples], [1] * len(examples)
        return [len(u.segments[0]) + len(u.segments[1]) for u in examples], [1] * len(examples)

    def make_loss_module(self) -> Any:
        return segment_logps_module(self.model)

    def method_words(self) -> str:
        start = " from the starting adapter" if self.cfg.start_from else ""
        return f"{self.cfg.objective.upper()} ({self.cfg.method.upper()}{start})"

    def data_words(self, n: int) -> str:
        what = "pair" if self.cfg.objective == "dpo" else "rated answer"
        return f"{n} {what}{'s' * (n != 1)}"

    def sample_conversations(self) -> list[list[dict]]:
        out, seen = [], set()
        for i in self.eval_enc.source:
            row = self.data.eval[i]
            key = repr(row["prompt"])
            if key in seen:
                continue
            seen.add(key)
            reference = row.get("chosen")
            out.append(
                [*row["prompt"], {"role": "assistant", "content": reference}]
                if reference is not None
                else list(row["prompt"])
            )
            if len(out) >= self.cfg.samples:
                break
        return out

    # -- forward passes without gradients -------------------------------------------------

    def _logps_of(self, enc: _Units, items: Sequence[tuple[int, int]], where: str) -> Any:
        """The log-probabilities of the (unit, segment) sequences ``items`` under the current weights,
        dropout off, in rows no longer than the run's micro-batch (a longer sequence alone).

        ``where`` names the pass ("reference", "eval" or "kl"). Out of memory halves the rows and
        does the sequences not yet measured again (each is measured alone in its segment, so the
        split does not change what it measures); the smaller rows stay for the run's later passes
        without gradients (``eval_micro_tokens``). A sequence that does not fit alone ends the run.

        In a data-parallel run each process recovers on its own (nothing here waits for the
        others). After the reference and held-out passes the processes agree
        (``agree_on_memory``), so all of them end the run if one cannot go on. KTO's KL pass runs
        inside a step, only in the processes with a share of it, so there is no point at which all
        agree: a sequence that does not fit alone goes up as the step's out of memory, which every
        process then handles together (_forward_backward), and a halving is said by the main
        process only when it was its own.
        """
        import torch

        from ftstudio.engine.packing import pack

        out = torch.zeros(len(items), dtype=torch.float32, device=self.device)
        if not items:
            return out
        lengths = [len(enc.examples[u].segments[which]) for u, which in items]

        def tokens(rows: list[int]) -> int:
            return sum(lengths[k] for k in rows)

        def in_rows(rows: list[int], cap: int) -> list[list[int]]:
            return pack(lengths, max(cap, max(lengths[k] for k in rows)), order=rows)

        def measure(rows: list[int]) -> Any:
            batch = collate_segments(enc.examples, [items[k] for k in rows])
            return self.loss_module(**_batch_inputs(batch, self.device))

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for rows, logps in self.recovering_pass(
                    [list(range(len(items)))],
                    measure,
                    where,
                    tokens,
                    split=in_rows,
                    size=tokens,
                    agreed=self.world > 1 and where != "kl",  # the processes agree after the pass
                ):
                    out[torch.tensor(rows, device=self.device)] = logps
        finally:
            self.model.train(was_training)
        return out

    def pass_words(self, where: str) -> str:
        """What the pass ``where`` of ``_logps_of`` is doing, for the messages."""
        if where == "reference":
            return "computing the reference log-probabilities"
        if where == "kl":
            return f"computing KTO's reference point (KL) for step {self.state.step + 1}"
        return f"measuring the held-out metrics at step {self.state.step}"

    def _unit_logps(self, enc: _Units, units: Sequence[int], where: str) -> Any:
        """(len(units), 2): both segments of each unit."""
        return self._logps_of(enc, [(u, which) for u in units for which in (0, 1)], where).view(-1, 2)

    def prepare_objective(self) -> None:
        import time

        t0 = time.perf_counter()
        self.ref_train = self._unit_logps(self.train_enc, range(len(self.train_enc.examples)), "reference")
        self.ref_eval = self._unit_logps(self.eval_enc, range(len(self.eval_enc.examples)), "reference")
        if self.world > 1:
            self.agree_on_memory("reference")
        self.window = self._zero_stats()
        self._kl_step: tuple[int, Any] | None = None
        self.emit(
            Log(
                f"Reference log-probabilities of {len(self.train_enc.examples) + len(self.eval_enc.examples)} "
                f"units computed in {time.perf_counter() - t0:.1f} s"
            )
        )

    def _step_kl(self) -> Any:
        """KTO's reference point for the current optimiser step, from every unit of the step.

        TRL (1.16) takes the mean log-ratio of the mismatched answers over each device's batch of
        ``per_device_train_batch_size`` rows and averages it over the processes. Here a micro-batch
        holds as many units as fit in ``batch_tokens``, often one or two with long answers, and
        out-of-memory recovery may split it further: a mean over the micro-batch would be a noisy,
        split-dependent estimate. So the mean is taken over the whole step (all its micro-batches,
        on every process: TRL's batch and process average in one), once, without gradients (it is
        not differentiated anyway, so the mismatched segments need no backward pass). Each process
        computes it for the whole step itself: the same number everywhere with no collective that a
        process with fewer micro-batches could miss.
        """
        step = self.state.step
        if self._kl_step is None or self._kl_step[0] != step:
            units = [i for batch in self.steps[step].batches for i in batch]
            # Its own pass without gradients: out of memory here halves these rows (``_logps_of``),
            # not the step's micro-batch, and nothing of the step has been counted for it.
            logps = self._logps_of(self.train_enc, [(u, 1) for u in units], "kl")
            where = self._where(units)
            self._kl_step = (step, kto_kl(logps, self.ref_train[:, 1].index_select(0, where)))
        return self._kl_step[1]

    # -- losses and metrics ------------------------------------------------------------

    def _zero_stats(self) -> Any:
        import torch

        return torch.zeros(len(_STATS), dtype=torch.float64, device=self.device)

    def _where(self, idx: Sequence[int]) -> Any:
        import torch

        return torch.tensor(list(idx), dtype=torch.long, device=self.device)

    def _dpo_losses(self, enc: _Units, ref: Any, idx: Sequence[int], logps: Any) -> tuple[Any, Any]:
        """(per-pair losses, the stats sums of these pairs); ``logps`` is (pairs, 2): chosen, rejected."""
        import torch

        cfg = self.cfg
        ref = ref.index_select(0, self._where(idx))
        units = [enc.examples[i] for i in idx]
        # (pairs, 2) also for no pairs: a process of a data-parallel run may have no held-out share
        tokens = torch.tensor([u.answer_tokens for u in units], dtype=torch.float32, device=self.device).view(
            -1, 2
        )
        losses = dpo_losses(
            logps[:, 0],
            logps[:, 1],
            ref[:, 0],
            ref[:, 1],
            cfg.beta,
            cfg.loss_type,
            tokens[:, 0],
            tokens[:, 1],
        )
        chosen_r = cfg.beta * (logps[:, 0] - ref[:, 0]).detach()
        rejected_r = cfg.beta * (logps[:, 1] - ref[:, 1]).detach()
        n = torch.tensor(float(len(units)), device=self.device, dtype=torch.float64)
        stats = torch.stack(
            [
                losses.detach().sum().double(),
                n,
                (chosen_r > rejected_r).double().sum(),
                n,
                chosen_r.double().sum(),
                logps[:, 0].detach().double().sum(),
                n,
                rejected_r.double().sum(),
                logps[:, 1].detach().double().sum(),
            ]
        )
        return losses, stats

    def _kto_losses(self, enc: _Units, ref: Any, idx: Sequence[int], logps: Any, kl: Any) -> tuple[Any, Any]:
        """(per-answer losses, the stats sums of these answers); ``logps`` is (answers,), ``kl`` the
        reference point they are measured against."""
        import torch

        cfg = self.cfg
        ref = ref.index_select(0, self._where(idx))[:, 0]
        labels = torch.tensor([bool(enc.examples[i].label) for i in idx], device=self.device)
        losses = kto_losses(logps, ref, labels, kl, cfg.beta, self.desirable_weight, self.undesirable_weight)
        reward = cfg.beta * (logps - ref).detach()
        good, bad = labels.double(), (~labels).double()
        lp = logps.detach().double()
        right = torch.where(labels, reward > 0, reward < 0).double()
        stats = torch.stack(
            [
                losses.detach().sum().double(),
                torch.tensor(float(len(idx)), device=self.device, dtype=torch.float64),
                right.sum(),
                good.sum(),
                (reward.double() * good).sum(),
                (lp * good).sum(),
                bad.sum(),
                (reward.double() * bad).sum(),
                (lp * bad).sum(),
            ]
        )
        return losses, stats

    def micro_step(self, idx: Sequence[int]) -> Any:
        units = self.train_enc.examples
        if self.cfg.objective == "kto":
            kl = self._step_kl()
            batch = collate_segments(units, [(i, 0) for i in idx])
            logps = self.wrapped(**_batch_inputs(batch, self.device))
            losses, stats = self._kto_losses(self.train_enc, self.ref_train, idx, logps, kl)
        else:
            batch = collate_units(units, idx)
            logps = self.wrapped(**_batch_inputs(batch, self.device)).view(-1, 2)
            losses, stats = self._dpo_losses(self.train_enc, self.ref_train, idx, logps)
        self.window += stats
        return losses.sum()

    def save_step_state(self) -> Any:
        return self.window.clone()  # a step redone after out of memory counts its units once

    def restore_step_state(self, saved: Any) -> None:
        self.window = saved

    def _emit_stats(self, step: int, split: str, stats: Any) -> dict[str, float]:
        values = dict(zip(_STATS, stats.tolist()))
        units = max(values["units"], 1.0)
        n_c, n_r = values["n_chosen"], values["n_rejected"]
        chosen_reward = values["chosen_reward"] / n_c if n_c else None
        rejected_reward = values["rejected_reward"] / n_r if n_r else None
        margin = (
            chosen_reward - rejected_reward
            if chosen_reward is not None and rejected_reward is not None
            else None
        )
        metrics = PreferenceMetrics(
            step=step,
            split=split,
            loss=values["loss"] / units,
            reward_accuracy=values["correct"] / units,
            reward_margin=margin,
            chosen_reward=chosen_reward,
            rejected_reward=rejected_reward,
            chosen_logp=values["chosen_logp"] / n_c if n_c else None,
            rejected_logp=values["rejected_logp"] / n_r if n_r else None,
            units=int(values["units"]),
        )
        self.emit(metrics)
        return values

    def window_metrics(self, step: int) -> None:
        stats = self.window
        if self.world > 1:
            stats = self.accelerator.reduce(stats, "sum")
        self._emit_stats(step, "train", stats)
        self.window = self._zero_stats()

    def evaluate(self) -> float | None:
        """The held-out metrics; KTO's reference point is the mean over all held-out answers (every
        process's share), so the figures do not depend on how the held-out set is batched."""
        import torch

        if not self.eval_batches:
            return None
        idx = [i for batch in self.eval_batches[self.rank :: self.world] for i in batch]
        logps = self._unit_logps(self.eval_enc, idx, "eval")
        if self.world > 1:
            self.agree_on_memory("eval")
        if self.cfg.objective == "kto":
            ratios = logps[:, 1] - self.ref_eval[:, 1].index_select(0, self._where(idx))
            kl_sums = torch.stack(
                [
                    ratios.double().sum(),
                    torch.tensor(float(len(idx)), device=self.device, dtype=torch.float64),
                ]
            )
            if self.world > 1:
                kl_sums = self.accelerator.reduce(kl_sums, "sum")
            kl = (kl_sums[0] / kl_sums[1].clamp(min=1)).float().clamp(min=0)
            total = self._kto_losses(self.eval_enc, self.ref_eval, idx, logps[:, 0], kl)[1]
        else:
            total = self._dpo_losses(self.eval_enc, self.ref_eval, idx, logps)[1]
        if self.world > 1:
            total = self.accelerator.reduce(total, "sum")
        values = self._emit_stats(self.state.step, "eval", total)
        if not values["units"]:
            return None
        loss = values["loss"] / values["units"]
        self.state.eval_loss = loss
        self.emit(EvalMetrics(self.state.step, loss, int(values["units"])))
        return loss


RUN_CLASSES.update(dpo=PreferenceRun, kto=PreferenceRun)
