"""GGUF export of the bundled model: time to write and file size per quantisation.

Loads the bundled model (SmolLM2-135M-Instruct) once, merged with nothing
(the base: the writing cost does not depend on the adapter), and writes it as
each of f16, bf16, q8_0 and q4_0 into a temporary folder. The baseline, in
the same process: ``save_pretrained`` of the same weights as a safetensors
folder (what the merged-model export writes).

    .venv/bin/python benchmarks/bench_gguf_export.py [--quants f16,q8_0]

Prints seconds and MiB per quantisation and each as a ratio of the baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quants", default="f16,bf16,q8_0,q4_0")
    args = parser.parse_args()

    from ftstudio.core.config import BUNDLED_MODEL
    from ftstudio.engine.export import load_tuned
    from ftstudio.engine.gguf_export import prepare, write_gguf
    from ftstudio.engine.models import load_tokenizer, resolve_model, stop_token_ids

    model_dir = resolve_model(BUNDLED_MODEL)
    model, _ = load_tuned(BUNDLED_MODEL, None)
    tokenizer = load_tokenizer(model_dir)
    info = prepare(model_dir, None, name="bench", base_model=BUNDLED_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model.save_pretrained(Path(tmp) / "hf", safe_serialization=True)
        base_s = time.perf_counter() - started
        base_mib = sum(p.stat().st_size for p in (Path(tmp) / "hf").iterdir()) / 2**20
        print(f"{'baseline (safetensors fp32)':28s} {base_s:7.2f} s  {base_mib:8.1f} MiB")
        for quant in args.quants.split(","):
            result = write_gguf(
                model,
                tokenizer,
                info,
                Path(tmp) / f"m-{quant}.gguf",
                quant,
                generation_eos=stop_token_ids(model, tokenizer),
            )
            mib = result.size_bytes / 2**20
            print(
                f"{'gguf ' + quant:28s} {result.seconds:7.2f} s  {mib:8.1f} MiB   "
                f"time x{result.seconds / base_s:.2f}, size x{mib / base_mib:.2f} of the baseline"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
