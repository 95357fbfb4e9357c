"""Pictures of every page, for the documentation and for looking at what was built.

    python -m ftstudio.gui.screenshots [OUT_DIR]              (default: docs/screenshots/)
    python -m ftstudio.gui.screenshots --staged OUT_DIR       (quick, made-up figures; not for docs/)
    python -m ftstudio.gui.screenshots --from-run PROJECT RUN [OUT_DIR]   (a finished run instead of training)

Opens the main window at 1280 x 800 under the offscreen platform, on a fresh
copy of the demo project in a temporary folder (the user's own projects and
settings are not touched), and saves one PNG per page: data.png, label.png,
train.png, runs.png, compare.png, and the pages' other views beside them.
A page not in this build is skipped with a note.

By default the Train, Runs and Compare pictures are real, made on whatever
device is here (a CPU will do, in about eight minutes): the Quick preset
trains the bundled model through the Train page's own Start button, the
Runs page lists that run, and the Compare page writes answers of the base
model and the new adapter, runs a blind round (the votes are cast by this
script: the answer that matches the held-out reference wins), evaluates
both on the held-out examples and asks the adapter one question in the
chat. ``take(..., staged=True)`` instead uses the pages' own
``screenshot_states()`` for every page: quick, for tests, and with made-up
runs and figures, so it refuses to write into ``docs/screenshots``.

``--from-run PROJECT RUN`` starts from a finished run of a demo project
instead of training one (training is most of the time on a CPU): the
pictures are made on a copy of PROJECT (the project itself is not touched),
the Train page's pictures of a run in progress are not taken (the files
there stay as they are), and where the project already holds evaluations of
the compared models on all its held-out examples, made in the app or with
``ftstudio evaluate``, those are shown instead of being measured again.

A page can offer more views with an optional ``screenshot_states()`` method
returning ``{name: callable}``: each callable puts the page in that state
(it may wait for work to finish with :func:`wait_for`), and the window is
saved as ``<page>-<name>.png`` (a name that already starts with ``<page>-``
is used as it is). A view named like the page itself (``"label"`` on the
Label page) is its most telling picture: it is saved as ``<page>.png`` in
place of the page as it opens. A callable that returns a widget (a dialog
it opened, say) has that widget saved instead of the window.

Views may add sample data to the (throwaway) project; a page's optional
``screenshot_cleanup()`` runs after its views, to take back what would
change the pages pictured after it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

from ftstudio.gui.workers import wait_for

WIDTH, HEIGHT = 1280, 800
SETTLE_MS = 400
DEFAULT_OUT = Path("docs") / "screenshots"


def settle(ms: int | None = None) -> None:
    """Let timers, layouts and paints catch up (for ``SETTLE_MS`` unless told)."""
    ms = SETTLE_MS if ms is None else ms
    end = time.monotonic() + ms / 1000
    wait_for(lambda: time.monotonic() > end, ms / 1000 + 1)


def _quiet_offscreen_notes() -> None:
    """The offscreen platform says what a window system would do that it cannot; that is no news here."""
    from PySide6.QtCore import qInstallMessageHandler

    previous = None

    def handler(mode, context, message) -> None:
        if "This plugin does not support" in message:  # propagateSizeHints(), raise(): no window system here
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            sys.stderr.write(message + "\n")

    previous = qInstallMessageHandler(handler)


def file_stem(page: str, state: str) -> str:
    """The file name (without .png) of view ``state`` of page ``page``."""
    if state == page or state.startswith(page + "-"):
        return state
    return f"{page}-{state}"


def _save(widget, path: Path) -> None:
    settle()
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"  {path}")


def _is_docs_folder(out_dir: Path) -> bool:
    """``out_dir`` is the repository's docs/screenshots (where made-up figures must not go)."""
    docs = Path(__file__).resolve().parents[2] / DEFAULT_OUT
    try:
        return out_dir.resolve() == docs.resolve()
    except OSError:
        return False


class _Shots:
    """What a run of ``take`` has written, with a line about each picture."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.written: list[Path] = []
        self.captions: dict[str, str] = {}

    def save(self, widget, stem: str, caption: str = "") -> Path:
        path = self.out_dir / f"{stem}.png"
        _save(widget, path)
        self.written.append(path)
        if caption:
            self.captions[path.name] = caption
        return path


# -- the real pictures of the Train, Runs and Compare pages -----------------------------------------

TRAIN_TIMEOUT_S = 30 * 60  # the Quick preset on a slow CPU; a GPU takes well under a minute
JOB_TIMEOUT_S = 20 * 60
COMPARE_PROMPTS = 4
CHAT_QUESTION = "Hi, I was charged twice for my order last week. Can you help?"
VOTER = "Screenshot script"


def _must(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(what)


def real_train(window, shots: _Shots) -> str:
    """Train the Quick preset on the bundled model through the Train page; returns the run id."""
    window.show_page("Train")
    page = window.page("Train")
    _must(wait_for(lambda: page.device_checked, 120), "the Train page did not find the device")
    page.form.apply_preset("quick")  # as its button does: epochs follow the number of training examples
    # the settings with the advanced section open, as they will be trained
    page.form.set_advanced_visible(True)
    page.form.layout().activate()
    page.form.adjustSize()
    settle(100)
    scroll = page.form.parentWidget().parentWidget()
    scroll.verticalScrollBar().setValue(page.form.advanced_toggle.y() - 8)
    shots.save(window, "train-settings", "Train: the Quick preset with every setting open, and the estimate of "
                                         "memory and time for this device")
    page.form.set_advanced_visible(False)
    scroll.verticalScrollBar().setValue(0)
    settle(100)
    _must(page.start_button.isEnabled(), f"Start is disabled: {page.start_button.toolTip()}")
    page.start_button.click()
    _must(page.is_busy(), f"training did not start: {page.notice.text()}")
    run_id = page.run_id
    started = time.monotonic()
    print(f"  training run {run_id} (Quick preset, bundled model)\u2026")
    dash = page.dashboard
    # mid-run: after the first evaluation, once its sample answers are in
    wait_for(lambda: not page.is_busy() or (dash.last_eval is not None
                                           and bool(dash.samples_view.toPlainText().strip())),
             TRAIN_TIMEOUT_S, poll_ms=250)
    if page.is_busy():
        settle(1500)  # the dashboard redraws on its own timers
        shots.save(window, "train", "Train: a run of the Quick preset on the bundled model, mid-way: loss and "
                                    "held-out loss, progress and time left, and the answers to held-out prompts "
                                    "at the first evaluation")
    _must(wait_for(lambda: not page.is_busy(), TRAIN_TIMEOUT_S, poll_ms=250), "training did not finish in time")
    print(f"  run {run_id} ended after {time.monotonic() - started:.0f} s")
    run = page.project.get_run(run_id)
    _must(run.status == "finished", f"the run did not finish: {run.status} ({run.message})")
    settle(800)
    shots.save(window, "train-finished", "Train: the same run finished, with its adapter saved")
    if "train.png" not in shots.captions:  # too quick to catch mid-run
        shots.save(window, "train", "Train: a finished run of the Quick preset on the bundled model")
    return run_id


SHORT_RUN = {"max_steps": 5, "learning_rate": 3e-4}  # a second, very short run: something to set beside


def _stop_label_predictions(window) -> None:
    """The Label page predicts labels with the newest finished run (a project pictured from a run
    has one from the start) and holds the device while it does: stop it so a run can start."""
    page = window.page("Label")
    predictor = getattr(getattr(getattr(page, "mode", None), "assist", None), "predictor", None)
    if predictor is not None and predictor.busy:
        predictor.cancel()
        _must(wait_for(lambda: not predictor.busy, JOB_TIMEOUT_S, poll_ms=200), "the predictions did not stop")


def real_runs(window, shots: _Shots, run_id: str) -> None:
    _stop_label_predictions(window)
    window.show_page("Train")
    train = window.page("Train")
    train.form.apply_preset("quick")
    cfg = train.form.config()
    train.form.set_config(type(cfg).from_dict({**cfg.to_dict(), **SHORT_RUN}))
    settle(100)
    train.start_button.click()
    _must(train.is_busy(), f"the short run did not start: {train.notice.text()}")
    short_id = train.run_id
    print(f"  a short run {short_id} ({', '.join(f'{k}={v}' for k, v in SHORT_RUN.items())})\u2026")
    _must(wait_for(lambda: not train.is_busy(), TRAIN_TIMEOUT_S, poll_ms=250), "the short run did not finish")
    train.form.apply_preset("quick")

    window.show_page("Runs")
    page = window.page("Runs")
    page.context.runs_changed.emit()
    settle(200)
    page.select_runs([run_id])
    settle(800)
    shots.save(window, "runs", "Runs: the runs of this project with status, steps and losses; the Quick run "
                               "selected with its curves and settings")
    page.select_runs([run_id, short_id])
    settle(800)
    shots.save(window, "runs-overlay", "Runs: the Quick run and a 5-step run with a lower learning rate, curves "
                                       "overlaid and settings side by side with the differences marked")
    # The Label page's assistance takes the newest finished run: the Quick run, not this 5-step one.
    page.project.delete_run(short_id)
    page.context.runs_changed.emit()
    settle(200)


def _answers_for(page) -> dict[str, str]:
    """Prompt text -> reference answer of the prompts chosen on the Compare page."""
    from ftstudio.core import ratings

    return {ratings.prompt_text(p.messages): p.reference or "" for p in page.selection.prompts()}


def _cast_votes(page) -> int:
    """Vote through the blind round with the keys a rater uses: the answer that matches the reference
    wins; both matching is a tie (T), neither is "both bad" (B). Returns the number of votes."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    from ftstudio.engine.evaluation import normalise_answer

    references = _answers_for(page)
    blind = page.blind
    votes = 0
    while blind.current is not None and votes < 50:
        reference = normalise_answer(references.get(blind.prompt_text.text(), ""))
        matches = [i for i, text in enumerate(blind.displayed_texts()) if reference and
                   normalise_answer(text) == reference]
        if len(matches) == 1:
            key = Qt.Key(int(Qt.Key.Key_1) + matches[0])
        else:
            key = Qt.Key.Key_T if matches else Qt.Key.Key_B
        before = blind.votes_cast
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(blind, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier))
        _must(blind.votes_cast == before + 1, "the blind tab took no vote")
        votes += 1
        settle(50)
    return votes


def _wait_job(page, what: str) -> None:
    _must(wait_for(lambda: not page.busy, JOB_TIMEOUT_S, poll_ms=200), f"the {what} did not finish in time")


def _stored_evaluations_cover(page, keys: list[str]) -> bool:
    """The project holds an evaluation of each model in ``keys`` (and of the base model's few-shot
    prompt) on every example the Held-out evaluation would measure."""
    from ftstudio.core import ratings

    examples = page.selection.evaluation_examples()
    wanted = {ex.id for ex in examples}
    stored = ratings.latest_evaluations(page.context.project)
    shots, _labels = page.evaluate.prompting(examples)
    if shots:
        keys = [*keys, ratings.base_key(page.selection.base_spec()) + ratings.FEW_SHOT_MARK + str(len(shots))]

    def measured(key: str) -> set[int]:
        return {p.get("example_id") for p in stored[key].results.get("predictions") or ()}

    return bool(wanted) and all(key in stored and measured(key) == wanted for key in keys)


def real_compare(window, shots: _Shots, run_id: str, reuse_evaluations: bool = False) -> None:
    from ftstudio.core import ratings
    from ftstudio.gui.compare.selection import SOURCE_HELDOUT

    _stop_label_predictions(window)  # the evaluation's pictures show the device free for it
    window.show_page("Compare")
    page = window.page("Compare")
    sel = page.selection
    sel.reload()
    adapter = ratings.run_key(run_id)
    keys = [ref.key for ref in sel.all_refs()]
    _must(adapter in keys, f"the adapter of run {run_id} is not offered on the Compare page")
    sel.set_checked([keys[0], adapter])
    sel.set_source(SOURCE_HELDOUT)
    sel.limit.setValue(COMPARE_PROMPTS)
    settle(100)

    started = time.monotonic()
    page.tabs.setCurrentWidget(page.compare)
    page.compare.run_button.click()
    _must(page.busy, f"no comparison started: {page.compare.status.text()}")
    _wait_job(page, "comparison")
    print(f"  {COMPARE_PROMPTS} prompts answered by 2 models in {time.monotonic() - started:.0f} s")
    page.compare.show_prompt(0)
    shots.save(window, "compare", f"Compare: the base model and the adapter answer {COMPARE_PROMPTS} held-out "
                                  "tickets side by side")

    if not page.blind.voter():
        page.context.set_actor(VOTER)
    page.blind.rng.seed(7)  # the same order each time
    page.tabs.setCurrentWidget(page.blind)
    page.blind.start_button.click()
    _wait_job(page, "blind round")
    _must(page.blind.current is not None, "the blind round has nothing to rate")
    shots.save(window, "compare-blind", "Compare, blind rating: the same answers in random order, without the "
                                        "model names")
    votes = _cast_votes(page)

    started = time.monotonic()
    page.tabs.setCurrentWidget(page.evaluate)
    n = len(sel.evaluation_examples())
    if reuse_evaluations and _stored_evaluations_cover(page, [keys[0], adapter]):
        page.evaluate.view.refresh()
        print(f"  the project's evaluations of these models on its {n} held-out examples are shown "
              "(not measured again)")
    else:
        page.evaluate.run_button.click()
        _must(page.busy, f"no evaluation started: {page.evaluate.status.text()}")
        _wait_job(page, "evaluation")
        print(f"  2 models evaluated on {n} held-out examples in {time.monotonic() - started:.0f} s")
    page.evaluate.view.select(adapter)
    shots.save(window, "compare-evaluation", f"Compare, held-out evaluation: the base model zero-shot and with a "
                                             f"few-shot prompt beside the adapter on {n} held-out examples: exact "
                                             "match with its 95% interval, per label, label accuracy and "
                                             "calibration error, the sentence on what fine-tuning adds, and the "
                                             "adapter's confusion of labels")
    view = page.evaluate.view
    view.details.setCurrentIndex(1)
    settle(200)
    shots.save(window, "compare-calibration", "Compare, held-out evaluation: the reliability diagram of every "
                                              "model's label scores (on the diagonal: as sure as right)")
    view.details.setCurrentIndex(2)
    mistakes = view.mistakes
    chosen = mistakes.table.selectionModel()
    for row in range(min(3, mistakes.table.rowCount())):
        chosen.select(mistakes.table.model().index(row, 0),
                      chosen.SelectionFlag.Select | chosen.SelectionFlag.Rows)
    if mistakes.review_button.isEnabled():
        mistakes.review_button.click()  # the surest mistakes, to the Label page's review queue
    settle(200)
    shots.save(window, "compare-mistakes", "Compare, held-out evaluation: the mistakes of every model, surest "
                                           "first, three of them sent to the Label page's review queue")
    view.details.setCurrentIndex(0)

    page.tabs.setCurrentWidget(page.results)  # after the evaluation, which fills its held-out columns
    page.results.refresh()
    shots.save(window, "compare-results", f"Compare, results: the ranking from the blind votes ({votes} votes cast "
                                          "by the screenshot script: the answer matching the reference wins) beside "
                                          "the held-out figures")

    page.tabs.setCurrentWidget(page.chat)
    refs = sel.all_refs()
    page.chat.model_combo.setCurrentIndex([r.key for r in refs].index(adapter))
    page.chat.input.setPlainText(CHAT_QUESTION)
    page.chat.send_button.click()
    _must(page.busy, "the chat did not answer")
    _wait_job(page, "chat answer")
    shots.save(window, "compare-chat", "Compare, chat: a new question answered by the adapter")


def real_assisted_labelling(window, shots: _Shots, run_id: str) -> None:
    """The Label page after the Quick run: its predicted label pre-selected, and the review queue."""
    from ftstudio.core import review

    window.show_page("Label")
    page = window.page("Label")
    page.tabs.setCurrentIndex(0)  # the labelling itself, not the tab the page views left open
    mode = page.mode
    if not mode.annotator:
        page.context.set_actor(VOTER)
    mode.load_queue("todo")
    project = page.context.project
    _must(wait_for(lambda: mode.current_id is not None and review.prediction(project, run_id, mode.current_id)
                   is not None and mode.assist.preselected, JOB_TIMEOUT_S, poll_ms=200),
          "no prediction came for the example on screen")
    settle(300)
    shots.save(window, "label-assisted", f"Label: run {run_id} predicts the label of the example on screen; it is "
                                         "pre-selected with its probability, Enter confirms it")
    # The rest of the queue (hundreds of examples, minutes on a CPU) is not needed for these pictures.
    mode.assist.predictor.cancel()
    _must(wait_for(lambda: not mode.assist.predictor.busy, JOB_TIMEOUT_S, poll_ms=200),
          "the predictions did not stop")
    mode.load_queue("review")  # asks for the predictions of its few examples
    if mode.current_id is not None:
        _must(wait_for(lambda: not mode.assist.predictor.busy, JOB_TIMEOUT_S, poll_ms=200),
              "the review queue's predictions did not finish")
        settle(300)
        shots.save(window, "label-review", "Label: the queue “Review: the model disagrees”, fed from the "
                                           "evaluation's mistakes: what the model answered, the label to "
                                           "confirm or correct")
    mode.load_queue("todo")
    mode.assist.predictor.cancel()  # the device is free for what comes next
    _must(wait_for(lambda: not mode.assist.predictor.busy, JOB_TIMEOUT_S, poll_ms=200),
          "the predictions did not stop")


# Preference tuning from the votes the Compare round cast: short, it only has to show the loop.
PREFERENCE_RUN = {"max_steps": 12, "learning_rate": 5e-4, "beta": 0.1, "eval_every": 4, "samples": 2}


def real_preferences(window, shots: _Shots, run_id: str) -> str | None:
    """After the blind round: its votes as pairs on the Data page, a DPO run from ``run_id`` through the
    Train page, and the Compare page's Results with the new run against the one it started from."""
    from ftstudio.core import preferences

    window.show_page("Data")
    data = window.page("Data")
    data.show_view("preferences")
    if data.preferences.rows():
        data.preferences.select_pair(int(data.preferences.rows()[0]["#"]))
    data.preferences.run_checks()
    settle(200)
    shots.save(window, "data-preferences", "Data, preferences: the blind votes as pairs of a preferred and a "
                                           "rejected answer, where each came from, and the checks before training")
    data.show_view("examples")
    if not preferences.counts(data.project).total_pairs():
        print("  no pair from the blind round (every vote a tie or 'both bad'): no preference run pictured")
        return None
    window.show_page("Train")
    page = window.page("Train")
    page.refresh_data()
    cfg = page.form.config()
    page.form.set_config(type(cfg).from_dict({**cfg.to_dict(), **PREFERENCE_RUN, "objective": "dpo",
                                               "start_from": str(page.project.run_dir(run_id) / "adapter")}))
    _must(page.start_button.isEnabled(), f"Start is disabled: {page.start_button.toolTip()}")
    page.start_button.click()
    _must(page.is_busy(), f"DPO did not start: {page.notice.text()}")
    dpo_id = page.run_id
    _must(wait_for(lambda: not page.is_busy(), TRAIN_TIMEOUT_S, poll_ms=250), "the DPO run did not finish in time")
    run = page.project.get_run(dpo_id)
    _must(run.status == "finished", f"the DPO run did not finish: {run.status} ({run.message})")
    settle(800)
    shots.save(window, "train-dpo", f"Train: preference tuning (DPO) from run {run_id} on the blind votes: loss, "
                                    "reward accuracy and margin, and the preferred and rejected answers' "
                                    "log-probabilities on training and held-out pairs")
    window.show_page("Compare")
    compare = window.page("Compare")
    compare.selection.reload()
    compare.tabs.setCurrentWidget(compare.results)
    compare.results.refresh()
    settle(200)
    shots.save(window, "compare-results-dpo", f"Compare, results: the DPO run beside run {run_id} it started from; "
                                              "its win rate over that run appears once they are rated blind")
    return dpo_id


# -- taking the pictures ----------------------------------------------------------------------------

REAL_PAGES = ("Train", "Runs", "Compare")


def take(out_dir: Path, pages: Iterable[str] | None = None, staged: bool = False,
         captions: dict[str, str] | None = None, from_run: tuple[Path, str] | None = None) -> list[Path]:
    """Save the pictures into ``out_dir`` (of the ``pages`` named, else of every page); returns the
    files written. ``staged``: the pages' own quick views with made-up runs and figures (for tests;
    never into docs/screenshots). ``captions``, when given, is filled with a line about each file.
    ``from_run`` (project folder, run id): a copy of that project and its finished run instead of
    a fresh demo project and a Quick run trained here (see the module's notes)."""
    if staged and _is_docs_folder(out_dir):
        raise ValueError(f"staged pictures hold made-up figures and do not go into {out_dir}; "
                         "take real ones (staged=False) or choose another folder")
    if from_run is not None:
        check_finished_run(*from_run)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = _Shots(out_dir)
    with tempfile.TemporaryDirectory(prefix="ftstudio-shots-") as tmp:
        from ftstudio.gui.settings import SETTINGS_ENV

        os.environ[SETTINGS_ENV] = str(Path(tmp) / "settings.ini")
        from ftstudio.core.demo import ensure_demo_project
        from ftstudio.gui.app import application
        from ftstudio.gui.main_window import PAGES, MainWindow, load_page_class
        from ftstudio.gui.settings import APPLICATION, ORGANISATION, AppSettings
        from ftstudio.gui.style import apply_style

        app = application(sys.argv[:1])
        _quiet_offscreen_notes()
        app.setApplicationName(APPLICATION)
        app.setOrganizationName(ORGANISATION)
        apply_style(app)
        if from_run is not None:
            demo_path = _copy_project(from_run[0], Path(tmp) / "demo.ftstudio")
        else:
            demo = ensure_demo_project(Path(tmp) / "demo.ftstudio")
            demo_path = demo.path
            demo.close()

        window = MainWindow(AppSettings(), detect_device=True)
        window.resize(WIDTH, HEIGHT)
        window.show()
        if not window.open_project(demo_path):
            raise RuntimeError(f"the demo project could not be opened: {window.statusBar().currentMessage()}")
        window.resize(WIDTH, HEIGHT)
        wait_for(lambda: bool(window.device_text), 60)
        window.statusBar().clearMessage()  # "Opened /tmp/...": the temporary copy is no news in a picture
        run_id: str | None = from_run[1] if from_run is not None else None
        try:
            for name in PAGES:
                if pages is not None and name not in pages:
                    continue
                if load_page_class(PAGES[name]) is None:
                    print(f"  {name}: not in this build, skipped")
                    continue
                if not staged and name in REAL_PAGES:
                    if name == "Train":
                        if from_run is not None:
                            print(f"  Train: run {run_id} of {from_run[0]} is used, none trained: no pictures of "
                                  "the Train page")
                        else:
                            run_id = real_train(window, shots)
                    else:
                        if run_id is None:  # Runs and Compare need a real run too
                            run_id = real_train(window, shots)
                        if name == "Runs":
                            real_runs(window, shots, run_id)
                        elif name == "Compare":
                            real_compare(window, shots, run_id, reuse_evaluations=from_run is not None)
                            real_assisted_labelling(window, shots, run_id)
                            try:  # the preference loop's pictures must not cost the others
                                real_preferences(window, shots, run_id)
                            except RuntimeError as exc:
                                print(f"  preference tuning: not pictured ({exc})")
                    window.statusBar().clearMessage()
                    continue
                _take_page_views(window, name, shots)
            if pages is None or "Help" in pages:
                take_help_views(window, shots)
        finally:
            window.close()
            settle(100)
    if captions is not None:
        captions.update(shots.captions)
    return shots.written


def check_finished_run(project_dir: Path, run_id: str) -> None:
    """Raise ValueError, in words, unless ``project_dir`` is a project with a finished run ``run_id``
    that saved its adapter."""
    from ftstudio.core.project import DB_NAME, Project

    if not (Path(project_dir) / DB_NAME).exists():
        raise ValueError(f"{project_dir} is not an FT Studio project (no {DB_NAME} in it)")
    project = Project.open(Path(project_dir))
    try:
        try:
            run = project.get_run(run_id)
        except KeyError:
            known = ", ".join(r.id for r in project.runs()) or "none"
            raise ValueError(f"{project_dir} has no run {run_id} (its runs: {known})") from None
        if run.status != "finished" or not (project.run_dir(run_id) / "adapter").exists():
            raise ValueError(f"run {run_id} of {project_dir} is {run.status}, without a saved adapter: "
                             "finish it first (ftstudio train --resume) or choose a finished run")
    finally:
        project.close()


def _copy_project(source: Path, target: Path) -> Path:
    """A copy of the project at ``source`` (its database through SQLite's backup, so a write-ahead log
    comes along; its runs' folders as files) at ``target``."""
    import shutil
    import sqlite3

    from ftstudio.core.project import DB_NAME

    shutil.copytree(source, target, ignore=shutil.ignore_patterns(DB_NAME, f"{DB_NAME}-*"))
    with sqlite3.connect(Path(source) / DB_NAME) as src, sqlite3.connect(target / DB_NAME) as dst:
        src.backup(dst)
    return target


HELP_VIEWS = ("system-check", "getting-started", "about")


def take_help_views(window, shots: _Shots) -> None:
    """The Help menu's windows: System check (this machine's real checks), Getting started, About."""
    check = window.show_system_check()
    _must(wait_for(lambda: check.report is not None, 120), "the system check to finish")
    settle()
    shots.save(check, "system-check", "Help > System check on this machine")
    check.close()
    guide = window.show_guide()
    settle()
    shots.save(guide, "getting-started", "Help > Getting started, the guide to the demo path")
    guide.close()
    about = window.about_box()
    about.show()
    settle()
    shots.save(about, "about", "Help > About FT Studio, with the app's icon")
    about.close()
    settle(100)


def _take_page_views(window, name: str, shots: _Shots) -> None:
    """The page as it opens and the views of its ``screenshot_states()``."""
    window.show_page(name)
    page = window.page(name)
    assert page is not None  # a project is open
    wait_for(page.screenshot_ready, 60)
    stem = name.lower()
    views = dict(page.screenshot_states())
    if stem not in views:  # no better picture of the page offered: as it opens
        shots.save(window, stem)
    for state, put in views.items():
        window.show_page(name)
        try:
            shown = put()
        except Exception as exc:  # one broken view must not cost the others
            print(f"  {name} / {state}: could not be shown ({type(exc).__name__}: {exc})")
            continue
        shots.save(shown if shown is not None and hasattr(shown, "grab") else window, file_stem(stem, state))
        if shown is not None and shown is not window and hasattr(shown, "close"):
            shown.close()
            settle(100)
    if views:
        page.screenshot_cleanup()
        settle(100)


USAGE = ("usage: python -m ftstudio.gui.screenshots [OUT_DIR]\n"
         "       python -m ftstudio.gui.screenshots --staged OUT_DIR   (made-up figures; not docs/screenshots)\n"
         "       python -m ftstudio.gui.screenshots --from-run PROJECT RUN [OUT_DIR]   (a finished run of a copy of "
         "PROJECT instead of training the Quick preset)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    staged = "--staged" in argv
    if staged:
        argv.remove("--staged")
    from_run: tuple[Path, str] | None = None
    if "--from-run" in argv:
        at = argv.index("--from-run")
        if staged or len(argv) < at + 3:
            print(USAGE, file=sys.stderr)
            return 2
        from_run = (Path(argv[at + 1]), argv[at + 2])
        del argv[at:at + 3]
    if len(argv) > 1 or (argv and argv[0].startswith("-")) or (staged and not argv):
        print(USAGE, file=sys.stderr)
        return 2
    out = Path(argv[0]) if argv else DEFAULT_OUT
    if staged and _is_docs_folder(out):
        print(f"Staged pictures hold made-up figures: choose a folder other than {out}", file=sys.stderr)
        return 2
    if from_run is not None:
        try:
            check_finished_run(*from_run)
        except ValueError as exc:
            print(f"--from-run: {exc}", file=sys.stderr)
            return 2
    mode = ("staged (made-up runs and figures, quick)" if staged else
            f"real, from run {from_run[1]} of a copy of {from_run[0]}" if from_run else
            "real (trains the Quick preset and runs the models on this machine)")
    print(f"Saving screenshots to {out}/, mode: {mode}")
    started = time.monotonic()
    captions: dict[str, str] = {}
    written = take(out, staged=staged, captions=captions, from_run=from_run)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"{len(written)} pictures written in {minutes} min {seconds:02d} s ({'staged' if staged else 'real'})")
    for path in written:
        if path.name in captions:
            print(f"  {path.name}: {captions[path.name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
