"""Calibrated label scores: how likely a model finds each label as the answer.

For a prompt and a label set, each label is written as the assistant's answer
through the chat template (``encode_conversation``), and its score is the
log-likelihood of the tokens the answer adds (the label's tokens and the
end-of-turn token, exactly the tokens training takes loss on: "billing" and
then the end, so a label that is the start of another is not favoured). A
softmax over the label set turns the scores into probabilities.

One forward pass per example scores its whole label set: the label rows are
padded on the left into one batch, so every row's answer sits at the end and
the output layer is applied only to the last few positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ftstudio.engine.tokenize import IGNORE_INDEX, encode_conversation

if TYPE_CHECKING:
    from ftstudio.engine.inference import Generator


def softmax(logps: Sequence[float]) -> list[float]:
    top = max(logps)
    exps = [math.exp(x - top) for x in logps]
    total = sum(exps)
    return [e / total for e in exps]


def label_rows(
    tokenizer: Any, prompt: Sequence[dict[str, Any]], labels: Sequence[str]
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of the prompt answered with each label in turn."""
    messages = list(prompt)
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    out = []
    for label in labels:
        enc = encode_conversation(tokenizer, [*messages, {"role": "assistant", "content": label}])
        # Only the final answer is scored; earlier answers (few-shot turns) are part of the prompt.
        last = max(i for i, t in enumerate(enc.labels) if t != IGNORE_INDEX)
        first = last
        while first - 1 >= 0 and enc.labels[first - 1] != IGNORE_INDEX:
            first -= 1
        targets = (
            [IGNORE_INDEX] * first
            + enc.labels[first : last + 1]
            + [IGNORE_INDEX] * (len(enc.labels) - last - 1)
        )
        out.append((list(enc.input_ids), targets))
    return out


def score_labels(
    generator: Generator,
    prompts: Sequence[Sequence[dict[str, Any]]],
    labels: Sequence[str],
    model: str | None = None,
    on_scored: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[list[float] | None]:
    """For each prompt, the probability of each label (in ``labels``' order); None for one not reached."""
    import torch

    out: list[list[float] | None] = [None] * len(prompts)
    if not labels:
        return out
    tok = generator.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else generator.stop_token_ids[0]
    with generator.use(model) as net, torch.no_grad():
        for n, prompt in enumerate(prompts):
            if should_stop is not None and should_stop():
                break
            rows = label_rows(tok, prompt, labels)
            width = max(len(ids) for ids, _t in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
            for r, (row_ids, row_targets) in enumerate(rows):
                ids[r, width - len(row_ids) :] = torch.tensor(row_ids)
                mask[r, width - len(row_ids) :] = 1
                targets[r, width - len(row_ids) :] = torch.tensor(row_targets)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            # Token t is predicted at position t - 1: logits from the first scored token's position on.
            scored = (targets != IGNORE_INDEX).any(0).nonzero()
            keep = width - int(scored.min()) + 1
            logits = net(
                input_ids=ids.to(generator.device),
                attention_mask=mask.to(generator.device),
                position_ids=positions.to(generator.device),
                logits_to_keep=keep,
                use_cache=False,
            ).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)  # predictions of the last keep - 1 tokens
            tail = targets[:, width - keep + 1 :].to(logp.device)
            picked = logp.gather(-1, tail.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            sums = (picked * (tail != IGNORE_INDEX)).sum(-1).tolist()
            out[n] = softmax([float(s) for s in sums])
            if on_scored is not None:
                on_scored(n)
    return out
