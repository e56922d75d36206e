"""Axis helpers shared by the server-drawn SVG charts (the Train tab's and the
comparison's): which epochs to label, and a round top for an axis of losses."""

from __future__ import annotations


def epoch_ticks(first: int, last: int, count: int = 6) -> list[int]:
    if last - first < count:
        return list(range(first, last + 1))
    step = max(1, round((last - first) / (count - 1)))
    ticks = list(range(first, last, step))
    if last - ticks[-1] < step / 2:
        ticks.pop()
    return [*ticks, last]


def nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    for ceiling in (0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100):
        if value <= ceiling:
            return float(ceiling)
    return float(int(value) + 1)
