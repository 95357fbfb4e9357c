"""The WHERE clause of a filtered read (the Data page's examples, the preference pairs), built
one condition at a time with its parameters beside it, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any


class Where:
    """``Where("deleted = 0")``, then ``equal``/``contains``/``add``; ``sql`` joins them with AND."""

    def __init__(self, *always: str) -> None:
        self.clauses: list[str] = list(always)
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> None:
        """A condition with its ``?`` parameters, in order."""
        self.clauses.append(clause)
        self.params.extend(params)

    def equal(self, column: str, value: Any) -> None:
        """``column = value``; an empty value (None, "") asks for nothing."""
        if value:
            self.add(f"{column} = ?", value)

    def contains(self, text: str, columns: tuple[str, ...]) -> None:
        """Any of ``columns`` (SQL expressions: wrap a nullable one in IFNULL) holds ``text``, taken
        literally: ``%``, ``_`` and ``\\`` in it match only themselves. Empty text asks for nothing."""
        if not text:
            return
        needle = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        self.add(
            "(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")", *[needle] * len(columns)
        )

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses)
