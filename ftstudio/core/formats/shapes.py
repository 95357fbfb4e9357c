"""From one record to one example, by its shape: OpenAI/TRL messages, Alpaca, ShareGPT, or a
table through a column map; and the forms of preference records (which example imports refuse).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ftstudio.core.examples import NewExample, check_conversation, split_system
from ftstudio.core.formats.problems import (
    AUTO_COLUMN_PAIRS,
    AUTO_SYSTEM_COLUMNS,
    BAD_TEXT,
    LABEL_MAX_CHARS,
    LABEL_MAX_DISTINCT,
    MAPPABLE_FIELDS,
    PREVIEW_ROWS,
    SHAREGPT_ROLES,
    _Row,
    _RowError,
)

if TYPE_CHECKING:
    pass

# -- column maps ------------------------------------------------------------------------


def parse_column_map(pairs: list[str]) -> dict[str, str]:
    """``["prompt=text", "response=category"]`` -> ``{"prompt": "text", "response": "category"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        fld, sep, column = pair.partition("=")
        fld, column = fld.strip(), column.strip()
        if not sep or not fld or not column:
            raise ValueError(f"--map {pair!r} needs the form FIELD=COLUMN, for example --map prompt=text")
        if fld not in MAPPABLE_FIELDS:
            raise ValueError(
                f"--map {pair!r}: unknown field {fld!r}; choose one of {', '.join(MAPPABLE_FIELDS)}"
            )
        if fld in out:
            raise ValueError(
                f"--map {pair!r}: {fld} is already mapped to column {out[fld]!r}; map each field once"
            )
        out[fld] = column
    return out


def _auto_column_map(columns: list[str]) -> dict[str, str]:
    by_lower: dict[str, str] = {}
    for c in columns:
        by_lower.setdefault(c.strip().lower(), c)
    chosen: dict[str, str] = {}
    for prompt, response in AUTO_COLUMN_PAIRS:
        if prompt in by_lower and response in by_lower:
            chosen = {"prompt": by_lower[prompt], "response": by_lower[response]}
            break
    if not chosen:
        return {}
    for name in AUTO_SYSTEM_COLUMNS:
        if name in by_lower:
            chosen["system"] = by_lower[name]
            break
    if "label" in by_lower and by_lower["label"] != chosen["response"]:
        chosen["label"] = by_lower["label"]
    return chosen


# -- shapes: one record -> one example ---------------------------------------------------


def _shape_of_keys(keys: set[str]) -> str:
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    return "table"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _RowError("holds binary data, not text; choose a column of text") from None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _text_or_empty(value: Any) -> str:
    try:
        return _text(value)
    except _RowError:
        return ""


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (keys too), without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _check_text(ex: NewExample) -> None:
    """Refuse text that cannot be trained on or stored: NUL characters, lone surrogates."""
    for what, value in (
        ("the conversation", ex.messages),
        ("the system prompt", ex.system),
        ("the label", ex.label),
    ):
        for text in _strings(value):
            bad = BAD_TEXT.search(text)
            if bad is None:
                continue
            if bad.group() == "\x00":
                raise _RowError(
                    f"{what} holds a NUL character (\\u0000): the file may be damaged or binary; remove it"
                )
            raise _RowError(
                f"{what} holds {ascii(bad.group())[1:-1]}, half of a character (a lone surrogate, "
                "usually an escape like \\ud800 written alone); fix or remove it"
            )


def _label(value: Any) -> str | None:
    text = _text(value).strip()
    return text or None


def _system_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _RowError(f"'{what}' is not text")
    return value or None


def _finish(
    messages: list[dict], system: str | None, label: str | None, source_line: int | None, split: str | None
) -> NewExample:
    """Check the conversation and build the example; no assistant turn means unlabelled."""
    if not messages:
        raise _RowError("has only a system message; add the user's message (and the answer) or delete it")
    full = ([{"role": "system", "content": system}] if system else []) + messages
    problem = check_conversation(full, require_answer=False)
    if problem is not None:
        raise _RowError(problem)
    has_answer = any(m.get("role") == "assistant" for m in messages)
    return NewExample(
        messages=messages,
        system=system or None,
        label=label,
        status="labelled" if has_answer else "unlabelled",
        split=split,
        source_line=source_line,
    )


def _require_object(data: Any) -> dict:
    if not isinstance(data, dict):
        kind = {
            list: "a list",
            str: "a piece of text",
            int: "a number",
            float: "a number",
            bool: "true/false",
        }.get(type(data), type(data).__name__)
        raise _RowError(f"is {kind}, not an object with fields")
    return data


def _turns(data: Any, field: str, expected: str, turn: str) -> tuple[dict, list]:
    """The record and the non-empty list of turns in its ``field``, for the two conversation
    shapes; the errors show the shape ``expected`` and what ``turn`` each entry is."""
    data = _require_object(data)
    if field not in data:
        raise _RowError(f"has no '{field}' field; expected {expected}")
    turns = data[field]
    if not isinstance(turns, list) or not turns:
        raise _RowError(f"'{field}' must be a non-empty list of {turn}")
    return data, turns


def _from_messages(data: Any, line: int | None, split: str | None) -> NewExample:
    data, raw = _turns(
        data,
        "messages",
        '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}',
        '{"role", "content"} objects',
    )
    messages = []
    for i, m in enumerate(raw, start=1):
        if not isinstance(m, dict):
            raise _RowError(f"message {i} is not an object with 'role' and 'content'")
        # Parquet and datasets fill fields a message lacks with null: drop them.
        m = {k: v for k, v in m.items() if v is not None}
        if isinstance(m.get("content"), list):
            m["content"] = _text_parts(m["content"], i)
        messages.append(m)
    system, turns = split_system(messages)
    top_system = _system_text(data.get("system"), "system")
    if system is None:
        system = top_system
    return _finish(turns, system, _label(data.get("label")), line, split)


def _text_parts(parts: list, message_no: int) -> str:
    """OpenAI content parts [{"type": "text", "text": ...}] joined into one text."""
    texts = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, str):
            texts.append(part)
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise _RowError(
                f"message {message_no} has a part of type {kind!r}; only text can be trained on here"
            )
    return "\n".join(texts)


def alpaca_prompt(instruction: str, extra: str) -> str:
    """Alpaca's instruction and input as one user turn: both, a blank line apart, or whichever is
    given (examples here; ranking-form preference pairs in core/preferences.py)."""
    return f"{instruction}\n\n{extra}" if instruction.strip() and extra.strip() else (instruction or extra)


def sharegpt_turn(turn: dict) -> tuple[Any, Any, str | None]:
    """(speaker, value, role) of a ShareGPT turn, written ``from``/``value`` or ``role``/``content``;
    role is None for a speaker not in SHAREGPT_ROLES. Each caller says what it accepts in its words."""
    speaker = turn.get("from", turn.get("role"))
    value = turn.get("value", turn.get("content"))
    role = SHAREGPT_ROLES.get(str(speaker).lower()) if speaker is not None else None
    return speaker, value, role


def _from_alpaca(data: Any, line: int | None, split: str | None) -> NewExample:
    data = _require_object(data)
    for key in ("instruction", "output"):
        if key not in data:
            raise _RowError(
                f"has no '{key}' field; Alpaca records need 'instruction' and 'output' "
                "('input' and 'system' are optional)"
            )
    instruction, extra = _text(data.get("instruction")), _text(data.get("input"))
    if not instruction.strip() and not extra.strip():
        raise _RowError("the instruction is empty; write the instruction or delete the record")
    prompt = alpaca_prompt(instruction, extra)
    messages: list[dict] = []
    history = data.get("history") or []
    if not isinstance(history, list):
        raise _RowError("'history' must be a list of [question, answer] pairs")
    for i, pair in enumerate(history, start=1):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _RowError(f"history entry {i} is not a [question, answer] pair")
        messages += [
            {"role": "user", "content": _text(pair[0])},
            {"role": "assistant", "content": _text(pair[1])},
        ]
    messages.append({"role": "user", "content": prompt})
    output = _text(data.get("output"))
    if output.strip():
        messages.append({"role": "assistant", "content": output})
    return _finish(
        messages, _system_text(data.get("system"), "system"), _label(data.get("label")), line, split
    )


def _tool_call(value: str) -> list[dict] | None:
    """ShareGPT tool calls hold JSON like {"name": ..., "arguments": {...}}; TRL wants tool_calls."""
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return None
    calls = parsed if isinstance(parsed, list) else [parsed]
    out = []
    for call in calls:
        if not isinstance(call, dict) or "name" not in call:
            return None
        out.append(
            {
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call.get("arguments", call.get("parameters", {})),
                },
            }
        )
    return out


def _from_sharegpt(data: Any, line: int | None, split: str | None) -> NewExample:
    data, turns = _turns(
        data,
        "conversations",
        '{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}',
        '{"from", "value"} turns',
    )
    system = _system_text(data.get("system"), "system")
    messages: list[dict] = []
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise _RowError(f"turn {i} is not an object with 'from' and 'value'")
        speaker, value, role = sharegpt_turn(t)
        if role is None:
            raise _RowError(
                f"turn {i} comes from {speaker!r}, which is not a known speaker (expected human, gpt, "
                "system, function_call or observation)"
            )
        if value is not None and not isinstance(value, str):
            raise _RowError(f"turn {i} ({speaker}) has a 'value' that is not text")
        value = value or ""
        if role == "system":
            if messages:
                raise _RowError(f"turn {i} is a system turn, but a system turn may only come first")
            system = value or system
            continue
        if role == "call":
            calls = _tool_call(value)
            if calls is None:
                messages.append({"role": "assistant", "content": value})
            elif messages and messages[-1]["role"] == "assistant" and "tool_calls" not in messages[-1]:
                messages[-1]["tool_calls"] = calls  # "gpt: let me check" then the call: one assistant turn
            else:
                messages.append({"role": "assistant", "tool_calls": calls})
            continue
        messages.append({"role": role, "content": value})
    if not messages:
        raise _RowError("the conversation has only a system turn")
    return _finish(messages, system, _label(data.get("label")), line, split)


@dataclass
class _TableMap:
    columns: dict[str, str]
    label_from_response: bool = False


def _from_table(data: Any, cmap: _TableMap, line: int | None, split: str | None) -> NewExample:
    data = _require_object(data)
    missing = [c for c in cmap.columns.values() if c not in data]
    if missing:
        raise _RowError(
            f"has no field {missing[0]!r}; every record needs the mapped fields "
            f"({', '.join(repr(c) for c in cmap.columns.values())})"
        )

    def column(fld: str) -> str:
        try:
            return _text(data[cmap.columns[fld]])
        except _RowError as exc:
            raise _RowError(f"column {cmap.columns[fld]!r} {exc}") from None

    prompt_col = cmap.columns["prompt"]
    prompt = column("prompt")
    if not prompt.strip():
        raise _RowError(f"the prompt ({prompt_col!r}) is empty; fill it in or delete the row")
    messages = [{"role": "user", "content": prompt}]
    response = column("response") if "response" in cmap.columns else ""
    if response.strip():
        messages.append({"role": "assistant", "content": response})
    system = column("system") if "system" in cmap.columns else ""
    label = (column("label").strip() or None) if "label" in cmap.columns else None
    if cmap.label_from_response and label is None:
        label = _label(response)
    return _finish(messages, system or None, label, line, split)


def _looks_categorical(values: list[str]) -> bool:
    answered = [v.strip() for v in values if v and v.strip()]
    if len(answered) < 2:
        return False
    distinct = set(answered)
    return len(distinct) <= min(LABEL_MAX_DISTINCT, max(2, len(answered) // 2)) and all(
        len(v) <= LABEL_MAX_CHARS and "\n" not in v for v in distinct
    )


# -- preference data (read by core/preferences.py; here so example imports refuse it) ----------

TRL_PREFERENCE = "trl-preference"
SHAREGPT_RANKING = "sharegpt-ranking"
UNPAIRED = "unpaired"
FORM_NAMES = {
    TRL_PREFERENCE: "TRL preference form (prompt / chosen / rejected)",
    SHAREGPT_RANKING: "ranking form (conversations / chosen / rejected)",
    UNPAIRED: "unpaired form (answers labelled true / false)",
}


def form_of_keys(keys: set[str], labels: Iterable[Any] = ()) -> str | None:
    """Which preference form records with these fields are in, or None (not preference data).

    ``messages`` with a ``label`` counts as unpaired only when the labels are true/false: the
    project's own exports write category labels there.
    """
    if {"chosen", "rejected"} <= keys:
        return SHAREGPT_RANKING if "conversations" in keys or "instruction" in keys else TRL_PREFERENCE
    if "completion" in keys and "label" in keys:
        return UNPAIRED
    if "conversations" in keys and "kto_tag" in keys:
        return UNPAIRED
    if "messages" in keys and "label" in keys:
        values = [v for v in labels if v is not None]
        if values and all(isinstance(v, bool) for v in values):
            return UNPAIRED
    return None


def form_of_rows(rows: list[_Row]) -> str | None:
    """The preference form of the first records read from a file, or None."""
    keys: set[str] = set()
    labels: list[Any] = []
    for r in rows[:PREVIEW_ROWS]:
        if isinstance(r.data, dict):
            keys |= set(r.data)
            labels.append(r.data.get("label"))
    return form_of_keys(keys, labels)
