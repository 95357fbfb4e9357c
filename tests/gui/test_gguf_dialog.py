"""The Runs page's GGUF export: the Export menu opens the dialog; the export runs
on a worker with a progress bar, shows the parity check's verdict and the
Ollama line, and a stop leaves no file."""

from __future__ import annotations

import pytest

from ftstudio.engine.models import load_tokenizer
from ftstudio.gui.runs.page import RunsPage
from ftstudio.gui.workers import wait_for

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one).
HANG_MS = 900_000

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


@pytest.fixture
def tuned_run(project, small_vocab_model_dir, lora_adapter):
    project.add_example(
        [{"role": "user", "content": "Where is my parcel?"}, {"role": "assistant", "content": "shipping"}],
        split="eval",
    )
    project.add_example(
        [{"role": "user", "content": "Refund please"}, {"role": "assistant", "content": "billing"}]
    )
    run_id = project.create_run({"model": str(small_vocab_model_dir), "method": "lora", "max_length": 128})
    adapter = lora_adapter(small_vocab_model_dir, project.run_dir(run_id) / "adapter", seed=3)
    load_tokenizer(small_vocab_model_dir).save_pretrained(adapter)
    project.update_run(run_id, status="finished", steps=4)
    return run_id


@pytest.fixture
def page(context, qtbot, tuned_run):
    p = RunsPage(context)
    qtbot.addWidget(p)
    p.resize(1100, 700)
    p.show()
    yield p
    p.shutdown()


def test_gguf_export_from_the_runs_page_shows_the_check(page, tuned_run, tmp_path, qtbot, context):
    assert page.selected_ids() == [tuned_run] and page.gguf_action.isEnabled()
    page.gguf_action.trigger()
    dialog = page.gguf_dialog
    assert dialog is not None and dialog.isVisible()
    assert [dialog.quant_combo.itemData(i) for i in range(4)] == ["f16", "bf16", "q8_0", "q4_0"]
    dialog.path_edit.setText(str(tmp_path / "tuned-f16.gguf"))
    dialog.set_quant("q8_0")
    assert dialog.path_edit.text().endswith("tuned-q8_0.gguf")  # the name follows the choice
    values = []
    dialog.progress.valueChanged.connect(values.append)
    with qtbot.waitSignal(dialog.finished_export, timeout=HANG_MS) as done:
        assert dialog.start()
        assert not dialog.export_button.isEnabled() and dialog.stop_button.isEnabled()
        assert context.compute.holder  # the export holds the compute device while it loads the model
    report = done.args[0]
    assert report is not None and report.written.path == tmp_path / "tuned-q8_0.gguf"
    assert values and values[-1] == 1000 and any(0 < v < 1000 for v in values)
    [check] = [p for p in report.parity if p.reader == "transformers"]
    assert check.prompts == 1
    text = dialog.result_view.toPlainText()
    assert "Read back by transformers" in text and check.verdict in text
    assert "ollama create" in text and (tmp_path / "Modelfile").is_file()
    wait_for(lambda: not dialog.is_running(), HANG_MS / 1000)
    assert dialog.export_button.isEnabled() and not context.compute.holder
    dialog.grab().save(str(tmp_path / "gguf-dialog.png"))


def test_stopping_the_export_leaves_no_file(page, tuned_run, tmp_path, qtbot, monkeypatch):
    import threading

    from ftstudio.engine import gguf_export

    dialog = page.open_gguf_dialog()
    dialog.path_edit.setText(str(tmp_path / "stopped.gguf"))
    dialog.check_box.setChecked(False)
    stopped = []
    asked = threading.Event()
    real_write, writes = gguf_export._write_tensor, []

    def write_then_wait_for_the_stop(writer, data):
        # Stands for a model big enough to be stopped part-way through its file: from the second
        # tensor on, writing waits until the dialog has asked the export to stop.
        if writes:
            asked.wait(HANG_MS / 1000)
        writes.append(1)
        real_write(writer, data)

    monkeypatch.setattr(gguf_export, "_write_tensor", write_then_wait_for_the_stop)

    def stop_on_first_progress(value):
        if not stopped:
            stopped.append(value)
            dialog.stop()
            asked.set()

    dialog.progress.valueChanged.connect(stop_on_first_progress)
    with qtbot.waitSignal(dialog.finished_export, timeout=HANG_MS) as done:
        dialog.start()
    assert done.args[0] is None and "stopped" in dialog.status.text()
    assert stopped and list(tmp_path.glob("*.gguf")) == [] and list(tmp_path.glob(".*partial")) == []


def test_base_model_export_and_an_unsupported_base_is_refused_in_words(
    page, project, tuned_run, tmp_path, qtbot, small_vocab_tokenizer_dir
):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=1024)).save_pretrained(folder)
    load_tokenizer(small_vocab_tokenizer_dir).save_pretrained(folder)
    project.delete_run(tuned_run)  # the base comes from the project's latest run: only this one
    project.create_run({"model": str(folder), "method": "lora"})
    page.base_gguf_action.trigger()
    dialog = page.gguf_dialog
    assert "the base model" in dialog.findChildren(type(dialog.status))[0].text()
    dialog.path_edit.setText(str(tmp_path / "base.gguf"))
    with qtbot.waitSignal(dialog.finished_export, timeout=HANG_MS) as done:
        dialog.start()
    assert done.args[0] is None
    assert "'gpt2' architecture" in dialog.status.text() and not (tmp_path / "base.gguf").exists()
