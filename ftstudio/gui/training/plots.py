"""pyqtgraph plots in the app's look, tuned for long live curves."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt

from ftstudio.gui import style

# Curve colours, in the order several runs are overlaid.
PALETTE = ["#2f6fb2", "#d9822b", "#2e7d4f", "#9b4dca", "#b42318", "#0f8b8d", "#6b7280", "#c2417c"]
LEFT_AXIS_WIDTH = 52
RAW = "#9dbbdc"  # the unsmoothed train loss, behind the smoothed one
EVAL = "#d9822b"


def styled_plot(title: str = "", left: str = "", bottom: str = "step") -> pg.PlotWidget:
    """A white plot with muted axes, a light grid, no mouse menu, and the
    settings that keep 100,000 points cheap: peak downsampling and clipping
    to the visible range."""
    widget = pg.PlotWidget(background=style.SURFACE)
    widget.setMenuEnabled(False)
    widget.hideButtons()
    widget.setMinimumSize(160, 120)
    item = widget.getPlotItem()
    item.setDownsampling(auto=True, mode="peak")
    item.setClipToView(True)
    item.showGrid(x=False, y=False)
    if title:
        set_title(widget, title)
    for name in ("bottom", "left"):
        axis = item.getAxis(name)
        axis.setTextPen(style.MUTED)
        axis.setPen(style.BORDER)
    # Fixed axis sizes: tick labels that change length would otherwise re-layout the plot on every redraw.
    item.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
    if left:
        item.setLabel("left", left, color=style.MUTED)
    if bottom:
        item.setLabel("bottom", bottom, color=style.MUTED)
    item.getViewBox().setMouseEnabled(x=True, y=False)
    return widget


def set_title(widget: pg.PlotWidget, title: str, detail: str = "") -> None:
    text = f"<span style='color:{style.TEXT};font-weight:600'>{title}</span>"
    if detail:
        text += f"&nbsp;&nbsp;<span style='color:{style.MUTED}'>{detail}</span>"
    widget.getPlotItem().setTitle(text, size="9pt")


def pen(colour: str, width: float = 1.5, dashed: bool = False):
    p = pg.mkPen(colour, width=width)
    if dashed:
        p.setStyle(Qt.PenStyle.DashLine)
    return p


def curve(widget: pg.PlotWidget, colour: str, width: float = 1.5, name: str | None = None, dashed: bool = False,
          symbol: str | None = None):
    """An empty curve on ``widget``; finite-value checks are skipped (buffers hold finite values)."""
    kw = {}
    if symbol:
        kw = dict(symbol=symbol, symbolSize=6, symbolBrush=colour, symbolPen=None)
    item = widget.getPlotItem().plot([], [], pen=pen(colour, width, dashed), name=name, **kw)
    item.setSkipFiniteCheck(True)
    return item


def add_legend(widget: pg.PlotWidget, left: bool = False, bottom: bool = False, columns: int | None = None):
    """A legend in a top corner (``bottom``: a bottom one, under curves that sit high, like memory)."""
    legend = widget.getPlotItem().addLegend(offset=(8 if left else -8, -6 if bottom else 6),
                                            labelTextColor=style.MUTED, labelTextSize="8pt",
                                            colCount=columns or (3 if left else 1))
    legend.setBrush(pg.mkBrush(255, 255, 255, 210))
    return legend
