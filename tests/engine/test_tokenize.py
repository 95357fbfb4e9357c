"""Loss masks from the chat template: only the assistant's tokens carry loss."""

from ftstudio.engine.models import load_tokenizer
from ftstudio.engine.tokenize import IGNORE_INDEX, encode_conversation, encode_prompt, fit_length

CONV = [
    {"role": "system", "content": "Classify."},
    {"role": "user", "content": "My card was charged twice"},
    {"role": "assistant", "content": "billing"},
    {"role": "user", "content": "And the app crashes"},
    {"role": "assistant", "content": "technical"},
]


def _trained_text(tokenizer, enc):
    return tokenizer.decode([t for t in enc.labels if t != IGNORE_INDEX])


def test_only_assistant_turns_and_their_end_token_carry_loss(bundled_dir):
    tok = load_tokenizer(bundled_dir)
    enc = encode_conversation(tok, CONV)
    assert enc.input_ids == tok.apply_chat_template(CONV, tokenize=True, return_dict=True)["input_ids"]
    assert _trained_text(tok, enc) == "billing<|im_end|>technical<|im_end|>"
    # labels line up with the ids they predict (the shift happens in the loss)
    for i, t in zip(enc.input_ids, enc.labels):
        assert t in (IGNORE_INDEX, i)


def test_train_on_all(bundled_dir):
    tok = load_tokenizer(bundled_dir)
    enc = encode_conversation(tok, CONV, train_on="all")
    assert enc.labels == enc.input_ids


def test_offsets_path_gives_the_prefix_paths_labels(bundled_dir):
    from ftstudio.engine.tokenize import _encode_by_offsets, _encode_by_prefixes

    tok = load_tokenizer(bundled_dir)
    full = tok.apply_chat_template(CONV, tokenize=True, return_dict=True)["input_ids"]
    by_prefixes = _encode_by_prefixes(tok, CONV, full)
    by_offsets = _encode_by_offsets(tok, CONV)
    assert by_prefixes is not None  # the bundled template takes the prefix path
    assert by_offsets.input_ids == by_prefixes.input_ids
    assert by_offsets.labels == by_prefixes.labels
    assert _trained_text(tok, by_offsets) == "billing<|im_end|>technical<|im_end|>"


def test_fit_length_drops_or_truncates(bundled_dir):
    tok = load_tokenizer(bundled_dir)
    enc = encode_conversation(tok, CONV)
    n = len(enc.input_ids)
    assert fit_length(enc, n, "drop") is enc
    assert fit_length(enc, n - 1, "drop") is None
    cut = fit_length(enc, n - 3, "truncate")
    assert cut.truncated and len(cut.input_ids) == n - 3 and cut.loss_tokens > 0
    # truncated before any answer: nothing to learn, dropped
    assert fit_length(enc, 10, "truncate") is None


def test_prompt_ends_with_generation_header(bundled_dir):
    tok = load_tokenizer(bundled_dir)
    ids = encode_prompt(tok, CONV[:3])
    assert tok.decode(ids).endswith("My card was charged twice<|im_end|>\n<|im_start|>assistant\n")
