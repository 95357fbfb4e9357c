"""benchmarks/bench_gpu.py end to end in its CPU smoke mode: every configuration in its own
process (the model built from a shape, the padded baseline, the engine with its auto-fit plan),
the table and the JSON lines. It measures nothing worth reading here; it shows the bench runs,
so one visit to a GPU machine (benchmarks/gpu_visit.sh) measures everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_gpu_bench_runs_end_to_end_in_smoke_mode(tmp_path):
    out = tmp_path / "rows.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_gpu.py"),
            "--smoke",
            "--json",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--set",
            "bf16_autocast=true",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["system"] for r in rows] == ["baseline", "engine"], rows
    baseline, engine = rows
    assert "error" not in baseline and "error" not in engine, rows
    for r in rows:
        assert r["model"] == "smoke-tiny" and r["device"] == "cpu" and r["tokens_per_s"] > 0
        assert r["tokens"] > 0 and r["seconds"] > 0
    # the engine takes the baseline's tokens per optimiser step (8 padded sequences' real tokens)
    assert engine["step_tokens"] == max(128, baseline["step_tokens"])
    assert engine["ratio"] == pytest.approx(engine["tokens_per_s"] / baseline["tokens_per_s"])
    assert engine["estimate"] > 0 and "checkpointing" in engine["plan"]
    assert engine["settings"]["bf16_autocast"] is True  # --set reaches the engine's settings
    # the model was built once from its shape, in the work folder, with the bundled tokenizer
    assert (tmp_path / "work" / "smoke-tiny" / "ready").is_file()
    table = done.stdout
    assert "baseline" in table and "engine" in table and "x base" in table
