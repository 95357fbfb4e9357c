"""Importing a 200 MB JSONL and a 200 MB CSV: time and peak memory, against reading
the same file with ``datasets`` alone.

Writes two files of support-ticket-like examples (messages JSONL; prompt,response CSV)
of about ``--mb`` MB each, then runs, each in a fresh process so peak memory is its own:

- ftstudio: ``import_dataset`` into a new project (both passes: checking every record,
  then inserting in one transaction);
- datasets: ``datasets.load_dataset("json" | "csv", data_files=...)`` into an empty
  cache (Arrow, no conversion, no database): the floor for reading the file at all.

    .venv/bin/python benchmarks/bench_import.py [--mb 200]

Prints seconds and peak resident memory for each, and ftstudio's as a ratio of the
baseline's. The target: peak memory under 1 GB for 200 MB, time linear in size
(run with --mb 50 and --mb 200 to see it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "order charge refund card app crash login password parcel delivery late broken screen email "
    "account invoice twice week help please thanks settings update payment address return item "
    "missing wrong size colour price discount code subscription cancel renew message support"
).split()
LABELS = ["billing", "technical", "account", "shipping", "feedback"]

FTSTUDIO = """
import sys
from ftstudio.core.formats import import_dataset
from ftstudio.core.project import Project
project = Project.create(sys.argv[1])
preview = import_dataset(project, sys.argv[2])
print(preview.example_count)
"""
DATASETS = """
import sys
import datasets
datasets.disable_progress_bars()
ds = datasets.load_dataset(sys.argv[3], data_files=sys.argv[2], cache_dir=sys.argv[1], split="train")
print(len(ds))
"""


def ticket(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(20, 160)
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "?", rng.choice(LABELS)


def write_files(folder: Path, mb: int) -> tuple[Path, Path]:
    rng = random.Random(7)
    target = mb * 1_000_000
    jsonl, table = folder / "tickets.jsonl", folder / "tickets.csv"
    with open(jsonl, "w", encoding="utf-8") as fj, open(table, "w", newline="", encoding="utf-8") as fc:
        writer = csv.writer(fc)
        writer.writerow(["prompt", "response"])
        while fj.tell() < target or fc.tell() < target:
            q, a = ticket(rng)
            if fj.tell() < target:
                fj.write(
                    json.dumps(
                        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
                    )
                    + "\n"
                )
            if fc.tell() < target:
                writer.writerow([q, a])
    return jsonl, table


def measure(script: str, *args: str) -> tuple[float, float, str]:
    """(seconds, peak resident MB, what it printed) of ``script`` in a fresh interpreter."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed:\n{err}")
    return seconds, usage.ru_maxrss / 1024, out.strip()  # ru_maxrss is in KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of each file in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jsonl, table = write_files(folder, args.mb)
        print(f"files: {jsonl.stat().st_size / 1e6:.0f} MB JSONL, {table.stat().st_size / 1e6:.0f} MB CSV")
        print(
            f"{'file':6s} {'reader':9s} {'examples':>9s} {'seconds':>8s} {'peak MB':>8s}   ratio (time, memory)"
        )
        for kind, path in (("json", jsonl), ("csv", table)):
            base = measure(DATASETS, str(folder / f"cache-{kind}"), str(path), kind)
            ours = measure(FTSTUDIO, str(folder / f"{kind}.ftstudio"), str(path))
            for name, (seconds, peak, count) in (("datasets", base), ("ftstudio", ours)):
                print(f"{kind:6s} {name:9s} {count:>9s} {seconds:8.1f} {peak:8.0f}", end="")
                if name == "ftstudio":
                    print(f"   {seconds / base[0]:.1f}x, {peak / base[1]:.2f}x", end="")
                print()


if __name__ == "__main__":
    main()
