"""Examples: a conversation (list of role/content messages) plus its metadata.

The system prompt is kept apart from the turns, so it can be edited and
searched on its own; ``conversation()`` puts it back in front for training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
SPLITS = ("train", "eval")
STATUSES = ("unlabelled", "labelled", "flagged", "skipped")

Message = dict[str, Any]  # {"role": ..., "content": ...} (+ "tool_calls", "name" kept as they come)


@dataclass
class NewExample:
    """An example about to be added; ``source_line`` says where it came from in a file."""

    messages: list[Message]
    system: str | None = None
    label: str | None = None
    status: str = "labelled"
    split: str | None = None  # None: assigned by the project's held-out split
    source_line: int | None = None


@dataclass
class Example:
    id: int
    messages: list[Message]
    system: str | None
    split: str
    status: str
    label: str | None
    annotator: str | None
    created_at: str
    updated_at: str

    def conversation(self) -> list[Message]:
        """The messages with the system prompt in front, as a chat template wants them."""
        if self.system:
            return [{"role": "system", "content": self.system}, *self.messages]
        return list(self.messages)

    def prompt_text(self) -> str:
        """The first user turn: what leakage and duplicate checks compare."""
        for m in self.messages:
            if m.get("role") == "user":
                return str(m.get("content") or "")
        return ""

    def reference_answer(self) -> str | None:
        """The last assistant turn, the answer a short-answer evaluation compares against."""
        for m in reversed(self.messages):
            if m.get("role") == "assistant":
                return str(m.get("content") or "")
        return None


@dataclass
class PreparedData:
    """What the engine trains on: plain conversations, already split.

    Each conversation is a list of messages with the system prompt (if any) in
    front. ``train_ids``/``eval_ids`` keep the project's example ids beside
    them, so samples and evaluations can point back at rows.
    """

    train: list[list[Message]]
    eval: list[list[Message]]
    train_ids: list[int] = field(default_factory=list)
    eval_ids: list[int] = field(default_factory=list)


def check_conversation(messages: Any, require_answer: bool = True) -> str | None:
    """None when ``messages`` is a well-formed conversation, else what is wrong, in words.

    Rules: a non-empty list of {"role", "content"} objects with known roles; a
    system message only first; the first turn after it from the user; user and
    assistant alternate (tool results may follow an assistant turn that calls a
    tool); and there is at least one assistant turn to learn from.
    """
    if not isinstance(messages, list) or not messages:
        return "the conversation has no messages"
    prev = None
    has_assistant = False
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            return f"message {i} is not an object with 'role' and 'content'"
        role = m.get("role")
        if role not in ROLES:
            return f"message {i} has unknown role {role!r} (expected one of {', '.join(ROLES)})"
        content = m.get("content")
        if content is None and not m.get("tool_calls"):
            return f"message {i} ({role}) has no 'content'"
        if content is not None and not isinstance(content, str):
            return f"message {i} ({role}) has content that is not text"
        if role == "system":
            if i != 1:
                return f"message {i} is a system message, but a system message may only come first"
        elif role == "user":
            if prev == "user":
                return f"message {i} is a second user turn in a row (roles out of order)"
        elif role == "assistant":
            has_assistant = True
            if prev in (None, "system"):
                return f"message {i} is an assistant turn before any user turn (roles out of order)"
            if prev == "assistant":
                return f"message {i} is a second assistant turn in a row (roles out of order)"
        elif role == "tool":
            if prev not in ("assistant", "tool"):
                return f"message {i} is a tool result that does not follow an assistant turn"
        prev = role
    if require_answer and not has_assistant:
        return "the conversation has no assistant turn to learn from"
    return None


def split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Take a leading system message out of ``messages``."""
    if messages and messages[0].get("role") == "system":
        return str(messages[0].get("content") or ""), list(messages[1:])
    return None, list(messages)
