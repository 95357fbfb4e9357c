"""What the training device is and how much memory it has and uses.

CUDA figures come from torch.cuda; GPU utilisation from NVML (``pynvml``)
where it is installed. On the CPU the memory figures describe system RAM.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from ftstudio.core.machine import system_memory, usable_cores


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "cuda" | "cpu"
    name: str
    total_bytes: int
    free_bytes: int


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def choose_device(requested: str = "auto") -> str:
    """"cuda" or "cpu" for a TrainConfig.device value; ValueError when a GPU is asked for and absent."""
    if requested == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if requested == "cuda":
        raise ValueError("device is set to cuda, but no CUDA GPU is available here; choose auto or cpu")
    return "cpu"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def device_info(index: int | None = None) -> DeviceInfo:
    """The GPU training would use (``index`` or the current one), else the CPU."""
    if cuda_available():
        import torch

        index = torch.cuda.current_device() if index is None else index
        free, total = torch.cuda.mem_get_info(index)
        return DeviceInfo("cuda", torch.cuda.get_device_name(index), int(total), int(free))
    cores = os.cpu_count() or 1
    total, free = system_memory()
    return DeviceInfo("cpu", f"{_cpu_name()} ({cores} cores)", total, free)


NO_MEMORY_FIGURES = {"allocated": 0, "reserved": 0, "peak": 0, "peak_reserved": 0, "total": 0}


def memory_snapshot(device: Any = None) -> dict[str, int]:
    """Bytes allocated and reserved by torch now, their peaks (since the last reset), and the
    card's total, on CUDA; zeros elsewhere. ``peak`` is peak allocated (tensors); ``peak_reserved``
    what the caching allocator held at most, which is what the card must have."""
    import torch

    if not torch.cuda.is_available() or (device is not None and torch.device(device).type != "cuda"):
        return dict(NO_MEMORY_FIGURES)
    dev = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())
    return {
        "allocated": int(torch.cuda.memory_allocated(dev)),
        "reserved": int(torch.cuda.memory_reserved(dev)),
        "peak": int(torch.cuda.max_memory_allocated(dev)),
        "peak_reserved": int(torch.cuda.max_memory_reserved(dev)),
        "total": int(torch.cuda.get_device_properties(dev).total_memory),
    }


# -- running out of memory ----------------------------------------------------------------


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the machine) ran out of memory."""
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory() -> None:
    """Give back what Python and the CUDA caching allocator hold and nobody uses."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


# The fault-injection point of the out-of-memory recovery. Every forward pass the
# recovery covers calls check_memory first: training micro-batches ("train"), the
# held-out loss and preference metrics ("eval"), generation batches ("generate"), and
# preference tuning's passes without gradients: the reference log-probabilities before
# training ("reference") and KTO's per-step reference point ("kl"). Nothing is installed in
# a real run; tests install a fault that raises torch.OutOfMemoryError where the CUDA
# caching allocator would fail to find memory for that pass (see memory_fault).
MemoryFault = Callable[[str, int, int, int], None]  # (where, step, tokens, rows)
_memory_fault: MemoryFault | None = None


def check_memory(where: str, step: int, tokens: int, rows: int) -> None:
    """Called before a forward pass of ``rows`` rows and ``tokens`` tokens at optimiser step ``step``."""
    if _memory_fault is not None:
        _memory_fault(where, step, tokens, rows)


@contextlib.contextmanager
def memory_fault(fault: MemoryFault) -> Iterator[None]:
    """Install ``fault`` at the fault-injection point for the block (tests only)."""
    global _memory_fault
    previous, _memory_fault = _memory_fault, fault
    try:
        yield
    finally:
        _memory_fault = previous


Result = TypeVar("Result")


def _in_rows(group: list[int], cap: int) -> list[list[int]]:
    return [group[k : k + cap] for k in range(0, len(group), cap)]


def fitting_pieces(
    groups: Iterable[Sequence[int]],
    run: Callable[[list[int]], Result],
    where: str,
    tokens: Callable[[list[int]], int],
    *,
    step: int = -1,
    cap: int | None = None,
    split: Callable[[list[int], int], list[list[int]]] = _in_rows,
    size: Callable[[list[int]], int] = len,
    on_halved: Callable[[int, int, list[int]], None] | None = None,
    cannot_fit: Callable[[list[int]], BaseException] | None = None,
) -> Iterator[tuple[list[int], Result]]:
    """(piece, ``run(piece)``) for each piece of ``groups`` in turn, halving the pieces when
    one runs out of memory: the life cycle every recovering pass without gradients shares.

    A piece is a list of item indices; ``split(group, cap)`` cuts a group into pieces of at
    most ``cap`` (as ``size`` measures it: rows by default, tokens where the caller says; an
    item bigger than ``cap`` goes alone), ``cap`` None takes the groups as they are. Before
    each piece the fault-injection point is told ``where``, ``step`` and the piece's
    ``tokens``. When a piece runs out of memory, memory is freed, the cap halves (from the
    failed piece's size, so it does not fail again at the same size), the failed piece and
    every one after it are split again, and ``on_halved(cap before, cap after, failed
    piece)`` is told; the pieces already yielded stay done. A single item that does not fit
    raises ``cannot_fit(piece)`` (the out-of-memory error itself without it). Nothing here
    waits for other processes: in a data-parallel run each recovers on its own, and the
    caller has them agree afterwards where one may have to end the run.
    """
    pending = [list(g) for g in groups if len(g)]
    if cap is None:
        cap = max((size(g) for g in pending), default=1)
    else:
        pending = [piece for g in pending for piece in split(g, cap)]
    while pending:
        piece = pending[0]
        try:
            check_memory(where, step, tokens(piece), len(piece))
            out = run(piece)
        except Exception as exc:
            if not is_out_of_memory(exc) or (len(piece) == 1 and cannot_fit is None):
                raise
        else:
            pending.pop(0)
            yield piece, out
            continue
        # Out of the except block: the error's frames (and the activations they hold) are
        # gone before the memory is given back.
        free_memory()
        if len(piece) == 1:
            assert cannot_fit is not None
            raise cannot_fit(piece)
        before, cap = cap, max(1, min(cap, size(piece)) // 2)
        pending = [smaller for p in pending for smaller in split(p, cap)]
        if on_halved is not None:
            on_halved(before, cap, piece)


_nvml_handle: dict[int, object] = {}


def gpu_utilisation(index: int | None = None) -> float | None:
    """Percent of time the GPU was busy over the last sample period (NVML), or None where unknown."""
    try:
        import pynvml
        import torch

        if not torch.cuda.is_available():
            return None
        index = torch.cuda.current_device() if index is None else index
        if index not in _nvml_handle:
            pynvml.nvmlInit()
            _nvml_handle[index] = pynvml.nvmlDeviceGetHandleByIndex(_physical_index(index))
        return float(pynvml.nvmlDeviceGetUtilizationRates(_nvml_handle[index]).gpu)
    except Exception:  # no NVML, no driver, or a device NVML cannot see: simply unknown
        return None


def _physical_index(index: int) -> int:
    """NVML counts every GPU; CUDA_VISIBLE_DEVICES renumbers them for torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not visible:
        return index
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    try:
        return int(parts[index])
    except (IndexError, ValueError):
        return index


def cpu_threads(local_processes: int = 1) -> int:
    """A sane torch thread count: the usable cores (``core.machine.usable_cores``) shared by the
    processes on this machine."""
    return max(1, usable_cores() // max(1, local_processes))
