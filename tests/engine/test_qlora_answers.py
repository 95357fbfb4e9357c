"""After a QLoRA run the base model answers in 4-bit, as it trained: the Generator
(Compare, evaluation, label suggestions) loads it with the training's NF4 settings,
and the adapter's held-out loss there is the one the run measured."""

from __future__ import annotations

import bitsandbytes as bnb  # a required dependency: on a broken install this fails, never skips
import pytest
import torch

from ftstudio.engine.inference import Generator, loads_in_4bit
from ftstudio.engine.training import train
from tests.engine.test_qlora import data, qlora_cfg


def test_the_base_loads_in_4bit_when_a_run_trained_qlora():
    assert loads_in_4bit([{"method": "qlora"}])
    assert loads_in_4bit([{"method": "lora"}, {"method": "qlora"}])  # one base for every compared adapter
    assert not loads_in_4bit([{"method": "lora"}])
    assert not loads_in_4bit([{}])
    assert not loads_in_4bit([])


def test_a_qlora_adapter_answers_from_the_4bit_base_it_trained_on(tiny_model_dir, tmp_path):
    cfg = qlora_cfg(tiny_model_dir, max_steps=2, samples=0, learning_rate=2e-2)
    result = train(cfg, data(), lambda e: None, lambda: False, run_dir=tmp_path / "run")
    assert result.status == "finished", result.failure
    held_out = data().eval

    four_bit = Generator(str(tiny_model_dir), device="cpu", four_bit=True)
    quantised = [m for m in four_bit.base.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantised) == 14 and all(m.weight.quant_state.quant_type == "nf4" for m in quantised)
    assert all(m.weight.quant_state.nested for m in quantised)  # the training's double quantisation
    four_bit.add_adapter("run", result.adapter_dir)

    def loss(gen):
        sums = gen.loss_sums(held_out, model="run", max_length=cfg.max_length)
        return sum(s for s, _ in sums) / sum(n for _, n in sums)

    # the loss the run reported at its end is the loss of the adapter on the 4-bit base
    assert loss(four_bit) == pytest.approx(result.eval_loss, rel=1e-4)
    answer = four_bit.generate(held_out[0][:1], model="run")
    assert isinstance(answer, str)

    # the full-precision base is another model: its loss differs from what the run measured
    plain = Generator(str(tiny_model_dir), device="cpu")
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in plain.base.modules())
    plain.add_adapter("run", result.adapter_dir)
    assert abs(loss(plain) - result.eval_loss) > 1e-3
    assert torch.is_tensor(next(plain.base.parameters()))
