"""Files on disk: atomic writes (a temporary name beside the target, then a
rename, so a crash never leaves half a file), deletes that cannot leave the
folder they belong to, a full disk said in words, and paths shown safely."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

# errno values that mean "no room": the disk is full, or the user's quota is spent.
DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# How libraries below us word a full disk when they do not pass the errno on
# (SQLite, torch's zip writer, safetensors).
DISK_FULL_WORDS = (
    "no space left",
    "disk is full",
    "database or disk is full",
    "file write failed",
    "disk quota exceeded",
)


class DiskFullError(OSError):
    """The disk is full. The message says where, how much was needed and what was kept."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk or the quota is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if any(words in str(current).lower() for words in DISK_FULL_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(path: Path) -> int | None:
    """Free space on the disk holding ``path`` (or its nearest existing parent)."""
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def size_words(n: float | None) -> str:
    if n is None:
        return "an unknown amount"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def disk_full_message(what: str, where: Path, needed: int | None, kept: str) -> str:
    """'The disk is full: <what> in <where> needs about X and Y is free. <kept>. Free some space ...'"""
    free = free_bytes(where)
    need = f"needs about {size_words(needed)}" if needed else "needs more room"
    return (
        f"The disk is full: {what} in {display_path(where)} {need} and {size_words(free)} is free. {kept} "
        "Free some space on that disk (or choose another one) and try again."
    )


def tree_size(path: Path) -> int:
    """Bytes in the files under ``path`` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


# Folders written under a temporary name and renamed when whole (checkpoints, adapters):
# ".tmp-<name>-<pid>" while written, ".old-<name>-<pid>" while the one it replaces is removed.
TEMP_DIR_PREFIXES = (".tmp-", ".old-")


def remove_stale_temp_dirs(folder: Path) -> list[Path]:
    """Remove the temporary folders a killed process left in ``folder`` (and one level below,
    where checkpoints go); returns what was removed. Call it only while no other process
    writes there (the run's liveness lock is held, or the run is not alive)."""
    removed: list[Path] = []
    folder = Path(folder)
    for parent in (folder, folder / "checkpoints"):
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(TEMP_DIR_PREFIXES) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def display_path(path: Path | str) -> str:
    """``path`` as text that can always be printed or stored: bytes that are not UTF-8
    (kept by Python as lone surrogates) become U+FFFD."""
    return os.fsencode(str(path)).decode("utf-8", "replace")


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symbolic links resolved) lies strictly inside ``root``."""
    try:
        resolved = Path(path).resolve()
        base = Path(root).resolve()
    except (OSError, RuntimeError):
        return False
    return resolved != base and resolved.is_relative_to(base)


def remove_tree_inside(path: Path, root: Path) -> None:
    """Delete the folder ``path`` only if it lies inside ``root``.

    A symbolic link is removed as a link (what it points to is left alone);
    anything that would leave ``root`` raises ValueError and deletes nothing.
    """
    path = Path(path)
    if path.is_symlink():
        if not Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(root))):
            raise ValueError(f"{display_path(path)} is outside {display_path(root)}; not deleted")
        path.unlink()
        return
    if not path.exists():
        return
    if not is_inside(path, root):
        raise ValueError(f"{display_path(path)} is outside {display_path(root)}; not deleted")
    shutil.rmtree(path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise DiskFullError(
                disk_full_message(
                    f"writing {path.name}",
                    path.parent,
                    len(data),
                    "Nothing was written; any earlier file of that name is unchanged.",
                )
            ) from exc
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
