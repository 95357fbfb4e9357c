"""What the blind votes say: a ranking of all compared models and, for each
pair, wins, ties and losses with 95% confidence intervals."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)

from ftstudio.core import preferences, ratings

RANK_COLUMNS = ["#", "Model", "Score", "Votes", "Held-out exact match", "Held-out loss"]
PAIR_COLUMNS = ["Model A", "Model B", "A wins", "Tie", "B wins", "Both bad", "A win rate (95% CI)"]
PAIR_TIPS = {
    "A wins": "Votes that preferred A's answer.",
    "Tie": "Votes that found the two about the same, including those that found both bad.",
    "B wins": "Votes that preferred B's answer.",
    "Both bad": "Of the ties, how many said both answers were bad.",
    "A win rate (95% CI)": "How often A was preferred when one of the two was, with its 95% Wilson interval.",
}
PRIOR = 1.0
TUNED_COLUMNS = ["Preference-tuned run", "Started from", "Win rate over its start (95% CI)", "Votes"]


def _item(text: str, align_right: bool = False, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tooltip:
        item.setToolTip(tooltip)
    return item


def _row_key(table: QTableWidget, row: int) -> object:
    """What a row stands for: the data its first cell holds (every cell of a filled row has an item)."""
    item = table.item(row, 0)
    return None if item is None else item.data(Qt.ItemDataRole.UserRole)


def _cell_text(table: QTableWidget, row: int, col: int) -> str:
    item = table.item(row, col)
    return "" if item is None else item.text()


def _table(columns: list[str], stretch: tuple[int, ...], tips: dict[str, str] | None = None) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    for i, name in enumerate(columns):
        if tips and name in tips and (item := table.horizontalHeaderItem(i)) is not None:  # made just above
            item.setToolTip(tips[name])
    table.verticalHeader().hide()
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # run ids differ at their end
    table.setWordWrap(False)  # one line per cell, so the middle of a long name is what gives way
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    for col in stretch:
        header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
    return table


def _fit_rows(table: QTableWidget, minimum: int = 3, maximum: int = 8) -> None:
    """As tall as its rows (``minimum`` to ``maximum`` of them; more scroll), so short tables leave
    no empty box."""
    rows = min(maximum, max(minimum, table.rowCount()))
    height = table.horizontalHeader().sizeHint().height() + rows * table.verticalHeader().defaultSectionSize()
    table.setFixedHeight(height + 2 * table.frameWidth() + 2)


class ResultsTab(QWidget):
    def __init__(self, context, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)

        top = QHBoxLayout()
        title = QLabel("Ranking")
        title.setObjectName("SectionTitle")
        self.summary = QLabel()
        self.summary.setObjectName("Hint")
        self.export_button = QPushButton("Export preference data…")
        self.export_button.setToolTip("Each pick as a chosen/rejected pair in JSONL, the form TRL's DPO trainer reads.")
        top.addWidget(title)
        top.addSpacing(10)
        top.addWidget(self.summary, 1)
        top.addWidget(self.export_button)
        layout.addLayout(top)

        self.ranking_table = _table(RANK_COLUMNS, stretch=(1,))
        layout.addWidget(self.ranking_table)
        note = QLabel(
            "Score: the chance of being preferred over a model of average strength (Bradley-Terry, "
            "ties count half for each side, one virtual tie per pair keeps scores finite).")
        note.setObjectName("Hint")
        note.setWordWrap(True)
        layout.addWidget(note)

        pairs_title = QLabel("Head to head")
        pairs_title.setObjectName("SectionTitle")
        layout.addWidget(pairs_title)
        self.pair_table = _table(PAIR_COLUMNS, stretch=(0, 1), tips=PAIR_TIPS)
        layout.addWidget(self.pair_table)
        note2 = QLabel(
            "Counts are votes. A vote among three or more answers counts for every pair it decides. "
            "Intervals are 95% Wilson score intervals; a wide interval means more votes are needed.")
        note2.setObjectName("Hint")
        note2.setWordWrap(True)
        layout.addWidget(note2)

        tuned_title = QLabel("Preference tuning: better than where it started?")
        tuned_title.setObjectName("SectionTitle")
        layout.addWidget(tuned_title)
        self.tuned_table = _table(TUNED_COLUMNS, stretch=(0, 1))
        layout.addWidget(self.tuned_table)
        self.tuned_note = QLabel()
        self.tuned_note.setObjectName("Hint")
        self.tuned_note.setWordWrap(True)
        layout.addWidget(self.tuned_note)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self.export_button.clicked.connect(self._export_clicked)
        self.refresh()

    def refresh(self) -> None:
        vote_list = ratings.votes(self.context.project)
        records = ratings.pair_records(vote_list)
        ranking = ratings.bradley_terry(records, prior=PRIOR)
        evals = ratings.latest_evaluations(self.context.project)
        voters = {v.voter for v in vote_list}
        self.summary.setText(f"{len(vote_list)} vote{'s' if len(vote_list) != 1 else ''} from "
                             f"{len(voters)} voter{'s' if len(voters) != 1 else ''}" if vote_list
                             else "No votes yet: rate answers in the Blind tab.")
        self.export_button.setEnabled(any(v.verdict == "pick" for v in vote_list))

        self.ranking_table.setRowCount(len(ranking.models))
        for row, model in enumerate(ranking.models):
            ev = evals.get(model)
            em = ev.results.get("exact_match") if ev else None
            loss = ev.results.get("loss") if ev else None
            cells = [
                _item(str(row + 1), True),
                _item(ratings.model_label(model), tooltip=model),
                _item(f"{ranking.score(model):.0%}", True),
                _item(str(ranking.comparisons.get(model, 0)), True),
                _item("—" if em is None else f"{em:.1%}", True),
                _item("—" if loss is None else f"{loss:.3f}", True),
            ]
            for col, item in enumerate(cells):
                self.ranking_table.setItem(row, col, item)

        _fit_rows(self.ranking_table, maximum=6)

        # Pairs, the better-ranked model first so each row reads "A against B".
        order = {m: i for i, m in enumerate(ranking.models)}
        rows = []
        for rec in records.values():
            if order.get(rec.b, 0) < order.get(rec.a, 0):
                rec = rec.flipped()
            rows.append(rec)
        rows.sort(key=lambda r: (order.get(r.a, 0), order.get(r.b, 0)))
        self.pair_table.setRowCount(len(rows))
        for row, rec in enumerate(rows):
            lo, hi = rec.decisive_interval()
            rate = rec.decisive_win_rate
            rate_text = "—" if rate is None else f"{rate:.0%}  ({lo:.0%}–{hi:.0%})"

            def share(what: str, count: int) -> QTableWidgetItem:
                a, b = rec.interval(what)
                return _item(str(count), True, f"{rec.share(what):.0%} of votes (95% CI {a:.0%} – {b:.0%})")

            cells = [
                _item(ratings.model_label(rec.a), tooltip=rec.a),
                _item(ratings.model_label(rec.b), tooltip=rec.b),
                share("win", rec.wins), share("tie", rec.ties), share("loss", rec.losses),
                _item(str(rec.both_bad), True),
                _item(rate_text, True, f"{rec.n} vote{'s' if rec.n != 1 else ''} in all"),
            ]
            for col, item in enumerate(cells):
                item.setData(Qt.ItemDataRole.UserRole, (rec.a, rec.b))
                self.pair_table.setItem(row, col, item)
        _fit_rows(self.pair_table, maximum=8)

        self._refresh_tuned(vote_list)

    def _refresh_tuned(self, vote_list: list[ratings.Vote]) -> None:
        """Each DPO/KTO run against the run it started from, as the blind votes decided between the two."""
        project = self.context.project
        rows = []
        for run in project.runs():
            start = run.config.get("start_from") or ""
            if run.config.get("objective") not in ("dpo", "kto"):
                continue
            start_run = preferences.run_of_adapter(project, start)
            start_key = ratings.run_key(start_run) if start_run else ratings.base_key(str(run.config.get("model")))
            rows.append((run, start_key, ratings.pair_record(vote_list, ratings.run_key(run.id), start_key)))
        self.tuned_table.setRowCount(len(rows))
        for row, (run, start_key, rec) in enumerate(rows):
            rate = rec.decisive_win_rate
            lo, hi = rec.decisive_interval()
            text = ("not rated against each other yet" if rate is None else f"{rate:.0%}  ({lo:.0%}\u2013{hi:.0%})")
            cells = [
                _item(f"{ratings.model_label(ratings.run_key(run.id))} ({run.method.upper()})",
                      tooltip=ratings.run_key(run.id)),
                _item(ratings.model_label(start_key), tooltip=start_key),
                _item(text, True, f"{rec.wins} wins, {rec.ties} ties, {rec.losses} losses"),
                _item(str(rec.n), True),
            ]
            for col, item in enumerate(cells):
                item.setData(Qt.ItemDataRole.UserRole, run.id)
                self.tuned_table.setItem(row, col, item)
        _fit_rows(self.tuned_table, minimum=1, maximum=5)
        self.tuned_note.setText(
            "Rate the tuned run and the one it started from side by side on the Blind tab; the win rate counts the "
            "votes that preferred one of the two, with its 95% Wilson interval." if rows else
            "No preference-tuned run yet: train one with Preference (DPO) or (KTO) on the Train page, starting "
            "from a run shown here.")

    def tuned_row(self, run_id: str) -> dict[str, str] | None:
        """The cells of a preference-tuned run's row by column name (for checks and tests)."""
        for row in range(self.tuned_table.rowCount()):
            if _row_key(self.tuned_table, row) == run_id:
                return {c: _cell_text(self.tuned_table, row, i) for i, c in enumerate(TUNED_COLUMNS)}
        return None

    def pair_row(self, a: str, b: str) -> dict[str, str] | None:
        """The cells of the row for ``a`` against ``b`` by column name (for checks and tests)."""
        for row in range(self.pair_table.rowCount()):
            if _row_key(self.pair_table, row) == (a, b):
                return {c: _cell_text(self.pair_table, row, i) for i, c in enumerate(PAIR_COLUMNS)}
        return None

    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export preference data",
                                              str(self.context.project.path / "preferences.jsonl"),
                                              "JSON Lines (*.jsonl)")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> int:
        try:
            n = preferences.export_preferences(self.context.project, path)
        except OSError as exc:
            self.message.setText(f"Could not write {path}: {exc.strerror or exc}. Choose another folder.")
            return 0
        self.message.setText(f"Wrote {n} preference pair{'s' if n != 1 else ''} to {path}.")
        self.context.status_message.emit(f"Exported {n} preference pairs")
        return n
