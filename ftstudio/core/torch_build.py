"""Which PyTorch build to install on this machine, from what ``nvidia-smi`` prints.

A pure function over the text of ``nvidia-smi`` (None where the command is
missing), so the choice is tested on recorded outputs. This file imports
nothing outside the standard library: ``packaging/install.sh`` runs it with the
system Python before anything is installed::

    python3 ftstudio/core/torch_build.py            # prints the build and why
    python3 ftstudio/core/torch_build.py --shell    # NAME=... lines for the installer

The CUDA builds are those PyTorch publishes for the pinned version; keep
``CUDA_BUILDS`` in step with https://pytorch.org/get-started/locally when the
pin moves.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

TORCH_VERSION = "2.13.0"
PYTORCH_INDEX = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class CudaBuild:
    tag: str  # "cu128": the wheel's local version label and the index folder
    cuda: tuple[int, int]
    min_compute: tuple[int, int]  # the oldest GPU architecture the build still carries


# Newest first. CUDA 12.8 builds dropped Maxwell and Pascal (before 7.0); CUDA 13 dropped Volta (7.0).
CUDA_BUILDS: tuple[CudaBuild, ...] = (
    CudaBuild("cu130", (13, 0), (7, 5)),
    CudaBuild("cu128", (12, 8), (7, 0)),
    CudaBuild("cu126", (12, 6), (5, 0)),
)
# The oldest driver each CUDA major version runs on (minor-version compatibility): a build of
# CUDA 12.x runs on any driver from 525.60.13, even one that reports an older 12.y.
MIN_DRIVER_FOR_MAJOR = {12: (525, 60, 13), 13: (580, 65, 6)}


@dataclass(frozen=True)
class TorchBuild:
    tag: str  # "cpu" or a CudaBuild tag
    reason: str  # one sentence for the person installing
    driver: str = ""  # the NVIDIA driver version found, "" without one
    gpus: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"torch=={TORCH_VERSION}+{self.tag}"

    def index_url(self, base: str = PYTORCH_INDEX) -> str:
        return f"{base.rstrip('/')}/{self.tag}"

    @property
    def is_cuda(self) -> bool:
        return self.tag != "cpu"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def parse_nvidia_smi(output: str) -> tuple[str, tuple[int, int] | None, list[str]]:
    """(driver version, the newest CUDA version the driver supports, GPU names) from nvidia-smi's table."""
    driver = re.search(r"Driver Version:\s*([\d.]+)", output)
    cuda = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", output)
    # GPU rows look like "|   0  NVIDIA GeForce RTX 4090        Off |   00000000:01:00.0  On |"
    gpus = re.findall(r"^\|\s+\d+\s+(.+?)\s+(?:On|Off)\s+\|", output, flags=re.MULTILINE)
    return (
        driver.group(1) if driver else "",
        (int(cuda.group(1)), int(cuda.group(2))) if cuda else None,
        [g.strip() for g in gpus],
    )


def parse_compute_caps(output: str | None) -> list[tuple[int, int]]:
    """Compute capabilities from ``nvidia-smi --query-gpu=compute_cap --format=csv,noheader`` ("8.9" a line)."""
    caps = []
    for line in (output or "").splitlines():
        m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", line)
        if m:
            caps.append((int(m.group(1)), int(m.group(2))))
    return caps


def choose_torch_build(nvidia_smi: str | None, compute_caps: str | None = None) -> TorchBuild:
    """The PyTorch build for a machine whose ``nvidia-smi`` printed ``nvidia_smi`` (None: no such command).

    With a working NVIDIA driver: the newest CUDA build that the driver
    supports and that still carries the oldest GPU's architecture; else the
    CPU build, with the reason in words.
    """
    if nvidia_smi is None:
        return TorchBuild("cpu", "No NVIDIA driver found (no nvidia-smi): the CPU build.")
    driver, driver_cuda, gpus = parse_nvidia_smi(nvidia_smi)
    if not driver or driver_cuda is None:
        return TorchBuild(
            "cpu",
            "nvidia-smi is there but cannot talk to the NVIDIA driver "
            "(is the driver installed and loaded?): the CPU build.",
        )
    caps = parse_compute_caps(compute_caps)
    oldest_gpu = min(caps) if caps else None
    fits_gpu = [b for b in CUDA_BUILDS if oldest_gpu is None or oldest_gpu >= b.min_compute]
    if not fits_gpu and oldest_gpu is not None:
        return TorchBuild(
            "cpu",
            f"The GPU (compute capability {oldest_gpu[0]}.{oldest_gpu[1]}) is older than "
            f"any CUDA build of PyTorch {TORCH_VERSION} supports: the CPU build.",
            driver,
            tuple(gpus),
        )
    cuda_text = f"{driver_cuda[0]}.{driver_cuda[1]}"
    for build in fits_gpu:
        if build.cuda <= driver_cuda:
            return TorchBuild(
                build.tag,
                f"NVIDIA driver {driver} supports CUDA up to {cuda_text}: "
                f"the CUDA {build.cuda[0]}.{build.cuda[1]} build.",
                driver,
                tuple(gpus),
            )
    driver_number = _version(driver)
    for build in reversed(fits_gpu):  # oldest first: the least the driver has to stretch
        minimum = MIN_DRIVER_FOR_MAJOR.get(build.cuda[0])
        if build.cuda[0] == driver_cuda[0] and minimum and driver_number >= minimum:
            return TorchBuild(
                build.tag,
                f"NVIDIA driver {driver} reports CUDA {cuda_text}; the CUDA "
                f"{build.cuda[0]}.{build.cuda[1]} build runs on it through CUDA's "
                "minor-version compatibility.",
                driver,
                tuple(gpus),
            )
    oldest = fits_gpu[-1]
    need = MIN_DRIVER_FOR_MAJOR.get(oldest.cuda[0])
    need_text = ".".join(str(n) for n in need) if need else "a newer one"
    return TorchBuild(
        "cpu",
        f"NVIDIA driver {driver} (CUDA {cuda_text}) is too old for PyTorch {TORCH_VERSION}'s "
        f"CUDA builds: the CPU build. To train on the GPU, update the driver to {need_text} "
        "or newer and run the installer again.",
        driver,
        tuple(gpus),
    )


def read_nvidia_smi() -> tuple[str | None, str | None]:
    """This machine's nvidia-smi table and compute capabilities (None, None without the command)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, None

    def run(*args: str) -> str:
        try:
            done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout + done.stderr

    return run(), run("--query-gpu=compute_cap", "--format=csv,noheader")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Which PyTorch build suits this machine")
    parser.add_argument(
        "--shell",
        action="store_true",
        help="print TORCH_TAG=, TORCH_REQUIREMENT= and TORCH_REASON= lines for a shell to eval",
    )
    parser.add_argument(
        "--nvidia-smi-file", help="decide from a saved nvidia-smi output instead of running it"
    )
    args = parser.parse_args(argv)
    table: str | None
    caps: str | None = None
    if args.nvidia_smi_file:
        with open(args.nvidia_smi_file, encoding="utf-8") as fh:
            table = fh.read()
    else:
        table, caps = read_nvidia_smi()
    build = choose_torch_build(table, caps)
    if args.shell:
        print(f"TORCH_TAG={shlex.quote(build.tag)}")
        print(f"TORCH_REQUIREMENT={shlex.quote(build.requirement)}")
        print(f"TORCH_REASON={shlex.quote(build.reason)}")
    else:
        print(f"{build.requirement}: {build.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
