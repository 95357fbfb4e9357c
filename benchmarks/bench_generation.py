"""Batched greedy generation against one answer at a time, on the bundled model.

The prompts are 100 held-out examples of the demo project (support-ticket
triage): the demo data is imported into a throwaway project with a third held
out, and the first 100 held-out conversations are asked, as the Held-out
evaluation asks them (greedy, the evaluation's own answer budget: the longest
reference and 8 tokens more). Both ways run in this process on the same
loaded model:

- one at a time: ``Generator.generate`` per prompt (what evaluation did before);
- batched: ``batch_generation.generate_batch`` (left padding, one KV cache per batch,
  prompts of similar length together).

    .venv/bin/python benchmarks/bench_generation.py [--device cpu|cuda] [--batch-size N] [--max-new-tokens N]

Prints answer tokens per second of both (tokens up to each answer's end, not
padding), their ratio, and how many answers are identical (all should be).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPTS = 100


def demo_held_out(n: int) -> list[list[dict]]:
    """The first ``n`` held-out conversations of the demo data, imported with a third held out."""
    from ftstudio.cli import DEMO_DATA
    from ftstudio.core.formats import import_dataset
    from ftstudio.core.project import Project
    from ftstudio.paths import resource

    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "bench.ftstudio")
        try:
            import_dataset(project, resource("demo", DEMO_DATA), eval_fraction=0.34, actor="bench")
            held_out = project.prepared_data().eval
        finally:
            project.close()
    if len(held_out) < n:
        raise SystemExit(f"the demo holds out only {len(held_out)} examples; {n} are needed")
    return [list(c) for c in held_out[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--batch-size", type=int, default=None, help="rows per batch (default: by device)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="answer budget (default: the evaluation's, from the references)",
    )
    args = parser.parse_args()

    import torch

    from ftstudio.engine.batch_generation import Request, default_batch_size, generate_batch
    from ftstudio.engine.evaluation import answer_budget, reference_answer
    from ftstudio.engine.inference import Generator, SamplingSettings
    from ftstudio.engine.models import bundled_model_dir

    conversations = demo_held_out(PROMPTS)
    generator = Generator(str(bundled_model_dir()), device=args.device)
    tok = generator.tokenizer
    budget = args.max_new_tokens or answer_budget(tok, [reference_answer(c) or "" for c in conversations])
    settings = SamplingSettings(max_new_tokens=budget)
    batch_size = args.batch_size or default_batch_size(generator.device)
    requests = [Request(c) for c in conversations]
    prompt_tokens = [len(generator.prompt_ids(c)) for c in conversations]

    def sync() -> None:
        if generator.device == "cuda":
            torch.cuda.synchronize()

    def answer_tokens(answers: list) -> int:
        # What each answer holds up to its end: the same count for both ways when the answers agree.
        return sum(len(tok(a or "", add_special_tokens=False)["input_ids"]) + 1 for a in answers)

    # Warm-up (first calls allocate and pick kernels), not timed.
    generator.generate(conversations[0], settings=settings)
    generate_batch(generator, requests[:batch_size], settings, batch_size=batch_size)

    sync()
    t0 = time.perf_counter()
    alone = [generator.generate(r.messages, settings=settings) for r in requests]
    sync()
    t_alone = time.perf_counter() - t0

    t0 = time.perf_counter()
    batched = generate_batch(generator, requests, settings, batch_size=batch_size)
    sync()
    t_batched = time.perf_counter() - t0

    same = sum(a == b for a, b in zip(alone, batched))
    n_alone, n_batched = answer_tokens(alone), answer_tokens(batched)
    threads = torch.get_num_threads()
    print(
        f"Device: {generator.device} ({threads} CPU threads)  model: bundled "
        f"({sum(p.numel() for p in generator.base.parameters()) / 1e6:.0f}M)"
    )
    print(
        f"Prompts: {len(requests)} held-out demo prompts, {min(prompt_tokens)}-{max(prompt_tokens)} tokens "
        f"(mean {sum(prompt_tokens) / len(prompt_tokens):.0f}); greedy, at most {budget} new tokens"
    )
    print(
        f"One at a time: {t_alone:7.2f} s  {n_alone / t_alone:8.1f} answer tokens/s  "
        f"({t_alone / len(requests) * 1000:.0f} ms per prompt)"
    )
    print(
        f"Batched ({batch_size:>3}): {t_batched:7.2f} s  {n_batched / t_batched:8.1f} answer tokens/s  "
        f"({t_batched / len(requests) * 1000:.0f} ms per prompt)"
    )
    print(
        f"Ratio: {(n_batched / t_batched) / (n_alone / t_alone):.1f}x tokens/s  "
        f"(floor: 3x on a 2-core CPU, 10x on a GPU)"
    )
    print(f"Identical answers: {same} of {len(requests)}")
    for a, b in zip(alone, batched):
        if a != b:
            print(f"  differs: {a!r} | {b!r}")
    return 0 if same == len(requests) else 1


if __name__ == "__main__":
    sys.exit(main())
