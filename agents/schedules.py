"""Exploration schedules: ε (or any rate) as a function of a counter (episodes for tabular agents).

``linear`` goes from ``start`` to ``end`` in ``duration`` steps as in cleanrl's ``linear_schedule``;
``exponential`` multiplies by the same factor each step so that it also reaches ``end`` after ``duration``
(ε_t = start · (end/start)^(t/duration)); both stay at ``end`` afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perceptgym.agents.config import check_choice, check_positive_int, check_range

SCHEDULE_KINDS = ("constant", "linear", "exponential")


def constant_schedule(start: float, t: int) -> float:
    """Always ``start``."""
    return start


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Linear interpolation from ``start`` (t=0) to ``end`` (t >= duration)."""
    slope = (end - start) / duration
    return max(slope * t + start, end) if end <= start else min(slope * t + start, end)


def exponential_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Geometric decay from ``start`` to ``end`` over ``duration`` steps, then ``end``."""
    if t >= duration:
        return end
    return start * math.exp(math.log(end / start) * t / duration)


@dataclass(frozen=True)
class Schedule:
    """A validated schedule: call it with the counter to get the value."""

    kind: str = "constant"
    start: float = 0.1
    end: float = 0.1
    duration: int = 1

    def __post_init__(self) -> None:
        check_choice("schedule kind", self.kind, SCHEDULE_KINDS)
        check_range("schedule start", self.start, 0.0, 1.0)
        check_range("schedule end", self.end, 0.0, 1.0)
        check_positive_int("schedule duration", self.duration)
        if self.kind == "exponential" and (self.start <= 0 or self.end <= 0):
            raise ValueError(
                f"an exponential schedule needs start > 0 and end > 0, got start={self.start}, end={self.end}"
            )

    def __call__(self, t: int) -> float:
        if self.kind == "constant":
            return constant_schedule(self.start, t)
        if self.kind == "linear":
            return linear_schedule(self.start, self.end, self.duration, t)
        return exponential_schedule(self.start, self.end, self.duration, t)
