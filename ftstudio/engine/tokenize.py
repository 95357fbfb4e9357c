"""Turning conversations into token ids with loss masks, through the
tokenizer's own chat template.

Templates rarely mark the assistant's tokens (``{% generation %}``), so the
mask comes from rendering growing prefixes: the tokens an assistant turn adds
after the generation prompt are the ones that carry loss. For templates
whose prefixes do not tokenise as prefixes of the whole (templates that
rewrite earlier turns, strip reasoning from past answers, or move the system
prompt), the character offsets of each answer in the whole rendering decide
instead.

Both paths train the same thing for a turn: what the template writes for the
answer (with any reasoning block it adds before it), and the turn's
end-of-turn token. Without that token in the loss a model never learns to
stop. Template text after the end-of-turn token (a newline, the next turn's
header, a trailing end-of-text) carries no loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftstudio.core.validation import TokenCount

IGNORE_INDEX = -100

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss is taken
    truncated: bool = False
    # Indexes (into the messages) of assistant turns the template ends with no
    # end-of-turn token: a model trained on them does not learn to stop.
    unended_turns: tuple[int, ...] = ()

    @property
    def loss_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def _render_ids(tokenizer: Any, messages: Messages, add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True
    )
    return list(out["input_ids"])


def _render_text(tokenizer: Any, messages: Messages, add_generation_prompt: bool) -> str:
    return str(
        tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
    )


def special_token_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokenizer's special tokens (bos/eos/pad and the added tokens marked special):
    the end-of-turn markers of every chat template are among them."""
    ids = set(getattr(tokenizer, "all_special_ids", None) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(i for i, token in decoder.items() if getattr(token, "special", False))
    return ids


def _turn_end(tokenizer: Any, ids: list[int], start: int, end: int, special: set[int]) -> tuple[int, bool]:
    """Where the trained tokens of one assistant turn stop, and whether the turn has an end-of-turn token.

    ``ids[start:end]`` is the turn as the template wrote it. Its closing run is
    the trailing tokens that are special or whitespace; the turn is trained
    through the first special token of that run (``<|im_end|>`` of
    ``<|im_end|>\\n``, ``<|end|>`` of ``<|end|>\\n<|endoftext|>``). With no
    special token there, the answer is trained without its trailing whitespace
    and the turn is reported as having no end-of-turn token."""
    run = end
    while run > start and (ids[run - 1] in special or not tokenizer.decode([ids[run - 1]]).strip()):
        run -= 1
    for t in range(run, end):
        if ids[t] in special:
            return t + 1, True
    return (run if run > start else end), False


def encode_conversation(tokenizer: Any, messages: Messages, train_on: str = "assistant") -> EncodedExample:
    """Token ids and labels for one conversation (system prompt, if any, first)."""
    full = _render_ids(tokenizer, messages, add_generation_prompt=False)
    if train_on == "all":
        return EncodedExample(full, list(full))
    by_prefixes = _encode_by_prefixes(tokenizer, messages, full)
    return by_prefixes if by_prefixes is not None else _encode_by_offsets(tokenizer, messages)


def _encode_by_prefixes(tokenizer: Any, messages: Messages, full: list[int]) -> EncodedExample | None:
    """Labels from rendering growing prefixes; None when the template's prefixes are not
    token prefixes of the whole conversation (then the offsets decide)."""
    special = special_token_ids(tokenizer)
    labels = [IGNORE_INDEX] * len(full)
    unended: list[int] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = _render_ids(tokenizer, messages[:i], add_generation_prompt=True)
        turn = _render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False)
        # Both must hold: the turn is where it is in the whole, and the generation
        # prompt is where the turn starts (a prompt that opens a reasoning block the
        # rendered turn leaves out would otherwise hide the answer's first tokens).
        if full[: len(turn)] != turn or turn[: len(prompt)] != prompt:
            return None
        start = len(prompt)
        if start >= len(turn):
            continue
        end, ended = _turn_end(tokenizer, full, start, len(turn), special)
        labels[start:end] = full[start:end]
        if not ended:
            unended.append(i)
    return EncodedExample(full, labels, unended_turns=tuple(unended))


def _answer_forms(content: str) -> list[str]:
    """The ways a template may write an answer, longest first: as it is, trimmed, and
    (for templates that drop reasoning from past answers) the part after ``</think>``."""
    forms = [content, content.strip()]
    if "</think>" in content:
        tail = content.split("</think>")[-1]
        forms += [tail, tail.lstrip("\n"), tail.strip()]
    seen: list[str] = []
    for form in forms:
        if form and form not in seen:
            seen.append(form)
    return seen


def _find_first(text: str, candidates: list[str], start: int, stop: int) -> tuple[int, str]:
    for candidate in candidates:
        at = text.find(candidate, start, stop)
        if at >= 0:
            return at, candidate
    return -1, ""


def _how_turn_is_written(
    tokenizer: Any, messages: Messages, i: int, forms: list[str]
) -> tuple[str, str, str]:
    """(lead, answer, closing) of assistant turn ``i`` rendered as the last turn: the text the
    template writes between the generation prompt and the answer (a reasoning block, a
    space), the form of the answer it writes, and everything after the answer."""
    rendered = _render_text(tokenizer, messages[: i + 1], add_generation_prompt=False)
    prompt = _render_text(tokenizer, messages[:i], add_generation_prompt=True)
    turn_from = len(prompt) if rendered.startswith(prompt) else None
    for form in forms:
        at = rendered.rfind(form, turn_from or 0)
        if at >= 0:
            lead = rendered[turn_from:at] if turn_from is not None else ""
            return lead, form, rendered[at + len(form) :]
    return "", "", ""


def _encode_by_offsets(tokenizer: Any, messages: Messages) -> EncodedExample:
    """Labels from where each answer sits in the whole rendering.

    Each answer is looked for after the user turn before it (system prompts are
    not looked for: templates move them, into the first or the last user turn),
    and before the user turn after it where possible, so an answer that also
    appears in a later turn is not taken from there. Its span runs on through
    as much of its closing (seen when the turn is rendered last) as the whole
    rendering repeats, and ends at the end-of-turn token as on the prefix path."""
    text = _render_text(tokenizer, messages, add_generation_prompt=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
    special = special_token_ids(tokenizer)
    labels = [IGNORE_INDEX] * len(ids)
    unended: list[int] = []
    cursor = 0
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content") or ""
        if role == "user" and isinstance(content, str):
            at, form = _find_first(text, _answer_forms(content), cursor, len(text))
            if at >= 0:
                cursor = at + len(form)
            continue
        if role != "assistant" or not isinstance(content, str):
            continue
        forms = _answer_forms(content)
        if not forms:
            continue
        lead, written, closing = _how_turn_is_written(tokenizer, messages, i, forms)
        bound = len(text)
        following = next((m for m in messages[i + 1 :] if m.get("role") == "user"), None)
        if following is not None and isinstance(following.get("content"), str):
            next_at, _ = _find_first(text, _answer_forms(following["content"]), cursor, len(text))
            bound = next_at if next_at >= 0 else bound
        with_lead = [lead + written] if lead and written else []
        at, found = -1, ""
        for stop in (bound, len(text)):
            at, found = _find_first(text, with_lead + forms, cursor, stop)
            if at >= 0:
                break
        if at < 0:
            continue  # the template does not write this answer at all
        span_end = at + len(found)
        while (
            span_end - at - len(found) < len(closing)
            and span_end < len(text)
            and text[span_end] == closing[span_end - at - len(found)]
        ):
            span_end += 1
        cursor = span_end
        # The turn's tokens: every token with a character in the answer (a token may
        # start with the template's space before it), none that runs past the closing.
        first = next((t for t, (a, b) in enumerate(offsets) if b > at and b > a), len(ids))
        last = first
        while last < len(ids) and offsets[last][1] <= span_end:
            last += 1
        if last <= first:
            continue
        end, ended = _turn_end(tokenizer, ids, first, last, special)
        labels[first:end] = ids[first:end]
        if not ended:
            unended.append(i)
    return EncodedExample(ids, labels, unended_turns=tuple(unended))


def token_count(tokenizer: Any, messages: Messages) -> TokenCount:
    """The conversation's length in tokens and its answers without an end-of-turn token,
    for the checks before training (``core.validation``)."""
    encoded = encode_conversation(tokenizer, messages)
    return TokenCount(len(encoded.input_ids), encoded.unended_turns)


def fit_length(example: EncodedExample, max_length: int, overlength: str) -> EncodedExample | None:
    """The example within ``max_length`` tokens: as it is, truncated, or None (dropped).

    A truncated example that keeps no loss tokens is dropped too: it would
    teach nothing.
    """
    if len(example.input_ids) <= max_length:
        return example
    if overlength != "truncate":
        return None
    cut = EncodedExample(
        example.input_ids[:max_length],
        example.labels[:max_length],
        truncated=True,
        unended_turns=example.unended_turns,
    )
    return cut if cut.loss_tokens > 0 else None


def encode_prompt(tokenizer: Any, messages: Messages) -> list[int]:
    """Token ids that ask the model for the next assistant turn."""
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return _render_ids(tokenizer, messages, add_generation_prompt=True)
