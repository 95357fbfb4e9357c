"""Training speed: the FT Studio engine against a plain transformers + peft loop.

Both train the same small randomly initialised Llama (the bundled model's
tokenizer and vocabulary) with the same LoRA settings on the same synthetic
conversations, whose token lengths follow an Alpaca-like spread (most
examples 50-150 tokens, a long tail up to 512; only answers carry loss).
Both see the same examples and the same training tokens, in one process.

The baseline is what one would write by hand: batches of N examples padded
by the tokenizer, labels -100 on padding and prompt, ``model(**batch).loss``,
AdamW. The engine packs examples into token-budget rows without padding and
applies the output layer only where there is loss.

    .venv/bin/python benchmarks/bench_training.py [--device cpu|cuda] [--examples 384]

Prints tokens per second and peak memory of both, and their ratio. On the
CPU, memory is the peak resident set size above the level before each run
(sampled every 5 ms); on CUDA, torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will can more about said "
    "time only new some could these two may first then do any like my now over such our man me even most "
    "made after also did many before must through back years where much your way well down should because "
    "each just those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three small large water number sound write word place answer "
    "explain describe list reason example summary recipe program function story poem email letter question"
).split()


def synthetic_conversations(n: int, seed: int = 0) -> list[list[dict]]:
    """Conversations with Alpaca-like lengths: prompts ~25 tokens, answers log-normal around 60, tail to ~450."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt_words = max(3, int(rng.lognormvariate(math.log(18), 0.6)))
        answer_words = max(1, min(380, int(rng.lognormvariate(math.log(45), 0.9))))
        prompt = " ".join(rng.choice(WORDS) for _ in range(prompt_words)).capitalize() + "?"
        answer = " ".join(rng.choice(WORDS) for _ in range(answer_words)).capitalize() + "."
        out.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
    return out


def build_model(folder: Path, hidden: int, layers: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftstudio.engine.models import bundled_model_dir, load_tokenizer

    tokenizer = load_tokenizer(bundled_model_dir())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 128),
        max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


class PeakRSS:
    """Peak resident set size above the level at start, sampled in a thread."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def __enter__(self):
        self.start = self._rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def used(self) -> int:
        return self.peak - self.start


def measure_memory(device: str):
    import torch

    if device == "cuda":
        class Cuda:
            def __enter__(self):
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                self.start = torch.cuda.memory_allocated()
                return self

            def __exit__(self, *exc):
                torch.cuda.synchronize()
                self.used = torch.cuda.max_memory_allocated()

        return Cuda()
    return PeakRSS()


def run_engine(model_dir: Path, conversations, args) -> dict:
    from ftstudio.core.config import TrainConfig
    from ftstudio.core.events import Failed, Progress, StepMetrics
    from ftstudio.core.examples import PreparedData
    from ftstudio.engine.training import train

    cfg = TrainConfig(
        model=str(model_dir), method="lora", lora_rank=16, lora_alpha=32, lora_dropout=0.0, learning_rate=2e-4,
        epochs=1.0, batch_tokens=args.batch_tokens, max_length=512, eval_every=0, samples=0, checkpoint_every=0,
        log_every=1, device=args.device, seed=0,
    )
    events = []
    with tempfile.TemporaryDirectory() as run_dir, measure_memory(args.device) as mem:
        result = train(cfg, PreparedData(conversations, []), events.append, lambda: False, run_dir=Path(run_dir))
    if result.status != "finished":
        failure = next((e for e in events if isinstance(e, Failed)), None)
        raise SystemExit(f"engine run failed: {failure}")
    progress = [e for e in events if isinstance(e, Progress)]
    tokens = [e.tokens for e in events if isinstance(e, StepMetrics)]
    # Skip the first step (warm-up: allocations, kernel choice) in the rate.
    timed_tokens = sum(tokens[1:])
    seconds = progress[-1].elapsed_s - progress[0].elapsed_s
    from ftstudio.engine.estimate import cpu_budget, model_shape, tokens_per_second

    # What the Train page's time estimate expects of this run here, to set beside the measured speed.
    expected = tokens_per_second(cfg, model_shape(str(model_dir)), cpu_budget() if args.device == "cpu" else None,
                                 mean_length=sum(tokens) / max(1, len(conversations)))
    return {"tokens_per_s": timed_tokens / seconds, "steps": len(progress), "tokens": sum(tokens),
            "seconds": progress[-1].elapsed_s, "peak_bytes": mem.used, "final_loss": result.train_loss,
            "estimated_tokens_per_s": expected}


def run_plain(model_dir: Path, conversations, args) -> dict:
    """What a user would write: padded batches of N examples, model(**batch).loss, AdamW."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.tokenize import encode_conversation, fit_length

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "right"
    encoded = [fit_length(encode_conversation(tokenizer, c, "assistant"), 512, "drop") for c in conversations]
    encoded = [e for e in encoded if e is not None]
    rng = random.Random(0)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]

    with measure_memory(args.device) as mem:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(device)
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        times, token_counts = [], []
        for idx in batches:
            start = time.perf_counter()
            features = [{"input_ids": encoded[i].input_ids} for i in idx]
            batch = tokenizer.pad(features, return_tensors="pt")
            labels = torch.full_like(batch["input_ids"], -100)
            for row, i in enumerate(idx):
                labels[row, : len(encoded[i].labels)] = torch.tensor(encoded[i].labels)
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch, labels=labels.to(device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            final_loss = loss.item()  # what a hand-written loop logs each step
            times.append(time.perf_counter() - start)
            token_counts.append(sum(len(encoded[i].input_ids) for i in idx))
        del model, optimizer
    return {"tokens_per_s": sum(token_counts[1:]) / sum(times[1:]), "steps": len(batches),
            "tokens": sum(token_counts), "seconds": sum(times), "peak_bytes": mem.used, "final_loss": final_loss,
            "padded_tokens": sum(args.batch_size and max(len(encoded[i].input_ids) for i in idx) * len(idx)
                                 for idx in batches)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--examples", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=8, help="examples per padded batch (baseline)")
    parser.add_argument("--batch-tokens", type=int, default=0,
                        help="engine token budget (default: batch size x mean example length, at least 512)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    import torch

    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.tokenize import encode_conversation

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here")
    conversations = synthetic_conversations(args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        build_model(model_dir, args.hidden, args.layers)
        tokenizer = load_tokenizer(model_dir)
        encoded = [encode_conversation(tokenizer, c, "assistant") for c in conversations]
        lengths = sorted(len(e.input_ids) for e in encoded)
        mean = statistics.mean(lengths)
        if not args.batch_tokens:
            args.batch_tokens = max(512, int(round(args.batch_size * mean / 64)) * 64)
        loss_share = sum(e.loss_tokens for e in encoded) / sum(lengths)
        print(f"model: Llama hidden {args.hidden}, {args.layers} layers, vocabulary {len(tokenizer)}; "
              f"device {args.device}, torch threads {torch.get_num_threads()}")
        print(f"data: {len(lengths)} conversations, tokens min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
              f"mean {mean:.0f}, p90 {lengths[int(len(lengths) * 0.9)]}, max {lengths[-1]}; "
              f"{loss_share:.0%} of tokens carry loss")
        print(f"baseline: padded batches of {args.batch_size} examples; engine: packed rows of "
              f"{args.batch_tokens} tokens")

        plain = run_plain(model_dir, conversations, args)
        engine = run_engine(model_dir, conversations, args)

    print(f"padding in the baseline: {1 - plain['tokens'] / plain['padded_tokens']:.0%} of its batch positions")
    for name, r in (("plain transformers+peft", plain), ("FT Studio engine", engine)):
        print(f"{name:24s} {r['tokens_per_s']:9.0f} tokens/s  {r['steps']:4d} steps  {r['tokens']} tokens  "
              f"{r['seconds']:6.1f} s  peak memory {r['peak_bytes'] / 2**20:7.1f} MiB  final loss {r['final_loss']:.3f}")
    ratio = engine["tokens_per_s"] / plain["tokens_per_s"]
    print(f"speed-up (engine / plain): {ratio:.2f}x tokens/s; "
          f"memory ratio (engine / plain): {engine['peak_bytes'] / max(1, plain['peak_bytes']):.2f}")
    if args.device == "cpu":
        print(f"time estimate (engine/estimate.py) expects {engine['estimated_tokens_per_s']:.0f} tokens/s here: "
              f"measured / estimated {engine['tokens_per_s'] / engine['estimated_tokens_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
