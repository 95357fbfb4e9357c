"""What this computer offers a run: its RAM and the CPU cores this process may use.

The system check (``core/doctor.py``), the device report and the time estimate
(``engine/device.py``, ``engine/estimate.py``) and the CPU thread counts of a
training run all read these two figures here.
"""

from __future__ import annotations

import os


def system_memory() -> tuple[int, int]:
    """(total, available) bytes of RAM: psutil where installed, else /proc/meminfo, else the page count
    (taken as all available)."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        pass
    try:
        info = {}
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        return info["MemTotal"], info.get("MemAvailable", info.get("MemFree", 0))
    except (OSError, KeyError, ValueError, IndexError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages, pages


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system has one), at most
    ``OMP_NUM_THREADS`` when that is set: someone who limits the threads of OpenMP programs (on a
    shared machine, or the test runner giving each of its workers a share) means FT Studio too."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(1, cores)
