"""One look for the whole app: the Fusion style, a calm light palette and a
small style sheet. Pages use the named colours below rather than their own."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

WINDOW = "#f4f5f7"
SURFACE = "#ffffff"
SIDEBAR = "#eceef2"
BORDER = "#d8dce3"
TEXT = "#1f2933"
MUTED = "#667085"
ACCENT = "#2f6fb2"
ACCENT_SOFT = "#dbe8f6"
GOOD = "#2e7d4f"
GOOD_SOFT = "#d9f0e1"
WARN = "#a86400"
WARN_SOFT = "#fdf0d5"
BAD = "#b42318"
BAD_SOFT = "#fde3e1"

# Tokens that carry loss in the template preview, and the template's own tokens.
LOSS_BG = "#cdeccf"
SPECIAL_FG = "#8a94a6"

FONT_POINT_SIZE = 10

STYLE_SHEET = f"""
QMainWindow, QDialog, QWizard {{ background: {WINDOW}; }}
QToolTip {{ background: {SURFACE}; color: {TEXT}; border: 1px solid {BORDER}; padding: 4px; }}

QListWidget#NavList {{
    background: {SIDEBAR}; border: none; border-right: 1px solid {BORDER};
    padding-top: 8px; outline: 0;
}}
QListWidget#NavList::item {{
    padding: 9px 14px; margin: 1px 8px; border-radius: 6px; color: {TEXT};
}}
QListWidget#NavList::item:hover {{ background: #e1e5eb; }}
QListWidget#NavList::item:selected {{ background: {ACCENT_SOFT}; color: {ACCENT}; font-weight: 600; }}
QLabel#NavTitle {{ color: {MUTED}; font-weight: 600; padding: 14px 22px 2px 22px; }}

QLabel#PageTitle {{ font-size: {FONT_POINT_SIZE + 5}pt; font-weight: 600; color: {TEXT}; }}
QLabel#SectionTitle {{ font-weight: 600; color: {TEXT}; }}
QLabel#Muted, QLabel[muted="true"] {{ color: {MUTED}; }}
QLabel#Hint {{ color: {MUTED}; }}
QLabel#Problem {{ color: {BAD}; }}

QFrame#Card {{ background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 8px; }}
QFrame#TurnCard {{ background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 6px; }}

QToolBar {{ background: {WINDOW}; border: none; spacing: 6px; padding: 6px 8px; }}
QToolBar QToolButton {{ padding: 4px 8px; border-radius: 5px; }}
QToolBar QToolButton:hover {{ background: #e1e5eb; }}

QTableView {{
    background: {SURFACE}; alternate-background-color: #f8f9fb; gridline-color: #eef0f3;
    border: 1px solid {BORDER}; border-radius: 6px; selection-background-color: {ACCENT_SOFT};
    selection-color: {TEXT};
}}
QHeaderView::section {{
    background: {WINDOW}; color: {MUTED}; border: none; border-bottom: 1px solid {BORDER};
    border-right: 1px solid #e6e9ee; padding: 5px 6px; font-weight: 600;
}}
QTreeWidget, QListWidget, QPlainTextEdit, QTextEdit, QTextBrowser {{
    background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 6px;
}}
QLineEdit {{
    background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 5px; padding: 4px 6px; min-height: 18px;
}}
/* Combo and spin boxes keep Fusion's own drawing (a border here would hide their arrows). */
QComboBox, QSpinBox, QDoubleSpinBox {{ min-height: 22px; }}
QLineEdit:focus, QPlainTextEdit:focus {{ border: 1px solid {ACCENT}; }}

QPushButton {{
    background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 5px; padding: 5px 14px; color: {TEXT};
}}
QPushButton:hover {{ background: #f0f3f7; }}
QPushButton:disabled {{ color: #a0a8b5; }}
QPushButton[primary="true"] {{ background: {ACCENT}; color: white; border: 1px solid {ACCENT}; font-weight: 600; }}
QPushButton[primary="true"]:hover {{ background: #285f99; }}
QPushButton[primary="true"]:disabled {{ background: #9bb8d6; border-color: #9bb8d6; color: #eef3f8; }}
QPushButton[flat="true"] {{ border: none; background: transparent; padding: 3px 6px; }}
QPushButton[flat="true"]:hover {{ background: #e8ebf0; }}

QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ padding: 6px 14px; color: {MUTED}; border: none; border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ color: {ACCENT}; border-bottom: 2px solid {ACCENT}; font-weight: 600; }}
QTabBar::tab:hover {{ color: {TEXT}; }}

QStatusBar {{ background: {SIDEBAR}; border-top: 1px solid {BORDER}; color: {MUTED}; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0 8px; }}
QSplitter::handle {{ background: {WINDOW}; }}
QScrollArea {{ border: none; background: transparent; }}
QScrollArea > QWidget > QWidget {{ background: transparent; }}
"""


def palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: WINDOW, QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: SURFACE, QPalette.ColorRole.AlternateBase: "#f8f9fb",
        QPalette.ColorRole.Text: TEXT, QPalette.ColorRole.Button: SURFACE,
        QPalette.ColorRole.ButtonText: TEXT, QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: SURFACE,
        QPalette.ColorRole.ToolTipText: TEXT, QPalette.ColorRole.PlaceholderText: "#98a2b3",
        QPalette.ColorRole.Link: ACCENT, QPalette.ColorRole.Mid: BORDER,
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#a0a8b5"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#a0a8b5"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#a0a8b5"))
    return p


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(palette())
    font = QFont(app.font())
    font.setPointSize(FONT_POINT_SIZE)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
