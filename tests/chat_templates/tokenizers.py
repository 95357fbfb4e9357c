"""Small tokenizers for the chat-template fixtures in this folder, built here
with the ``tokenizers`` library (nothing downloaded).

Each family's tokenizer knows the family's special tokens as the real one
does (bos, eos, the turn markers), so they tokenise as single tokens and
count as special; the rest is a byte-level BPE trained on the fixtures' own
text, which gives multi-character tokens with real offsets, including tokens
that begin with a space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Family:
    template: str  # file name stem in this folder
    end_of_turn: str  # the token that closes an assistant turn
    special: tuple[str, ...]  # every special token, end of turn included
    bos: str | None = None
    eos: str | None = None
    plain_added: tuple[str, ...] = field(default=())  # added tokens that are not special (<think>)


FAMILIES: dict[str, Family] = {
    "llama3": Family(
        "llama3",
        "<|eot_id|>",
        ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
    ),
    "qwen2_5": Family(
        "qwen2_5", "<|im_end|>", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), eos="<|im_end|>"
    ),
    "qwen3": Family(
        "qwen3",
        "<|im_end|>",
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        eos="<|im_end|>",
        plain_added=("<think>", "</think>"),
    ),
    "gemma2": Family(
        "gemma2",
        "<end_of_turn>",
        ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
        bos="<bos>",
        eos="<eos>",
    ),
    "gemma3": Family(
        "gemma3",
        "<end_of_turn>",
        ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
        bos="<bos>",
        eos="<eos>",
    ),
    "mistral_v0_3": Family(
        "mistral_v0_3", "</s>", ("<s>", "</s>", "[INST]", "[/INST]"), bos="<s>", eos="</s>"
    ),
    "mistral_nemo": Family(
        "mistral_nemo", "</s>", ("<s>", "</s>", "[INST]", "[/INST]"), bos="<s>", eos="</s>"
    ),
    "phi3": Family(
        "phi3",
        "<|end|>",
        ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
        eos="<|endoftext|>",
    ),
    "phi4": Family(
        "phi4", "<|im_end|>", ("<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>"), eos="<|im_end|>"
    ),
    "smollm2": Family(
        "smollm2",
        "<|im_end|>",
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        bos="<|im_start|>",
        eos="<|im_end|>",
    ),
    "deepseek_r1_distill": Family(
        "deepseek_r1_distill",
        "<｜end▁of▁sentence｜>",
        ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"),
        bos="<｜begin▁of▁sentence｜>",
        eos="<｜end▁of▁sentence｜>",
        plain_added=("<think>", "</think>"),
    ),
    # No end-of-turn token at all: answers run straight into the next turn.
    "no_end_of_turn": Family("no_end_of_turn", "", ("<|endoftext|>",), eos="<|endoftext|>"),
}

TRAINING_TEXT = [
    "My card was charged twice",
    "And the app crashes",
    "Billing or technical? The app crashes",
    "billing",
    "technical",
    "Classify the ticket.",
    "Classify.",
    "You are a helpful assistant",
    "The same charge appears twice, so this is about money.",
    "Crashes are a technical problem.",
    "Cutting Knowledge Date: December 2023",
    "Today Date: 26 Jul 2024",
    "system user assistant model",
]


def template_text(name: str) -> str:
    return (HERE / f"{FAMILIES[name].template}.jinja").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def build_tokenizer(name: str):
    """A ``PreTrainedTokenizerFast`` with the family's chat template and special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AddedToken, PreTrainedTokenizerFast

    family = FAMILIES[name]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(family.special),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=family.bos, eos_token=family.eos, chat_template=template_text(name)
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [t for t in family.special if t not in (family.bos, family.eos)]}
    )
    if family.plain_added:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.plain_added])
    return tokenizer
