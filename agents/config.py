"""Frozen config dataclasses built from plain dicts (YAML, JSON) with clear errors for bad keys and values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

C = TypeVar("C")


def config_from_dict(config_class: type[C], values: Mapping[str, Any] | C | None) -> C:
    """Builds ``config_class`` from a mapping, rejecting unknown keys with the list of valid ones.

    An instance of ``config_class`` is returned unchanged, None gives the defaults.
    """
    if isinstance(values, config_class):
        return values
    if values is None:
        return config_class()
    if is_dataclass(values):
        raise ValueError(f"expected a {config_class.__name__} or a dict, got a {type(values).__name__}")
    if not isinstance(values, Mapping):
        raise ValueError(f"{config_class.__name__}: expected a mapping of settings, got {values!r}")
    valid = [f.name for f in fields(config_class)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} setting(s) {unknown}; valid settings: {sorted(valid)}")
    return config_class(**values)


def check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    """Raises ValueError unless ``low <= value <= high`` (with open ends where asked)."""
    ok_low = value > low if low_open else value >= low
    ok_high = value < high if high_open else value <= high
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and ok_low and ok_high):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name}={value!r} is out of range; allowed: {interval}")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raises ValueError unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {allowed}")


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raises ValueError unless ``value`` is a positive (or non-negative) int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ValueError(f"{name}={value!r} must be an integer >= {0 if allow_zero else 1}")
