"""Event-loop lateness on the GUI thread while the Train page trains.

A 10 ms precise timer runs on the GUI thread of a real Train page (offscreen)
twice in one process: first with nothing running (the baseline), then while
a real CPU run trains a small randomly initialised Llama (the bundled
model's tokenizer) with the dashboard updating. Every tick records how much
later than 10 ms after the previous one it fired.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_event_loop.py [--seconds 4]

Prints the median, 99th percentile and maximum lateness of both, and the
ratio of the 99th percentiles (training / idle). The app is meant to stay
below about 100 ms at the 99th percentile while training on the same cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from PySide6.QtCore import QElapsedTimer, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QLineEdit, QSpinBox  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_training import build_model  # noqa: E402


def wait(app: QApplication, until, limit_s: float = 600.0) -> None:
    end = time.monotonic() + limit_s
    while not until():
        if time.monotonic() > end:
            raise SystemExit("timed out waiting")
        app.processEvents()
        time.sleep(0.002)


def lateness_for(app: QApplication, seconds: float, while_=lambda: True) -> list[float]:
    clock = QElapsedTimer()
    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(10)
    late: list[float] = []
    last: list[float] = []

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        if last:
            late.append(now - last[0] - 10.0)
        last[:] = [now]

    ticker.timeout.connect(tick)
    clock.start()
    ticker.start()
    t0 = time.monotonic()
    wait(app, lambda: time.monotonic() - t0 > seconds or not while_())
    ticker.stop()
    return sorted(late)


def figures(late: list[float]) -> str:
    p99 = late[int(0.99 * (len(late) - 1))]
    return f"{len(late):5d} ticks  median {statistics.median(late):6.1f} ms  p99 {p99:6.1f} ms  max {late[-1]:6.1f} ms"


def set_field(page, name: str, value) -> None:
    w = page.form.editor(name)
    if isinstance(w, QSpinBox):
        w.setValue(value)
    elif isinstance(w, QComboBox):
        w.setCurrentIndex(w.findData(value))
    elif isinstance(w, QCheckBox):
        w.setChecked(value)
    elif isinstance(w, QLineEdit):
        w.setText(str(value))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="how long each measurement lasts")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()

    from ftstudio.core.examples import NewExample
    from ftstudio.core.project import Project
    from ftstudio.gui.context import ProjectContext
    from ftstudio.gui.training.page import TrainPage

    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        build_model(model_dir, args.hidden, args.layers)
        project = Project.create(Path(tmp) / "bench.ftstudio")
        labels = ["billing", "technical", "account"]
        project.add_examples(
            [
                NewExample(
                    messages=[
                        {"role": "user", "content": f"question number {i}"},
                        {"role": "assistant", "content": labels[i % 3]},
                    ],
                    label=labels[i % 3],
                    split="eval" if i % 5 == 0 else "train",
                )
                for i in range(40)
            ],
            actor="bench",
        )
        context = ProjectContext(project)
        page = TrainPage(context)
        page.resize(1280, 800)
        page.show()
        wait(app, lambda: page.device_checked)
        page.form.set_model(str(model_dir))
        for name, value in dict(
            max_steps=100_000,
            batch_tokens=128,
            max_length=64,
            eval_every=100,
            samples=1,
            sample_max_new_tokens=3,
            checkpoint_every=0,
            learning_rate=1e-2,
            warmup_ratio=0.0,
        ).items():
            set_field(page, name, value)

        idle = lateness_for(app, args.seconds)
        if not page.start():
            raise SystemExit(f"the run did not start: {page.problems()}")
        wait(app, lambda: page.dashboard.progress_event is not None)
        training = lateness_for(app, args.seconds, while_=page.is_busy)
        steps = page.dashboard.progress_event.step
        page.stop()
        wait(app, lambda: not page.is_busy())
        page.shutdown()
        project.close()

    print(f"idle:     {figures(idle)}")
    print(f"training: {figures(training)}  ({steps} steps trained meanwhile)")
    ratio = training[int(0.99 * (len(training) - 1))] / max(0.1, idle[int(0.99 * (len(idle) - 1))])
    print(f"p99 lateness, training / idle: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
