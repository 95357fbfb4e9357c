"""Word-level differences between two answers, as HTML with colours."""

from __future__ import annotations

import difflib
import html
import re

from ftstudio.gui import style

_TOKEN = re.compile(r"\s+|[^\s]+")

REMOVED_STYLE = f"background:{style.BAD_SOFT}; color:{style.BAD}; text-decoration:line-through;"
ADDED_STYLE = f"background:{style.GOOD_SOFT}; color:{style.GOOD};"


def word_ops(a: str, b: str) -> list[tuple[str, str]]:
    """[(kind, text)] with kind "same", "removed" (only in a) or "added" (only in b)."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    # Compare words, not spacing: whitespace runs match whatever their length.
    ka = [" " if t.isspace() else t for t in ta]
    kb = [" " if t.isspace() else t for t in tb]
    ops: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ka, kb, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("same", "".join(tb[j1:j2])))
            continue
        if i2 > i1:
            ops.append(("removed", "".join(ta[i1:i2])))
        if j2 > j1:
            ops.append(("added", "".join(tb[j1:j2])))
    return ops


def word_diff_html(a: str, b: str) -> str:
    parts = []
    previous = "same"
    for kind, text in word_ops(a, b):
        escaped = html.escape(text).replace("\n", "<br>")
        if kind == "same":
            parts.append(escaped)
        else:
            if previous == "removed" and kind == "added":
                parts.append(" ")  # a replaced word: keep the old and the new apart
            parts.append(f'<span style="{REMOVED_STYLE if kind == "removed" else ADDED_STYLE}">{escaped}</span>')
        previous = kind
    return "".join(parts)


def similarity(a: str, b: str) -> float:
    """Share of words the two answers have in common (1.0: identical)."""
    ka = [t for t in _TOKEN.findall(a) if not t.isspace()]
    kb = [t for t in _TOKEN.findall(b) if not t.isspace()]
    if not ka and not kb:
        return 1.0
    return difflib.SequenceMatcher(None, ka, kb, autojunk=False).ratio()
