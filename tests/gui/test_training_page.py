"""The Train page with real widgets and real CPU training runs on the tiny model:
settings and their problems, the estimate, Start / Stop / Resume with the
run rows they write, failures in plain words, the compute lock, closing the
window during a run, and an event loop that stays responsive while training."""

from __future__ import annotations

import re

from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QLineEdit, QMessageBox, QSpinBox

from ftstudio.core.config import preset
from ftstudio.core.events import StepMetrics, read_events
from ftstudio.core.runs import can_resume
from ftstudio.gui.training.page import HOLDER, TrainPage

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one; how fast training goes is
# benchmarks/bench_training.py's business).
HANG_MS = 900_000
RUN_TIMEOUT_MS = HANG_MS
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


@pytest.fixture
def page(context, qtbot):
    p = TrainPage(context)
    qtbot.addWidget(p)
    p.resize(1280, 800)
    p.show()
    qtbot.waitUntil(lambda: p.device_checked, timeout=HANG_MS)
    yield p
    p.shutdown()


def set_field(page: TrainPage, name: str, value) -> None:
    w = page.form.editor(name)
    if isinstance(w, QSpinBox):
        w.setValue(value)
    elif isinstance(w, QComboBox):
        w.setCurrentIndex(w.findData(value))
    elif isinstance(w, QCheckBox):
        w.setChecked(value)
    elif isinstance(w, QLineEdit):
        w.setText(str(value))
    else:  # pragma: no cover
        raise TypeError(name)


def configure(page: TrainPage, model_dir: Path, **values) -> None:
    base = dict(max_steps=12, batch_tokens=128, max_length=64, eval_every=4, samples=1, sample_max_new_tokens=3,
                checkpoint_every=4, learning_rate=1e-2, warmup_ratio=0.0)
    base.update(values)
    page.form.set_model(str(model_dir))
    for name, value in base.items():
        set_field(page, name, value)
    assert page.problems() == [], page.problems()


def test_settings_show_their_help_and_problems_and_start_waits_for_none(page, fill, project):
    fill(project, 12, eval_every=4)
    form = page.form
    assert page.start_button.isEnabled()
    # every knob has its one-line explanation and a longer tooltip
    for name, row in form.rows.items():
        assert row.help.text(), name
        assert row.label.toolTip() and row.editor.toolTip(), name
    assert form.rows["gradient_checkpointing"].advanced and form.advanced_box.isHidden()

    set_field(page, "batch_tokens", 128)
    set_field(page, "max_length", 512)
    assert "at least max_length (512)" in form.problem_text("batch_tokens")
    assert not page.start_button.isEnabled()
    set_field(page, "learning_rate", "fast")
    assert form.problem_text("learning_rate") == "Must be a number"
    assert not page.start() and "Fix the settings" in page.notice.text()
    assert project.runs() == []
    set_field(page, "learning_rate", "2e-4")
    assert form.problem_text("learning_rate") == ""
    set_field(page, "keep_checkpoints", 0)  # an advanced knob: its section opens to show the problem
    assert form.problem_text("keep_checkpoints") == "Must be at least 1" and not form.advanced_box.isHidden()
    set_field(page, "keep_checkpoints", 2)
    set_field(page, "batch_tokens", 1024)
    assert form.problem_text("batch_tokens") == "" and page.problems() == []
    assert page.start_button.isEnabled()


def test_presets_fill_the_knobs_and_keep_the_model_and_method(page, tmp_path):
    page.form.set_model(str(tmp_path))
    set_field(page, "method", "qlora")
    page.form.preset_buttons["best"].click()
    cfg = page.form.config()
    assert cfg.lora_rank == preset("best").lora_rank and cfg.max_length == preset("best").max_length
    assert cfg.method == "qlora" and cfg.model == str(tmp_path)
    assert page.form.preset_buttons["best"].isChecked()
    set_field(page, "lora_rank", 8)
    assert not any(b.isChecked() for b in page.form.preset_buttons.values())
    assert "Custom" in page.form.preset_note.text()


def test_the_estimate_follows_the_settings(page, fill, project):
    fill(project, 30, eval_every=5)
    page.refresh_data()
    lora_text = page.estimate.memory_text
    lora = page.estimate.estimate
    # the plan and why in one line: how each batch runs, and the room it leaves
    assert re.search(r"^[\d,]+ tokens per (batch in one pass|micro-batch \u00d7 \d+), checkpointing (on|off): "
                     r"fits [\d.]+ GB with [\d.<]+ GB to spare\.$", lora_text), lora_text
    assert page.estimate.plan is not None and page.estimate.estimate is page.estimate.plan.estimate
    assert "on this CPU" in page.estimate.time_text or "on this GPU" in page.estimate.time_text
    assert "24 training examples" in page.estimate.time_text

    set_field(page, "method", "qlora")
    qlora = page.estimate.estimate
    assert qlora.total < lora.total
    assert qlora.weights < lora.weights

    set_field(page, "gradient_checkpointing", True)
    assert page.estimate.estimate.activations < qlora.activations
    before = page.estimate.estimate.activations
    set_field(page, "batch_tokens", page.form.config().batch_tokens * 2)
    assert page.estimate.estimate.activations > before


def _time_figures(text: str) -> tuple[int, int]:
    """(steps, tokens) from the time sentence: "... (N steps, ...; for K units (about T tokens)"."""
    import re

    steps = re.search(r"\(([\d,]+) steps?", text)
    tokens = re.search(r"about ([\d,]+) tokens\)", text)
    assert steps and tokens, text
    return int(steps.group(1).replace(",", "")), int(tokens.group(1).replace(",", ""))


def test_the_time_estimate_of_dpo_and_kto_counts_the_pairs_and_their_lengths(page, fill, project):
    import json

    from ftstudio.core import preferences
    from ftstudio.core.preferences import NewPair
    from ftstudio.gui.training.page import CHARS_PER_TOKEN

    fill(project, 30, eval_every=5)  # 24 short training examples
    prompt = [{"role": "user", "content": "Where is my parcel? " * 4}]
    ids = preferences.add_pairs(project, [
        NewPair(prompt, "shipping " * 20, "no idea " * 40, split="train") for _ in range(6)
    ] + [NewPair(prompt, "shipping", None, split="train")], actor="tester")
    page.refresh_data()
    set_field(page, "max_steps", 0)
    set_field(page, "epochs", 3)
    set_field(page, "batch_tokens", 256)
    set_field(page, "max_length", 256)
    assert "24 training examples" in page.estimate.time_text
    sft_steps, sft_tokens = _time_figures(page.estimate.time_text)

    editor = page.form.editor("objective")
    editor.setCurrentIndex(editor.findData("dpo"))
    text = page.estimate.time_text
    assert "6 training pairs" in text and "training examples" not in text, text
    chars = 6 * (2 * len(json.dumps(prompt)) + len("shipping " * 20) + len("no idea " * 40))
    steps, tokens = _time_figures(text)
    # the prompt twice and both answers of every pair (within the rounding of the stored JSON)
    assert abs(tokens - chars / CHARS_PER_TOKEN) <= 0.02 * tokens
    assert steps != sft_steps

    # longer rejected answers: more tokens, more steps
    preferences.update_pairs(project, ids[:6], actor="tester", rejected="no idea " * 120)
    page.refresh_data()
    longer_steps, longer_tokens = _time_figures(page.estimate.time_text)
    assert longer_tokens > tokens and longer_steps > steps

    editor.setCurrentIndex(editor.findData("kto"))
    text = page.estimate.time_text
    assert "13 rated answers" in text, text  # 6 pairs give a good and a bad answer each, plus one good one


def test_a_model_that_cannot_be_read_blocks_start_with_a_reason(page, tmp_path):
    page.form.set_model(str(tmp_path / "nowhere"))
    assert "does not exist" in page.form.problem_text("model")
    assert not page.start_button.isEnabled()
    assert "once the model can be read" in page.estimate.memory_text


def test_a_hub_model_not_downloaded_yet_offers_a_download_that_says_why_it_failed(page, qtbot, monkeypatch):
    # The tests run offline (HF_HUB_OFFLINE=1): the real download path fails as it would without a network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    page.form.hub_edit.setText("someone/not-downloaded-model")
    qtbot.keyClick(page.form.hub_edit, Qt.Key.Key_Return)
    assert "not in the local Hugging Face cache" in page.form.problem_text("model")
    assert page.form.download_button.isVisibleTo(page) and not page.start_button.isEnabled()
    qtbot.mouseClick(page.form.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "offline" in page.form.problem_text("model"), timeout=HANG_MS)
    assert not page.form.download_progress.isVisibleTo(page)
    assert page.form.download_button.isVisibleTo(page) and not page.start_button.isEnabled()
    # a local folder or the bundled model never offers a download
    page.form.set_model("bundled:SmolLM2-135M-Instruct")
    assert not page.form.download_button.isVisibleTo(page)



def test_start_while_the_device_is_busy_says_who_holds_it_and_makes_no_run(page, fill, project, tiny_model_dir,
                                                                            context):
    fill(project, 8)
    configure(page, tiny_model_dir, max_steps=2)
    assert context.compute.try_acquire("Comparing models")
    assert page.start() is False
    assert "The device is busy (Comparing models)" in page.notice.text()
    assert project.runs() == [] and not page.is_busy()  # the row is made only once the device is ours
    assert context.compute.holder == "Comparing models"
    context.compute.release("Comparing models")

def wait_for_step(qtbot, page: TrainPage, step: int) -> None:
    qtbot.waitUntil(lambda: page.dashboard.progress_event is not None and page.dashboard.progress_event.step >= step,
                    timeout=RUN_TIMEOUT_MS)


@pytest.mark.slow
def test_start_stop_and_resume_a_real_run(page, qtbot, fill, project, tiny_model_dir, context):
    fill(project, 40, eval_every=5)
    configure(page, tiny_model_dir, max_steps=60, checkpoint_every=0)
    with qtbot.waitSignal(page.run_started, timeout=HANG_MS) as started:
        qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    run_id = started.args[0]
    assert project.get_run(run_id).status == "running"
    assert context.compute.holder == HOLDER
    assert not page.start_button.isEnabled() and page.stop_button.isEnabled()
    assert not page.form.editor("lora_rank").isEnabled()  # settings are locked while training

    wait_for_step(qtbot, page, 3)
    dash = page.dashboard
    qtbot.waitUntil(lambda: dash.points("loss") >= 2 and dash.points("lr") >= 2, timeout=HANG_MS)
    assert dash.progress.maximum() == 60 and 3 <= dash.progress.value() < 60
    assert "Step" in dash.progress.format() and "Elapsed" in dash.time_label.text()

    with qtbot.waitSignal(page.run_finished, timeout=RUN_TIMEOUT_MS) as ended:
        qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
        assert page.stop_button.text() == "Stopping\u2026"
    assert ended.args == [run_id, "stopped"]
    run = project.get_run(run_id)
    stopped_at = run.steps
    assert run.status == "stopped" and 3 <= stopped_at < 60
    assert run.train_loss is not None and "resume" in run.message
    run_dir = project.run_dir(run_id)
    assert (run_dir / "checkpoints" / f"step-{stopped_at}" / "state.json").exists()
    assert context.compute.holder == ""
    assert dash.banner.isVisible() and "Stopped at step" in dash.banner.title.text()
    assert page.resume_button.isEnabled() and page.resumable_run().id == run_id

    # opened again later, the page shows the stopped run and offers to resume it
    reopened = TrainPage(context)
    try:
        assert reopened.run_id == run_id and reopened.resume_button.isEnabled()
        assert f"Run {run_id} stopped at step {stopped_at}" in reopened.notice.text()
        assert reopened.dashboard.points("loss") == stopped_at
        assert reopened.dashboard.state_label.text() == "Stopped"
        assert reopened.form.config().max_steps == 60  # the settings were kept in the project
    finally:
        reopened.shutdown()
        reopened.deleteLater()

    with qtbot.waitSignal(page.run_finished, timeout=RUN_TIMEOUT_MS) as ended:
        qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
        assert page.is_busy()
        # the dashboard keeps the curve of the first session
        assert dash.series["loss"].n >= stopped_at - 1
    assert ended.args == [run_id, "finished"]
    run = project.get_run(run_id)
    assert run.status == "finished" and run.steps == 60 and run.message is None
    assert run.eval_loss is not None and run.train_loss is not None
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    steps = sorted({e.step for e in read_events(run_dir / "metrics.jsonl") if isinstance(e, StepMetrics)})
    assert steps == list(range(1, 61))
    assert dash.points("loss") == 60 and dash.points("eval") >= 2
    assert dash.progress.value() == 60
    assert "Finished after 60 steps" in dash.banner.title.text()
    assert "Step" in dash.samples_view.toPlainText()  # the sample answers of each evaluation
    assert not page.resume_button.isEnabled()
    assert len(project.runs()) == 1


@pytest.mark.slow
def test_event_loop_stays_responsive_while_training(page, qtbot, fill, project, tiny_model_dir):
    """A timer on the GUI thread keeps firing while a real run trains: it sees the run's
    steps one after another, not only the first and the last (as it would if training held
    the GUI thread). How late it fires is a figure: benchmarks/bench_event_loop.py."""
    fill(project, 40, eval_every=5)
    configure(page, tiny_model_dir, max_steps=400, eval_every=100, checkpoint_every=0)
    seen_steps: list[int] = []
    ticker = QTimer()
    ticker.setInterval(10)

    def tick() -> None:
        shown = page.dashboard.progress_event
        if shown is not None and (not seen_steps or seen_steps[-1] != shown.step):
            seen_steps.append(shown.step)

    ticker.timeout.connect(tick)
    with qtbot.waitSignal(page.run_finished, timeout=RUN_TIMEOUT_MS):
        assert page.start()
        ticker.start()
        qtbot.waitUntil(lambda: len(seen_steps) >= 6 or not page.is_busy(), timeout=RUN_TIMEOUT_MS)
        page.stop()
    ticker.stop()
    assert len(seen_steps) >= 6, seen_steps
    assert seen_steps == sorted(seen_steps) and project.runs()[0].steps >= seen_steps[-1]


def _answer_dialog(qtbot, button_text: str) -> None:
    def answer():
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
        if not boxes:
            QTimer.singleShot(20, answer)
            return
        for b in boxes[0].buttons():
            if b.text() == button_text:
                b.click()
                return

    QTimer.singleShot(20, answer)


@pytest.mark.slow
def test_closing_the_window_during_a_run_asks_then_stops_and_keeps_the_checkpoint(qtbot, settings, project, fill,
                                                                                 tiny_model_dir):
    from ftstudio.gui.main_window import MainWindow

    fill(project, 40, eval_every=5)
    window = MainWindow(settings, detect_device=False)
    qtbot.addWidget(window)
    window.show()
    assert window.open_project(project.path)
    window.show_page("Train")
    page = window.page("Train")
    qtbot.waitUntil(lambda: page.device_checked, timeout=HANG_MS)
    configure(page, tiny_model_dir, max_steps=500, checkpoint_every=0)
    assert page.start()
    run_id = page.run_id
    wait_for_step(qtbot, page, 2)

    _answer_dialog(qtbot, "Keep running")
    window.close()
    assert window.isVisible() and page.is_busy()

    _answer_dialog(qtbot, "Stop and close")
    window.close()
    assert not window.isVisible()
    assert not page.is_busy() and window.context is None
    with type(project).open(project.path) as reopened:
        run = reopened.get_run(run_id)
        assert run.status == "stopped" and 2 <= run.steps < 500
        checkpoint = reopened.run_dir(run_id) / "checkpoints" / f"step-{run.steps}"
        assert (checkpoint / "state.json").exists()
        assert any(checkpoint.rglob("adapter_model.safetensors"))  # the add-on weights, not only the state
        assert can_resume(reopened, run)
    # The project stays the one to reopen next time.
    assert settings.last_project() == str(project.path.resolve())


def test_dashboard_shows_gpu_memory_and_utilisation_when_reported(qtbot):
    """Scripted events as a GPU run sends them: the memory and utilisation plots appear."""
    from ftstudio.core import events as ev
    from ftstudio.gui.training.dashboard import GB, Dashboard

    dash = Dashboard()
    qtbot.addWidget(dash)
    dash.resize(760, 700)
    dash.show()
    dash.ingest([ev.Progress(1, 10, 0.1, 1.0, 9.0), ev.StepMetrics(1, 2.0, 1e-4, 0.5, 900.0)])
    dash.redraw()
    assert not dash.memory_plot.isVisible() and not dash.tiles["memory"].isVisible()  # a CPU run
    gpu = [ev.StepMetrics(s, 2.0 / s, 1e-4, 0.5, 9000.0, int(3.1 * GB), int(4 * GB), int(3.6 * GB), int(24 * GB),
                          87.0) for s in range(2, 6)]
    dash.ingest([*gpu, ev.Progress(5, 10, 0.5, 5.0, 5.0)])
    dash.redraw()
    assert dash.memory_plot.isVisible() and dash.util_plot.isVisible()
    assert dash.points("allocated") == 4 and dash.points("peak") == 4 and dash.points("util") == 4
    assert dash.total_line.isVisible() and dash.total_line.value() == pytest.approx(24.0)
    assert dash.tiles["memory"].value.text() == "3.1 / 24 GB" and dash.tiles["util"].value.text() == "87%"
    assert dash.progress.value() == 5 and "Step 5 of 10" in dash.progress.format()


def test_dashboard_shows_the_plan_and_the_measured_peak_beside_the_estimate(qtbot):
    from ftstudio.core import events as ev
    from ftstudio.gui.training.dashboard import GB, Dashboard

    dash = Dashboard()
    qtbot.addWidget(dash)
    dash.resize(900, 700)
    dash.show()
    plan = ev.FitPlan(0, 4096, 2, False, int(17.8 * GB), "4,096 tokens per micro-batch x 2, checkpointing off: fits 24 GB")
    dash.ingest([plan, ev.StepMetrics(1, 2.0, 1e-4, 0.5, 900.0)])
    dash.redraw()
    assert dash.plan_label.isVisible() and dash.plan_label.text() == f"Plan: {plan.text}"  # a CPU run: no peak
    gpu = [ev.StepMetrics(s, 2.0 / s, 1e-4, 0.5, 9000.0, int(9 * GB), int(15 * GB), int(14 * GB), int(24 * GB),
                          None, 8192, int(peak * GB)) for s, peak in ((2, 16.5), (3, 17.1), (4, 16.9))]
    dash.ingest(gpu)
    dash.redraw()
    assert "measured peak 17.1 GB (estimated 17.8 GB)" in dash.plan_label.text()
    assert dash.points("peak_reserved") == 3
    assert dash.estimate_line.isVisible() and dash.estimate_line.value() == pytest.approx(17.8)
    assert "peak reserved 17.10 GB (estimated 17.80 GB)" in dash.tiles["memory"].toolTip()
    assert not dash.banner.isVisible()
    # running out of memory is said once, in the banner, and the plan line follows the new size
    dash.ingest([ev.FitPlan(4, 2048, 4, False, 0, "2,048 tokens per micro-batch", "out_of_memory")])
    dash.redraw()
    assert dash.banner.isVisible() and dash.banner.kind == "warn"
    assert dash.banner.title.text() == "Ran out of memory at step 5: the run goes on"
    assert "2,048 tokens" in dash.banner.body.text()
    assert dash.plan_label.text().startswith("Plan: 2,048 tokens per micro-batch")
    assert "estimated 17.8 GB for the first plan" in dash.plan_label.text()
    # a metrics.jsonl from before peak reserved memory was measured shows no peak reserved curve
    dash.reset()
    dash.ingest([ev.StepMetrics(1, 2.0, 1e-4, 0.5, 9000.0, int(3 * GB), int(4 * GB), int(3.5 * GB), int(24 * GB))])
    dash.redraw()
    assert dash.points("allocated") == 1 and dash.points("peak_reserved") == 0 and not dash.plan_label.isVisible()


def test_dashboard_explains_out_of_memory_and_keeps_a_resumed_curve_in_order(qtbot):
    from ftstudio.core import events as ev
    from ftstudio.gui.training.dashboard import Dashboard

    dash = Dashboard()
    qtbot.addWidget(dash)
    dash.ingest([ev.StepMetrics(s, 1.0, 1e-4, 0.5, 900.0) for s in range(1, 9)])
    dash.ingest([ev.Failed("oom", "The run ran out of memory.", "Try: switch to QLoRA.", "/r/checkpoints/step-5")])
    dash.redraw()
    assert dash.banner.title.text() == "Out of memory"
    assert "What to do:</b> Try: switch to QLoRA." in dash.banner.body.text()
    assert "checkpoint at step 5" in dash.banner.body.text()
    # resumed from step 5: steps 6.. come again and replace the ones after the checkpoint
    dash.ingest([ev.StepMetrics(s, 0.5, 1e-4, 0.5, 900.0) for s in range(6, 10)])
    dash.redraw()
    x, y = dash.curves["loss"].getOriginalDataset()
    assert list(x) == list(range(1, 10)) and list(y[5:]) == [0.5] * 4


def test_a_popular_hub_model_gets_an_estimate_before_it_is_downloaded(page, qtbot, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    page.form.hub_edit.setText("meta-llama/Llama-3.1-8B-Instruct")
    qtbot.keyClick(page.form.hub_edit, Qt.Key.Key_Return)
    # the shape comes from the shipped table: the estimate is there, Start waits for the weights
    assert page.estimate.estimate is not None and page.estimate.estimate.total_params > 8e9
    problem = page.form.problem_text("model")
    assert "not in the local Hugging Face cache" in problem and "about 16.1 GB" in problem
    assert page.form.download_button.isVisibleTo(page) and not page.start_button.isEnabled()
    assert "table of popular models" in page.form.model_info.text()


def test_when_nothing_fits_the_plan_offers_the_smallest_change_as_a_button(page, qtbot, monkeypatch):
    from ftstudio.engine.estimate import GIB, DeviceBudget

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # stands for a machine with 16 GB of RAM free, whatever this one has
    page._cpu = DeviceBudget("cpu", "test CPU (2 cores)", 32 * GIB, 16 * GIB, 2, False)
    set_field(page, "device", "cpu")
    set_field(page, "method", "lora")
    page.form.hub_edit.setText("meta-llama/Llama-3.1-8B-Instruct")
    qtbot.keyClick(page.form.hub_edit, Qt.Key.Key_Return)
    plan = page.estimate.plan
    assert plan is not None and not plan.fits and plan.suggestion is not None
    assert "needs" in page.estimate.memory_text and "to fit" in page.estimate.memory_text
    button = page.estimate.suggestion_button
    assert button.isVisibleTo(page) and button.text() == "Switch to QLoRA"
    assert page.form.config().method == "lora"  # suggested, not applied
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert page.form.config().method == "qlora"
    assert page.estimate.plan.fits and not button.isVisibleTo(page)


def test_an_unknown_hub_model_offers_to_fetch_its_config_alone(page, qtbot, monkeypatch, tmp_path):
    import json

    from ftstudio.engine import estimate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
                                  "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                                  "vocab_size": 128256}))
    asked: list[str] = []

    def hub_answers(spec: str):
        # Fault-injection point for the network: the hub's config.json for ``spec``.
        asked.append(spec)
        return config

    monkeypatch.setattr(estimate, "_download_hub_config", hub_answers)
    monkeypatch.setattr(estimate, "_cached_hub_config", lambda spec: config if asked else None)
    page.form.hub_edit.setText("someone/fine-tuned-llama")
    qtbot.keyClick(page.form.hub_edit, Qt.Key.Key_Return)
    assert page.form.fetch_config_button.isVisibleTo(page) and page.estimate.estimate is None
    qtbot.mouseClick(page.form.fetch_config_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.estimate.estimate is not None, timeout=HANG_MS)
    assert asked == ["someone/fine-tuned-llama"]
    assert "config.json on the hub" in page.form.model_info.text()
    assert not page.start_button.isEnabled()  # the weights are still to download
    assert page.form.download_button.isVisibleTo(page) and not page.form.fetch_config_button.isVisibleTo(page)


def test_the_hub_box_suggests_the_popular_models_it_can_estimate(page):
    completer = page.form.hub_edit.completer()
    completer.setCompletionPrefix("llama-3.1-8b")
    found = [completer.completionModel().index(i, 0).data() for i in range(completer.completionCount())]
    assert "meta-llama/Llama-3.1-8B-Instruct" in found
