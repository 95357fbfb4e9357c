"""Live plots: the Train page's dashboard against a naive redraw per event.

The dashboard buffers engine events in numpy arrays and redraws on a 100 ms
timer, with peak downsampling, clipping to the view, axis ranges that move
only when the data leaves them, and the curves other than the loss redrawn
at most every 500 ms. The naive baseline is what one writes first: on every
event, hand the whole curve to pyqtgraph (auto-range on, no downsampling)
and repaint.

A stream of 100,000 training steps (a Progress and a StepMetrics event each,
held-out loss every 100 steps) is fed in 100 ms ticks at ``--rate`` steps per
second; every tick is one timer redraw, timed with the paint of the plots.
The naive redraw is timed on the same data at growing sizes up to 100,000
points (drawing 100,000 of them one by one would take hours), in the same
process, on the same offscreen raster painter.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_plots.py [--steps 100000] [--rate 1000]

Prints the median and 99th percentile of a timer redraw, the naive redraw
at the same number of points, their ratio, and the GUI-thread time each
needs per second of training.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication, QGridLayout, QWidget  # noqa: E402

from ftstudio.core import events as ev  # noqa: E402
from ftstudio.gui.style import apply_style  # noqa: E402


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(0.99 * len(ordered))) - 1)]


def stream(steps: int, seed: int = 0):
    """Events of a plausible run: falling noisy loss, warm-up then cosine learning rate."""
    rng = random.Random(seed)
    for step in range(1, steps + 1):
        loss = 2.4 * math.exp(-step / (steps / 6)) + 0.35 + rng.random() * 0.25
        lr = 2e-4 * min(1.0, step / (steps * 0.05)) * 0.5 * (1 + math.cos(math.pi * step / steps))
        yield ev.Progress(step, steps, step / steps * 3, step * 0.001, (steps - step) * 0.001)
        yield ev.StepMetrics(step, loss, lr, 0.4 + rng.random(), 20_000 + rng.random() * 2000)
        if step % 100 == 0:
            yield ev.EvalMetrics(step, loss + 0.1)


class NaiveDashboard(QWidget):
    """The same four plots, redrawn from whole Python-side arrays on every event."""

    def __init__(self) -> None:
        super().__init__()
        from ftstudio.gui.training import plots

        grid = QGridLayout(self)
        self.loss = plots.pg.PlotWidget(background="w")
        self.lr = plots.pg.PlotWidget(background="w")
        self.grad = plots.pg.PlotWidget(background="w")
        self.speed = plots.pg.PlotWidget(background="w")
        grid.addWidget(self.loss, 0, 0, 1, 3)
        grid.addWidget(self.lr, 1, 0)
        grid.addWidget(self.grad, 1, 1)
        grid.addWidget(self.speed, 1, 2)
        self.curves = {
            "loss": self.loss.plot(pen="#9dbbdc"), "smooth": self.loss.plot(pen="#2f6fb2"),
            "lr": self.lr.plot(pen="#2f6fb2"), "grad": self.grad.plot(pen="#9b4dca"),
            "speed": self.speed.plot(pen="#2e7d4f"),
        }

    def draw(self, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        for name, (x, y) in data.items():
            self.curves[name].setData(x, y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000, help="training steps per second fed to the dashboard")
    parser.add_argument("--naive-sizes", default="1000,10000,30000,60000,100000")
    parser.add_argument("--naive-repeats", type=int, default=7)
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_style(app)
    from ftstudio.gui.training.dashboard import REDRAW_MS, Dashboard

    # -- the dashboard: buffered, timer redraw ------------------------------------------
    dash = Dashboard()
    dash.resize(760, 720)
    dash.show()
    app.processEvents()
    fake_now = [0.0]
    dash.clock = lambda: fake_now[0]  # a tick is 100 ms of training, however fast this machine draws
    dash.reset()
    dash.begin()
    per_tick = max(1, args.rate * REDRAW_MS // 1000)
    events = list(stream(args.steps))
    tick_times: list[float] = []
    tail_times: list[float] = []
    steps_done = 0

    def tick(chunk: list) -> None:
        for e in chunk:
            dash.queue.put(e)  # what the training thread does
        fake_now[0] += REDRAW_MS / 1000
        t0 = time.perf_counter()
        dash.last_drawn = set()
        dash.redraw()
        for plot in dash.last_drawn:  # paint now what the next paint event would: the plots that changed
            plot.grab()
        elapsed = time.perf_counter() - t0
        tick_times.append(elapsed)
        if steps_done > 0.9 * args.steps:
            tail_times.append(elapsed)

    chunk: list = []
    for e in events:
        chunk.append(e)
        if type(e) is ev.StepMetrics:
            steps_done += 1
            if steps_done % per_tick == 0:
                tick(chunk)
                chunk = []
    if chunk:
        tick(chunk)
    dash._timer.stop()
    assert dash.points("loss") == args.steps, dash.points("loss")
    dash_med, dash_p99 = statistics.median(tick_times), p99(tick_times)
    tail_med = statistics.median(tail_times)

    # -- the naive baseline: everything, every event -------------------------------------
    naive = NaiveDashboard()
    naive.resize(760, 480)
    naive.show()
    app.processEvents()
    metrics = [e for e in events if type(e) is ev.StepMetrics]
    x = np.array([e.step for e in metrics], dtype=np.float64)
    loss = np.array([e.loss for e in metrics])
    smooth = np.empty_like(loss)
    ema = 0.0
    for k, v in enumerate(loss):
        ema = 0.9 * ema + 0.1 * v
        smooth[k] = ema / (1 - 0.9 ** (k + 1))
    lr = np.array([e.lr for e in metrics])
    grad = np.array([e.grad_norm for e in metrics])
    speed = np.array([e.tokens_per_s for e in metrics])
    naive_at: dict[int, list[float]] = {}
    for size in [int(s) for s in args.naive_sizes.split(",") if int(s) <= args.steps]:
        times = []
        for r in range(args.naive_repeats):
            n = size - args.naive_repeats + r + 1
            data = {"loss": (x[:n], loss[:n]), "smooth": (x[:n], smooth[:n]), "lr": (x[:n], lr[:n]),
                    "grad": (x[:n], grad[:n]), "speed": (x[:n], speed[:n])}
            t0 = time.perf_counter()
            naive.draw(data)
            for plot in (naive.loss, naive.lr, naive.grad, naive.speed):
                plot.grab()
            times.append(time.perf_counter() - t0)
        naive_at[size] = times
    sizes = sorted(naive_at)
    top = sizes[-1]
    naive_med = statistics.median(naive_at[top])

    # GUI time per second of training: the dashboard redraws 1000/REDRAW_MS times a
    # second; the naive one redraws once per step (a StepMetrics event).
    per_second_dash = (1000 / REDRAW_MS) * tail_med
    per_second_naive = args.rate * naive_med

    print(f"{args.steps:,} steps streamed at {args.rate:,} steps/s in {REDRAW_MS} ms ticks "
          f"({len(tick_times):,} timer redraws, {len(events):,} events)")
    print(f"timer redraw, buffered:     median {dash_med * 1e3:7.2f} ms   p99 {dash_p99 * 1e3:7.2f} ms   "
          f"(last 10% of the run, 90-100k points: median {tail_med * 1e3:.2f} ms)")
    for size in sizes:
        print(f"naive redraw per event at {size:>7,} points: median {statistics.median(naive_at[size]) * 1e3:8.2f} ms"
              f"   p99 {p99(naive_at[size]) * 1e3:8.2f} ms")
    print(f"redraw at {top:,} points: naive {naive_med * 1e3:.1f} ms / buffered {tail_med * 1e3:.2f} ms = "
          f"{naive_med / tail_med:,.0f}x")
    print(f"GUI thread per second of training at {args.rate:,} steps/s: buffered {per_second_dash * 1e3:.0f} ms, "
          f"naive {per_second_naive:,.1f} s = {per_second_naive / per_second_dash:,.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
