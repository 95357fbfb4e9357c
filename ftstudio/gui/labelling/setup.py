"""Setting up labelling: what annotators do, the label set, their
instructions, and how a labelled example becomes training data (previewed on
a real example).

Label-set edits go through the project's journal (a rename changes every
example that carries the label, as one undoable step); the instructions are
saved as they are typed.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QButtonGroup, QColorDialog, QFrame, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu,
    QPlainTextEdit, QPushButton, QRadioButton, QScrollArea, QSpinBox, QTableWidget, QTableWidgetItem, QTextBrowser,
    QVBoxLayout, QWidget,
)

from ftstudio.core.labelling import (
    INPUT, KIND_TITLES, KINDS, PALETTE, Labelling, LabellingError, check_template, item_of, training_messages,
)
from ftstudio.gui import style
from ftstudio.gui.context import ProjectContext

KIND_HINTS = {
    "classification": "One of a set of labels, e.g. the category of a support ticket. The label becomes "
                      "the model's answer.",
    "free_text": "Annotators write or correct the answer the model should give. A model can suggest a "
                 "starting point.",
    "both": "A label for sorting and balance, and a written answer the model learns to give.",
}
COLOUR_COL, NAME_COL, KEY_COL, COUNT_COL = range(4)


def _card(title: str, hint: str = "") -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("Card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(18, 14, 18, 16)
    layout.setSpacing(8)
    head = QLabel(title)
    head.setObjectName("SectionTitle")
    head.setStyleSheet(f"font-size: {style.FONT_POINT_SIZE + 2}pt;")
    layout.addWidget(head)
    if hint:
        h = QLabel(hint)
        h.setObjectName("Hint")
        h.setWordWrap(True)
        layout.addWidget(h)
    return frame, layout


def swatch(colour: str, size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(colour))
    return QIcon(pix)


class SetupPanel(QWidget):
    """``SetupPanel(context, labelling)``; ``schema_changed`` after any change the mode must show."""

    schema_changed = Signal()

    def __init__(self, context: ProjectContext, labelling: Labelling, parent=None) -> None:
        super().__init__(parent)
        self.context = context
        self.lab = labelling
        self._filling = False
        self._preview_id: int | None = None

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        columns = QHBoxLayout(body)
        columns.setContentsMargins(0, 4, 4, 4)
        columns.setSpacing(14)
        left = QVBoxLayout()
        left.setSpacing(14)
        right = QVBoxLayout()
        right.setSpacing(14)
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)

        # What annotators do.
        kind_card, kind = _card("What annotators do")
        self.kind_group = QButtonGroup(self)
        self.kind_buttons: dict[str, QRadioButton] = {}
        for i, k in enumerate(KINDS):
            b = QRadioButton(KIND_TITLES[k])
            b.setStyleSheet("font-weight: 600;")
            hint = QLabel(KIND_HINTS[k])
            hint.setObjectName("Hint")
            hint.setWordWrap(True)
            hint.setContentsMargins(24, 0, 0, 4)
            self.kind_group.addButton(b, i)
            self.kind_buttons[k] = b
            kind.addWidget(b)
            kind.addWidget(hint)
        self.kind_group.idToggled.connect(self._kind_toggled)
        overlap_row = QHBoxLayout()
        overlap_row.addWidget(QLabel("Label twice:"))
        self.overlap = QSpinBox()
        self.overlap.setRange(0, 100)
        self.overlap.setSuffix(" %")
        self.overlap.setToolTip("This share of the examples one annotator labelled also comes early in the "
                                "others' queues, so agreement can be measured")
        self.overlap.valueChanged.connect(self._overlap_changed)
        overlap_row.addWidget(self.overlap)
        hint = QLabel("of what one annotator labelled goes to the others too, to measure agreement")
        hint.setObjectName("Hint")
        hint.setWordWrap(True)
        overlap_row.addWidget(hint, 1)
        kind.addSpacing(4)
        kind.addLayout(overlap_row)
        left.addWidget(kind_card)

        # The label set.
        labels_card, labels = _card(
            "Labels", "Double-click a name or key to change it. Renaming changes every example that carries "
            "the label (Ctrl+Z undoes it); renaming into another label merges the two.")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "Name", "Key", "Examples"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setDefaultSectionSize(30)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(COLOUR_COL, QHeaderView.ResizeMode.Fixed)
        hh.resizeSection(COLOUR_COL, 34)
        hh.setSectionResizeMode(NAME_COL, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(KEY_COL, QHeaderView.ResizeMode.Fixed)
        hh.resizeSection(KEY_COL, 60)
        hh.setSectionResizeMode(COUNT_COL, QHeaderView.ResizeMode.Fixed)
        hh.resizeSection(COUNT_COL, 84)
        self.table.setMinimumHeight(190)
        self.table.itemChanged.connect(self._item_changed)
        self.table.cellClicked.connect(self._cell_clicked)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        labels.addWidget(self.table)
        add_row = QHBoxLayout()
        self.new_label = QLineEdit()
        self.new_label.setPlaceholderText("New label, e.g. billing")
        self.new_label.returnPressed.connect(self.add_label)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_label)
        add_row.addWidget(self.new_label, 1)
        add_row.addWidget(self.add_button)
        labels.addLayout(add_row)
        tools = QHBoxLayout()
        self.up_button = QPushButton("Move up")
        self.down_button = QPushButton("Move down")
        self.colour_button = QPushButton("Colour\u2026")
        self.remove_button = QPushButton("Remove")
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button.clicked.connect(lambda: self.move_selected(1))
        self.colour_button.clicked.connect(self._colour_menu)
        self.remove_button.clicked.connect(self.remove_selected)
        for button in (self.up_button, self.down_button, self.colour_button, self.remove_button):
            tools.addWidget(button)
        tools.addStretch(1)
        labels.addLayout(tools)
        self.adopt_button = QPushButton()
        self.adopt_button.clicked.connect(self.adopt_data_labels)
        labels.addWidget(self.adopt_button)
        self.labels_message = QLabel()
        self.labels_message.setWordWrap(True)
        labels.addWidget(self.labels_message)
        left.addWidget(labels_card)
        left.addStretch(1)

        # Instructions.
        instr_card, instr = _card("Instructions for annotators", "Shown at the top of the labelling mode. "
                                  "Saved as you type.")
        self.instructions = QPlainTextEdit()
        self.instructions.setPlaceholderText(
            "e.g. Pick the team that should answer the ticket. If it fits two, choose the first problem the "
            "customer mentions. Flag tickets that are not in English.")
        self.instructions.setMinimumHeight(80)
        self.instructions.setMaximumHeight(120)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(500)
        self._save_timer.timeout.connect(self.save_instructions)
        self.instructions.textChanged.connect(lambda: self._save_timer.start())
        instr.addWidget(self.instructions)
        right.addWidget(instr_card)

        # The template and its preview.
        tmpl_card, tmpl = _card(
            "How a labelled example becomes training data",
            f"The prompt the model is trained on: {INPUT} stands for the example's text. The answer is "
            "the label (or the written answer). Applying a new template updates the examples labelled here.")
        self.template = QPlainTextEdit()
        self.template.setMaximumHeight(74)
        self.template.setPlaceholderText(f"e.g. Classify this ticket: {INPUT}")
        self.template.textChanged.connect(self._template_edited)
        tmpl.addWidget(self.template)
        trow = QHBoxLayout()
        self.template_problem = QLabel()
        self.template_problem.setObjectName("Problem")
        self.template_problem.setWordWrap(True)
        trow.addWidget(self.template_problem, 1)
        self.other_example = QPushButton("Another example")
        self.other_example.clicked.connect(self.next_preview_example)
        self.apply_template_button = QPushButton("Apply template")
        self.apply_template_button.setProperty("primary", True)
        self.apply_template_button.clicked.connect(self.apply_template)
        trow.addWidget(self.other_example)
        trow.addWidget(self.apply_template_button)
        tmpl.addLayout(trow)
        preview_title = QLabel("Preview")
        preview_title.setObjectName("Hint")
        tmpl.addWidget(preview_title)
        self.preview = QTextBrowser()
        self.preview.setMinimumHeight(150)
        self.preview.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        tmpl.addWidget(self.preview, 1)
        right.addWidget(tmpl_card, 1)

        context.labels_changed.connect(self.reload)
        context.examples_changed.connect(self._examples_changed)
        self.reload()

    # -- filling ------------------------------------------------------------------------------

    @Slot()
    def reload(self) -> None:
        schema = self.lab.schema()
        self._filling = True
        try:
            self.kind_buttons[schema.kind].setChecked(True)
            self.overlap.setValue(self.lab.overlap())
            if self.instructions.toPlainText() != schema.instructions and not self._save_timer.isActive():
                self.instructions.setPlainText(schema.instructions)
            if not self.apply_template_button.isEnabled() or not self.template.toPlainText():
                self.template.setPlainText(schema.template)
            selected = self.selected_label()
            usage = self.lab.label_usage()
            self.table.setRowCount(len(schema.labels))
            for row, d in enumerate(schema.labels):
                colour = QTableWidgetItem()
                colour.setIcon(swatch(d.colour, 16))
                colour.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                colour.setToolTip("Click to choose a colour")
                colour.setData(Qt.ItemDataRole.UserRole, d.name)
                name = QTableWidgetItem(d.name)
                name.setData(Qt.ItemDataRole.UserRole, d.name)
                key = QTableWidgetItem((d.shortcut or "").upper())
                key.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                count = QTableWidgetItem(f"{usage.get(d.name, 0):,}")
                count.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                count.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                count.setForeground(QBrush(QColor(style.MUTED)))
                for col, item in ((COLOUR_COL, colour), (NAME_COL, name), (KEY_COL, key), (COUNT_COL, count)):
                    self.table.setItem(row, col, item)
                if d.name == selected:
                    self.table.selectRow(row)
            found = self.lab.labels_in_data()
            self.adopt_button.setText(f"Add the {len(found)} label{'s' if len(found) != 1 else ''} found in "
                                      f"the data ({', '.join(found[:4])}{', …' if len(found) > 4 else ''})")
            self.adopt_button.setVisible(bool(found))
        finally:
            self._filling = False
        self._update_buttons()
        self._template_edited()

    @Slot(list)
    def _examples_changed(self, ids: list) -> None:
        if self.isVisible():
            self.reload()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.reload()

    def hideEvent(self, event) -> None:
        self.flush()
        super().hideEvent(event)

    def flush(self) -> None:
        if self._save_timer.isActive():
            self._save_timer.stop()
            self.save_instructions()

    def selected_label(self) -> str | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) != 1:
            return None
        item = self.table.item(rows.pop(), NAME_COL)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _update_buttons(self) -> None:
        name = self.selected_label()
        row = next(iter({i.row() for i in self.table.selectedIndexes()}), -1)
        for b in (self.colour_button, self.remove_button):
            b.setEnabled(name is not None)
        self.up_button.setEnabled(name is not None and row > 0)
        self.down_button.setEnabled(name is not None and 0 <= row < self.table.rowCount() - 1)

    def say(self, text: str, error: bool = False) -> None:
        self.labels_message.setStyleSheet(f"color: {style.BAD if error else style.MUTED};")
        self.labels_message.setText(text)

    @property
    def actor(self) -> str:
        return self.context.author

    def _changed(self) -> None:
        self.context.labels_changed.emit()  # reloads this panel and the mode
        self.schema_changed.emit()

    # -- the kind -----------------------------------------------------------------------------

    @Slot(int, bool)
    def _kind_toggled(self, index: int, on: bool) -> None:
        if self._filling or not on:
            return
        self.lab.set_kind(KINDS[index])
        self._changed()

    @Slot(int)
    def _overlap_changed(self, value: int) -> None:
        if not self._filling:
            self.lab.set_overlap(value)
            self.schema_changed.emit()

    # -- labels -------------------------------------------------------------------------------

    def add_label(self, name: str | None = None) -> bool:
        name = self.new_label.text() if name is None or not isinstance(name, str) else name
        try:
            d = self.lab.add_label(name, self.actor)
        except LabellingError as exc:
            self.say(str(exc), error=True)
            return False
        self.new_label.clear()
        self.say(f"Added '{d.name}'" + (f" (key {d.shortcut.upper()})." if d.shortcut else "."))
        self._changed()
        return True

    @Slot(QTableWidgetItem)
    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        name_item = self.table.item(item.row(), NAME_COL)
        if name_item is None:  # never: reload() gives every row its name cell
            return
        name = name_item.data(Qt.ItemDataRole.UserRole)
        try:
            if item.column() == NAME_COL:
                new = item.text().strip()
                n = self.lab.rename_label(name, new, self.actor)
                self.say(f"Renamed '{name}' to '{new}' on {n:,} example{'s' if n != 1 else ''} "
                         "(Ctrl+Z undoes it)." if new != name else "")
            elif item.column() == KEY_COL:
                self.lab.set_label_shortcut(name, item.text(), self.actor)
                self.say(f"'{name}' now has the key {item.text().strip().upper()}." if item.text().strip()
                         else f"'{name}' has no key now.")
            else:
                return
        except LabellingError as exc:
            self.say(str(exc), error=True)
            self.reload()
            return
        self._changed()

    def rename(self, old: str, new: str) -> None:
        """Rename through the table, as a double-click and typing would."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, NAME_COL)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == old:
                item.setText(new)
                return
        raise KeyError(old)

    def move_selected(self, step: int) -> None:
        name = self.selected_label()
        if name is None:
            return
        row = next(iter({i.row() for i in self.table.selectedIndexes()}))
        self.lab.move_label(name, row + step, self.actor)
        self._changed()

    def remove_selected(self) -> None:
        name = self.selected_label()
        if name is None:
            return
        try:
            self.lab.remove_label(name, self.actor)
        except LabellingError as exc:
            self.say(str(exc), error=True)
            return
        self.say(f"Removed '{name}' (Ctrl+Z brings it back).")
        self._changed()

    @Slot(int, int)
    def _cell_clicked(self, row: int, col: int) -> None:
        if col == COLOUR_COL:
            self.table.selectRow(row)
            self._colour_menu()

    def _colour_menu(self) -> None:
        name = self.selected_label()
        if name is None:
            return
        menu = QMenu(self)
        for colour in PALETTE:
            action = QAction(swatch(colour), colour, menu)
            action.triggered.connect(lambda _c=False, colour=colour: self.set_colour(name, colour))
            menu.addAction(action)
        menu.addSeparator()
        other = menu.addAction("Other colour\u2026")
        other.triggered.connect(lambda: self._pick_colour(name))
        rect = self.table.visualRect(self.table.model().index(self.table.currentRow(), COLOUR_COL))
        menu.popup(self.table.viewport().mapToGlobal(rect.bottomLeft()))

    def _pick_colour(self, name: str) -> None:
        colour = QColorDialog.getColor(parent=self, title=f"Colour of '{name}'")
        if colour.isValid():
            self.set_colour(name, colour.name())

    def set_colour(self, name: str, colour: str) -> None:
        try:
            self.lab.set_label_colour(name, colour, self.actor)
        except LabellingError as exc:
            self.say(str(exc), error=True)
            return
        self._changed()

    def adopt_data_labels(self) -> None:
        added = self.lab.adopt_data_labels(self.actor)
        self.say(f"Added {len(added)} labels found in the data." if added else "No new labels in the data.")
        self._changed()

    # -- instructions ---------------------------------------------------------------------------

    @Slot()
    def save_instructions(self) -> None:
        text = self.instructions.toPlainText()
        if text != self.lab.instructions():
            self.lab.set_instructions(text)
            self.schema_changed.emit()

    # -- the template ---------------------------------------------------------------------------

    def _example_for_preview(self):
        project = self.context.project
        if self._preview_id is not None:
            try:
                return project.get_example(self._preview_id)
            except KeyError:
                self._preview_id = None
        first = project.first_example_id(labelled_first=True)
        if first is None:
            return None
        self._preview_id = first
        return project.get_example(first)

    def show_preview_of(self, example_id: int) -> None:
        self._preview_id = example_id
        self._template_edited()

    def next_preview_example(self) -> None:
        project = self.context.project
        following = project.first_example_id(after=self._preview_id or 0)
        if following is None:
            following = project.first_example_id()  # round to the first
        if following is not None:
            self.show_preview_of(following)

    @Slot()
    def _template_edited(self) -> None:
        text = self.template.toPlainText()
        problem = check_template(text)
        saved = self.lab.template()
        self.template_problem.setText(problem or "")
        self.apply_template_button.setEnabled(problem is None and text != saved)
        self.apply_template_button.setText("Apply template" if text != saved else "Applied")
        template = text if problem is None else saved
        example = self._example_for_preview()
        if example is None:
            self.preview.setHtml(f"<p style='color:{style.MUTED}'>No examples yet: import some on the Data "
                                 "page to see how one is trained on.</p>")
            return
        schema = self.lab.schema()
        item = item_of(example, saved)
        if schema.kind == "classification":
            answer = example.label or "(the label chosen)"
        else:
            answer = item.answer or "(the answer written)"
        messages = training_messages(example, template, answer, old_template=saved)
        rows = []
        if example.system:
            messages = [{"role": "system", "content": example.system}, *messages]
        for m in messages:
            role = str(m.get("role", ""))
            colour = {"user": style.ACCENT, "assistant": style.GOOD}.get(role, style.MUTED)
            rows.append(
                f"<p style='margin:0 0 8px 0'><span style='color:{colour}; font-weight:600'>"
                f"{html.escape(role.capitalize())}</span><br>"
                f"{html.escape(str(m.get('content') or '')).replace(chr(10), '<br>')}</p>")
        label = f" \u00b7 label <b>{html.escape(example.label)}</b>" if example.label else ""
        self.preview.setHtml(f"<p style='color:{style.MUTED}; margin-bottom:8px'>Example {example.id}{label}</p>"
                             + "".join(rows))

    def apply_template(self) -> int:
        text = self.template.toPlainText()
        try:
            n = self.lab.set_template(text, self.actor)
        except LabellingError as exc:
            self.template_problem.setText(str(exc))
            return 0
        self.template_problem.setText("")
        self.say("")
        self.context.examples_changed.emit([])
        self._changed()
        self.context.status_message.emit(
            f"Template applied; {n:,} labelled example{'s' if n != 1 else ''} updated (Ctrl+Z undoes it)")
        return n
