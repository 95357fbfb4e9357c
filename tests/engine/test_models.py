"""Finding models: the bundled model's cached conversion, local folders, the
local Hugging Face cache, and clear refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from ftstudio.core.config import BUNDLED_MODEL
from ftstudio.engine.models import ModelError, available_models, hf_cache_models, load_tokenizer, resolve_model


def test_bundled_model_is_a_cached_safetensors_folder_with_chat_template(bundled_dir):
    assert (bundled_dir / "model.safetensors").exists()
    assert resolve_model(BUNDLED_MODEL) == bundled_dir
    tokenizer = load_tokenizer(bundled_dir)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    config = json.loads((bundled_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30


@pytest.mark.slow
def test_bundled_model_answers_sensibly(bundled_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(bundled_dir)
    tokenizer = load_tokenizer(bundled_dir)
    enc = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, enc["input_ids"].shape[1]:])


def test_local_folder_checks(tmp_path, tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(empty))
    no_weights = tmp_path / "bin-only"
    no_weights.mkdir()
    shutil.copy(tiny_model_dir / "config.json", no_weights / "config.json")
    (no_weights / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="safetensors"):
        resolve_model(str(no_weights))
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))


def test_hub_id_is_never_downloaded_unless_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        resolve_model("someone/some-model")


def test_models_in_the_hugging_face_cache_are_listed_and_resolved(monkeypatch, tmp_path, tiny_model_dir):
    import huggingface_hub.constants as hc

    hub = tmp_path / "hub"
    snapshot = hub / "models--acme--tiny-chat" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for f in tiny_model_dir.iterdir():
        shutil.copy(f, snapshot / f.name)
    (hub / "models--acme--tiny-chat" / "refs").mkdir()
    (hub / "models--acme--tiny-chat" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hub))
    listed = hf_cache_models()
    assert [c.spec for c in listed] == ["acme/tiny-chat"]
    assert available_models()[0].spec == BUNDLED_MODEL
    assert resolve_model("acme/tiny-chat") == snapshot
