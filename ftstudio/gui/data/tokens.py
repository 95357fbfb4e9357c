"""A chat-template tokenizer for the GUI, loaded once on a worker thread.

transformers is imported only inside the functions that run on worker
threads; the GUI thread holds the tokenizer object and hands it back to
workers for encoding, but never calls into it itself.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from ftstudio.gui.workers import Job, Outcome

TRAIN_CONFIG_SETTING = "train_config"  # where the Train page keeps its settings in the project
IGNORE_INDEX = -100  # ftstudio.engine.tokenize.IGNORE_INDEX, without importing the engine here
# A fast tokenizer may not be used from two threads at once (it borrows its
# Rust state mutably while encoding): every worker call takes this lock.
TOKENIZER_LOCK = threading.Lock()


def bundled_tokenizer_dir(report=None, interrupted=None) -> Path:
    from ftstudio.engine.models import bundled_model_dir

    return bundled_model_dir()


def _load(model: str | None, report, interrupted):
    """Worker thread: (folder, tokenizer) of ``model``: None or "bundled:..." for the bundled
    model, a model folder, or a hub id already in the local cache (nothing is downloaded)."""
    from ftstudio.engine.models import bundled_model_dir, load_tokenizer, resolve_model

    if model is None or model.startswith("bundled"):
        report("Preparing the bundled model's tokenizer\u2026")
        folder = bundled_model_dir()
    elif Path(model).is_dir():
        folder = Path(model)  # a folder may hold only the tokenizer: that is all the preview needs
    else:
        folder = resolve_model(model)
    return str(folder), load_tokenizer(folder)


def training_choice(project) -> tuple[str | None, int | None]:
    """The model and context size last chosen on the Train page (saved in the project), if any."""
    saved = project.setting(TRAIN_CONFIG_SETTING)
    if not isinstance(saved, dict):
        return None, None
    model = saved.get("model") if isinstance(saved.get("model"), str) and saved.get("model") else None
    length = saved.get("max_length") if isinstance(saved.get("max_length"), int) else None
    return model, length


@dataclass(frozen=True)
class RenderedExample:
    """One conversation as the model sees it: (text, carries_loss, is_special) per token."""

    pieces: list[tuple[str, bool, bool]]
    token_count: int
    loss_count: int

    def to_html(self, loss_bg: str, special_fg: str) -> str:
        out = []
        for text, loss, special in self.pieces:
            safe = html.escape(text)
            if loss:
                out.append(f'<span style="background:{loss_bg}">{safe}</span>')
            elif special:
                out.append(f'<span style="color:{special_fg}">{safe}</span>')
            else:
                out.append(safe)
        return "".join(out)


def render_conversation(tokenizer, messages: list[dict], report=None, interrupted=None) -> RenderedExample:
    """Worker thread: the conversation through the chat template, token by token."""
    from ftstudio.engine.tokenize import encode_conversation

    with TOKENIZER_LOCK:
        encoded = encode_conversation(tokenizer, messages)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        pieces = [(tokenizer.decode([tid]), label != IGNORE_INDEX, tid in special)
                  for tid, label in zip(encoded.input_ids, encoded.labels)]
    return RenderedExample(pieces, len(encoded.input_ids), encoded.loss_tokens)


def token_counter(tokenizer):
    """Worker thread: a ``count_tokens(messages)`` for validate_project."""
    from ftstudio.core.validation import TokenCount
    from ftstudio.engine.tokenize import token_count

    def count(messages: list[dict]) -> TokenCount:
        with TOKENIZER_LOCK:
            return token_count(tokenizer, messages)

    return count


class TokenizerService(QObject):
    """The tokenizer of the chosen model (the bundled model unless another
    folder is chosen), loaded once on a worker thread; ``ready`` tells every
    page that waits for it.

    ``tokenizer`` is None until the chosen model's tokenizer is loaded, so a
    page never renders with the tokenizer of a model no longer chosen.
    """

    ready = Signal()
    failed = Signal(str)
    progress = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tokenizer = None
        self._loaded_key: str | None = None  # "" for the bundled model, else the folder
        self._model_dir: str | None = None  # the folder the loaded tokenizer came from
        self._wanted_key = ""
        self._error = ""
        self._job: Job | None = None

    @staticmethod
    def _key(model_dir: str | Path | None) -> str:
        return str(model_dir) if model_dir else ""

    @property
    def tokenizer(self):
        return self._tokenizer if self._loaded_key == self._wanted_key else None

    @property
    def chosen(self) -> str | None:
        """The chosen model folder (None: the bundled model)."""
        return self._wanted_key or None

    @property
    def model_dir(self) -> str | None:
        """The folder the current tokenizer was loaded from."""
        return self._model_dir if self.tokenizer is not None else None

    @property
    def error(self) -> str:
        return self._error

    @property
    def loading(self) -> bool:
        return self._job is not None

    def choose(self, model_dir: str | Path | None) -> None:
        """Use this model's tokenizer from now on (None: the bundled model); loads it if needed."""
        key = self._key(model_dir)
        if key != self._wanted_key:
            self._wanted_key = key
            self._error = ""
        self.ensure_loaded()

    def ensure_loaded(self) -> None:
        """Start loading the chosen model's tokenizer (no-op when loaded or loading)."""
        if self._job is not None or self.tokenizer is not None or self._error:
            return
        key = self._wanted_key
        self._job = Job(_load, key or None, parent=self)
        self._job.ended.connect(lambda outcome: self._ended(key, outcome))
        self._job.progressed.connect(self._progressed)
        self._job.start()

    def _ended(self, key: str, outcome: Outcome) -> None:
        self._job = None
        if outcome.done:
            self._model_dir, self._tokenizer = outcome.value
            self._loaded_key = key
        if key != self._wanted_key:  # the choice changed while loading
            self.ensure_loaded()
        elif outcome.done:
            self.ready.emit()
        else:
            self._error = str(outcome.value)
            self.failed.emit(self._error)

    @Slot(object)
    def _progressed(self, text) -> None:
        self.progress.emit(str(text))

    def wait(self) -> None:
        """Block until a load in progress ends (at shutdown: nobody is told it is ready)."""
        if self._job is not None:
            was_blocked = self.blockSignals(True)
            try:
                self._job.wait()
            finally:
                self.blockSignals(was_blocked)


_shared: TokenizerService | None = None


def shared_tokenizer() -> TokenizerService:
    """The one tokenizer service of the application (created on first use)."""
    global _shared
    if _shared is None:
        from PySide6.QtWidgets import QApplication

        _shared = TokenizerService(QApplication.instance())
    return _shared
