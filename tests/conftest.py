"""Fixtures shared by every test folder.

- ``tiny_model_dir``: a randomly initialised Llama with two layers, built from
  a config and saved with the bundled model's tokenizer and chat template, so
  engine tests run in seconds.
- ``small_vocab_model_dir``: the same on a 1,024-token cut of that tokenizer, for tests whose
  cost is the vocabulary (GGUF export).
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

# Parallel workers (pytest-xdist, ``-n auto``) share the cores: each gets its share of torch's
# threads, or two workers on two cores would run four busy threads and thrash. Set before torch
# loads; the engine sizes a training run's threads by the same variable (core.machine.usable_cores),
# and the subprocesses some tests start inherit it.
MAX_WORKERS = 4  # each worker may hold the bundled model and a training run in memory
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
if _workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    from ftstudio.core.machine import usable_cores

    os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // _workers))


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per usable core, at most MAX_WORKERS."""
    from ftstudio.core.machine import usable_cores

    return min(MAX_WORKERS, usable_cores())


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    from ftstudio.engine.models import bundled_model_dir

    return bundled_model_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_dir) -> Path:
    return _tiny_llama(tmp_path_factory.mktemp("tiny-model"), bundled_dir)


SMALL_VOCAB = 1024


@pytest.fixture(scope="session")
def small_vocab_tokenizer_dir(tmp_path_factory, bundled_dir) -> Path:
    """The bundled tokenizer cut to its first SMALL_VOCAB tokens: the special tokens, the 256 byte
    tokens and the first merges (a merge whose parts or result fall outside is dropped). Still a
    whole byte-level BPE that writes any text, with the same special tokens and chat template,
    but its vocabulary is 48 times smaller to write and read back (GGUF metadata is read one
    entry at a time)."""
    import json
    import shutil

    out = tmp_path_factory.mktemp("small-vocab-tokenizer")
    spec = json.loads((bundled_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = {token: i for token, i in spec["model"]["vocab"].items() if i < SMALL_VOCAB}
    spec["model"]["vocab"] = vocab
    spec["model"]["merges"] = [
        m for m in spec["model"]["merges"] if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab
    ]
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        if (bundled_dir / name).exists():
            shutil.copy(bundled_dir / name, out / name)
    return out


@pytest.fixture(scope="session")
def small_vocab_model_dir(tmp_path_factory, small_vocab_tokenizer_dir) -> Path:
    """``tiny_model_dir`` on the small-vocabulary tokenizer: for tests whose cost is the vocabulary
    (GGUF files carry it whole), not what the model says."""
    return _tiny_llama(tmp_path_factory.mktemp("small-vocab-model"), small_vocab_tokenizer_dir)


def _tiny_llama(out: Path, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftstudio.engine.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
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


def make_lora_adapter(model_dir, out, seed: int, rank: int = 4, target_modules="all-linear",
                      b_scale: float | None = None) -> Path:
    """A LoRA adapter with random, non-zero weights (so it changes the answers), saved as PEFT writes it.

    With ``b_scale`` the B matrices are drawn from N(0, b_scale^2) (a mild
    change for a real model); without it every add-on weight is scaled up 8x
    (strong enough that greedy answers change on a random tiny model).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    alpha = 2 * rank if b_scale is not None else 4 * rank
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=target_modules, init_lora_weights=False,
                        task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if b_scale is not None and "lora_B" in name:
                p.copy_(torch.randn_like(p) * b_scale)
            elif b_scale is None and "lora_" in name:
                p.mul_(8.0)
    model.save_pretrained(str(out), safe_serialization=True)
    return Path(out)


@pytest.fixture(scope="session")
def lora_adapter():
    """lora_adapter(model_dir, out, seed, rank=4) writes a random non-zero LoRA adapter folder."""
    return make_lora_adapter


@pytest.fixture
def project(tmp_path):
    from ftstudio.core.project import Project

    p = Project.create(tmp_path / "test.ftstudio")
    yield p
    p.close()
