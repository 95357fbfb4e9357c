"""Greedy answers for many prompts at once: left padding, one KV cache per batch.

``generate_batch`` takes (conversation, model) requests, sorts them by prompt
length so a batch wastes little on padding, pads each batch on the left (so
every row's next token comes from the same last position) and runs one
``generate`` over it. Rows for different adapters share a batch through
PEFT's ``adapter_names`` (each LoRA layer applies each row's own adapter; the
base model's rows use none). Pieces of every row stream through
``on_piece(index, text)`` as they come, so the Compare page fills each column
as before.

Running out of memory in a batch halves the batch size and answers that
batch again (and the rest at the new size), down to one prompt at a time;
what was already streamed of a redone row is not streamed twice.

Only greedy decoding is batched: a sample drawn in a batch takes different
random numbers than the same prompt drawn alone, and the Compare page promises
that one seed gives one sample whatever else is asked. Sampled requests are
answered one at a time through ``Generator.generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ftstudio.engine.device import fitting_pieces
from ftstudio.engine.inference import BASE, Generator, SamplingSettings

# PEFT's name for "no adapter" in a mixed batch.
PEFT_BASE = "__base__"


@dataclass(frozen=True)
class Request:
    """One answer to generate: ``messages`` up to the user turn, by ``model`` (None or "base": no adapter)."""

    messages: Sequence[dict[str, Any]]
    model: str | None = None


def default_batch_size(device: str) -> int:
    """Rows per batch: enough to keep a GPU busy; on a CPU past 16 the matrix products stop getting cheaper."""
    return 64 if device == "cuda" else 16


class BatchStreamer:
    """Receives one token per row per step from ``generate`` and hands out each row's text as it is whole.

    A row ends at its first stop token; what ``generate`` appends after that
    (padding, while other rows go on) is not part of its answer.
    """

    def __init__(
        self,
        tokenizer: Any,
        rows: Sequence[int],
        stop_ids: Sequence[int],
        on_piece: Callable[[int, str], None] | None,
    ) -> None:
        self.tokenizer = tokenizer
        self.rows = list(rows)  # the request index of each batch row
        self.stop_ids = set(int(t) for t in stop_ids)
        self.on_piece = on_piece
        self.ids: list[list[int]] = [[] for _ in self.rows]
        self.sent = [""] * len(self.rows)
        self.done = [False] * len(self.rows)
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() hands the prompts over first
            self._prompt_seen = True
            return
        tokens = value.reshape(len(self.rows), -1).tolist()
        for r, row_tokens in enumerate(tokens):
            for t in row_tokens:
                if self.done[r]:
                    break
                if int(t) in self.stop_ids:
                    self.done[r] = True
                    break
                self.ids[r].append(int(t))
            self._flush(r, final=False)

    def end(self) -> None:
        for r in range(len(self.rows)):
            self._flush(r, final=True)

    def _flush(self, r: int, final: bool) -> None:
        text = self.tokenizer.decode(self.ids[r], skip_special_tokens=True)
        # A multi-byte character split over two tokens decodes as U+FFFD until its second half comes.
        if not final and text.endswith("\ufffd"):
            return
        if text.startswith(self.sent[r]) and len(text) > len(self.sent[r]):
            piece, self.sent[r] = text[len(self.sent[r]) :], text
            if self.on_piece is not None:
                self.on_piece(self.rows[r], piece)

    def answer(self, r: int) -> str:
        return str(self.tokenizer.decode(self.ids[r], skip_special_tokens=True)).strip()


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """(input ids, attention mask), every row padded on the left to the longest."""
    width = max(len(r) for r in rows)
    ids = [[pad_id] * (width - len(r)) + list(r) for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return ids, mask


def _batches(
    order: list[int], lengths: list[int], models: list[str | None], batch_size: int, mixed: bool
) -> list[list[int]]:
    """Request indices in batches of at most ``batch_size``, similar prompt lengths together.

    Without ``mixed`` (PEFT cannot put several adapters in one batch) a batch
    holds one model's rows only.
    """
    if mixed:
        groups = [order]
    else:
        by_model: dict[str | None, list[int]] = {}
        for i in order:
            by_model.setdefault(models[i], []).append(i)
        groups = list(by_model.values())
    out: list[list[int]] = []
    for group in groups:
        group = sorted(group, key=lambda i: lengths[i])
        out.extend(group[k : k + batch_size] for k in range(0, len(group), batch_size))
    return out


class _StreamedOnce:
    """Passes each request's streamed text on once: a batch answered again after running
    out of memory streams its rows from the start, and only what goes beyond the text
    already passed on is new (greedy answers are the same in any batch)."""

    def __init__(self, on_piece: Callable[[int, str], None]) -> None:
        self.on_piece = on_piece
        self.sent: dict[int, str] = {}
        self.seen: dict[int, str] = {}

    def redo(self, batch: list[int]) -> None:
        for i in batch:
            self.seen[i] = ""

    def __call__(self, index: int, piece: str) -> None:
        seen = self.seen.get(index, "") + piece
        self.seen[index] = seen
        sent = self.sent.get(index, "")
        if len(seen) > len(sent):
            self.sent[index] = seen
            self.on_piece(index, seen[len(sent) :])


def _row_callback(on_piece: Callable[[int, str], None] | None, index: int) -> Callable[[str], None] | None:
    if on_piece is None:
        return None
    return lambda text: on_piece(index, text)


def _batch_callback(
    on_piece: Callable[[int, str], None] | None, batch: list[int]
) -> Callable[[int, str], None] | None:
    """Pieces of batch row r reported under their request's index."""
    if on_piece is None:
        return None
    return lambda r, text: on_piece(batch[r], text)


def generate_batch(
    generator: Generator,
    requests: Sequence[Request],
    settings: SamplingSettings | None = None,
    on_piece: Callable[[int, str], None] | None = None,
    on_answer: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int | None = None,
) -> list[str | None]:
    """Each request's answer, in the order asked (None for one not reached before a stop).

    ``on_piece(index, text)`` gets streamed pieces, ``on_answer(index, answer)``
    each finished answer (not one cut short by a stop).
    """
    settings = settings or SamplingSettings()
    answers: list[str | None] = [None] * len(requests)
    if not requests:
        return answers
    if not settings.greedy:
        for i, req in enumerate(requests):
            if should_stop is not None and should_stop():
                break
            answer = generator.generate(
                req.messages,
                model=req.model,
                settings=settings,
                on_token=_row_callback(on_piece, i),
                should_stop=should_stop,
            )
            if should_stop is not None and should_stop():
                break
            answers[i] = answer
            if on_answer is not None:
                on_answer(i, answer)
        return answers

    tok = generator.tokenizer
    prompts = [generator.prompt_ids(r.messages) for r in requests]
    models = [None if r.model in (None, BASE) else r.model for r in requests]
    for m in set(models) - {None}:
        if m not in generator.adapters:
            raise KeyError(f"No adapter named {m!r}; added: {', '.join(generator.adapters) or 'none'}")
    # PEFT serves several adapters in one batch only for adapters it can apply per row (LoRA, not merged).
    mixed = generator.has_adapters and len(set(models)) > 1
    size = batch_size or default_batch_size(generator.device)
    stop_ids = generator.stop_token_ids
    streamed = _StreamedOnce(on_piece) if on_piece is not None else None

    def answer_batch(batch: list[int]) -> list[str]:
        if should_stop is not None and should_stop():
            return []
        extra: dict[str, Any] = {}
        if mixed:
            extra["adapter_names"] = [PEFT_BASE if models[i] is None else models[i] for i in batch]
            use = generator.use_all()
        else:
            use = generator.use(models[batch[0]])
        with use as net:
            return greedy_generate(
                net,
                tok,
                [prompts[i] for i in batch],
                stop_ids,
                settings.max_new_tokens,
                on_piece=_batch_callback(streamed, batch),
                should_stop=should_stop,
                **extra,
            )

    def kv_tokens(batch: list[int]) -> int:
        return len(batch) * (max(len(prompts[i]) for i in batch) + settings.max_new_tokens)

    batches = _batches(list(range(len(requests))), [len(p) for p in prompts], models, size, mixed)

    def redo(before: int, after: int, failed: list[int]) -> None:
        if streamed is not None:
            streamed.redo(failed)

    # Out of memory halves the batch and answers it again, and the rest at the new size.
    for batch, out in fitting_pieces(batches, answer_batch, "generate", kv_tokens, on_halved=redo):
        if should_stop is not None and should_stop():
            break
        for i, answer in zip(batch, out):
            answers[i] = answer
            if on_answer is not None:
                on_answer(i, answer)
    return answers


def greedy_generate(
    net: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    stop_ids: Sequence[int],
    max_new_tokens: int,
    on_piece: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **extra: Any,
) -> list[str]:
    """One left-padded batch of prompt token ids through ``net.generate``, greedy, with its KV cache.

    Any causal LM will do (the training loop passes its model for its
    samples). ``on_piece(row, text)`` streams; ``extra`` goes to ``generate``
    (``adapter_names`` for a mixed batch).
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = bool(should_stop()) if should_stop is not None else False
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(stop_ids[0])
    device = next(net.parameters()).device
    ids, mask = left_pad(prompts, pad_id)
    streamer = BatchStreamer(tokenizer, range(len(prompts)), stop_ids, on_piece)
    with torch.no_grad():
        net.generate(
            input_ids=torch.tensor(ids, device=device),
            attention_mask=torch.tensor(mask, device=device),
            max_new_tokens=max_new_tokens,
            eos_token_id=list(stop_ids),
            pad_token_id=pad_id,
            streamer=streamer,
            use_cache=True,
            stopping_criteria=StoppingCriteriaList([_Stop()]),
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            **extra,
        )
    return [streamer.answer(r) for r in range(len(prompts))]
