from PySide6.QtCore import Qt

from ftstudio.core.project import ExampleFilter
from ftstudio.gui.data.table_model import COL_ANSWER, COL_ID, COL_LABEL, COL_PROMPT, COL_SPLIT, PAGE_ROWS, \
    ExamplesTableModel


def test_model_passes_qt_model_tester(qtmodeltester, project, fill):
    fill(project, 300, eval_every=7)
    model = ExamplesTableModel(project)
    qtmodeltester.check(model)
    assert model.rowCount() == 300


def test_rows_are_read_a_page_at_a_time(project, fill):
    ids = fill(project, 3 * PAGE_ROWS)
    model = ExamplesTableModel(project)
    assert model.fetches == 0
    assert model.data(model.index(0, COL_ID)) == str(ids[0])
    assert model.data(model.index(PAGE_ROWS - 1, COL_PROMPT)) == f"question number {PAGE_ROWS - 1}"
    assert model.fetches == 1
    assert model.data(model.index(2 * PAGE_ROWS + 5, COL_ANSWER)) in ("billing", "technical", "account")
    assert model.fetches == 2


def test_refresh_inserts_and_removes_rows_in_place(qtmodeltester, project, qtbot, fill):
    ids = fill(project, 50)
    model = ExamplesTableModel(project)
    qtmodeltester.check(model)
    with qtbot.waitSignal(model.rowsRemoved):
        project.delete_examples([ids[10], ids[11]])
        model.refresh([ids[10], ids[11]])
    assert model.rowCount() == 48
    assert model.row_of(ids[10]) is None
    assert model.data(model.index(10, COL_ID)) == str(ids[12])
    with qtbot.waitSignal(model.rowsInserted):
        project.undo()
        model.refresh([ids[10], ids[11]])
    assert model.rowCount() == 50
    assert model.row_of(ids[11]) == 11


def test_edits_show_after_refresh_and_filter_narrows(project, qtbot, fill):
    ids = fill(project, 30, eval_every=5)
    model = ExamplesTableModel(project)
    assert model.data(model.index(0, COL_LABEL)) == "billing"
    project.update_example(ids[0], label="refund")
    with qtbot.waitSignal(model.dataChanged):
        model.refresh([ids[0]])
    assert model.data(model.index(0, COL_LABEL)) == "refund"
    model.set_filter(ExampleFilter(split="eval"))
    assert model.rowCount() == 6
    assert {model.data(model.index(r, COL_SPLIT)) for r in range(6)} == {"eval"}
    model.set_problem_ids({ids[5]})
    assert model.data(model.index(1, COL_ID), Qt.ItemDataRole.ForegroundRole) is not None


def test_prefetch_reads_the_pages_around_the_screen_ahead_of_painting(project, fill):
    fill(project, 10 * PAGE_ROWS)
    model = ExamplesTableModel(project)
    # The screen shows rows in page 4: pages 3, 4 and 5 are read, two at a time.
    first, last = 4 * PAGE_ROWS + 3, 4 * PAGE_ROWS + 30
    assert model.prefetch(first, last) is True
    assert model.fetches == 2
    assert model.prefetch(first, last) is False
    assert model.fetches == 3
    assert model.prefetch(first, last) is False and model.fetches == 3  # nothing left to read
    for row in (3 * PAGE_ROWS, 5 * PAGE_ROWS + PAGE_ROWS - 1, first):
        assert model.data(model.index(row, COL_ID)) == str(model.example_id(row))
    assert model.fetches == 3  # painting them reads nothing more
    model.data(model.index(8 * PAGE_ROWS, COL_ID))
    assert model.fetches == 4


def test_a_sparse_filter_reads_only_its_rows(project, fill):
    ids = fill(project, 4 * PAGE_ROWS)
    project.update_examples(ids[::50], label="rare")
    model = ExamplesTableModel(project)
    model.set_filter(ExampleFilter(label="rare"))
    assert model.rowCount() == len(ids[::50])
    assert [model.data(model.index(r, COL_LABEL)) for r in range(model.rowCount())] == ["rare"] * model.rowCount()
    assert model.fetches == 1


def test_refresh_of_changed_rows_matches_a_full_reload(qtmodeltester, project, qtbot, fill):
    ids = fill(project, 60)
    model = ExamplesTableModel(project)
    model.set_filter(ExampleFilter(label="billing"))
    qtmodeltester.check(model)
    leaving, joining, staying = ids[0], ids[1], ids[3]  # billing, technical, billing
    project.update_example(leaving, label="refund")
    project.update_example(joining, label="billing")
    project.update_example(staying, messages=[{"role": "user", "content": "changed"},
                                              {"role": "assistant", "content": "billing"}])
    model.refresh([leaving, joining, staying])
    assert model.example_ids() == project.example_ids(ExampleFilter(label="billing"))
    assert model.data(model.index(model.row_of(staying), COL_PROMPT)) == "changed"
    project.delete_examples([staying])
    model.refresh([staying])
    assert model.row_of(staying) is None
    assert model.example_ids() == project.example_ids(ExampleFilter(label="billing"))
