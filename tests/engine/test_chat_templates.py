"""Loss masks under the chat templates of the model families users pick.

Each template is a fixture in tests/chat_templates/ with a tokenizer that
knows the family's special tokens. For every conversation the expected
trained text is written out here per family (what the template writes for
each answer, then its end-of-turn token); both masking paths must produce
exactly that, and where the prefix path applies the two paths' labels must
be identical.
"""

from __future__ import annotations

import pytest
from chat_templates.tokenizers import FAMILIES, build_tokenizer
from jinja2.exceptions import TemplateError

from ftstudio.engine.tokenize import (
    IGNORE_INDEX,
    _encode_by_offsets,
    _encode_by_prefixes,
    _render_ids,
    encode_conversation,
)

SYSTEM = {"role": "system", "content": "Classify the ticket."}
Q1 = {"role": "user", "content": "My card was charged twice"}
Q2 = {"role": "user", "content": "And the app crashes"}
# The answer's word is in the question: the search for the answer must not stop there.
Q_WITH_ANSWER = {"role": "user", "content": "Billing or technical? The app crashes"}


def answer(text: str) -> dict:
    return {"role": "assistant", "content": text}


REASONED_1 = "<think>\nThe same charge appears twice, so this is about money.\n</think>\n\nbilling"
REASONED_2 = "<think>\nCrashes are a technical problem.\n</think>\n\ntechnical"

CONVERSATIONS = {
    "one turn": [Q1, answer("billing")],
    "one turn with a system prompt": [SYSTEM, Q1, answer("billing")],
    "two turns": [Q1, answer("billing"), Q2, answer("technical")],
    "two turns with a system prompt": [SYSTEM, Q1, answer("billing"), Q2, answer("technical")],
    "the same answer twice": [SYSTEM, Q1, answer("billing"), Q2, answer("billing")],
    "the answer also in a question": [SYSTEM, Q1, answer("billing"), Q_WITH_ANSWER, answer("technical")],
}
REASONING = {
    "one turn with reasoning": [Q1, answer(REASONED_1)],
    "two turns with reasoning": [SYSTEM, Q1, answer(REASONED_1), Q2, answer(REASONED_2)],
}
REASONING_FAMILIES = ("qwen3", "deepseek_r1_distill")
TEMPLATE_FAMILIES = [name for name in FAMILIES if name != "no_end_of_turn"]

# Where the prefix path must apply (so that the two paths are compared, not
# just the fallback with itself): conversations whose every prefix renders as
# a token prefix of the whole under that template.
PREFIX_PATH_APPLIES = {
    "llama3": set(CONVERSATIONS),
    "qwen2_5": set(CONVERSATIONS),
    "gemma3": set(CONVERSATIONS),
    "phi4": set(CONVERSATIONS),
    "smollm2": set(CONVERSATIONS),
    "gemma2": {"one turn", "two turns"},
    "qwen3": {"one turn", "one turn with a system prompt", "one turn with reasoning"},
    "mistral_v0_3": {"one turn", "one turn with a system prompt", "two turns"},
    "mistral_nemo": {"one turn", "two turns"},
    "phi3": {"one turn", "one turn with a system prompt"},
    "deepseek_r1_distill": set(),  # its generation prompt opens a <think> block the answers do not have
}


def expected_trained_text(family: str, conversation: list[dict]) -> list[str]:
    """Each answer as the family's template writes it, then the end-of-turn token."""
    answers = [m["content"] for m in conversation if m["role"] == "assistant"]
    out = []
    for n, text in enumerate(answers):
        last = n == len(answers) - 1
        if family == "qwen3":
            # Only the answer after the last question keeps its reasoning; it gets an
            # empty <think> block when it has none. Earlier answers lose theirs.
            if "</think>" in text:
                text = text if last else text.split("</think>")[-1].lstrip("\n")
            elif last:
                text = "<think>\n\n</think>\n\n" + text
        elif family == "deepseek_r1_distill":
            text = text.split("</think>")[-1]  # reasoning dropped from every answer
        elif family == "mistral_v0_3":
            text = " " + text  # "[/INST] billing": the space before the answer is its first token's
        out.append(text + FAMILIES[family].end_of_turn)
    return out


def trained_spans(tokenizer, labels: list[int]) -> list[str]:
    spans, run = [], []
    for t in labels + [IGNORE_INDEX]:
        if t == IGNORE_INDEX:
            if run:
                spans.append(tokenizer.decode(run))
            run = []
        else:
            run.append(t)
    return spans


def cases():
    for family in TEMPLATE_FAMILIES:
        convs = dict(CONVERSATIONS)
        if family in REASONING_FAMILIES:
            convs.update(REASONING)
        for title in convs:
            yield pytest.param(family, title, convs[title], id=f"{family}-{title}")


@pytest.mark.parametrize("family, title, conversation", list(cases()))
def test_both_paths_train_each_answer_and_its_end_of_turn_token(family, title, conversation):
    tokenizer = build_tokenizer(family)
    if family == "gemma2" and conversation[0]["role"] == "system":
        with pytest.raises(TemplateError, match="System role not supported"):
            encode_conversation(tokenizer, conversation)
        return
    full = _render_ids(tokenizer, conversation, add_generation_prompt=False)
    by_offsets = _encode_by_offsets(tokenizer, conversation)
    by_prefixes = _encode_by_prefixes(tokenizer, conversation, full)
    expected = expected_trained_text(family, conversation)

    assert by_offsets.input_ids == full
    assert trained_spans(tokenizer, by_offsets.labels) == expected
    eot = tokenizer.convert_tokens_to_ids(FAMILIES[family].end_of_turn)
    ends = [
        i
        for i, t in enumerate(by_offsets.labels)
        if t != IGNORE_INDEX and (i + 1 == len(full) or by_offsets.labels[i + 1] == IGNORE_INDEX)
    ]
    assert [full[i] for i in ends] == [eot] * len(expected)
    assert by_offsets.unended_turns == ()

    assert (by_prefixes is not None) == (title in PREFIX_PATH_APPLIES[family])
    if by_prefixes is not None:
        assert by_prefixes.labels == by_offsets.labels
        assert by_prefixes.unended_turns == ()
    assert encode_conversation(tokenizer, conversation).labels == by_offsets.labels
    for token, label in zip(full, by_offsets.labels):
        assert label in (IGNORE_INDEX, token)


def test_a_template_without_end_of_turn_tokens_is_reported_turn_by_turn():
    tokenizer = build_tokenizer("no_end_of_turn")
    conversation = CONVERSATIONS["two turns with a system prompt"]
    encoded = encode_conversation(tokenizer, conversation)
    assert encoded.unended_turns == (2, 4)
    # the answers are still trained, without the newline the template puts after them
    assert [s.strip() for s in trained_spans(tokenizer, encoded.labels)] == ["billing", "technical"]
    assert all("\n" not in s for s in trained_spans(tokenizer, encoded.labels))


def test_the_bundled_template_is_the_smollm2_fixture(bundled_dir):
    from ftstudio.engine.models import load_tokenizer

    bundled = load_tokenizer(bundled_dir)
    fixture = build_tokenizer("smollm2")
    conversation = CONVERSATIONS["two turns with a system prompt"]
    assert bundled.apply_chat_template(conversation, tokenize=False) == fixture.apply_chat_template(
        conversation, tokenize=False
    )
