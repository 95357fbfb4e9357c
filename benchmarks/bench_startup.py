"""Start-up time: from launching ``ftstudio`` to its window on screen.

Launches the real app in a subprocess (``python -m ftstudio.cli``, the same
code as the ``ftstudio`` command) under the offscreen platform, with
``FTSTUDIO_REPORT_FIRST_SHOW`` set so the window prints a time stamp the
first time it is shown, and measures from just before the launch to that
stamp. Each case runs several times; the median is reported, with the
heavy modules already loaded at that moment (none should be: torch and
transformers load later, on worker threads).

Baseline: a process that only runs ``import PySide6.QtWidgets``, the floor
for any PySide6 app, and the ratio to it.

Cases: the welcome screen (no project), the demo project (``--demo``),
and a project of 100,000 examples (``--rows`` to change, 0 to skip).
Settings, the demo project and caches go to a temporary folder.

    .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIRST_SHOWN = "FTSTUDIO_FIRST_SHOWN"
TARGET_S = 2.0


def launch(args: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[float, str]:
    """Seconds from launch to the first show of the window, and the heavy modules loaded then."""
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = start + timeout
        for line in proc.stdout:
            if line.startswith(FIRST_SHOWN):
                _, stamp, loaded, _title = line.split(maxsplit=3)
                return float(stamp) - start, loaded.removeprefix("loaded=")
            if time.time() > deadline:
                break
        raise RuntimeError(f"the app did not show its window (exit code {proc.poll()})")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def baseline(env: dict[str, str]) -> float:
    start = time.time()
    subprocess.run([sys.executable, "-c", "import PySide6.QtWidgets"], env=env, check=True)
    return time.time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100_000, help="size of the big project (0: skip it)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", FTSTUDIO_REPORT_FIRST_SHOW="1",
                   FTSTUDIO_SETTINGS=str(tmp_path / "settings.ini"), XDG_DATA_HOME=str(tmp_path / "data"),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        cases: list[tuple[str, list[str]]] = [("welcome screen (no project)", []),
                                              ("demo project (--demo)", ["--demo"])]
        if args.rows:
            from bench_table import make_project

            big = make_project(tmp_path, args.rows)
            cases.append((f"project of {args.rows:,} examples", [str(big)]))
        launch(["--demo"], env)  # creates the demo project; warms the disk cache

        base = statistics.median(baseline(env) for _ in range(args.runs))
        print(f"baseline: python -c 'import PySide6.QtWidgets'   median {base:.3f} s over {args.runs} runs\n")
        ok = True
        for title, argv in cases:
            times, loaded = [], set()
            for _ in range(args.runs):
                t, heavy = launch(argv, env)
                times.append(t)
                loaded.add(heavy)
            med = statistics.median(times)
            ok &= med < TARGET_S
            print(f"{title:34s} median {med:.3f} s (min {min(times):.3f}, max {max(times):.3f}), "
                  f"{med / base:.1f}x the baseline; heavy modules loaded at first show: {', '.join(sorted(loaded))}")
        print(f"\nall under {TARGET_S:.0f} s:", "yes" if ok else "NO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
