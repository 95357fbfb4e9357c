"""Word-level differences between two answers, as HTML with colours."""

from __future__ import annotations

import difflib
import html
import re

from ftstudio.gui import style

_TOKEN = re.compile(r"\s+|[^\s]+")
_WORD = re.compile(r"\S+\s*")

REMOVED_STYLE = f"background:{style.BAD_SOFT}; color:{style.BAD}; text-decoration:line-through;"
ADDED_STYLE = f"background:{style.GOOD_SOFT}; color:{style.GOOD};"


def _words(text: str) -> tuple[str, list[str]]:
    """(leading whitespace, words each with the whitespace after it)."""
    lead = text[: len(text) - len(text.lstrip())]
    return lead, _WORD.findall(text)


def word_ops(a: str, b: str) -> list[tuple[str, str]]:
    """[(kind, text)] with kind "same", "removed" (only in a) or "added" (only in b).

    Words are compared, not spacing: the text of "same" runs keeps b's spacing.
    """
    _lead_a, ta = _words(a)
    lead_b, tb = _words(b)
    ka = [t.rstrip() for t in ta]
    kb = [t.rstrip() for t in tb]
    ops: list[tuple[str, str]] = [("same", lead_b)] if lead_b else []

    def add(kind: str, text: str) -> None:
        if ops and ops[-1][0] == kind:
            ops[-1] = (kind, ops[-1][1] + text)
        elif text:
            ops.append((kind, text))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ka, kb, autojunk=False).get_opcodes():
        if tag == "equal":
            add("same", "".join(tb[j1:j2]))
            continue
        if i2 > i1:
            add("removed", "".join(ta[i1:i2]))
        if j2 > j1:
            add("added", "".join(tb[j1:j2]))
    return ops


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def word_diff_html(a: str, b: str) -> str:
    parts = []
    for kind, text in word_ops(a, b):
        if kind == "same":
            parts.append(_html(text))
            continue
        body = text.rstrip()
        tail = text[len(body):] or " "  # keep a removed run and the added one after it apart
        span_style = REMOVED_STYLE if kind == "removed" else ADDED_STYLE
        parts.append(f'<span style="{span_style}">{_html(body)}</span>{_html(tail)}')
    return "".join(parts)


def similarity(a: str, b: str) -> float:
    """Share of words the two answers have in common (1.0: identical)."""
    ka = [t for t in _TOKEN.findall(a) if not t.isspace()]
    kb = [t for t in _TOKEN.findall(b) if not t.isspace()]
    if not ka and not kb:
        return 1.0
    return difflib.SequenceMatcher(None, ka, kb, autojunk=False).ratio()
