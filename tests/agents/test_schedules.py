from __future__ import annotations

import math

import pytest

from perceptgym.agents.schedules import Schedule, exponential_schedule, linear_schedule


def test_constant():
    s = Schedule("constant", 0.3, 0.0, 10)
    assert [s(t) for t in (0, 5, 100)] == [0.3, 0.3, 0.3]


def test_linear_values():
    s = Schedule("linear", 1.0, 0.1, 10)
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.55)
    assert s(10) == pytest.approx(0.1)
    assert s(1000) == pytest.approx(0.1)
    assert linear_schedule(0.1, 0.5, 4, 2) == pytest.approx(0.3)  # increasing schedules work too


def test_exponential_values():
    s = Schedule("exponential", 1.0, 0.01, 100)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.1)  # geometric midpoint
    assert s(100) == pytest.approx(0.01)
    assert s(10**6) == 0.01
    assert exponential_schedule(0.5, 0.05, 10, 1) == pytest.approx(0.5 * math.exp(math.log(0.1) / 10))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "cosine"}, "choose one of"),
        ({"start": 1.5}, "out of range"),
        ({"duration": 0}, ">= 1"),
        ({"kind": "exponential", "start": 1.0, "end": 0.0}, "end > 0"),
    ],
)
def test_bad_schedules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)
