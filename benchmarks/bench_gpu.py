"""Real-size training on a GPU: the FT Studio engine against padded transformers + PEFT.

Each row is a popular model's real shape (``resources/model_shapes.json``: real
vocabulary sizes), randomly initialised and saved once under ``--work`` (no
download), trained with LoRA or QLoRA on synthetic conversations whose lengths
follow Alpaca's (log-normal, median about 250 tokens; loss on the answers).
Every configuration runs in its own process, so one's memory never counts
against the next.

- **baseline**: what one writes by hand. Batches of 8 conversations padded to
  the longest, ``model(**batch).loss``, gradient checkpointing, AdamW; for
  QLoRA the 4-bit base goes through ``prepare_model_for_kbit_training``.
- **engine**: ``engine.training.train`` at the Balanced preset with the same
  tokens per optimiser step as the baseline (8 x the mean length) and the
  auto-fit plan (``engine/fit.py``) for the device; ``--set`` passes settings
  (``--set fused_loss=true --set varlen_attention=true`` ...).

Per row it prints tokens/s, the ratio to the baseline, peak allocated and
reserved memory, MFU (6 x weights x tokens/s over the GPU's bf16 peak, the
usual convention; recomputation not counted) and the estimate's peak against
the measured peak reserved, as a table and as JSON lines (``--json FILE``).

    .venv/bin/python benchmarks/bench_gpu.py                       # the default set (one H100/H200: < 8 min)
    .venv/bin/python benchmarks/bench_gpu.py --memory-gb 8 --rows meta-llama/Llama-3.1-8B:qlora --context 2048
    .venv/bin/python benchmarks/bench_gpu.py --smoke               # a tiny shape on the CPU: checks the bench itself

``--memory-gb N`` caps each process at N GB of GPU memory
(``torch.cuda.set_per_process_memory_fraction``) and plans for a card of
that size, standing in for a smaller card. ``--smoke`` measures nothing
worth reading: it runs every part of the bench end to end on a tiny model on
the CPU, so it is known to work before a visit to a GPU machine
(``benchmarks/gpu_visit.sh``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_training import WORDS  # noqa: E402

# The default set: the floors are measured on these rows.
DEFAULT_ROWS = ("Qwen/Qwen2.5-0.5B:lora", "meta-llama/Llama-3.2-1B:lora", "meta-llama/Llama-3.1-8B:qlora")
SMOKE_MODEL = "smoke-tiny"
# The smoke shape: a 2-layer Llama with the bundled tokenizer's vocabulary.
SMOKE_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
}
BASELINE_BATCH = 8  # sequences per step, padded
MEDIAN_TOKENS = 250
LENGTH_SIGMA = 0.65  # Alpaca's spread: most 100-600 tokens, a tail past 1,000
RESULT_PREFIX = "BENCH_GPU_RESULT "
GiB = 1024**3


# -- the data ---------------------------------------------------------------------------------


def conversations(n: int, context: int, median: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """``n`` conversations with log-normal token counts (median ``median``), each under ``context`` tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens = min(context - 16, max(24, int(rng.lognormvariate(math.log(median), LENGTH_SIGMA))))
        words = max(4, int((tokens - 20) / 1.15))  # about 1.15 tokens a word, 20 for the chat template
        prompt_words = max(2, words * 3 // 10)
        prompt = " ".join(rng.choice(WORDS) for _ in range(prompt_words)).capitalize() + "?"
        answer = " ".join(rng.choice(WORDS) for _ in range(words - prompt_words)).capitalize() + "."
        out.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
    return out


def encoded(folder: Path, convs: list[list[dict[str, str]]], context: int) -> list[Any]:
    from ftstudio.engine.models import load_tokenizer
    from ftstudio.engine.tokenize import encode_conversation, fit_length

    tokenizer = load_tokenizer(folder)
    out = [fit_length(encode_conversation(tokenizer, c, "assistant"), context, "drop") for c in convs]
    return [e for e in out if e is not None]


# -- the models -------------------------------------------------------------------------------


def shape_config(model_id: str) -> dict[str, Any]:
    """The config.json fields of ``model_id`` from the shipped table (or the smoke shape)."""
    if model_id == SMOKE_MODEL:
        return dict(SMOKE_CONFIG)
    table = json.loads((ROOT / "resources" / "model_shapes.json").read_text(encoding="utf-8"))
    for entry in table["models"]:
        if model_id.lower() in (i.lower() for i in entry["ids"]):
            return dict(entry["config"])
    raise SystemExit(f"{model_id} is not in resources/model_shapes.json; choose one of its ids")


def prepare_model(model_id: str, work: Path) -> Path:
    """A randomly initialised model of ``model_id``'s shape saved under ``work`` (once), with the bundled tokenizer."""
    folder = work / model_id.replace("/", "--")
    if (folder / "ready").is_file():
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftstudio.engine.models import bundled_model_dir, load_tokenizer

    fields = shape_config(model_id)
    model_type = fields.pop("model_type")
    tokenizer = load_tokenizer(bundled_model_dir())
    config = AutoConfig.for_model(
        model_type,
        **fields,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=8192,
    )
    cuda = torch.cuda.is_available() and model_id != SMOKE_MODEL
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if cuda else torch.float32)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="4GB")
    tokenizer.save_pretrained(folder)
    (folder / "ready").write_text("ok\n")
    return folder


# -- one configuration, in its own process ------------------------------------------------------


def _cap_memory(memory_gb: float | None) -> None:
    import torch

    if memory_gb and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, memory_gb * GiB / total))


def _peaks() -> dict[str, int | None]:
    import torch

    if not torch.cuda.is_available():
        return {"peak_allocated": None, "peak_reserved": None}
    torch.cuda.synchronize()
    return {
        "peak_allocated": torch.cuda.max_memory_allocated(),
        "peak_reserved": torch.cuda.max_memory_reserved(),
    }


def run_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """Padded batches of 8, gradient checkpointing, model(**batch).loss, AdamW."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from ftstudio.engine.loading import four_bit_kwargs
    from ftstudio.engine.models import load_tokenizer

    folder = Path(spec["folder"])
    device = torch.device("cuda" if torch.cuda.is_available() and not spec["smoke"] else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    examples = encoded(
        folder, conversations(spec["examples"], spec["context"], spec["median"]), spec["context"]
    )
    tokenizer = load_tokenizer(folder)
    tokenizer.padding_side = "right"
    if spec["method"] == "qlora":
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), attn_implementation="sdpa", **four_bit_kwargs(dtype, device)
        )
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, attn_implementation="sdpa").to(
            device
        )
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model = get_peft_model(
        model,
        LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    steps = spec["warmup"] + spec["steps"]
    batches = [examples[(i * BASELINE_BATCH) % len(examples) :][:BASELINE_BATCH] for i in range(steps)]
    tokens, start, loss = 0, 0.0, float("nan")
    for step, batch_examples in enumerate(batches):
        if step == spec["warmup"]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = tokenizer.pad([{"input_ids": e.input_ids} for e in batch_examples], return_tensors="pt")
        labels = torch.full_like(batch["input_ids"], -100)
        for row, e in enumerate(batch_examples):
            labels[row, : len(e.labels)] = torch.tensor(e.labels)
        out = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            labels=labels.to(device),
        )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= spec["warmup"]:
            tokens += sum(len(e.input_ids) for e in batch_examples)
        loss = float(out.loss.detach())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "tokens_per_s": tokens / seconds,
        "tokens": tokens,
        "seconds": seconds,
        "final_loss": loss,
        "step_tokens": round(tokens / spec["steps"]),
        **_peaks(),
    }


def engine_config(spec: dict[str, Any], step_tokens: int) -> Any:
    """The Balanced preset at the baseline's tokens per step, with the auto-fit plan filled in."""
    import dataclasses

    from ftstudio.core.config import preset
    from ftstudio.engine.estimate import ModelShape

    fields = {
        "model": spec["folder"],
        "method": spec["method"],
        "max_length": spec["context"],
        "batch_tokens": max(spec["context"], step_tokens),
        "max_steps": spec["warmup"] + spec["steps"],
        "eval_every": 0,
        "samples": 0,
        "checkpoint_every": 0,
        "log_every": 1,
        "seed": 0,
        "device": "cpu" if spec["smoke"] else "auto",
    }
    cfg = preset("balanced", **fields).with_overrides(spec["set"])
    budget = device_budget(spec)
    shape = ModelShape.from_config(shape_config(spec["model"]), spec["model"])
    plan = None
    if cfg.auto_fit:
        from ftstudio.engine.fit import plan_run

        plan = plan_run(cfg, shape, budget)
        micro = plan.micro_batch_tokens if plan.micro_batches > 1 else 0
        # The plan is made here for the capped card (--memory-gb), which the engine cannot see
        # (set_per_process_memory_fraction leaves the device's reported memory as it is); the run
        # takes it as fixed settings.
        cfg = dataclasses.replace(
            cfg, micro_batch_tokens=micro, gradient_checkpointing=plan.gradient_checkpointing, auto_fit=False
        )
    return cfg, plan, shape, budget


def device_budget(spec: dict[str, Any]) -> Any:
    from ftstudio.engine.estimate import DeviceBudget, cpu_budget

    import torch

    if spec["smoke"] or not torch.cuda.is_available():
        return cpu_budget()
    name = torch.cuda.get_device_name(0)
    total = torch.cuda.get_device_properties(0).total_memory
    if spec["memory_gb"]:
        total = min(total, int(spec["memory_gb"] * GiB))
    return DeviceBudget("cuda", name, total, total, os.cpu_count() or 1, torch.cuda.is_bf16_supported())


def run_engine(spec: dict[str, Any]) -> dict[str, Any]:
    from ftstudio.core.events import Failed, Log, StepMetrics
    from ftstudio.core.examples import PreparedData
    from ftstudio.engine.estimate import estimate_memory
    from ftstudio.engine.training import train

    cfg, plan, shape, budget = engine_config(spec, spec["step_tokens"])
    convs = conversations(spec["examples"], spec["context"], spec["median"])
    arrivals: list[tuple[float, Any]] = []

    def sink(event: Any) -> None:
        arrivals.append((time.perf_counter(), event))

    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, PreparedData(convs, []), sink, lambda: False, run_dir=Path(run_dir))
    events = [e for _t, e in arrivals]
    if result.status != "finished":
        failure = next((e for e in events if isinstance(e, Failed)), None)
        return {"error": f"{result.status}: {failure.message if failure else 'no failure event'}"}
    steps = [(t, e) for t, e in arrivals if isinstance(e, StepMetrics)]
    warm = spec["warmup"]
    timed = steps[warm:]
    seconds = timed[-1][0] - steps[warm - 1][0] if warm else timed[-1][0] - arrivals[0][0]
    tokens = sum(e.tokens for _t, e in timed)
    estimate = plan.estimate.total if plan is not None else estimate_memory(cfg, shape, budget).total
    return {
        "tokens_per_s": tokens / seconds,
        "tokens": tokens,
        "seconds": seconds,
        "final_loss": result.train_loss,
        "step_tokens": cfg.batch_tokens,
        "estimate": estimate,
        "plan": plan.text if plan is not None else "auto_fit off",
        "settings": {
            k: getattr(cfg, k) for k in ("micro_batch_tokens", "gradient_checkpointing", *PATH_SETTINGS)
        },
        "log": [e.message for e in events if isinstance(e, Log) and e.level == "warning"],
        **_peaks(),
    }


PATH_SETTINGS = ("fused_loss", "varlen_attention", "bf16_autocast", "liger_kernels")


def worker(spec: dict[str, Any]) -> None:
    _cap_memory(spec["memory_gb"])
    if spec["system"] == "prepare":
        out: dict[str, Any] = {"folder": str(prepare_model(spec["model"], Path(spec["work"])))}
    elif spec["system"] == "baseline":
        out = run_baseline(spec)
    else:
        out = run_engine(spec)
    print(RESULT_PREFIX + json.dumps(out), flush=True)


def in_process(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one configuration in a fresh Python process; its result line, or the error it ended with."""
    env = dict(os.environ)
    if spec["smoke"]:
        env["CUDA_VISIBLE_DEVICES"] = ""
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"ran past {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
    oom = any("OutOfMemoryError" in line or "out of memory" in line for line in tail)
    return {"error": ("out of memory: " if oom else "") + " | ".join(tail)[-1500:]}


# -- the table -------------------------------------------------------------------------------------


def earlier_baseline(path: Path, row: dict[str, Any]) -> dict[str, Any] | None:
    """The baseline row of ``path`` measured for the same model, method, context and memory cap."""
    keys = ("model", "method", "context", "examples", "memory_gb")
    for line in path.read_text(encoding="utf-8").splitlines():
        earlier = json.loads(line)
        if (
            earlier.get("system") == "baseline"
            and "error" not in earlier
            and all(earlier.get(k) == row.get(k) for k in keys)
        ):
            return dict(earlier)
    return None


def mfu(tokens_per_s: float, shape: Any, device: str) -> float | None:
    """6 x weights x tokens/s over the GPU's bf16 peak (None on the CPU)."""
    if device == "cpu":
        return None
    from ftstudio.engine.estimate import _gpu_peak

    weights = shape.linear_params + shape.vocab_size * shape.hidden_size
    return 6 * weights * tokens_per_s / _gpu_peak(device)


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / GiB:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<28} {'method':<6} {'system':<8} {'tokens/s':>10} {'x base':>7} {'alloc GiB':>9} "
        f"{'resv GiB':>9} {'MFU':>6} {'est GiB':>8} {'est/resv':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<28} {r['method']:<6} {r['system']:<8} failed: {r['error'][:160]}")
            continue
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") else "-"
        m = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-"
        est = r.get("estimate")
        vs = f"{est / r['peak_reserved']:.2f}" if est and r.get("peak_reserved") else "-"
        lines.append(
            f"{r['model']:<28} {r['method']:<6} {r['system']:<8} {r['tokens_per_s']:>10,.0f} {ratio:>7} "
            f"{_gib(r.get('peak_allocated')):>9} {_gib(r.get('peak_reserved')):>9} {m:>6} "
            f"{_gib(est) if est else '-':>8} {vs:>8}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="MODEL_ID:lora|qlora, comma-separated")
    parser.add_argument("--context", type=int, default=1024, help="max_length (Balanced: 1,024)")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the rate")
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument(
        "--memory-gb", type=float, default=None, help="cap each process at N GB of GPU memory"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an engine setting")
    parser.add_argument("--only", choices=("baseline", "engine"), help="run one side only")
    parser.add_argument(
        "--baseline-from",
        type=Path,
        metavar="FILE",
        help="take each row's baseline from an earlier run's JSON lines instead of measuring it",
    )
    parser.add_argument("--json", type=Path, help="append the rows to FILE as JSON lines")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ftstudio-bench-gpu")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per process")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny shape on the CPU, to check the bench works"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    if args.smoke:
        args.rows = f"{SMOKE_MODEL}:lora"
        args.context, args.examples, args.warmup, args.steps = 128, 16, 1, 2
    median = 40 if args.smoke else MEDIAN_TOKENS
    import torch

    device = "cpu" if args.smoke or not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    if device == "cpu" and not args.smoke:
        raise SystemExit("No GPU here: bench_gpu measures a GPU (use --smoke to check the bench on the CPU)")
    del torch
    from ftstudio.engine.estimate import ModelShape

    print(
        f"device: {device}; context {args.context}; {args.examples} examples, median {median} tokens; "
        f"{args.warmup} warm-up + {args.steps} timed steps"
        + (f"; capped at {args.memory_gb} GB" if args.memory_gb else "")
    )
    results: list[dict[str, Any]] = []
    for row in args.rows.split(","):
        model_id, _, method = row.strip().partition(":")
        method = method or "lora"
        base = {
            "model": model_id,
            "method": method,
            "context": args.context,
            "examples": args.examples,
            "median": median,
            "warmup": args.warmup,
            "steps": args.steps,
            "memory_gb": None,
            "smoke": args.smoke,
            "set": args.set,
            "work": str(args.work),
        }
        prepared = in_process({**base, "system": "prepare"}, args.timeout)
        if "error" in prepared:
            results.append({**base, "system": "prepare", "device": device, **prepared})
            continue
        base.update(folder=prepared["folder"], memory_gb=args.memory_gb)
        shape = ModelShape.from_config(shape_config(model_id), model_id)
        baseline: dict[str, Any] = {}
        if args.baseline_from:
            baseline = earlier_baseline(args.baseline_from, base) or {}
        elif args.only != "engine":
            baseline = {
                **base,
                "system": "baseline",
                "device": device,
                **in_process({**base, "system": "baseline"}, args.timeout),
            }
            results.append(baseline)
        if args.only != "baseline":
            step_tokens = baseline.get("step_tokens") or BASELINE_BATCH * median
            engine = {
                **base,
                "system": "engine",
                "device": device,
                **in_process({**base, "system": "engine", "step_tokens": step_tokens}, args.timeout),
            }
            if "error" not in engine and "error" not in baseline and baseline:
                engine["ratio"] = engine["tokens_per_s"] / baseline["tokens_per_s"]
                if engine.get("peak_reserved") and baseline.get("peak_reserved"):
                    engine["reserved_vs_baseline"] = engine["peak_reserved"] / baseline["peak_reserved"]
            results.append(engine)
        for r in results[-2:]:
            if "error" not in r and r["model"] == model_id:
                r["mfu"] = mfu(r["tokens_per_s"], shape, device)
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with args.json.open("a", encoding="utf-8") as fh:
            for r in results:
                fh.write(json.dumps({k: v for k, v in r.items() if k not in ("folder", "work")}) + "\n")
        print(f"JSON lines appended to {args.json}")


if __name__ == "__main__":
    main()
