"""This machine's RAM and usable cores (core/machine.py), which the system check, the device
report, the estimate and a run's CPU threads all read."""

from __future__ import annotations

import os
import sys

import pytest

from ftstudio.core import machine


def test_memory_is_read_from_the_system():
    total, available = machine.system_memory()
    assert total > 0 and 0 < available <= total
    if sys.platform.startswith("linux"):
        with open("/proc/meminfo", encoding="utf-8") as fh:
            mem_total_kib = int(fh.readline().split()[1])
        assert total == mem_total_kib * 1024


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@pytest.mark.parametrize(
    ("limit", "expected"), [("1", 1), ("10000", None), ("0", None), ("four", None), ("", None)]
)
def test_omp_num_threads_caps_the_usable_cores(monkeypatch, limit, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", limit)
    assert machine.usable_cores() == (expected or _affinity())  # a limit that is no count is ignored


def test_a_run_threads_follow_the_cap(monkeypatch):
    from ftstudio.engine.device import cpu_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads() == 1 and cpu_threads(local_processes=2) == 1
