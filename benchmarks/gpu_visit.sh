#!/usr/bin/env bash
# One visit to a GPU machine measures what the CPU cannot: the engine's GPU tests
# (tests/engine/test_gpu.py), then benchmarks/bench_gpu.py with today's compute paths,
# with the new ones on (fused_loss, varlen_attention, bf16_autocast, liger_kernels),
# Llama-3.1-8B QLoRA at 2,048 tokens under an 8 GB cap, and at 8,192 under 12 GB with
# offloaded checkpoints. Every figure goes to
# benchmarks/results/<UTC time>/ as JSON lines beside its printed table; commit that folder.
#
#   benchmarks/gpu_visit.sh                 # PYTHON=... names the interpreter (default .venv/bin/python)
#   LIGER_WHEEL=/path/liger_kernel-*.whl benchmarks/gpu_visit.sh   # a machine without the package index
#
# About 20 minutes on one H100/H200 (each bench_gpu set is under 8).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
out="benchmarks/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
export QT_QPA_PLATFORM=offscreen

"$PY" - <<'PY' | tee "$out/device.txt" || { echo "no CUDA GPU visible: nothing to measure here"; exit 1; }
import torch
assert torch.cuda.is_available(), "no CUDA GPU"
print(torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB",
      "torch", torch.__version__, "CUDA", torch.version.cuda)
PY

# liger-kernel (a wheel: Triton kernels, nothing to compile) for fused_loss and liger_kernels.
if ! "$PY" -c "import liger_kernel.transformers" 2>/dev/null; then
    "$PY" -m pip install -q "${LIGER_WHEEL:-liger-kernel}" || echo "liger-kernel could not be installed" | tee -a "$out/device.txt"
fi
new_paths=(--set varlen_attention=true --set bf16_autocast=true)
if "$PY" -c "import liger_kernel.transformers" 2>/dev/null; then
    new_paths+=(--set fused_loss=true --set liger_kernels=true)
else
    echo "without liger-kernel: fused_loss and liger_kernels not measured" | tee -a "$out/device.txt"
fi

"$PY" -m pytest -q -rs tests/engine/test_gpu.py 2>&1 | tee "$out/gpu-tests.txt"
"$PY" benchmarks/bench_gpu.py --json "$out/default.jsonl" 2>&1 | tee "$out/default.txt"
"$PY" benchmarks/bench_gpu.py --baseline-from "$out/default.jsonl" "${new_paths[@]}" --json "$out/new-paths.jsonl" 2>&1 | tee "$out/new-paths.txt"
"$PY" benchmarks/bench_gpu.py --rows meta-llama/Llama-3.1-8B:qlora --context 2048 --memory-gb 8 \
    --json "$out/8b-qlora-8gb.jsonl" 2>&1 | tee "$out/8b-qlora-8gb.txt"
# Offloaded checkpoints: 8B QLoRA at 8,192 tokens on a 12 GB card fits only with them (the estimate).
"$PY" benchmarks/bench_gpu.py --rows meta-llama/Llama-3.1-8B:qlora --context 8192 --memory-gb 12 --only engine \
    --set offload_checkpoints=true --json "$out/8b-qlora-offloaded-12gb.jsonl" 2>&1 | tee "$out/8b-qlora-offloaded-12gb.txt"
echo "results in $out"
