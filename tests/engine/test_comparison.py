"""ComparisonEngine and run_prompts on the tiny model with two LoRA adapters:
one base model load, adapters added once and switched, every answer equal to
plain PEFT's greedy answer, pieces streamed in order, stopping, and clear
words for adapters that cannot be used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ftstudio.core import ratings
from ftstudio.engine.comparison import (
    ComparisonEngine, ComparisonError, ModelRef, PromptItem, ref_for_key, run_prompts, settings_dict,
)
from ftstudio.engine.inference import SamplingSettings

PROMPTS = [
    PromptItem([{"role": "user", "content": "Name a colour."}]),
    PromptItem([{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Name a fruit."}]),
]
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=6, seed=0)


def plain_answer(base_dir: Path, adapter_dir: Path | None, messages, max_new_tokens: int) -> str:
    """Greedy answer from a freshly loaded base (plus PeftModel.from_pretrained), nothing of ours."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory, lora_adapter) -> list[Path]:
    root = tmp_path_factory.mktemp("tiny-adapters")
    targets = ["q_proj", "v_proj"]
    return [lora_adapter(tiny_model_dir, root / f"a{i}", seed=i, target_modules=targets, b_scale=0.5 + i)
            for i in (1, 2)]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    e = ComparisonEngine(str(tiny_model_dir), device="cpu")
    yield e
    e.close()


def _refs(tiny_model_dir, adapters) -> list[ModelRef]:
    base = ModelRef(ratings.base_key(str(tiny_model_dir)), "Base")
    return [base] + [ModelRef(ratings.adapter_key(a), f"A{i}", a) for i, a in enumerate(adapters)]


@pytest.mark.slow
def test_every_answer_is_the_named_model_s_and_streams(engine, tiny_model_dir, adapters):
    refs = _refs(tiny_model_dir, adapters)
    pieces: dict[tuple[int, str], list[str]] = {}
    outputs: list[tuple[int, str]] = []
    answers = run_prompts(engine, refs, PROMPTS, GREEDY,
                          on_piece=lambda i, k, t: pieces.setdefault((i, k), []).append(t),
                          on_output=lambda i, k, t: outputs.append((i, k)))
    # every prompt by every model, once (in the order the batch finishes them)
    assert sorted(outputs) == sorted((i, r.key) for i in range(len(PROMPTS)) for r in refs)
    generator = engine.generator
    assert len(generator.adapters) == 2
    for i, prompt in enumerate(PROMPTS):
        for ref in refs:
            expected = plain_answer(tiny_model_dir, ref.adapter_dir, prompt.messages, GREEDY.max_new_tokens)
            assert answers[i][ref.key] == expected, (i, ref.label)
            assert "".join(pieces[(i, ref.key)]).strip() == expected
    # the adapters change the answers, so the check above tells the columns apart
    assert len({tuple(a[r.key] for a in answers) for r in refs}) == 3

    # a second round loads nothing again
    run_prompts(engine, refs, PROMPTS[:1], GREEDY)
    assert engine.generator is generator and len(generator.adapters) == 2


def test_stop_keeps_finished_answers_only(engine, tiny_model_dir, adapters):
    refs = _refs(tiny_model_dir, adapters)
    done: list[tuple[int, str]] = []
    pieces: list[str] = []
    # stop once the batch has begun writing: nothing is finished, so nothing is kept
    answers = run_prompts(engine, refs, PROMPTS, GREEDY, on_piece=lambda i, k, t: pieces.append(t),
                          on_output=lambda i, k, t: done.append((i, k)), should_stop=lambda: bool(pieces))
    assert pieces and done == [] and answers == []
    # stop once an answer is out: the batch it came in is whole (as plain PEFT writes each answer)
    answers = run_prompts(engine, refs, PROMPTS, GREEDY, on_output=lambda i, k, t: done.append((i, k)),
                          should_stop=lambda: bool(done))
    assert len(done) == len(PROMPTS) * len(refs)  # one batch holds them all
    for i, prompt in enumerate(PROMPTS):
        for r in refs:
            assert answers[i][r.key] == plain_answer(tiny_model_dir, r.adapter_dir, prompt.messages,
                                                     GREEDY.max_new_tokens)


def test_unusable_adapters_are_told_in_words(engine, tiny_model_dir, tmp_path, bundled_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ComparisonError, match="adapter_config.json"):
        engine.ensure([ModelRef("adapter:x", "Mine", empty)])

    # trained on another base model: the shapes do not fit
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(bundled_dir)}))
    from safetensors.torch import save_file

    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.ones(2, 576),
               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.ones(576, 2)},
              str(wrong / "adapter_model.safetensors"))
    with pytest.raises(ComparisonError, match="Wrong adapter"):
        engine.ensure([ModelRef("adapter:wrong", "Wrong adapter", wrong)])


def test_settings_and_keys():
    assert settings_dict(GREEDY) == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 6, "seed": 0}
    ref = ref_for_key(ratings.run_key("r7"), "Run r7", Path("/p/runs"))
    assert ref.adapter_dir == Path("/p/runs/r7/adapter") and not ref.is_base
    assert ref_for_key(ratings.base_key("m"), "Base").is_base
    with pytest.raises(ValueError):
        ref_for_key("nonsense", "x")
