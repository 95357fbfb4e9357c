"""Generation through the base model and adapters switched on it: each column
is really the model it names (equal to plain transformers / plain PEFT),
streams, stops, and adapters are added once."""

from __future__ import annotations

import json

import pytest

from ftstudio.engine.inference import Generator, SamplingSettings, check_adapter_dir
from ftstudio.engine.models import ModelError

PROMPT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is my parcel?"}]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory, lora_adapter):
    root = tmp_path_factory.mktemp("adapters")
    return lora_adapter(tiny_model_dir, root / "a", seed=1), lora_adapter(tiny_model_dir, root / "b", seed=2)


@pytest.fixture(scope="module")
def generator(tiny_model_dir, adapters):
    g = Generator(str(tiny_model_dir), device="cpu")
    g.add_adapter("a", adapters[0])
    g.add_adapter("b", adapters[1])
    return g


def _plain_generate(model, tokenizer, max_new_tokens: int) -> str:
    import torch

    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, top_p=None, top_k=None,
                             temperature=None, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.slow
def test_each_column_is_the_model_it_names(generator, tiny_model_dir, adapters):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = SamplingSettings(max_new_tokens=12)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    answers = {name: generator.generate(PROMPT, model=name, settings=settings) for name in (None, "a", "b")}
    assert len(set(answers.values())) == 3, answers  # the adapters change what is said

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    assert answers[None] == _plain_generate(base, tokenizer, 12)
    for name, folder in zip(("a", "b"), adapters):
        fresh = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
        tuned = PeftModel.from_pretrained(fresh, str(folder)).eval()
        assert answers[name] == _plain_generate(tuned, tokenizer, 12), name
    # switching back and forth gives the same answers (nothing leaks between adapters)
    assert generator.generate(PROMPT, model="base", settings=settings) == answers[None]
    assert generator.generate(PROMPT, model="a", settings=settings) == answers["a"]


def test_logits_equal_plain_peft(generator, tiny_model_dir, adapters):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([generator.prompt_ids(PROMPT)])
    with generator.use("b") as net, torch.no_grad():
        ours = net(input_ids=ids).logits
    fresh = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(fresh, str(adapters[1])).eval()
    with torch.no_grad():
        theirs = tuned(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_streamed_pieces_make_the_answer_and_stop_works(generator):
    pieces: list[str] = []
    answer = generator.generate(PROMPT, model="a", settings=SamplingSettings(max_new_tokens=16),
                                on_token=pieces.append)
    assert len(pieces) > 1 and "".join(pieces).strip() == answer

    seen: list[str] = []
    short = generator.generate(PROMPT, model="a", settings=SamplingSettings(max_new_tokens=16),
                               on_token=seen.append, should_stop=lambda: len(seen) >= 2)
    assert len(seen) <= 3 and len(short) < len(answer)


@pytest.mark.slow
def test_sampling_is_repeatable_by_seed(generator):
    settings = SamplingSettings(temperature=1.5, top_p=0.95, max_new_tokens=12, seed=7)
    first = generator.generate(PROMPT, model="b", settings=settings)
    assert generator.generate(PROMPT, model="b", settings=settings) == first
    others = {generator.generate(PROMPT, model="b", settings=SamplingSettings(1.5, 0.95, 12, seed=s))
              for s in range(4)}
    assert len(others) > 1


def test_adapter_folder_checks(tmp_path, adapters, generator):
    assert check_adapter_dir(adapters[0]) is None
    assert "not a folder" in check_adapter_dir(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "adapter_config.json" in check_adapter_dir(empty)
    (empty / "adapter_config.json").write_text("{not json", encoding="utf-8")
    assert "cannot be read" in check_adapter_dir(empty)
    (empty / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}), encoding="utf-8")
    (empty / "adapter_model.bin").write_bytes(b"")
    assert "safetensors" in check_adapter_dir(empty)
    with pytest.raises(ModelError, match="adapter_config.json"):
        generator.add_adapter("broken", tmp_path)
    assert generator.adapters == ["a", "b"]


def test_an_adapter_for_another_base_is_refused_in_words(generator, tmp_path, bundled_dir, lora_adapter):
    other = lora_adapter(bundled_dir, tmp_path / "other", seed=3, rank=2)
    with pytest.raises(ModelError, match="trained on"):
        generator.add_adapter("other", other)


def test_bad_sampling_settings_say_which():
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingSettings(max_new_tokens=0)
