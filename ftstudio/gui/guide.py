"""Help > Getting started: the guide in resources/guide/getting-started.md, with its
pictures, in a viewer beside the window; and the line each page's empty state shows
pointing to it."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from ftstudio.paths import resource

GUIDE_FILE = resource("guide", "getting-started.md")
GUIDE_LINK = "ftstudio:getting-started"
GUIDE_LINE = (
    f"New here? <a href='{GUIDE_LINK}'>Getting started</a> (F1) walks through the demo: "
    "data, labels, training, comparing, export."
)


class GuideDialog(QDialog):
    """The Getting started guide: Markdown with pictures, links to the web open in the browser."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Getting started \u2014 FT Studio")
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, False)
        self.resize(820, 760)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setOpenLinks(False)
        self.browser.anchorClicked.connect(self._link)
        self.browser.document().setDocumentMargin(18)
        self.browser.setStyleSheet("QTextBrowser { background: #ffffff; font-size: 11pt; }")
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.load()

    def load(self) -> None:
        # The file's own folder resolves its pictures (getting-started/*.png).
        self.browser.setSource(
            QUrl.fromLocalFile(str(GUIDE_FILE)), QTextDocument.ResourceType.MarkdownResource
        )

    def _link(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
        elif url.hasFragment() and not url.path():
            self.browser.scrollToAnchor(url.fragment())


def show_guide(window: QWidget) -> GuideDialog:
    """Open (or raise) the guide beside ``window``; one per window."""
    dialog = getattr(window, "_guide_dialog", None)
    if dialog is None:
        dialog = GuideDialog(window)
        window._guide_dialog = dialog  # type: ignore[attr-defined]
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def connect_guide_link(label: QLabel) -> None:
    """Make GUIDE_LINE's link in ``label`` open the guide (other links keep their own handlers)."""
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(
        label.textInteractionFlags() | Qt.TextInteractionFlag.LinksAccessibleByMouse
    )
    label.linkActivated.connect(lambda link: show_guide(label.window()) if link == GUIDE_LINK else None)
