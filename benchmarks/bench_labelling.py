"""Labelling speed: time from a key press to the next example painted on screen.

Labels N examples (1,000 by default) on the real Label page, offscreen, by
pressing the label keys 1-5 in turn. Each press commits the label to SQLite
(annotation, example and journal in one transaction) and shows the next
example; the clock stops when the example text has been painted (a Paint
event on the text view after the press). The baseline, in the same process
and window size: a plain QLabel whose key handler only calls setText with
the next example's text, timed the same way: the least any Qt screen can do
per key.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_labelling.py [--examples 1000] [--presses N]

``--presses`` labels only the first N of the examples (to time a large project quickly).
``--assisted`` gives the project a finished run (a LoRA adapter on the bundled model): the page
pre-selects its predicted label on every example and Enter confirms it, while the worker predicts
the examples ahead on the bundled model, on the other core, as the presses go on (half of them
already predicted when the page opens, so both the stored and the pending case are timed).

Prints the median, p95 and max of both, their ratio, and the part of the
page's time spent in the database commit alone. The goal is a median under
30 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("the order card refund parcel app crash login password email account invoice charged twice "
         "delivery late settings screen update subscription cancel renew price discount code thanks "
         "great service support team week month customer problem again still not working").split()
LABELS = ("billing", "technical", "account", "shipping", "feedback")


def texts(n: int, seed: int = 0) -> list[str]:
    """Ticket-like texts, 8 to 120 words (most 15-40)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = min(120, max(8, int(rng.lognormvariate(3.3, 0.5))))
        body = " ".join(rng.choice(WORDS) for _ in range(words))
        out.append(body[0].upper() + body[1:] + ".")
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):6.2f} ms   p95 {percentile(values, 0.95):6.2f} ms   "
            f"max {max(values):6.2f} ms")


class PaintClock:
    """Notes the time of the first Paint event on a widget after ``arm()``."""

    def __init__(self, widget) -> None:
        from PySide6.QtCore import QEvent, QObject

        clock = self

        class Filter(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
                if event.type() == QEvent.Type.Paint and clock.armed and clock.painted is None:
                    clock.painted = time.perf_counter()
                return False

        self.armed = False
        self.painted: float | None = None
        self._filter = Filter()
        widget.installEventFilter(self._filter)

    def arm(self) -> None:
        self.armed, self.painted = True, None

    def wait(self, app, deadline_s: float = 5.0) -> float:
        from PySide6.QtCore import QEventLoop

        end = time.perf_counter() + deadline_s
        while self.painted is None:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents)
            if time.perf_counter() > end:
                raise RuntimeError("nothing was painted within the deadline")
        self.armed = False
        return self.painted


def make_assisting_run(project, labels: tuple[str, ...], ids: list[int]) -> str:
    """A finished run whose adapter is a fresh LoRA on the bundled model, with half the examples predicted."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftstudio.core import review
    from ftstudio.core.config import BUNDLED_MODEL
    from ftstudio.engine.models import bundled_model_dir

    run_id = project.create_run({"model": BUNDLED_MODEL, "method": "lora"})
    base = AutoModelForCausalLM.from_pretrained(str(bundled_model_dir()), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))
    model.save_pretrained(str(project.run_dir(run_id) / "adapter"), safe_serialization=True)
    project.update_run(run_id, status="finished")
    rng = random.Random(1)
    predicted = []
    for i in ids[::2]:
        probs = [rng.random() for _ in labels]
        predicted.append((i, list(labels), [p / sum(probs) for p in probs]))
    review.store_predictions(project, run_id, predicted)
    return run_id


def run_page(app, n: int, folder: Path, presses: int, assisted: bool = False
             ) -> tuple[list[float], list[float], int, float]:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from ftstudio.core.examples import NewExample
    from ftstudio.core.labelling import Labelling
    from ftstudio.core.project import Project
    from ftstudio.gui.context import ProjectContext
    from ftstudio.gui.labelling.page import LabellingPage

    project = Project.create(folder / ("assisted.ftstudio" if assisted else "bench.ftstudio"))
    ids = project.add_examples([NewExample(messages=[{"role": "user", "content": t}], status="unlabelled")
                                for t in texts(n)], actor="bench")
    lab = Labelling(project)
    lab.set_kind("classification")
    for name in LABELS:
        lab.add_label(name, "bench")
    if assisted:
        make_assisting_run(project, LABELS, ids)
    lab.set_instructions("Pick the team that should answer the ticket.")
    context = ProjectContext(project, actor="bench")
    t_open = time.perf_counter()
    page = LabellingPage(context)
    page.resize(1104, 740)  # the page's share of a 1280x800 window
    clock = PaintClock(page.mode.text.viewport())
    clock.arm()
    page.show()
    opened_ms = (clock.wait(app) - t_open) * 1000
    for _ in range(20):
        app.processEvents()
    keys = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5]
    to_paint, handled = [], []
    for i in range(min(presses, n - 1)):  # the last press of all shows "all done" instead of an example
        before = page.mode.current_id
        if assisted:
            # Enter confirms the pre-selected prediction; without one yet, a label key as usual.
            key = Qt.Key.Key_Return if page.mode.chosen else keys[i % len(keys)]
            clock.arm()
            t0 = time.perf_counter()
            QTest.keyClick(page, key)
            t1 = time.perf_counter()
            painted = clock.wait(app)
            assert page.mode.current_id != before
            handled.append((t1 - t0) * 1000)
            to_paint.append((painted - t0) * 1000)
            continue
        clock.arm()
        t0 = time.perf_counter()
        QTest.keyClick(page, keys[i % len(keys)])
        t1 = time.perf_counter()
        painted = clock.wait(app)
        assert page.mode.current_id != before
        handled.append((t1 - t0) * 1000)
        to_paint.append((painted - t0) * 1000)
    if presses >= n:
        QTest.keyClick(page, keys[0])
    if assisted:
        print(f"  (assisted: {page.mode.assist.predictor.busy and 'worker still predicting' or 'worker idle'} "
              f"at the end)")
    saved = project.execute("SELECT COUNT(*) FROM annotations WHERE status = 'labelled'").fetchone()[0]
    page.shutdown()
    page.close()
    project.close()
    return to_paint, handled, saved, opened_ms


def run_commits(n: int, folder: Path, presses: int) -> list[float]:
    """The database part alone: Labelling.accept on the same kind of project, no GUI."""
    from ftstudio.core.examples import NewExample
    from ftstudio.core.labelling import Labelling
    from ftstudio.core.project import Project

    project = Project.create(folder / "commits.ftstudio")
    ids = project.add_examples([NewExample(messages=[{"role": "user", "content": t}], status="unlabelled")
                                for t in texts(n)], actor="bench")
    lab = Labelling(project)
    lab.set_kind("classification")
    for name in LABELS:
        lab.add_label(name, "bench")
    out = []
    for i, example_id in enumerate(ids[:presses]):
        t0 = time.perf_counter()
        lab.accept(example_id, "bench", label=LABELS[i % len(LABELS)])
        out.append((time.perf_counter() - t0) * 1000)
    project.close()
    return out


def run_baseline(app, n: int) -> list[float]:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QFont
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    from ftstudio.gui.labelling.example_card import TEXT_POINT_SIZE

    items = texts(n)

    class Plain(QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.i = 0
            self.label = QLabel(items[0])
            self.label.setWordWrap(True)
            self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            font = QFont(self.label.font())
            font.setPointSize(TEXT_POINT_SIZE)
            self.label.setFont(font)
            QVBoxLayout(self).addWidget(self.label)

        def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
            self.i += 1
            self.label.setText(items[self.i % len(items)])

    w = Plain()
    w.resize(1104, 740)
    w.show()
    clock = PaintClock(w.label)
    for _ in range(20):
        app.processEvents()
    out = []
    for _ in range(n - 1):
        clock.arm()
        t0 = time.perf_counter()
        QTest.keyClick(w, Qt.Key.Key_1)
        out.append((clock.wait(app) - t0) * 1000)
    w.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples in the project")
    parser.add_argument("--presses", type=int, default=None, help="label only this many (default: all)")
    parser.add_argument("--assisted", action="store_true",
                        help="also time the page with a run's predictions (worker on the bundled model)")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from ftstudio.gui.style import apply_style

    app = QApplication.instance() or QApplication([sys.argv[0]])
    apply_style(app)
    n = args.examples
    presses = min(args.presses or n, n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        baseline = run_baseline(app, presses)
        to_paint, handled, saved, opened_ms = run_page(app, n, folder, presses)
        commits = run_commits(n, folder, presses)
        assisted = run_page(app, n, folder, presses, assisted=True) if args.assisted else None

    print(f"Label page, {presses:,} of {n:,} examples labelled by key presses ({saved:,} labels in the database), "
          f"platform {app.platformName()}, {os.cpu_count()} CPUs")
    print(f"  page built and first example painted: {opened_ms:.0f} ms")
    print(f"  key press -> next example painted : {summary(to_paint)}")
    print(f"  key press -> handled (commit+show): {summary(handled)}")
    print(f"  database commit alone (accept)    : {summary(commits)}")
    print("Baseline: plain QLabel.setText on a key press, same window size")
    print(f"  key press -> text painted         : {summary(baseline)}")
    if assisted is not None:
        print("Assisted: a run's prediction pre-selected (Enter confirms), the worker predicting ahead")
        print(f"  key press -> next example painted : {summary(assisted[0])}")
        print(f"  key press -> handled (commit+show): {summary(assisted[1])}")
        print(f"  goal median < 30 ms: {'met' if statistics.median(assisted[0]) < 30.0 else 'NOT met'}")
    ratio = statistics.median(to_paint) / statistics.median(baseline)
    goal = statistics.median(to_paint) < 30.0
    print(f"Ratio page / baseline (medians): {ratio:.1f}x   goal median < 30 ms: {'met' if goal else 'NOT met'}")
    return 0 if saved == presses else 1


if __name__ == "__main__":
    sys.exit(main())
