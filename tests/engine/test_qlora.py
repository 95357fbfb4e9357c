"""QLoRA on the CPU: the frozen weights really are 4-bit NF4 with double
quantisation, the add-on weights train, and the adapter loads on a plain base."""

from __future__ import annotations

import pytest

# bitsandbytes is a required dependency: on a broken install these tests fail, never skip.
import bitsandbytes  # noqa: F401
import torch

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import StepMetrics
from ftstudio.core.examples import PreparedData
from ftstudio.engine.training import train



def data() -> PreparedData:
    def conv(i):
        return [{"role": "user", "content": f"Ticket {i}: my parcel is late"},
                {"role": "assistant", "content": ["shipping", "billing", "account"][i % 3]}]

    return PreparedData([conv(i) for i in range(18)], [conv(i) for i in range(50, 53)])


def qlora_cfg(model_dir, **kw) -> TrainConfig:
    base = dict(model=str(model_dir), method="qlora", max_steps=4, batch_tokens=256, max_length=128,
                learning_rate=1e-2, eval_every=0, samples=1, sample_max_new_tokens=3, checkpoint_every=0,
                lora_dropout=0.0, warmup_ratio=0.0)
    base.update(kw)
    return TrainConfig(**base)


def test_qlora_model_is_4bit_nf4_with_double_quantisation(tiny_model_dir):
    import bitsandbytes as bnb

    from ftstudio.engine.loading import load_for_training

    model = load_for_training(qlora_cfg(tiny_model_dir), tiny_model_dir, "cpu")
    quantised = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    # 2 layers x 7 linear layers each (q, k, v, o, gate, up, down)
    assert len(quantised) == 14
    for layer in quantised:
        state = layer.weight.quant_state
        assert state.quant_type == "nf4"
        assert state.nested  # double quantisation: the scales are quantised too
        assert layer.weight.dtype == torch.uint8
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_qlora_trains_and_its_adapter_loads_on_a_plain_base(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    events = []
    result = train(qlora_cfg(tiny_model_dir), data(), events.append, lambda: False, run_dir=tmp_path / "run")
    assert result.status == "finished", result.failure
    losses = [e.loss for e in events if isinstance(e, StepMetrics)]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(result.adapter_dir))
    lora_b = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained, not the zero initialisation
