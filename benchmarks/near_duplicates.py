"""Near-duplicate check at scale: prints seconds for 10,000 and 100,000 examples
and their ratio (about 10 means the check grows linearly; pairwise comparison
would give about 100).

    .venv/bin/python benchmarks/near_duplicates.py
"""

from __future__ import annotations

import random
import time

from ftstudio.core.examples import Example
from ftstudio.core.validation import near_duplicate_groups, normalise, validate_examples


def make_examples(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    examples = []
    for i in range(n):
        if i and rng.random() < 0.05:  # a near-copy of an earlier example: one word changed
            words = examples[rng.randrange(len(examples))].messages[0]["content"].split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
        else:
            words = rng.choices(vocab, k=rng.randint(20, 80))
        examples.append(Example(
            id=i + 1, messages=[{"role": "user", "content": " ".join(words)},
                                {"role": "assistant", "content": rng.choice(["yes", "no", "maybe"])}],
            system=None, split="eval" if rng.random() < 0.1 else "train", status="labelled",
            label=None, annotator=None, created_at="", updated_at="",
        ))
    return examples


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    results = {}
    for n in (10_000, 100_000):
        examples = make_examples(n)
        texts = [normalise(" ".join(m["content"] for m in e.messages)) for e in examples]
        t_groups, groups = timed(near_duplicate_groups, texts)
        t_all, report = timed(validate_examples, examples)
        results[n] = (t_groups, t_all)
        print(f"{n:>7,} examples: near-duplicate search {t_groups:6.2f} s ({len(groups):,} groups); "
              f"all checks {t_all:6.2f} s ({len(report.findings):,} findings)")
    ratio = results[100_000][0] / results[10_000][0]
    print(f"ratio 100k / 10k (near-duplicate search): {ratio:.1f}  (linear: ~10, pairwise: ~100)")


if __name__ == "__main__":
    main()
