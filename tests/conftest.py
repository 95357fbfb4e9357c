"""Fixtures shared by every test folder.

- ``tiny_model_dir``: a randomly initialised Llama with two layers, built from
  a config and saved with the bundled model's tokenizer and chat template, so
  engine tests run in seconds.
- ``bundled_dir``: the real bundled model (converted once into the user's
  cache), for the few tests that must show real learning.
- ``project``: a fresh project folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    from ftstudio.engine.models import bundled_model_dir

    return bundled_model_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_dir) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftstudio.engine.models import load_tokenizer

    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = load_tokenizer(bundled_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def project(tmp_path):
    from ftstudio.core.project import Project

    p = Project.create(tmp_path / "test.ftstudio")
    yield p
    p.close()
