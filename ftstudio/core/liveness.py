"""Whether a run is still being trained by some process.

The process training a run holds an exclusive lock on ``<run>/.alive`` for as
long as it trains (from before the run is marked running until after its final
status is written). The operating system drops the lock when the process dies
in any way (kill -9, a crash, a power cut), so "running but nobody holds the
lock" means the run was interrupted. A run trained in this process is also
remembered in memory, since a second open of the same file here must not be
taken for another process.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import IO, Any

ALIVE_FILE = ".alive"
OUTCOME_FILE = "outcome.json"

_held: dict[str, "RunLock"] = {}
_held_guard = threading.Lock()

try:
    import fcntl
except ImportError:  # Windows: no flock; the pid written in the file is checked instead
    fcntl = None  # type: ignore[assignment]


class RunBusy(Exception):
    """Another process is training this run now."""


class RunLock:
    """Held while a process trains the run in ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._fh: IO[str] | None = None

    def acquire(self) -> "RunLock":
        key = str(self.run_dir.resolve())
        with _held_guard:
            if key in _held:
                raise RunBusy(f"run {self.run_dir.name} is already training in this window")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fh = open(self.run_dir / ALIVE_FILE, "a+", encoding="utf-8")
            if fcntl is not None:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    fh.close()
                    raise RunBusy(f"run {self.run_dir.name} is being trained by another process") from None
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid()}))
            fh.flush()
            self._fh = fh
            _held[key] = self
        return self

    def release(self) -> None:
        with _held_guard:
            _held.pop(str(self.run_dir.resolve()), None)
            if self._fh is not None:
                self._fh.close()  # closing drops the flock
                self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def release(run_dir: Path) -> None:
    """Let go of the lock this process holds on the run (if any)."""
    with _held_guard:
        lock = _held.get(str(Path(run_dir).resolve()))
    if lock is not None:
        lock.release()


def is_alive(run_dir: Path) -> bool:
    """Whether some process holds the run's lock now."""
    run_dir = Path(run_dir)
    try:
        key = str(run_dir.resolve())
    except OSError:
        return False
    with _held_guard:
        if key in _held:
            return True
    path = run_dir / ALIVE_FILE
    if not path.exists():
        return False
    if fcntl is None:
        try:
            pid = int(json.loads(path.read_text(encoding="utf-8"))["pid"])
            os.kill(pid, 0)
            return True
        except (OSError, ValueError, KeyError, TypeError):
            return False
    try:
        with open(path, "a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def write_outcome(run_dir: Path, fields: dict[str, Any]) -> None:
    """The run's final status, kept beside it before the database is told, so a
    locked or unwritable database cannot lose it (the next reader applies it)."""
    from ftstudio.core.fileio import write_text_atomic

    write_text_atomic(Path(run_dir) / OUTCOME_FILE, json.dumps(fields))


def read_outcome(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(run_dir) / OUTCOME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clear_outcome(run_dir: Path) -> None:
    try:
        (Path(run_dir) / OUTCOME_FILE).unlink()
    except FileNotFoundError:
        pass
