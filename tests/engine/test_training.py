"""The training loop on the tiny model: it learns, it reports, it writes a run
folder a plain PeftModel can load, it stops when asked, and it turns every
expected failure into a Failed event instead of an exception."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from ftstudio.core.config import TrainConfig
from ftstudio.core.events import (
    Checkpoint, EvalMetrics, Failed, Finished, Log, Progress, Sample, StepMetrics, read_events,
)
from ftstudio.core.examples import PreparedData
from ftstudio.engine.training import train

ANIMALS = ["cat", "dog", "fish", "bird", "horse"]


def memorise_data(n_train: int = 24, n_eval: int = 6) -> PreparedData:
    """Each question has one fixed short answer: easy to memorise."""
    def conv(i):
        return [{"role": "user", "content": f"Which animal is number {i}?"},
                {"role": "assistant", "content": ANIMALS[i % len(ANIMALS)]}]

    train_convs = [conv(i) for i in range(n_train)]
    return PreparedData(train_convs, [conv(i) for i in range(n_eval)],
                        list(range(n_train)), list(range(n_eval)))


def tiny_cfg(model_dir: Path, **kw) -> TrainConfig:
    base = dict(model=str(model_dir), max_steps=6, batch_tokens=256, max_length=128, learning_rate=1e-2,
                eval_every=3, samples=2, sample_max_new_tokens=4, checkpoint_every=3, lora_dropout=0.0,
                warmup_ratio=0.0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def run(cfg, data, run_dir, stop=lambda: False, resume=False):
    events = []
    result = train(cfg, data, events.append, stop, run_dir=run_dir, resume=resume)
    return result, events


@pytest.fixture(scope="module")
def learnable_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with larger initial weights. With the default 0.02 the tied
    embeddings are so short that no hidden state can push any logit past ~1.3,
    so the loss of the random model can hardly move whatever LoRA learns."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    config.initializer_range = 0.3
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp("learnable")
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(out)
    return out


@pytest.mark.slow
def test_lora_learns_a_memorisation_task(learnable_model_dir, tmp_path):
    data = memorise_data()
    cfg = tiny_cfg(learnable_model_dir, max_steps=0, epochs=12.0, eval_every=0, checkpoint_every=0, samples=0,
                   learning_rate=1e-2, lr_schedule="constant")
    result, events = run(cfg, data, tmp_path / "run")
    assert result.status == "finished", result.failure
    losses = [e.loss for e in events if isinstance(e, StepMetrics)]
    first_epoch = sum(losses[:5]) / 5
    # (a random model far from the data; a plain transformers+peft loop gets about
    # the same: from ~13 to ~7.5 nats in this many steps)
    assert result.train_loss < first_epoch - 3.0, (first_epoch, result.train_loss)
    # the held-out questions share the answers: held-out loss falls with it
    assert result.eval_loss < first_epoch - 3.0


@pytest.mark.slow
def test_events_come_in_a_sane_order_with_the_right_fields(tiny_model_dir, tmp_path):
    data = memorise_data()
    run_dir = tmp_path / "run"
    result, events = run(tiny_cfg(tiny_model_dir), data, run_dir)
    assert result.status == "finished" and result.steps == 6 and result.failure is None

    assert isinstance(events[0], Log)
    assert isinstance(events[-1], Finished) and not events[-1].stopped_early
    assert events[-1].steps == 6 and events[-1].adapter_path == str(run_dir / "adapter")
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.step for p in progress] == list(range(1, 7))
    assert all(p.total_steps == 6 for p in progress)
    assert all(b.elapsed_s >= a.elapsed_s for a, b in zip(progress, progress[1:]))
    assert all(b.epoch > a.epoch for a, b in zip(progress, progress[1:]))
    assert progress[-1].eta_s == 0

    metrics = [e for e in events if isinstance(e, StepMetrics)]
    assert [m.step for m in metrics] == list(range(1, 7))
    for m in metrics:
        assert m.loss > 0 and m.grad_norm > 0 and m.tokens_per_s > 0 and 0 < m.tokens <= 256
        if torch.cuda.is_available():  # the run goes to the GPU: its memory is reported
            assert m.vram_total > 0 and 0 < m.vram_allocated <= m.vram_peak <= m.vram_total
        else:
            assert m.vram_total == 0 and m.gpu_util is None
    lrs = [m.lr for m in metrics]
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] < lrs[0]  # cosine decay, no warm-up

    evals = [e for e in events if isinstance(e, EvalMetrics)]
    assert [e.step for e in evals] == [3, 6]
    assert all(e.eval_tokens > 0 for e in evals)
    assert result.eval_loss == evals[-1].eval_loss
    samples = [e for e in events if isinstance(e, Sample)]
    assert [s.step for s in samples] == [3, 3, 6, 6]
    assert samples[0].prompt == "Which animal is number 0?" and samples[0].reference == "cat"

    checkpoints = [e for e in events if isinstance(e, Checkpoint)]
    assert [c.step for c in checkpoints] == [3, 6]
    # each checkpoint comes after the step it saves
    for c in checkpoints:
        i = events.index(c)
        assert max(p.step for p in events[:i] if isinstance(p, Progress)) == c.step
    assert result.last_checkpoint == run_dir / "checkpoints" / "step-6"

    # everything the sink got is in metrics.jsonl too, and samples in samples.jsonl
    assert read_events(run_dir / "metrics.jsonl") == events
    assert read_events(run_dir / "samples.jsonl") == samples
    assert TrainConfig.load(run_dir / "config.yaml") == tiny_cfg(tiny_model_dir)


@pytest.mark.slow
def test_run_folder_holds_checkpoints_and_an_adapter_plain_peft_loads(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftstudio.engine.packing import collate, pack
    from ftstudio.engine.tokenize import encode_conversation
    from ftstudio.engine.loss import packed_loss_module

    data = memorise_data()
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(tiny_model_dir, max_steps=7, checkpoint_every=2, keep_checkpoints=2, eval_every=0, samples=0)
    result, events = run(cfg, data, run_dir)
    assert result.status == "finished"
    assert [c.step for c in events if isinstance(c, Checkpoint)] == [2, 4, 6, 7]
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["step-6", "step-7"]  # only the newest keep_checkpoints, no temporary folders
    for name in ("adapter_config.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt",
                 "state.json"):
        assert (run_dir / "checkpoints" / "step-7" / name).is_file(), name
    state = json.loads((run_dir / "checkpoints" / "step-7" / "state.json").read_text())
    assert state["step"] == 7 and len(state["losses"]) == 7 and state["total_steps"] == 7
    assert {"epoch", "batch_in_epoch", "python_rng", "data"} <= set(state)

    adapter = run_dir / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))  # the folder is self-contained
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(adapter))
    tuned.eval()
    # the loaded adapter reproduces the final held-out loss the run reported
    examples = [encode_conversation(tokenizer, c) for c in data.eval]
    module = packed_loss_module(tuned)
    total, count = 0.0, 0
    with torch.no_grad():
        for idx in pack([len(e.input_ids) for e in examples], cfg.batch_tokens):
            b = collate(examples, idx)
            s, n = module(b.input_ids, b.position_ids, loss_positions=b.loss_positions, targets=b.targets)
            total += s.item()
            count += n
    assert total / count == pytest.approx(result.eval_loss, rel=1e-4)
    # and it differs from the base model: the adapter is not a no-op
    with torch.no_grad(), tuned.disable_adapter():
        b = collate(examples, range(len(examples)))
        base_sum, _ = module(b.input_ids, b.position_ids, loss_positions=b.loss_positions, targets=b.targets)
    assert abs(base_sum.item() / count - result.eval_loss) > 0.01


@pytest.mark.slow
def test_stop_saves_a_checkpoint_and_the_adapter(tiny_model_dir, tmp_path):
    data = memorise_data()
    run_dir = tmp_path / "run"
    seen = []
    events = []

    def sink(e):
        events.append(e)
        if isinstance(e, Progress):
            seen.append(e.step)

    result = train(tiny_cfg(tiny_model_dir, checkpoint_every=0), data, sink, lambda: len(seen) >= 2,
                   run_dir=run_dir)
    assert result.status == "stopped" and result.steps == 2
    assert result.last_checkpoint == run_dir / "checkpoints" / "step-2"
    assert (result.last_checkpoint / "optimizer.pt").is_file()
    assert result.adapter_dir == run_dir / "adapter" and (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.stopped_early and finished.steps == 2
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [2]


@pytest.mark.slow
def test_overlong_examples_are_dropped_and_counted(tiny_model_dir, tmp_path):
    data = memorise_data()
    long_answer = " ".join(["elephant"] * 80)
    data.train.extend([[{"role": "user", "content": "Say it long"}, {"role": "assistant", "content": long_answer}]] * 3)
    result, events = run(tiny_cfg(tiny_model_dir, max_steps=1, max_length=64, batch_tokens=128), data,
                         tmp_path / "run")
    assert result.status == "finished"
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any(m.startswith("Dropped 3 training examples longer than 64 tokens") for m in logs), logs
    assert any("24 examples" in m for m in logs)

    result, events = run(tiny_cfg(tiny_model_dir, max_steps=1, max_length=64, batch_tokens=128,
                                  overlength="truncate"), data, tmp_path / "run2")
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any(m.startswith("Truncated 3 training examples to 64 tokens") for m in logs), logs
    assert any("27 examples" in m for m in logs)


@pytest.mark.parametrize("case, kind, words", [
    ("config", "config", "learning_rate"),
    ("model", "model", "does not exist"),
    ("empty", "data", "no training examples"),
    ("all_dropped", "data", "every training example was dropped"),
    ("device", "config", "no CUDA GPU"),
])
def test_expected_failures_become_failed_events(tiny_model_dir, tmp_path, case, kind, words):
    if case == "device" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data = memorise_data()
    cfg = tiny_cfg(tiny_model_dir)
    if case == "config":
        cfg = tiny_cfg(tiny_model_dir, learning_rate=0.0)
    elif case == "model":
        cfg = tiny_cfg(tmp_path / "no-such-model")
    elif case == "empty":
        data = PreparedData([], data.eval)
    elif case == "all_dropped":
        cfg = tiny_cfg(tiny_model_dir, max_length=16, batch_tokens=16)
    elif case == "device":
        cfg = tiny_cfg(tiny_model_dir, device="cuda")
    result, events = run(cfg, data, tmp_path / "run")
    assert result.status == "failed" and result.adapter_dir is None
    failure = result.failure
    assert failure.kind == kind and words in failure.message and failure.suggestion
    assert events[-1] == failure
    assert read_events(tmp_path / "run" / "metrics.jsonl")[-1] == failure


@pytest.mark.slow
def test_a_crashing_consumer_becomes_an_internal_failure(tiny_model_dir, tmp_path):
    events = []

    def sink(e):
        events.append(e)
        if isinstance(e, StepMetrics) and e.step == 2:
            raise KeyError("dashboard lost its curve")

    result = train(tiny_cfg(tiny_model_dir), memorise_data(), sink, lambda: False, run_dir=tmp_path / "run")
    assert result.status == "failed" and result.failure.kind == "internal"
    assert "dashboard lost its curve" in result.failure.message
    tracebacks = [e for e in events if isinstance(e, Log) and e.level == "error"]
    assert tracebacks and "Traceback" in tracebacks[0].message
    assert isinstance(events[-1], Failed)


def _poisoned_model(tiny_model_dir: Path, out: Path, token_id: int) -> Path:
    """A copy of the tiny model (untied output layer) whose embedding of one token is NaN:
    what a broken conversion or a corrupted download gives. Only examples containing that
    token produce a NaN loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    with torch.no_grad():
        model.get_input_embeddings().weight[token_id] = float("nan")
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(out)
    return out


@pytest.mark.slow
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_model_dir, tmp_path):
    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.packing import epoch_batches
    from ftstudio.engine.tokenize import encode_conversation

    tokenizer = load_tokenizer(tiny_model_dir)
    poison_ids = tokenizer(" zebra", add_special_tokens=False)["input_ids"]
    assert len(poison_ids) == 1

    cfg = tiny_cfg(tiny_model_dir, max_steps=6, checkpoint_every=1, keep_checkpoints=2, eval_every=0, samples=0)
    # Put the poisoned token into the answer of an example that the fixed data
    # order trains on in step 3 or later (the plan is worked out the way the
    # engine does it, on the changed data).
    for victim in range(24):
        data = memorise_data()
        data.train[victim] = [data.train[victim][0], {"role": "assistant", "content": "a zebra"}]
        lengths = [len(encode_conversation(tokenizer, c).input_ids) for c in data.train]
        batches = epoch_batches(lengths, cfg.batch_tokens, cfg.seed, 0)
        step_of_victim = next(k for k, b in enumerate(batches) if victim in b) + 1
        if 3 <= step_of_victim <= 5:
            break
    else:
        pytest.fail("no example lands in steps 3-5")

    model_dir = _poisoned_model(tiny_model_dir, tmp_path / "poisoned", poison_ids[0])
    run_dir = tmp_path / "run"
    result, events = run(tiny_cfg(model_dir, max_steps=6, checkpoint_every=1, keep_checkpoints=2, eval_every=0,
                                  samples=0), data, run_dir)
    assert result.status == "failed"
    failure = result.failure
    assert failure.kind == "nan" and f"step {step_of_victim}" in failure.message
    assert "learning rate" in failure.suggestion.lower()
    good = run_dir / "checkpoints" / f"step-{step_of_victim - 1}"
    assert failure.last_checkpoint == str(good) and result.last_checkpoint == good
    # no checkpoint after the bad step, no adapter from a broken model, and the
    # good checkpoint holds finite weights
    assert max(c.step for c in events if isinstance(c, Checkpoint)) == step_of_victim - 1
    assert not (run_dir / "adapter").exists() and result.adapter_dir is None
    from safetensors.torch import load_file

    weights = load_file(str(good / "adapter_model.safetensors"))
    assert weights and all(torch.isfinite(w).all() for w in weights.values())
    assert [e.step for e in events if isinstance(e, Progress)] == list(range(1, step_of_victim))
    assert events[-1] == failure


@pytest.mark.slow
def test_training_is_repeatable_with_the_same_seed(tiny_model_dir, tmp_path):
    data = memorise_data()
    cfg = tiny_cfg(tiny_model_dir, max_steps=3, eval_every=0, samples=0, checkpoint_every=0, lora_dropout=0.1)
    _, a = run(cfg, data, tmp_path / "a")
    _, b = run(cfg, data, tmp_path / "b")
    _, c = run(tiny_cfg(tiny_model_dir, max_steps=3, eval_every=0, samples=0, checkpoint_every=0,
                        lora_dropout=0.1, seed=4), data, tmp_path / "c")

    def losses(ev):
        return [e.loss for e in ev if isinstance(e, StepMetrics)]

    assert losses(a) == losses(b)
    assert losses(a) != losses(c)
    random.seed(0)  # the engine seeds the global RNGs; leave them predictable for other tests


@pytest.mark.slow
def test_out_of_memory_is_reported_with_what_to_change_and_the_process_goes_on(tiny_model_dir, tmp_path,
                                                                              monkeypatch):
    # No GPU here to fill: the device's own out-of-memory error is raised where
    # a batch goes to the device, from the fourth pass on, as a card that has filled up
    # would. Halving the micro-batch (tests/engine/test_out_of_memory.py) cannot help
    # then: the run ends with what to change.
    from ftstudio.engine import training as training_module

    real_inputs = training_module._inputs
    calls = {"n": 0}

    def inputs_that_run_out(batch, device):
        calls["n"] += 1
        if calls["n"] >= 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_inputs(batch, device)

    monkeypatch.setattr(training_module, "_inputs", inputs_that_run_out)
    cfg = tiny_cfg(tiny_model_dir, max_steps=6, checkpoint_every=2, eval_every=0, samples=0)
    result, events = run(cfg, memorise_data(), tmp_path / "run")
    assert result.status == "failed"
    failure = result.failure
    assert failure.kind == "oom" and "out of memory at step 4 with micro-batches of" in failure.message
    assert "max_length" in failure.suggestion and "QLoRA" in failure.suggestion
    assert result.last_checkpoint is not None and Path(result.last_checkpoint).is_dir()
    assert failure.last_checkpoint == str(result.last_checkpoint)
    assert any(isinstance(e, Checkpoint) for e in events) and events[-1] == failure

    # the process is alive and the run resumes from the kept checkpoint
    monkeypatch.setattr(training_module, "_inputs", real_inputs)
    resumed, _ = run(cfg, memorise_data(), tmp_path / "run", resume=True)
    assert resumed.status == "finished" and resumed.steps == 6


def test_a_cpu_thread_budget_is_kept_for_the_whole_run(tiny_model_dir, tmp_path):
    before = torch.get_num_threads()
    seen = []

    def sink(event):
        if isinstance(event, StepMetrics):
            seen.append(torch.get_num_threads())

    try:
        result = train(tiny_cfg(tiny_model_dir, max_steps=2, eval_every=0, samples=0, device="cpu"), memorise_data(), sink,
                       lambda: False, run_dir=tmp_path / "run", cpu_threads=1)
    finally:
        torch.set_num_threads(before)
    assert result.status == "finished" and seen == [1, 1]
