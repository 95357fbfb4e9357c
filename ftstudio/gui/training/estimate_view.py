"""The memory and time estimate beside the settings: a bar of what takes the
memory against what the device has, one sentence on how the run will fit (the
auto-fit plan: micro-batches and checkpointing, or the smallest change that
makes it fit, with a button that makes it), and how long the run should take."""

from __future__ import annotations

import html

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ftstudio.engine.estimate import DeviceBudget, MemoryEstimate, TimeEstimate, gb
from ftstudio.engine.fit import RunPlan
from ftstudio.gui import style

PART_COLOURS = ["#2f6fb2", "#9b4dca", "#d9822b", "#98a2b3"]
SHORT_NAMES = {"Model weights": "weights", "Add-on weights and optimiser": "add-on + optimiser",
               "Activations": "activations", "Runtime": "runtime"}


class MemoryBar(QWidget):
    """Stacked parts of the estimate, scaled so the device's memory is the marked line."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.parts: list[tuple[str, int]] = []
        self.available: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(16)

    def sizeHint(self) -> QSize:
        return QSize(300, 16)

    def set_estimate(self, est: MemoryEstimate | None) -> None:
        self.parts = est.parts() if est else []
        self.available = est.available if est else None
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(0.5, 2.5, -0.5, -2.5)
        p.setPen(QPen(QColor(style.BORDER), 1))
        p.setBrush(QColor("#f0f2f5"))
        p.drawRoundedRect(r, 4, 4)
        total = sum(v for _, v in self.parts)
        if not total:
            return
        scale = max(total, self.available or 0) * 1.0
        x = r.left()
        p.setPen(Qt.PenStyle.NoPen)
        for (_, value), colour in zip(self.parts, PART_COLOURS):
            w = r.width() * value / scale
            p.setBrush(QColor(colour))
            p.drawRect(QRectF(x, r.top(), max(0.0, w), r.height()))
            x += w
        if self.available:
            mark = r.left() + r.width() * self.available / scale
            over = total > self.available
            p.setPen(QPen(QColor(style.BAD if over else style.TEXT), 2))
            p.drawLine(int(mark) - 1 if mark >= r.right() else int(mark), 0, int(mark) - 1 if mark >= r.right()
                       else int(mark), self.height())


class EstimateView(QFrame):
    """``set_estimates(memory, time, device, note, plan)``; ``memory_text`` and ``time_text`` hold the
    sentences shown. ``suggestion_chosen(changes)`` asks for the plan's suggested settings."""

    suggestion_chosen = Signal(dict)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(5)
        head = QHBoxLayout()
        title = QLabel("Estimate")
        title.setObjectName("SectionTitle")
        head.addWidget(title)
        head.addStretch(1)
        self.device_label = QLabel("")
        self.device_label.setObjectName("Hint")
        self.device_label.setStyleSheet("font-size: 9pt;")
        head.addWidget(self.device_label)
        layout.addLayout(head)
        self.bar = MemoryBar()
        layout.addWidget(self.bar)
        self.legend = QLabel()
        self.legend.setObjectName("Hint")
        self.legend.setStyleSheet("font-size: 9pt;")
        self.legend.setWordWrap(True)
        layout.addWidget(self.legend)
        self.memory_label = QLabel()
        self.memory_label.setWordWrap(True)
        layout.addWidget(self.memory_label)
        self.suggestion_button = QPushButton()
        self.suggestion_button.hide()
        self.suggestion_button.clicked.connect(self._choose_suggestion)
        suggestion_row = QHBoxLayout()
        suggestion_row.addWidget(self.suggestion_button)
        suggestion_row.addStretch(1)
        layout.addLayout(suggestion_row)
        self.time_label = QLabel()
        self.time_label.setWordWrap(True)
        self.time_label.setObjectName("Hint")
        layout.addWidget(self.time_label)
        self.memory_text = ""
        self.time_text = ""
        self.estimate: MemoryEstimate | None = None
        self.plan: RunPlan | None = None
        self.setToolTip("Worked out from the model's config.json and the settings; the real figures appear on the "
                        "dashboard while training. Activations are for one micro-batch of the plan.")

    def set_estimates(self, memory: MemoryEstimate | None, time: TimeEstimate | None,
                      device: DeviceBudget | None, note: str = "", plan: RunPlan | None = None) -> None:
        self.estimate = memory
        self.plan = plan
        self.bar.set_estimate(memory)
        suggestion = plan.suggestion if plan is not None and not plan.fits else None
        self.suggestion_button.setVisible(suggestion is not None)
        if suggestion is not None:
            words = suggestion.words[0].upper() + suggestion.words[1:]
            self.suggestion_button.setText(words)
            self.suggestion_button.setToolTip(f"Change the settings so the run fits: {suggestion.plan.text}")
        if device is not None:
            kind = "GPU" if device.kind == "cuda" else "CPU"
            self.device_label.setText(f"{kind}: {gb(device.available)} GB {device.memory_name} free")
            self.device_label.setToolTip(device.name)
        if memory is None:
            self.legend.setText("")
            self.memory_text = note or "No estimate"
            self.memory_label.setText(self.memory_text)
            self.memory_label.setStyleSheet(f"color: {style.MUTED};")
            self.time_text = ""
            self.time_label.setText("")
            return
        swatches = []
        for (name, value), colour in zip(memory.parts(), PART_COLOURS):
            swatches.append(f"<span style='color:{colour}'>\u25a0</span>&nbsp;{SHORT_NAMES.get(name, name)}"
                            f"&nbsp;{html.escape(gb(value))}")
        self.legend.setText("&nbsp;&nbsp; ".join(swatches) + "&nbsp;GB")
        need = f"Needs about {gb(memory.total)} GB"
        if plan is not None:
            # The plan and why in one line: "2,048 tokens per micro-batch x 4, checkpointing on: fits ..."
            sentence = plan.text[0].upper() + plan.text[1:] + "."
            colour = style.TEXT if memory.fits is None else style.GOOD if memory.fits else style.BAD
            why = [f"Activations are for one micro-batch of {plan.micro_batch_tokens:,} tokens; the optimiser "
                   f"step stays {plan.batch_tokens * plan.grad_accum:,} tokens whatever the plan."]
            why += [n[0].upper() + n[1:] + "." for n in plan.notes]
            self.memory_label.setToolTip("\n".join(why))
        elif memory.fits is None:
            sentence, colour = need, style.TEXT
        elif memory.fits:
            sentence, colour = f"{need}: {memory.text}.", style.GOOD
        else:
            sentence, colour = memory.text[0].upper() + memory.text[1:] + ".", style.BAD
        self.memory_text = sentence
        self.memory_label.setText(f"<b>{sentence}</b>")
        self.memory_label.setStyleSheet(f"color: {colour};")
        if time is not None:
            self.time_text = time.text[0].upper() + time.text[1:] + (f"; {note}" if note else ".")
        else:
            self.time_text = note
        self.time_label.setText(self.time_text)

    def _choose_suggestion(self) -> None:
        if self.plan is not None and self.plan.suggestion is not None:
            self.suggestion_chosen.emit(dict(self.plan.suggestion.changes))
