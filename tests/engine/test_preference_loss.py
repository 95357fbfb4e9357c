"""The engine's DPO and KTO losses against TRL's trainers (TRL is a test dependency).

TRL tokenises the pairs and computes its loss on its padded batch with its own
reference (the adapter disabled); the engine takes the same token ids, packs each
unit's two sequences as segments of one padding-free row, computes the
log-probabilities with its own module and its reference the same way, and
applies its own loss. The tiny model runs in float64 (TRL's output layer in
float32), so the two ways of batching give the same log-probabilities to float32
precision, well below what would move the losses by the 1e-6 they must agree to.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

PAIRS = [
    ("Which team handles refunds?", "Billing, because refunds are money.", "Billing"),
    ("My screen is blank", "Technical, since the device fails.", "Technical"),
    ("Where is my parcel?", "Shipping: it is about delivery.", "Shipping"),
    ("I want to close my account", "Account.", "Account, as the user wants to close it for good."),
]


def _policy(tiny_model_dir):
    """The tiny model in float64 with a random LoRA adapter, so the policy differs from the reference."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir), dtype=torch.float64, attn_implementation="sdpa"
    )
    model = get_peft_model(
        base,
        LoraConfig(
            r=4, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False
        ),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.mul_(4.0)
    return model


def _move_policy(model) -> None:
    """TRL's reference for a model that already has an adapter is a frozen copy of it ("ref"), as the
    engine's reference is the policy before the first step: change the policy so the two differ."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".default." in name and "lora_B" in name:
                p.mul_(1.5)


def _segment_logps(model, units):
    from trl.trainer.utils import use_adapter

    from ftstudio.engine.preference import _batch_inputs, collate_units, segment_logps_module

    module = segment_logps_module(model)
    batch = collate_units(units, list(range(len(units))))
    with torch.no_grad():
        policy = module(**_batch_inputs(batch, torch.device("cpu"))).view(-1, 2)
        with use_adapter(model, "ref"):
            ref = module(**_batch_inputs(batch, torch.device("cpu"))).view(-1, 2)
    return policy, ref


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_loss_equals_trl(tiny_model_dir, tmp_path, loss_type):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from ftstudio.engine.preference import PreferenceUnit, dpo_losses

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = _policy(tiny_model_dir)
    ds = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": p}],
                "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}],
            }
            for p, c, r in PAIRS
        ]
    )
    args = DPOConfig(
        output_dir=str(tmp_path),
        beta=0.2,
        loss_type=[loss_type],
        per_device_train_batch_size=4,
        report_to="none",
        use_cpu=True,
        bf16=False,
        max_length=None,
        dataset_num_proc=None,
        logging_steps=1,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    _move_policy(model)
    rows = [trainer.train_dataset[i] for i in range(len(PAIRS))]
    batch = trainer.data_collator(rows)
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, batch).item()
    trl_chosen_logps = trainer._metrics["eval"]["logps/chosen"][-1]

    units = [
        PreferenceUnit(
            (tuple(r["prompt_ids"] + r["chosen_ids"]), tuple(r["prompt_ids"] + r["rejected_ids"])),
            (len(r["prompt_ids"]), len(r["prompt_ids"])),
        )
        for r in rows
    ]
    policy, ref = _segment_logps(model, units)
    tokens = torch.tensor([u.answer_tokens for u in units], dtype=torch.float64)
    ours = (
        dpo_losses(
            policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], 0.2, loss_type, tokens[:, 0], tokens[:, 1]
        )
        .mean()
        .item()
    )
    # TRL's fused output layer works in float32: the log-probabilities agree to float32 precision.
    assert policy[:, 0].mean().item() == pytest.approx(trl_chosen_logps, rel=1e-7)
    assert (policy - ref).abs().min() > 1e-3  # the reference really is a different model
    assert abs(ours - trl_loss) < 1e-6, (ours, trl_loss)
    assert trl_loss > 0.01


def test_kto_loss_equals_trl(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import KTOConfig, KTOTrainer

    from ftstudio.engine.preference import PreferenceUnit, kto_kl, kto_losses

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = _policy(tiny_model_dir)
    singles = [(p, c, True) for p, c, _ in PAIRS] + [(p, r, False) for p, _, r in PAIRS[:3]]
    ds = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": p}],
                "completion": [{"role": "assistant", "content": a}],
                "label": ok,
            }
            for p, a, ok in singles
        ]
    )
    args = KTOConfig(
        output_dir=str(tmp_path),
        beta=0.3,
        desirable_weight=0.75,
        undesirable_weight=1.0,
        per_device_train_batch_size=len(singles),
        report_to="none",
        use_cpu=True,
        bf16=False,
        max_length=None,
        dataset_num_proc=None,
    )
    trainer = KTOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    _move_policy(model)
    rows = [trainer.train_dataset[i] for i in range(len(singles))]
    batch = trainer.data_collator(rows)
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, batch).item()

    units = [
        PreferenceUnit(
            (tuple(r["prompt_ids"] + r["completion_ids"]), tuple(r["prompt_ids"] + r["KL_completion_ids"])),
            (len(r["prompt_ids"]), len(r["prompt_ids"])),
            label=bool(r["label"]),
        )
        for r in rows
    ]
    policy, ref = _segment_logps(model, units)
    labels = torch.tensor([u.label for u in units])
    kl = kto_kl(policy[:, 1], ref[:, 1])
    ours = kto_losses(policy[:, 0], ref[:, 0], labels, kl, 0.3, 0.75, 1.0).mean().item()
    assert abs(ours - trl_loss) < 1e-6, (ours, trl_loss)
    assert trl_loss > 0.01


def test_pairs_are_tokenised_as_trl_does_less_the_newline_after_the_turn(bundled_dir):
    from transformers import AutoTokenizer
    from trl.trainer.dpo_trainer import _tokenize

    from ftstudio.engine.preference import encode_answer

    tok = AutoTokenizer.from_pretrained(str(bundled_dir))
    prompt = [{"role": "system", "content": "Sort the message."}, {"role": "user", "content": PAIRS[0][0]}]
    ids, start = encode_answer(tok, prompt, PAIRS[0][1])
    trl_prompt = _tokenize(tok, prompt, add_generation_prompt=True)["input_ids"]
    trl_full = _tokenize(tok, prompt + [{"role": "assistant", "content": PAIRS[0][1]}])["input_ids"]
    assert ids[:start] == trl_prompt
    assert trl_full[: len(ids)] == ids
    assert tok.decode(trl_full[len(ids) :]).strip() == ""  # only the template's newline is left off
    assert tok.decode(ids[start:]).startswith(PAIRS[0][1])
