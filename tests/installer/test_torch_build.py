"""The PyTorch build the installer picks, from nvidia-smi outputs of real driver versions
(the tables as nvidia-smi 470, 535, 570 and 580 print them) and from no driver at all."""

import subprocess
import sys
from pathlib import Path

import pytest

from ftstudio.core.torch_build import TORCH_VERSION, choose_torch_build, parse_nvidia_smi

SMI = Path(__file__).parent / "nvidia-smi"
SCRIPT = Path(__file__).parents[2] / "ftstudio" / "core" / "torch_build.py"


def smi(name: str) -> str:
    return (SMI / name).read_text(encoding="utf-8")


def test_no_nvidia_smi_is_the_cpu_build():
    build = choose_torch_build(None)
    assert build.tag == "cpu" and not build.is_cuda
    assert build.requirement == f"torch=={TORCH_VERSION}+cpu"
    assert build.index_url() == "https://download.pytorch.org/whl/cpu"


def test_nvidia_smi_without_a_driver_is_the_cpu_build():
    build = choose_torch_build(smi("no-driver.txt"))
    assert build.tag == "cpu"
    assert "driver" in build.reason


def test_old_driver_gets_the_cpu_build_and_the_driver_to_install():
    build = choose_torch_build(smi("driver-470-gtx1080.txt"), "6.1\n")
    assert build.tag == "cpu"
    assert build.driver == "470.182.03"
    assert "too old" in build.reason and "525.60.13" in build.reason


def test_driver_reporting_an_older_cuda_12_uses_minor_version_compatibility():
    build = choose_torch_build(smi("driver-535-a100.txt"), "8.0\n")
    assert build.tag == "cu126"
    assert "minor-version compatibility" in build.reason
    assert build.gpus == ("NVIDIA A100-SXM4-80GB",)


@pytest.mark.parametrize(
    "recording, caps, expected",
    [
        ("driver-570-rtx4090.txt", "8.9\n", "cu128"),
        ("driver-570-rtx4090.txt", None, "cu128"),  # compute capability unknown: trust the driver
        ("driver-580-h200.txt", "9.0\n", "cu130"),
        # CUDA 13 builds dropped Volta, CUDA 12.8 builds Pascal: the newest build that still runs the GPU.
        ("driver-580-h200.txt", "7.0\n", "cu128"),
        ("driver-570-rtx4090.txt", "8.9\n6.1\n", "cu126"),
    ],
)
def test_current_driver_gets_the_newest_build_it_and_the_gpu_support(recording, caps, expected):
    build = choose_torch_build(smi(recording), caps)
    assert build.tag == expected
    assert build.requirement == f"torch=={TORCH_VERSION}+{expected}"
    assert build.index_url("https://mirror.example/whl/") == f"https://mirror.example/whl/{expected}"


def test_gpu_older_than_every_build_gets_the_cpu_build():
    build = choose_torch_build(smi("driver-580-h200.txt"), "3.5\n")
    assert build.tag == "cpu" and "3.5" in build.reason


def test_parse_reads_driver_cuda_and_gpu_names():
    driver, cuda, gpus = parse_nvidia_smi(smi("driver-570-rtx4090.txt"))
    assert (driver, cuda, gpus) == ("570.133.07", (12, 8), ["NVIDIA GeForce RTX 4090"])


def test_the_installer_runs_it_with_the_bare_system_python(tmp_path):
    # -I: isolated mode, no site-packages and no ftstudio on the path: the standard library must do.
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            str(SCRIPT),
            "--shell",
            "--nvidia-smi-file",
            str(SMI / "driver-570-rtx4090.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert lines["TORCH_TAG"] == "cu128"
    assert lines["TORCH_REQUIREMENT"] == f"torch=={TORCH_VERSION}+cu128"
    assert "570.133.07" in lines["TORCH_REASON"]
