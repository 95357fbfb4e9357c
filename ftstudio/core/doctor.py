"""The system check behind ``ftstudio doctor`` and Help > System check: what a check
reports, how a report is printed, and the checks that need neither torch nor Qt.

Each check gives one line: OK, a note, a warning, or a problem, with the fix in
words. A problem blocks training (the command exits non-zero on one); a warning
is something that works less well than it could. The torch checks live in
``ftstudio.engine.doctor``, which runs the whole list.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ftstudio.core.machine import system_memory

OK, NOTE, WARNING, PROBLEM = "ok", "note", "warning", "problem"
STATUS_WORD = {OK: "OK", NOTE: "Note", WARNING: "Warning", PROBLEM: "Problem"}
MIN_FREE_DISK = 2 * 2**30  # below this a run cannot save its checkpoints
LOW_FREE_DISK = 10 * 2**30
MIN_RAM = 4 * 2**30


@dataclass(frozen=True)
class Check:
    key: str  # stable id for --json readers: "python", "torch", "cuda", ...
    title: str  # what was checked, as the user calls it
    status: str  # OK | NOTE | WARNING | PROBLEM
    detail: str  # what was found
    fix: str = ""  # what to do, in words (empty when nothing is to be done)

    @property
    def blocks_training(self) -> bool:
        return self.status == PROBLEM


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.blocks_training]

    def get(self, key: str) -> Check:
        return next(c for c in self.checks if c.key == key)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": not self.blocking,
            "blocking": [c.key for c in self.blocking],
            "checks": [asdict(c) | {"blocks_training": c.blocks_training} for c in self.checks],
        }

    def text(self) -> str:
        width = max(len(c.title) for c in self.checks)
        lines = []
        for c in self.checks:
            lines.append(f"{STATUS_WORD[c.status]:8s} {c.title:{width}s}  {c.detail}")
            if c.fix:
                lines.append(f"{'':8s} {'':{width}s}  -> {c.fix}")
        if self.blocking:
            lines.append(
                f"\n{len(self.blocking)} problem(s) block training; fix them and run 'ftstudio doctor' again."
            )
        else:
            lines.append("\nNothing blocks training.")
        return "\n".join(lines)


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info < (3, 11):
        return Check("python", "Python", PROBLEM, f"Python {version}", "FT Studio needs Python 3.11 or newer")
    return Check("python", "Python", OK, f"Python {version} ({sys.executable})")


def check_ftstudio() -> Check:
    from ftstudio import __version__

    return Check(
        "ftstudio", "FT Studio", OK, f"FT Studio {__version__} ({Path(__file__).resolve().parents[1]})"
    )


def check_ram() -> Check:
    total, available = system_memory()
    detail = f"{gib(available)} free of {gib(total)}"
    if total < MIN_RAM:
        return Check(
            "ram",
            "Memory (RAM)",
            WARNING,
            detail,
            "Under 4 GiB of RAM: only the bundled model will train, and slowly",
        )
    return Check("ram", "Memory (RAM)", OK, detail)


def check_cache(folder: Path) -> list[Check]:
    """The cache folder (models, logs) is writable, and the disk under it has room for runs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return [
            Check(
                "cache",
                "Cache folder",
                PROBLEM,
                f"{folder} is not writable ({exc.strerror or exc})",
                "Make it writable, or point FTSTUDIO_CACHE_DIR at a folder you can write to",
            )
        ]
    free = shutil.disk_usage(folder).free
    checks = [Check("cache", "Cache folder", OK, f"{folder} is writable")]
    detail = f"{gib(free)} free under {folder}"
    if free < MIN_FREE_DISK:
        checks.append(
            Check(
                "disk",
                "Disk space",
                PROBLEM,
                detail,
                "Free at least 2 GiB: a run saves checkpoints and its adapter there",
            )
        )
    elif free < LOW_FREE_DISK:
        checks.append(
            Check(
                "disk",
                "Disk space",
                WARNING,
                detail,
                "Under 10 GiB free: enough for the bundled model, not for downloading larger ones",
            )
        )
    else:
        checks.append(Check("disk", "Disk space", OK, detail))
    return checks


def check_hub_token() -> Check:
    """A Hugging Face token is stored (needed only for gated models such as Llama or Gemma)."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        return Check("hf_token", "Hugging Face token", NOTE, "huggingface_hub is not installed")
    if get_token():
        return Check(
            "hf_token", "Hugging Face token", OK, "a token is stored (gated models can be downloaded)"
        )
    return Check(
        "hf_token",
        "Hugging Face token",
        NOTE,
        "none stored; only needed for gated models",
        "For a gated model: accept its licence on the hub, then add your token (Edit > Hugging Face account)",
    )


def check_qt(env: Mapping[str, str] | None = None) -> Check:
    """The Qt platform plugin the app would use can load (the headless commands do not need it)."""
    from ftstudio.core.qt_platform import check_platform

    result = check_platform(env=env)
    title = "Qt platform plugin"
    if result.ok:
        return Check("qt", title, OK, f"'{result.platform}' loads ({result.plugin})")
    lines = result.message().splitlines()
    fix = " ".join(line.strip() for line in lines[1:]) or "Reinstall FT Studio"
    # The app cannot open, but training from the command line still works: a warning.
    return Check("qt", title, WARNING, lines[0], fix)
