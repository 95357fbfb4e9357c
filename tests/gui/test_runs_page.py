"""The Runs page over real run rows and run folders: the table, curves of one
run and of several overlaid, the settings and their differences, deleting
(with confirmation) and exporting an adapter."""

from __future__ import annotations

import json
import math

import pytest
from PySide6.QtCore import QTimer, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from ftstudio.core.config import TrainConfig, preset
from ftstudio.core.events import EvalMetrics, JsonlSink, Sample, StepMetrics, event_to_json
from ftstudio.gui.runs.page import RunsPage, short_run_label
from ftstudio.gui.runs.table_model import COLUMNS

# Waits end on a signal or a state; this limit only catches a hang, it is not a speed check
# (a loaded machine may take many times longer than an idle one).
HANG_MS = 900_000

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def add_run(project, cfg: TrainConfig, status: str, steps: int, floor: float, message: str | None = None,
            run_id: str | None = None) -> str:
    """A run row and folder as the Train page leaves them: config.yaml, metrics.jsonl, samples.jsonl."""
    run_id = project.create_run(cfg.to_dict(), run_id=run_id)
    folder = project.run_dir(run_id)
    cfg.save(folder / "config.yaml")
    sink = JsonlSink(folder / "metrics.jsonl")
    for step in range(1, steps + 1):
        sink(StepMetrics(step, 2.0 * math.exp(-step / 10) + floor, cfg.learning_rate, 0.5, 1000.0))
        if step % 5 == 0:
            sink(EvalMetrics(step, 2.0 * math.exp(-step / 10) + floor + 0.1))
    sink.close()
    with open(folder / "samples.jsonl", "w", encoding="utf-8") as fh:
        fh.write(event_to_json(Sample(steps, "My card was charged twice", "billing", "billing")) + "\n")
    project.update_run(run_id, status=status, steps=steps, train_loss=floor + 0.01, eval_loss=floor + 0.1,
                       message=message)
    return run_id


@pytest.fixture
def runs(project):
    a = add_run(project, preset("quick"), "finished", 20, 0.3, run_id="20260101-100000-aaaa")
    b = add_run(project, preset("quick", learning_rate=3e-4, lora_rank=32), "finished", 20, 0.5,
                run_id="20260101-110000-bbbb")
    c = add_run(project, preset("balanced"), "stopped", 8, 0.7, "Stopped at step 8; resume to continue",
                run_id="20260101-120000-cccc")
    return a, b, c


@pytest.fixture
def page(context, qtbot):
    p = RunsPage(context)
    qtbot.addWidget(p)
    p.resize(1100, 760)
    p.show()
    yield p
    p.shutdown()


def cell(page: RunsPage, run_id: str, column: str) -> str:
    source_row = page.model.row_of(run_id)
    index = page.proxy.mapFromSource(page.model.index(source_row, COLUMNS.index(column)))
    return index.data()


def test_every_run_is_listed_with_status_model_method_date_and_losses(runs, page, project, context):
    a, b, c = runs
    assert page.model.rowCount() == 3 and page.count_label.text() == "3 runs"
    # newest first, and the newest is selected
    assert [page.proxy.index(r, 0).data() for r in range(3)] == [c, b, a]
    assert page.selected_ids() == [c]
    assert cell(page, a, "Status") == "Finished" and cell(page, c, "Status") == "Stopped"
    assert cell(page, a, "Model") == "SmolLM2-135M-Instruct" and cell(page, a, "Method") == "LORA"
    assert cell(page, a, "Started").startswith("20")
    assert cell(page, a, "Train loss") == "0.3100" and cell(page, a, "Held-out loss") == "0.4000"
    assert cell(page, c, "Steps") == "8"
    # no stored evaluations yet: their columns are hidden
    assert page.table.isColumnHidden(COLUMNS.index("Exact match"))

    from ftstudio.core.ratings import store_evaluation

    store_evaluation(project, a, f"run:{a}", {"exact_match": 0.86, "loss": 0.42})
    context.runs_changed.emit()
    assert not page.table.isColumnHidden(COLUMNS.index("Exact match"))
    assert cell(page, a, "Exact match") == "86%" and cell(page, a, "Eval loss") == "0.4200"
    assert cell(page, b, "Exact match") == ""
    assert page.selected_ids() == [c]  # the selection survives a refresh

    # sorting by a column
    page.table.sortByColumn(COLUMNS.index("Train loss"), Qt.SortOrder.AscendingOrder)
    assert [page.proxy.index(r, 0).data() for r in range(3)] == [a, b, c]


def test_a_new_run_appears_when_runs_change(page, project, context):
    assert page.model.rowCount() == 0 and page.table_stack.currentWidget() is page.empty
    run_id = add_run(project, preset("quick"), "finished", 5, 0.2)
    context.runs_changed.emit()
    assert page.model.rowCount() == 1 and page.selected_ids() == [run_id]
    assert page.table_stack.currentWidget() is page.table


def test_one_run_shows_its_curves_settings_samples_and_details(runs, page):
    a, _, c = runs
    page.select_runs([a])
    # smoothed train loss and held-out loss
    assert page.curve_count() == 2
    train, held = page.curve_items
    assert len(train.getData()[0]) == 20 and list(held.getData()[0]) == [5, 10, 15, 20]
    page.raw_check.setChecked(True)
    assert page.curve_count() == 3
    page.eval_check.setChecked(False)
    assert page.curve_count() == 2
    table = page.settings_table
    keys = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert keys[:3] == ["model", "method", "lora_rank"] and "learning_rate" in keys
    row = keys.index("learning_rate")
    assert table.item(row, 1).text() == "0.001"
    assert "billing" in page.samples_view.toPlainText()
    page.select_runs([c])
    assert "resume to continue" in page.details_view.toPlainText()
    assert "Checkpoints" in page.details_view.toPlainText()


def test_several_runs_overlay_their_curves_and_show_what_differs(runs, page):
    a, b, c = runs
    page.select_runs([a, b])
    assert sorted(page.selected_ids()) == sorted([a, b])
    assert page.curve_count() == 4  # two runs x (train, held-out)
    names = {item.name() for item in page.curve_items}
    assert {short_run_label(a), short_run_label(b)} <= names
    assert page.differing_settings() == ["learning_rate", "lora_rank"]
    table = page.settings_table
    assert page.differences_only.isChecked()
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["lora_rank", "learning_rate"]
    assert [table.item(r, 1).text() for r in range(table.rowCount())] == ["32", "0.0003"] or \
        [table.item(r, 2).text() for r in range(table.rowCount())] == ["32", "0.0003"]
    assert table.item(0, 0).background().color().name() != table.item(0, 0).foreground().color().name()
    assert "2 settings differ" in page.diff_label.text()
    page.differences_only.setChecked(False)
    assert table.rowCount() > 20  # every setting, differences marked
    page.select_runs([a, b, c])
    assert page.curve_count() == 6
    assert "epochs" in page.differing_settings() and "max_length" in page.differing_settings()


def _answer_dialog(text: str) -> None:
    def answer():
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
        if not boxes:
            QTimer.singleShot(20, answer)
            return
        for button in boxes[0].buttons():
            if button.text() == text:
                button.click()
                return

    QTimer.singleShot(20, answer)


def test_delete_asks_first_and_removes_the_folder(runs, page, project, qtbot):
    a, b, c = runs
    page.select_runs([b, c])
    _answer_dialog("Cancel")
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert len(project.runs()) == 3 and project.run_dir(b).exists()

    _answer_dialog("Delete")
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert [r.id for r in project.runs()] == [a]
    assert not project.run_dir(b).exists() and not project.run_dir(c).exists()
    assert page.model.rowCount() == 1 and page.selected_ids() == [a]
    assert "Deleted 2 runs" in page.notice.text()


def test_a_run_that_is_training_cannot_be_deleted(runs, page, project, context):
    from ftstudio.core.liveness import RunLock

    a, _, _ = runs
    alive = RunLock(project.run_dir(a)).acquire()  # what the Train page holds while it trains
    project.update_run(a, status="running")
    assert context.compute.try_acquire("Training")
    context.runs_changed.emit()
    page.select_runs([a])
    page.ask_delete()  # refuses without asking
    assert "is training" in page.notice.text()
    assert page.delete_runs([a]) == 0 and project.run_dir(a).exists()
    context.compute.release("Training")
    alive.release()
    assert project.get_run(a).status == "interrupted"
    assert page.delete_runs([a]) == 1  # a stale "running" row (the app was killed) can go


@pytest.mark.slow
def test_export_copies_a_loadable_adapter(page, project, context, qtbot, tmp_path, tiny_model_dir):
    from ftstudio.core.examples import PreparedData
    from ftstudio.engine.inference import check_adapter_dir
    from ftstudio.engine.training import train

    cfg = TrainConfig(model=str(tiny_model_dir), max_steps=2, batch_tokens=128, max_length=64, eval_every=0,
                      samples=0, checkpoint_every=0)
    run_id = project.create_run(cfg.to_dict())
    conv = [{"role": "user", "content": "Which animal?"}, {"role": "assistant", "content": "cat"}]
    result = train(cfg, PreparedData([conv] * 4, [conv]), lambda e: None, lambda: False,
                   run_dir=project.run_dir(run_id))
    project.update_run(run_id, status=result.status, steps=result.steps, train_loss=result.train_loss)
    context.runs_changed.emit()
    page.select_runs([run_id])
    assert page.export_button.isEnabled()

    out = tmp_path / "exported"
    with qtbot.waitSignal(page.exported, timeout=HANG_MS) as done:
        assert page.export_adapter(run_id, out)
    assert done.args == [run_id, str(out)]
    assert check_adapter_dir(out) is None
    assert json.loads((out / "adapter_config.json").read_text())["r"] == cfg.lora_rank
    assert "Exported the adapter" in page.notice.text()
    qtbot.waitUntil(lambda: not page.exporting)

    with qtbot.waitSignal(page.exported, timeout=HANG_MS) as done:  # the folder is no longer empty
        assert page.export_adapter(run_id, out)
    assert done.args == [run_id, ""]
    assert "Could not export" in page.notice.text() and "not empty" in page.notice.text()


def test_a_run_without_an_adapter_cannot_be_exported(runs, page):
    _, _, c = runs
    page.select_runs([c])
    assert not page.export_button.isEnabled()
    assert page.export_adapter(c, page.project.path / "out") is False
    assert "no adapter yet" in page.notice.text()
