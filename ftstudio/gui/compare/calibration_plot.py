"""The reliability diagram: for each model whose label scores were measured, the
accuracy of its most likely label against its confidence, bin by bin. A
calibrated model lies on the diagonal; below it, the model is surer than it is
right."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from ftstudio.core.scores import ModelRow
from ftstudio.gui import style
from ftstudio.gui.training import plots


def reliability_points(row: ModelRow) -> tuple[list[float], list[float], list[int]]:
    """(mean confidence, accuracy, examples) of each bin holding examples."""
    bins = (row.results.get("calibration") or {}).get("bins") or []
    filled = [b for b in bins if b.get("count")]
    return (
        [float(b["confidence"]) for b in filled],
        [float(b["accuracy"]) for b in filled],
        [int(b["count"]) for b in filled],
    )


class ReliabilityDiagram(pg.PlotWidget):
    """``show_rows(rows)`` draws one curve per model that has calibration bins."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=style.SURFACE)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setMinimumSize(260, 220)
        item = self.getPlotItem()
        for name in ("bottom", "left"):
            axis = item.getAxis(name)
            axis.setTextPen(style.MUTED)
            axis.setPen(style.BORDER)
        item.setLabel("bottom", "confidence (probability of the most likely label)", color=style.MUTED)
        item.setLabel("left", "share right", color=style.MUTED)
        item.getViewBox().setMouseEnabled(x=False, y=False)
        item.setXRange(0, 1, padding=0.02)
        item.setYRange(0, 1, padding=0.02)
        # One model a line: three or more long model names side by side run off the plot.
        self.legend = plots.add_legend(self, left=True, columns=1)
        self.curves: dict[str, pg.PlotDataItem] = {}

    def show_rows(self, rows: Sequence[ModelRow]) -> None:
        item = self.getPlotItem()
        item.clear()
        self.legend.clear()
        self.curves.clear()
        item.plot([0, 1], [0, 1], pen=plots.pen(style.MUTED, 1.0, dashed=True))
        shown = [r for r in rows if reliability_points(r)[0]]
        for i, row in enumerate(shown):
            x, y, counts = reliability_points(row)
            colour = plots.PALETTE[i % len(plots.PALETTE)]
            ece = f" · ECE {row.ece:.3f}" if row.ece is not None else ""
            curve = item.plot(
                x,
                y,
                pen=plots.pen(colour, 1.8),
                symbol="o",
                symbolBrush=colour,
                symbolPen=None,
                symbolSize=[6 + min(10, c) for c in counts],
                name=f"{row.name}{ece}",
            )
            self.curves[row.key] = curve
        item.setXRange(0, 1, padding=0.02)
        item.setYRange(0, 1, padding=0.02)
