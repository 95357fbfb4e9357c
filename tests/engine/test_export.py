"""Exporting a run: the adapter as it is, or a merged full model whose
outputs equal base + adapter."""

from __future__ import annotations

import pytest

from ftstudio.engine.export import ExportError, export_adapter, export_merged


@pytest.fixture(scope="module")
def adapter(tiny_model_dir, tmp_path_factory, lora_adapter):
    return lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "adapter", seed=5)


def test_export_adapter_copies_a_loadable_adapter(adapter, tmp_path):
    out = export_adapter(adapter, tmp_path / "exported")
    assert (out / "adapter_model.safetensors").read_bytes() == (adapter / "adapter_model.safetensors").read_bytes()
    with pytest.raises(ExportError, match="not empty"):
        export_adapter(adapter, out)
    with pytest.raises(ExportError, match="adapter_config.json"):
        export_adapter(tmp_path, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_merged_model_gives_the_same_logits_as_base_plus_adapter(adapter, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = export_merged(str(tiny_model_dir), adapter, tmp_path / "merged")
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))
    assert not any(p.name.startswith("adapter_") for p in out.iterdir())
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32),
                                      str(adapter)).eval()
    ids = torch.tensor([[1, 5, 42, 7, 99, 3]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, tuned(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.slow
def test_merged_model_keeps_the_dtype_the_base_was_published_in(adapter, tiny_model_dir, tmp_path):
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bf16_base = tmp_path / "bf16-base"
    AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16).save_pretrained(bf16_base)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(bf16_base)
    out = export_merged(str(bf16_base), adapter, tmp_path / "merged")
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert next(merged.parameters()).dtype == torch.bfloat16
