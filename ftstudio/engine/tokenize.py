"""Turning conversations into token ids with loss masks, through the
tokenizer's own chat template.

Templates rarely mark the assistant's tokens (``{% generation %}``), so the
mask comes from rendering growing prefixes: the tokens an assistant turn adds
after the generation prompt are the ones that carry loss. For templates
whose prefixes do not tokenise as prefixes of the whole, the character
offsets of the assistant text decide instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss is taken
    truncated: bool = False

    @property
    def loss_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def _render_ids(tokenizer: Any, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True
    )
    return list(out["input_ids"])


def encode_conversation(tokenizer: Any, messages: list[dict], train_on: str = "assistant") -> EncodedExample:
    """Token ids and labels for one conversation (system prompt, if any, first)."""
    full = _render_ids(tokenizer, messages, add_generation_prompt=False)
    if train_on == "all":
        return EncodedExample(full, list(full))
    labels = [IGNORE_INDEX] * len(full)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start = len(_render_ids(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(_render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False))
        prefix_ok = full[:end] == _render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not prefix_ok or start > end:
            return _encode_by_offsets(tokenizer, messages)
        for t in range(start, min(end, len(full))):
            labels[t] = full[t]
        # Trailing whitespace after the end-of-turn token belongs to the template,
        # not the answer: leave it out of the loss.
        while end - 1 > start and not tokenizer.decode([full[end - 1]]).strip():
            end -= 1
            labels[end] = IGNORE_INDEX
    return EncodedExample(full, labels)


def _encode_by_offsets(tokenizer: Any, messages: list[dict]) -> EncodedExample:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = []
    cursor = 0
    for message in messages:
        content = message.get("content") or ""
        at = text.find(content, cursor) if content else -1
        if at >= 0:
            if message.get("role") == "assistant":
                spans.append((at, at + len(content)))
            cursor = at + len(content)
    labels = [
        tok if any(s <= a < e for s, e in spans) else IGNORE_INDEX
        for tok, (a, _b) in zip(enc["input_ids"], enc["offset_mapping"])
    ]
    return EncodedExample(list(enc["input_ids"]), labels)


def fit_length(example: EncodedExample, max_length: int, overlength: str) -> EncodedExample | None:
    """The example within ``max_length`` tokens: as it is, truncated, or None (dropped).

    A truncated example that keeps no loss tokens is dropped too: it would
    teach nothing.
    """
    if len(example.input_ids) <= max_length:
        return example
    if overlength != "truncate":
        return None
    cut = EncodedExample(example.input_ids[:max_length], example.labels[:max_length], truncated=True)
    return cut if cut.loss_tokens > 0 else None


def encode_prompt(tokenizer: Any, messages: list[dict]) -> list[int]:
    """Token ids that ask the model for the next assistant turn."""
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return _render_ids(tokenizer, messages, add_generation_prompt=True)
