"""Edit > Hugging Face account: the token gated models need, stored by huggingface_hub's
own login (in its token file, ~/.cache/huggingface/token), never in a project or in the
app's settings."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ftstudio.gui import style
from ftstudio.gui.workers import Job, Outcome

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


def stored_token() -> str | None:
    """The token huggingface_hub would send (HF_TOKEN, else its token file), or None."""
    from huggingface_hub import get_token

    return get_token()


def masked(token: str) -> str:
    return token[:3] + "\u2022" * 8 + token[-4:] if len(token) > 10 else "\u2022" * 8


def _login(
    token: str, report: Callable[[Any], None], interrupted: Callable[[], bool]
) -> str:  # worker thread
    """Checks the token with the hub and stores it (huggingface_hub's login does both)."""
    from huggingface_hub import login

    login(token=token, add_to_git_credential=False)
    return ""


def login_error_text(exc_text: str) -> str:
    """The user's words for a failed login."""
    low = exc_text.lower()
    if "invalid" in low or "401" in low or "unauthorized" in low:
        return "The hub does not accept this token. Copy it again from your Hugging Face settings."
    if "offline" in low or "connect" in low or "resolve" in low or "timed out" in low or "network" in low:
        return "The hub cannot be reached from here, so the token cannot be checked. Connect to the internet and try again."
    return f"The token was not stored: {exc_text}"


class HubAccountDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hugging Face account")
        self.resize(560, 300)
        self._job: Job | None = None
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Some models on the Hugging Face hub (Llama, Gemma, ...) are <b>gated</b>: accept the "
            "model's licence on its hub page, then add an access token here so FT Studio can "
            f"download it. Make a token (\u201cRead\u201d is enough) at <a href='{TOKENS_PAGE}'>"
            f"{TOKENS_PAGE}</a>.<br><br>The token is stored by huggingface_hub in its own token "
            "file, never in a project."
        )
        intro.setWordWrap(True)
        intro.setOpenExternalLinks(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(intro)
        self.state = QLabel()
        self.state.setWordWrap(True)
        layout.addWidget(self.state)
        row = QHBoxLayout()
        self.token_edit = QLineEdit()
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("hf_\u2026")
        self.login_button = QPushButton("Add token")
        self.login_button.setProperty("primary", True)
        self.login_button.clicked.connect(self.add_token)
        self.token_edit.returnPressed.connect(self.add_token)
        row.addWidget(self.token_edit, 1)
        row.addWidget(self.login_button)
        layout.addLayout(row)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        layout.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.logout_button = buttons.addButton(
            "Remove the stored token", QDialogButtonBox.ButtonRole.ResetRole
        )
        self.logout_button.clicked.connect(self.remove_token)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        token = stored_token()
        if token:
            self.state.setText(
                f"A token is stored ({masked(token)}): gated models you have access to download."
            )
        else:
            self.state.setText("No token is stored: public models download, gated ones do not.")
        self.logout_button.setEnabled(bool(token))

    def _say(self, text: str, kind: str = "info") -> None:
        colours = {"info": style.MUTED, "bad": style.BAD, "good": style.GOOD}
        self.message.setStyleSheet(f"color: {colours[kind]};")
        self.message.setText(text)

    @Slot()
    def add_token(self) -> None:
        token = self.token_edit.text().strip()
        if not token:
            self._say("Paste the token first.", "bad")
            return
        if self._job is not None:
            return
        self._say("Checking the token with the hub\u2026")
        self.login_button.setEnabled(False)
        self._job = Job(_login, token, parent=self)
        self._job.ended.connect(self._login_ended)
        self._job.start()

    def is_checking(self) -> bool:
        return self._job is not None

    @Slot(object)
    def _login_ended(self, outcome: Outcome) -> None:
        self._job = None
        self.login_button.setEnabled(True)
        if outcome.done:
            self.token_edit.clear()
            self._say("Token stored. Gated models you have accepted download now.", "good")
        else:
            self._say(login_error_text(str(outcome.value)), "bad")
        self.refresh()

    @Slot()
    def remove_token(self) -> None:
        from huggingface_hub import logout

        try:
            logout()
        except OSError as exc:  # HF_TOKEN set in the environment keeps the user logged in
            self._say(str(exc).replace("\n", " "), "bad")
        else:
            self._say("The stored token was removed.")
        self.refresh()

    def closeEvent(self, event) -> None:
        if self._job is not None:
            self._job.wait()
        super().closeEvent(event)
