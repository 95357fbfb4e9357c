"""Growing numpy buffers for live curves.

A plot keeps one ``Series`` per curve: values are written into preallocated
arrays that double when full, so appending is O(1) and a redraw hands
pyqtgraph views of the arrays, never copies of Python lists.
"""

from __future__ import annotations

import numpy as np


class Series:
    """(x, y) points in preallocated float64 arrays; x must grow.

    A point whose x is not beyond the last one (a run resumed from an earlier
    checkpoint repeats steps) first drops the points it replaces.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._x = np.empty(max(16, capacity), dtype=np.float64)
        self._y = np.empty(max(16, capacity), dtype=np.float64)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def _grow(self, need: int) -> None:
        size = len(self._x)
        while size < need:
            size *= 2
        if size != len(self._x):
            for name in ("_x", "_y"):
                old = getattr(self, name)
                new = np.empty(size, dtype=np.float64)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)

    def _rewind(self, x: float) -> None:
        if self.n and x <= self._x[self.n - 1]:
            self.n = int(np.searchsorted(self._x[: self.n], x, side="left"))

    def append(self, x: float, y: float) -> None:
        self._rewind(x)
        if self.n == len(self._x):
            self._grow(self.n + 1)
        self._x[self.n] = x
        self._y[self.n] = y
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]

    def last(self) -> float | None:
        return float(self._y[self.n - 1]) if self.n else None


class SmoothedSeries(Series):
    """An exponential moving average of the values appended (debiased, as TensorBoard draws it)."""

    def __init__(self, weight: float = 0.9, capacity: int = 1024) -> None:
        super().__init__(capacity)
        self.weight = weight
        self._ema = 0.0
        self._count = 0

    def append(self, x: float, y: float) -> None:
        if self.n and x <= self._x[self.n - 1]:
            self._rewind(x)
            self._restart_from_kept()
        if not np.isfinite(y):
            return
        self._ema = self.weight * self._ema + (1 - self.weight) * y
        self._count += 1
        super().append(x, self._ema / (1 - self.weight ** self._count))

    def _restart_from_kept(self) -> None:
        # Continue from the last kept smoothed value (as if it were the running average).
        if self.n:
            self._count = self.n
            self._ema = float(self._y[self.n - 1]) * (1 - self.weight ** self._count)
        else:
            self._ema, self._count = 0.0, 0

    def clear(self) -> None:
        super().clear()
        self._ema, self._count = 0.0, 0
