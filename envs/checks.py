"""Argument checks shared by the perceptgym envs: each refusal is a ValueError that names the setting."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np


class ResetNeeded(gym.error.ResetNeeded, RuntimeError):
    """``step`` was called before ``reset`` or after the episode terminated.

    Both a Gymnasium ``ResetNeeded`` (what ``OrderEnforcing`` raises) and a ``RuntimeError`` (what the
    perceptgym programs report as one line).
    """


def is_int(value: object) -> bool:
    """True for Python and numpy integers; False for bools (``n_cars=True`` is a mistake, not 1)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: object) -> bool:
    """True for Python and numpy integers and floats, bools excluded (NaN and inf included)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: object, low: int = 0) -> int:
    if not is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_real(name: str, value: object, condition: str = "") -> float:
    """A finite number; ``condition`` ("> 0", ">= 0", "<= 0") adds a sign constraint."""
    ok = is_real(value) and math.isfinite(value)
    if ok and condition:
        ok = {">= 0": value >= 0, "<= 0": value <= 0, "> 0": value > 0}[condition]
    if not ok:
        raise ValueError(f"{name} must be a finite number{' ' + condition if condition else ''}, got {value!r}")
    return float(value)


def check_seed(seed: object) -> int | None:
    """``reset(seed=...)``: None or an integer >= 0 (numpy integers too, which Gymnasium itself refuses)."""
    if seed is None:
        return None
    if not is_int(seed) or seed < 0:
        raise ValueError(f"reset(seed=...) must be None or an integer >= 0, got {seed!r}")
    return int(seed)


def check_options(options: object, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``reset(options=...)``: None or a dict whose keys are among ``allowed``."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"reset(options=...) must be None or a dict, got {type(options).__name__} {options!r}")
    unknown = set(options) - set(allowed)
    if unknown:
        hint = f"allowed are {allowed}" if allowed else "this env takes no options"
        raise ValueError(f"unknown reset options {sorted(map(str, unknown))}: {hint}")
    return dict(options)
