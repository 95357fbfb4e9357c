"""The Data page's Preferences view: the project's preference pairs (and single rated answers) with
the prompt, the chosen and the rejected answer side by side, where each came from and its split;
edit, swap and delete (undone with the page's Undo, through the journal), filters by source and
voter, import, export, and the checks before training.

Blind votes become pairs whenever the view is shown or reloaded (``derive_from_votes``), so a vote
cast on the Compare page appears here without a step in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftstudio.core import preferences as prefs
from ftstudio.core.formats import ImportFailed
from ftstudio.gui.context import ProjectContext
from ftstudio.gui.plain import plain_tip

ALL = "__all__"
COLUMNS = ("#", "Prompt", "Chosen", "Rejected", "Source", "Split")
COLUMN_WIDTHS = (40, 180, 160, 120, 110)
SOURCE_WORDS = {"vote": "Blind votes", "import": "Imported", "typed": "Typed"}
KIND_WORDS = {"pair": "Pairs", "desirable": "Good answers alone", "undesirable": "Bad answers alone"}


def _clip(text: str | None, limit: int = 120) -> str:
    if text is None:
        return "\u2014"
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "\u2026"


class PreferencesView(QWidget):
    """``PreferencesView(context)``: ``reload()``, ``select_pair(id)``, ``import_file(path)``, ``export_to(path)``,
    ``run_checks()``; ``pairs_changed`` is emitted after every change made here."""

    pairs_changed = Signal()

    def __init__(self, context: ProjectContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.project = context.project
        self._ids: list[int] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)

        actions = QHBoxLayout()
        actions.setSpacing(6)
        self.import_button = QPushButton("Import pairs\u2026")
        self.import_button.setToolTip(
            "Read preference pairs from a JSONL file: TRL's prompt/chosen/rejected, the "
            "ranking form (conversations + chosen/rejected) or answers labelled true/false"
        )
        self.import_button.setProperty("primary", True)
        self.swap_button = QPushButton("Swap")
        self.swap_button.setToolTip("Make the chosen answer the rejected one and the other way round")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected pairs (Ctrl+Z brings them back)")
        self.check_button = QPushButton("Check")
        self.check_button.setToolTip(
            "Look for pairs that would teach nothing or mislead the held-out figures"
        )
        self.export_button = QPushButton("Export\u2026")
        self.export_button.setToolTip("Write the pairs as JSONL in TRL's preference form")
        for b in (
            self.import_button,
            self.swap_button,
            self.delete_button,
            self.check_button,
            self.export_button,
        ):
            actions.addWidget(b)
        actions.addStretch(1)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompts and answers")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(200)
        self.source_filter = QComboBox()
        self.source_filter.addItem("All sources", ALL)
        for key, words in SOURCE_WORDS.items():
            self.source_filter.addItem(words, key)
        self.voter_filter = QComboBox()
        self.voter_filter.addItem("Any voter", ALL)
        self.kind_filter = QComboBox()
        self.kind_filter.addItem("Pairs and single answers", ALL)
        for key, words in KIND_WORDS.items():
            self.kind_filter.addItem(words, key)
        for w in (self.search, self.source_filter, self.voter_filter, self.kind_filter):
            actions.addWidget(w)
        layout.addLayout(actions)

        self.counts = QLabel()
        self.counts.setObjectName("Hint")
        layout.addWidget(self.counts)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        for column, width in enumerate(COLUMN_WIDTHS):
            header.resizeSection(column, width)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.empty = QLabel(
            "<p style='font-size:13pt'>No preference pairs yet</p>"
            "<p>Rate answers on the Compare page's <b>Blind</b> tab: each pick becomes a pair here.<br>"
            "Or import a file of pairs with <b>Import pairs\u2026</b>.</p>"
        )
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("Hint")

        # The selected pair: prompt, then the two answers side by side.
        editor = QWidget()
        grid = QGridLayout(editor)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        self.prompt_view = QPlainTextEdit()
        self.prompt_view.setReadOnly(True)
        self.prompt_view.setMaximumHeight(110)
        self.chosen_edit = QPlainTextEdit()
        self.rejected_edit = QPlainTextEdit()
        self.chosen_edit.setPlaceholderText("(none: a bad answer alone, for KTO)")
        self.rejected_edit.setPlaceholderText("(none: a good answer alone, for KTO)")
        self.source_label = QLabel()
        self.source_label.setObjectName("Hint")
        self.source_label.setWordWrap(True)
        self.save_button = QPushButton("Save answers")
        self.save_button.setToolTip("Keep the edited answers (Ctrl+Z undoes it)")
        chosen_title = QLabel("Chosen (preferred)")
        chosen_title.setObjectName("SectionTitle")
        rejected_title = QLabel("Rejected")
        rejected_title.setObjectName("SectionTitle")
        prompt_title = QLabel("Prompt")
        prompt_title.setObjectName("SectionTitle")
        grid.addWidget(prompt_title, 0, 0, 1, 2)
        grid.addWidget(self.prompt_view, 1, 0, 1, 2)
        grid.addWidget(chosen_title, 2, 0)
        grid.addWidget(rejected_title, 2, 1)
        grid.addWidget(self.chosen_edit, 3, 0)
        grid.addWidget(self.rejected_edit, 3, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.source_label, 1)
        bottom.addWidget(self.save_button)
        grid.addLayout(bottom, 4, 0, 1, 2)
        self.findings = QLabel()
        self.findings.setWordWrap(True)
        self.findings.setTextFormat(Qt.TextFormat.RichText)
        self.findings.hide()
        grid.addWidget(self.findings, 5, 0, 1, 2)
        grid.setRowStretch(3, 1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.empty, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(editor)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([680, 440])
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter, 1)

        self.import_button.clicked.connect(lambda _c=False: self._import_clicked())
        self.swap_button.clicked.connect(lambda _c=False: self.swap_selected())
        self.delete_button.clicked.connect(lambda _c=False: self.delete_selected())
        self.check_button.clicked.connect(lambda _c=False: self.run_checks())
        self.export_button.clicked.connect(lambda _c=False: self._export_clicked())
        self.save_button.clicked.connect(lambda _c=False: self.save_current())
        self.search.textChanged.connect(lambda _t: self.reload())
        for combo in (self.source_filter, self.voter_filter, self.kind_filter):
            combo.currentIndexChanged.connect(lambda _i: self.reload())
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.reload()

    # -- reading ---------------------------------------------------------------------------

    def current_filter(self) -> prefs.PairFilter:
        def value(combo: QComboBox) -> str | None:
            data = combo.currentData()
            return None if data == ALL else data

        return prefs.PairFilter(
            source=value(self.source_filter),
            voter=value(self.voter_filter),
            kind=value(self.kind_filter),
            text=self.search.text().strip(),
        )

    def reload(self) -> None:
        """Turn new votes into pairs and show the pairs the filters let through."""
        added = prefs.derive_from_votes(self.project)
        selected = set(self.selected_ids())
        voter = self.voter_filter.currentData()
        self.voter_filter.blockSignals(True)
        self.voter_filter.clear()
        self.voter_filter.addItem("Any voter", ALL)
        for name in prefs.voters(self.project):
            self.voter_filter.addItem(name, name)
        i = self.voter_filter.findData(voter)
        self.voter_filter.setCurrentIndex(i if i >= 0 else 0)
        self.voter_filter.blockSignals(False)
        shown = prefs.pairs(self.project, self.current_filter())
        self._ids = [p.id for p in shown]
        self.table.blockSignals(True)
        self.table.setRowCount(len(shown))
        for row, p in enumerate(shown):
            cells = (
                str(p.id),
                _clip(p.prompt_text()),
                _clip(p.chosen),
                _clip(p.rejected),
                p.source_words(),
                p.split,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, p.id)
                if column in (1, 2, 3):
                    item.setToolTip(
                        plain_tip(
                            p.prompt_text()
                            if column == 1
                            else (p.chosen if column == 2 else p.rejected) or ""
                        )
                    )
                self.table.setItem(row, column, item)
        self.table.clearSelection()
        for row, pid in enumerate(self._ids):
            if pid in selected:
                self.table.selectRow(row)
        self.table.blockSignals(False)
        c = prefs.counts(self.project)
        singles = c.total_singles() - 2 * c.total_pairs()
        self.counts.setText(
            f"{c.total_pairs():,} pairs ({c.pairs['train']:,} for training, {c.pairs['eval']:,} held out)"
            + (f" \u00b7 {singles:,} single rated answers" if singles else "")
            + (f" \u00b7 showing {len(shown):,}" if len(shown) != c.total_pairs() + singles else "")
            + (f" \u00b7 {added} new from blind votes" if added else "")
        )
        nothing = c.total_pairs() + singles == 0
        self.table.setVisible(not nothing)
        self.empty.setVisible(nothing)
        self._selection_changed()

    def rows(self) -> list[dict[str, str]]:
        """The table's cells by column name, top to bottom (for checks and tests)."""
        out = []
        for r in range(self.table.rowCount()):
            items = [self.table.item(r, i) for i in range(len(COLUMNS))]
            out.append({c: item.text() if item is not None else "" for c, item in zip(COLUMNS, items)})
        return out

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self._ids[r] for r in rows if r < len(self._ids)]

    def select_pair(self, pair_id: int) -> None:
        if pair_id in self._ids:
            self.table.selectRow(self._ids.index(pair_id))

    def _selection_changed(self) -> None:
        ids = self.selected_ids()
        for b in (self.swap_button, self.delete_button):
            b.setEnabled(bool(ids))
        self.save_button.setEnabled(len(ids) == 1)
        if len(ids) != 1:
            for w in (self.prompt_view, self.chosen_edit, self.rejected_edit):
                w.setPlainText("")
            self.source_label.setText(
                "Select a pair to read and edit it." if not ids else f"{len(ids)} selected"
            )
            return
        p = prefs.get_pair(self.project, ids[0])
        self.prompt_view.setPlainText("\n\n".join(f"{m['role']}: {m.get('content') or ''}" for m in p.prompt))
        self.chosen_edit.setPlainText(p.chosen or "")
        self.rejected_edit.setPlainText(p.rejected or "")
        models = ""
        if p.source == "vote" and (p.chosen_model or p.rejected_model):
            from ftstudio.core.ratings import model_label

            models = " \u00b7 " + " over ".join(
                model_label(m) for m in (p.chosen_model, p.rejected_model) if m
            )
        self.source_label.setText(
            f"#{p.id} \u00b7 {p.source_words()}{models} \u00b7 {p.split} split \u00b7 "
            f"added {p.created_at[:16].replace('T', ' ')}"
        )

    # -- changing --------------------------------------------------------------------------

    def _changed(self, message: str) -> None:
        self.reload()
        self.context.status_message.emit(message)
        self.pairs_changed.emit()

    def save_current(self) -> bool:
        ids = self.selected_ids()
        if len(ids) != 1:
            return False
        p = prefs.get_pair(self.project, ids[0])
        chosen = (
            self.chosen_edit.toPlainText() if p.chosen is not None or self.chosen_edit.toPlainText() else None
        )
        rejected = (
            self.rejected_edit.toPlainText()
            if p.rejected is not None or self.rejected_edit.toPlainText()
            else None
        )
        try:
            prefs.update_pairs(self.project, ids, actor=self.context.author, chosen=chosen, rejected=rejected)
        except ValueError as exc:
            self.context.status_message.emit(str(exc))
            return False
        self._changed(f"Saved pair #{ids[0]}")
        return True

    def swap_selected(self) -> int:
        ids = self.selected_ids()
        if ids:
            prefs.swap_pairs(self.project, ids, actor=self.context.author)
            self._changed(f"Swapped chosen and rejected in {len(ids)} pair{'s' if len(ids) != 1 else ''}")
        return len(ids)

    def delete_selected(self) -> int:
        ids = self.selected_ids()
        if ids:
            prefs.delete_pairs(self.project, ids, actor=self.context.author)
            self._changed(
                f"Deleted {len(ids)} pair{'s' if len(ids) != 1 else ''} (Ctrl+Z brings "
                f"{'them' if len(ids) != 1 else 'it'} back)"
            )
        return len(ids)

    # -- files -----------------------------------------------------------------------------

    def _import_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Import preference pairs",
            str(self.project.path),
            "JSON Lines or JSON (*.jsonl *.json *.ndjson);;All files (*)",
        )
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> prefs.PreferencePreview | None:
        """Import all pairs of ``path`` or none, saying in the view what was wrong (file, line, field)."""
        try:
            preview = prefs.import_preferences(self.project, path, actor=self.context.author)
        except ImportFailed as exc:
            self.findings.setText(
                "<b>Nothing was imported.</b><br>"
                + "<br>".join(_escape(str(p)) for p in exc.problems[:12])
                + (f"<br>\u2026 and {exc.problem_count - 12} more" if exc.problem_count > 12 else "")
            )
            self.findings.setStyleSheet("color: #b42318;")
            self.findings.show()
            return None
        self.findings.hide()
        self._changed(f"Imported {len(preview.pairs)} from {path.name}: {preview.description}")
        return preview

    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export preference pairs",
            str(self.project.path / "preferences.jsonl"),
            "JSON Lines (*.jsonl)",
        )
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> int:
        try:
            n = prefs.export_preferences(self.project, path)
        except OSError as exc:
            self.context.status_message.emit(f"Could not write {path}: {exc.strerror or exc}")
            return 0
        self.context.status_message.emit(f"Wrote {n} preference pairs to {path}")
        return n

    # -- checks ----------------------------------------------------------------------------

    def run_checks(self, max_length: int | None = None) -> list[prefs.PairFinding]:
        """The checks before training, shown under the pair. Lengths are counted with the Train page's
        model and context size when a tokenizer can be read (on this thread: a tokenizer, no weights)."""
        count, max_length = self._token_counter(max_length)
        findings = prefs.validate_pairs(self.project, count_tokens=count, max_length=max_length)
        if not findings:
            self.findings.setText("<b>No problems found</b> in the pairs.")
            self.findings.setStyleSheet("")
        else:
            self.findings.setText(
                "<br>".join(f"<b>{prefs.FINDING_TITLES[f.kind]}:</b> {_escape(f.message)}" for f in findings)
            )
            self.findings.setStyleSheet("color: #b42318;")
        self.findings.show()
        return findings

    def _token_counter(
        self, max_length: int | None
    ) -> tuple[Callable[[list[dict[str, Any]]], int] | None, int | None]:
        from ftstudio.core.config import BUNDLED_MODEL, TrainConfig

        saved = self.project.setting("train_config")
        model, length = BUNDLED_MODEL, max_length
        if isinstance(saved, dict):
            model = str(saved.get("model") or BUNDLED_MODEL)
            length = length or saved.get("max_length")
        length = length or TrainConfig().max_length
        try:
            from ftstudio.engine.models import load_tokenizer, resolve_model
            from ftstudio.engine.tokenize import encode_conversation

            tokenizer = load_tokenizer(resolve_model(model))
        except Exception:  # noqa: BLE001 - no tokenizer here: the length check is left out, the others run
            return None, None
        return (lambda messages: len(encode_conversation(tokenizer, messages).input_ids)), int(length)


def _escape(text: str) -> str:
    import html

    return html.escape(text)
