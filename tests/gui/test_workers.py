"""The job seam (gui/workers.py): outcomes told apart, the device lock, latest request wins,
and the labelling suggestion that is stopped being reported as stopped."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject

from ftstudio.gui.context import ComputeLock
from ftstudio.gui.workers import Job, JobSlot, Outcome

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one).
HANG_MS = 900_000
TIMEOUT_MS = HANG_MS


@pytest.fixture
def owner(qapp):
    """What a page is to its jobs: their parent, alive for the whole test."""
    parent = QObject()
    yield parent
    qapp.processEvents()  # what the ended jobs' threads still post arrives before the parent goes


def _until_stopped(started: threading.Event, *, report, interrupted) -> str:
    """Runs until asked to stop, then returns normally (as generation does)."""
    started.set()
    report("working")
    while not interrupted():
        threading.Event().wait(0.005)  # a worker thread polling its stop flag, as the engine does
    return "partial answer"


def _gated(gate: threading.Event, value: str, *, report, interrupted) -> str:
    if not gate.wait(TIMEOUT_MS / 1000):
        raise TimeoutError("the test never opened the gate")
    return value


def _fails(*, report, interrupted) -> None:
    raise ValueError("the file is not there")


def _ended(qtbot, job: Job, start: bool = True) -> Outcome:
    with qtbot.waitSignal(job.ended, timeout=TIMEOUT_MS) as ended:
        if start:
            assert job.start() == "started"
    return ended.args[0]


def test_done_failed_and_progress_reach_the_gui_thread(qtbot, owner):
    gate = threading.Event()
    gate.set()
    job = Job(_gated, gate, "answer", parent=owner)
    outcome = _ended(qtbot, job)
    assert (outcome.status, outcome.value, outcome.done) == ("done", "answer", True)

    outcome = _ended(qtbot, Job(_fails, parent=owner))
    assert outcome.failed and outcome.value == "the file is not there" and outcome.error_type == "ValueError"
    assert "ValueError" in outcome.trace

    started = threading.Event()
    job = Job(_until_stopped, started, parent=owner)
    seen: list[object] = []
    job.progressed.connect(seen.append)
    assert job.start() == "started"
    qtbot.waitUntil(lambda: seen == ["working"], timeout=TIMEOUT_MS)
    with qtbot.waitSignal(job.ended, timeout=TIMEOUT_MS) as ended:
        job.stop()
    assert ended.args[0].status == "stopped" and ended.args[0].value == "partial answer"


def test_a_job_stopped_just_before_its_function_returns_is_still_stopped(qtbot, owner):
    """The function finishes normally after the stop; the thread has ended by the time the GUI
    thread hears of it, so only the job's own flag can tell."""
    gate = threading.Event()
    job = Job(_gated, gate, "whole answer", parent=owner)
    assert job.start() == "started"
    job.stop()
    gate.set()
    outcome = _ended(qtbot, job, start=False)
    assert outcome.status == "stopped" and outcome.value == "whole answer"


def test_the_device_lock_is_held_while_running_refused_or_waited_for(qtbot, owner):
    lock = ComputeLock()
    gate = threading.Event()
    job = Job(_gated, gate, "x", lock=lock, holder="Evaluating", parent=owner)
    assert job.start() == "started" and lock.holder == "Evaluating"
    gate.set()
    _ended(qtbot, job, start=False)
    assert lock.holder == ""

    assert lock.try_acquire("Training run 7")
    refused = Job(_gated, gate, "x", lock=lock, holder="Evaluating", parent=owner)
    with qtbot.waitSignal(refused.refused) as why:
        assert refused.start() == "refused"
    assert why.args == ["Training run 7"] and not refused.active

    queued = Job(_gated, gate, "after training", lock=lock, holder="Evaluating", queue=True, parent=owner)
    with qtbot.waitSignal(queued.queued) as who:
        assert queued.start() == "queued"
    assert who.args == ["Training run 7"] and queued.waiting and not queued.running
    with qtbot.waitSignal(queued.started):
        lock.release("Training run 7")
    assert lock.holder == "Evaluating"
    assert _ended(qtbot, queued, start=False).value == "after training"
    assert lock.holder == ""

    assert lock.try_acquire("Training run 8")
    cancelled = Job(_gated, gate, "x", lock=lock, holder="Evaluating", queue=True, parent=owner)
    assert cancelled.start() == "queued"
    with qtbot.waitSignal(cancelled.ended) as ended:
        cancelled.stop()
    assert ended.args[0].status == "cancelled" and ended.args[0].stopped
    lock.release("Training run 8")
    assert lock.holder == ""  # the cancelled job never took it


def test_prepare_runs_with_the_lock_held_and_can_decline(qtbot, owner):
    """The hook a front end uses for what must happen only once the device is surely its own (the
    Train page creates the run's row there)."""
    lock = ComputeLock()
    gate = threading.Event()
    gate.set()
    seen: list[str] = []

    def prepare(answer: str | None):
        seen.append(lock.holder)
        return None if answer is None else (gate, answer)

    job = Job(_gated, parent=owner, lock=lock, holder="Training", prepare=lambda: prepare("from prepare"))
    assert _ended(qtbot, job).value == "from prepare"  # its arguments are the ones prepare gave
    assert seen == ["Training"] and lock.holder == ""

    declined = Job(
        _gated, gate, "x", parent=owner, lock=lock, holder="Training", prepare=lambda: prepare(None)
    )
    heard: list[Outcome] = []
    declined.ended.connect(heard.append)
    assert declined.start() == "declined"
    assert lock.holder == "" and not declined.active and heard == []  # nothing ran, nothing to hear
    with pytest.raises(RuntimeError):
        declined.start()

    # queued: prepare waits for the device too, and a decline then ends the job as cancelled
    assert lock.try_acquire("Comparing models")
    seen.clear()
    queued = Job(
        _gated,
        gate,
        "x",
        parent=owner,
        lock=lock,
        holder="Training",
        queue=True,
        prepare=lambda: prepare(None),
    )
    assert queued.start() == "queued" and seen == []
    with qtbot.waitSignal(queued.ended) as ended:
        lock.release("Comparing models")
    assert seen == ["Training"] and ended.args[0].status == "cancelled" and lock.holder == ""

    # a refused job never prepares
    assert lock.try_acquire("Comparing models")
    refused = Job(_gated, gate, "x", parent=owner, lock=lock, holder="Training", prepare=lambda: prepare("y"))
    assert refused.start() == "refused" and seen == ["Training"]
    lock.release("Comparing models")

    # an error in the hook reaches the caller, and the device is let go all the same
    def broken():
        raise KeyError("no such run")

    failing = Job(_gated, gate, "x", parent=owner, lock=lock, holder="Training", prepare=broken)
    with pytest.raises(KeyError):
        failing.start()
    assert lock.holder == "" and not failing.active


def test_the_latest_request_wins(qtbot, owner):
    slot = JobSlot(owner)
    first_gate, later_gate = threading.Event(), threading.Event()
    made: list[str] = []
    outcomes: list[tuple[str, Outcome]] = []

    def request(name: str, gate: threading.Event) -> str:
        def make() -> Job:
            made.append(name)
            job = Job(_gated, gate, name, parent=owner)
            job.ended.connect(lambda outcome: outcomes.append((name, outcome)))
            return job

        return slot.request(make)

    assert request("first", first_gate) == "started"
    assert request("second", later_gate) == "waiting"
    assert request("third", later_gate) == "waiting"  # replaces "second", which never runs
    assert made == ["first"]
    first_gate.set()
    qtbot.waitUntil(lambda: made == ["first", "third"], timeout=TIMEOUT_MS)
    assert outcomes[0][0] == "first" and outcomes[0][1].done and outcomes[0][1].superseded
    later_gate.set()
    qtbot.waitUntil(lambda: not slot.busy, timeout=TIMEOUT_MS)
    assert [(n, o.status, o.superseded) for n, o in outcomes] == [
        ("first", "done", True),
        ("third", "done", False),
    ]


def test_a_new_request_can_stop_the_running_job(qtbot, owner):
    slot = JobSlot(owner, stop_running=True)
    started = threading.Event()
    outcomes: list[Outcome] = []

    def make() -> Job:
        job = Job(_until_stopped, started, parent=owner)
        job.ended.connect(outcomes.append)
        return job

    assert slot.request(make) == "started"
    assert started.wait(TIMEOUT_MS / 1000)
    gate = threading.Event()
    gate.set()
    assert slot.request(lambda: Job(_gated, gate, "next", parent=owner)) == "waiting"
    qtbot.waitUntil(lambda: not slot.busy, timeout=TIMEOUT_MS)
    assert outcomes[0].status == "stopped"


def test_a_stopped_suggestion_is_reported_as_stopped(qtbot, owner, context, tiny_model_dir, monkeypatch):
    """The Label page's suggestion, stopped while the model writes, says stopped (not done)."""
    import time

    from ftstudio.gui.labelling import suggest
    from ftstudio.gui.labelling.suggest import Suggester, SuggestionModel
    from ftstudio.engine.comparison import ModelRef

    writes = suggest.suggest_job

    def still_writing(*args, report, interrupted):
        # Fault injection at suggest_job: a model still writing when the user stops it. After its
        # first piece the answer waits for the stop, so the tiny model cannot sample its end token
        # first on a loaded machine (the stop then came after a finished answer).
        def report_then_wait(item):
            report(item)
            deadline = time.monotonic() + HANG_MS / 1000
            while item[0] == "piece" and not interrupted() and time.monotonic() < deadline:
                time.sleep(0.005)

        return writes(*args, report=report_then_wait, interrupted=interrupted)

    monkeypatch.setattr(suggest, "suggest_job", still_writing)
    suggester = Suggester(context, owner)
    suggester.max_new_tokens = 4000  # far more than it writes before the stop
    suggester.temperature = 1.0  # the tiny model's greedy answer would be line breaks
    model = SuggestionModel("Tiny", str(tiny_model_dir), ModelRef("base:tiny", "Tiny"))
    finished: list[int] = []
    suggester.finished.connect(lambda example_id, _text: finished.append(example_id))
    with qtbot.waitSignal(suggester.piece, timeout=HANG_MS):
        assert suggester.request(7, model, [{"role": "user", "content": "Write a long story."}]) == "started"
    with qtbot.waitSignal(suggester.stopped, timeout=TIMEOUT_MS) as stopped:
        suggester.cancel()
    assert stopped.args == [7] and finished == []
    qtbot.waitUntil(lambda: context.compute.holder == "" and not suggester.busy, timeout=TIMEOUT_MS)
    suggester.shutdown()


def test_python_collects_garbage_on_the_gui_thread_while_a_job_runs(qtbot, owner):
    """A collection in a worker thread would destroy Qt objects there: while any job's thread
    runs, automatic collection is off (the GUI thread collects young garbage on a timer)."""
    import gc

    assert gc.isenabled()
    started, gate = threading.Event(), threading.Event()
    first = Job(_until_stopped, started, parent=owner)
    second = Job(_gated, gate, "answer", parent=owner)
    assert first.start() == "started" and second.start() == "started"
    assert started.wait(TIMEOUT_MS / 1000)
    assert not gc.isenabled()
    with qtbot.waitSignal(second.ended, timeout=TIMEOUT_MS):
        gate.set()
    assert not gc.isenabled()  # the first one still runs
    with qtbot.waitSignal(first.ended, timeout=TIMEOUT_MS):
        first.stop()
    assert gc.isenabled()
