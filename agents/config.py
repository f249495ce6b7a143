"""Frozen config dataclasses built from plain dicts (YAML, JSON) with clear errors for bad keys and values."""

from __future__ import annotations

import math
import types
import typing
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
    hints = typing.get_type_hints(config_class)
    return config_class(**{k: check_type(k, v, hints[k]) for k, v in values.items()})


def check_type(name: str, value: Any, annotation: Any) -> Any:
    """``value`` if it has the annotated type (ints pass as floats; lists as tuples, converted), else a ValueError.

    Settings come from YAML, JSON and the command line, where ``alpha=abc`` arrives as a string: refusing it here,
    naming the setting, beats a ``TypeError`` from deep inside the code that uses it. Annotations this does not
    understand (``Any``, classes of its own) pass unchecked.
    """
    ok, converted = _conforms(value, annotation)
    if not ok:
        raise ValueError(f"{name}={value!r} must be {_describe(annotation)}")
    return converted


def _conforms(value: Any, annotation: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or isinstance(annotation, typing.TypeVar):
        return True, value
    if annotation is None or annotation is type(None):
        return value is None, value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            ok, converted = _conforms(value, option)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in args, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), value
    if annotation is str:
        return isinstance(value, str), value
    if origin in (tuple, list) or annotation in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False, value
        if args and not ((origin is tuple and len(args) == 2 and args[1] is Ellipsis) or origin is list):
            if len(args) != len(value):  # tuple[int, float]: one type per position
                return False, value
            items = [_conforms(v, a) for v, a in zip(value, args, strict=True)]
        else:
            items = [_conforms(v, args[0]) for v in value] if args else [(True, v) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        return True, (tuple if (origin or annotation) is tuple else list)(v for _, v in items)
    if origin is dict or annotation is dict or origin is Mapping:
        return isinstance(value, Mapping), value
    return True, value


_NAMES = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers")}
_NAMES |= {str: ("a string", "strings"), dict: ("a mapping", "mappings")}


def _describe(annotation: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (tuple, list) or annotation in (tuple, list):
        homogeneous = args and (origin is list or args[-1] is Ellipsis)
        return "lists" if plural else "a list" + (f" of {_describe(args[0], plural=True)}" if homogeneous else "")
    names = _NAMES.get(annotation) or _NAMES.get(origin)
    if names is None:
        return getattr(annotation, "__name__", str(annotation))
    return names[plural]


def check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    """Raises ValueError unless ``value`` is a number with ``low <= value <= high`` (with open ends where asked)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok_low = number and (value > low if low_open else value >= low)
    ok_high = number and (value < high if high_open else value <= high)
    if not (ok_low and ok_high):
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


def check_settings(
    settings: Any, *, at_least: Mapping[str, float] | None = None, above: Mapping[str, float] | None = None
) -> None:
    """Checks fields of a settings dataclass: the annotated type, then ``value >= at_least[name]`` or ``> above``.

    For the ``__post_init__`` of program arguments and experiment settings, so that ``--rounds 0`` or
    ``minutes=-1`` is refused before anything runs; a None value (an optional setting left unset) passes.
    """
    hints = typing.get_type_hints(type(settings))
    for bounds, strict in ((at_least or {}, False), (above or {}, True)):
        for name, low in bounds.items():
            value = check_type(name, getattr(settings, name), hints[name])
            if value is None:
                continue
            if not math.isfinite(value) or (value <= low if strict else value < low):
                raise ValueError(f"{name}={value!r} must be {'>' if strict else '>='} {low}")


def check_seeds(seeds: Iterable[Any], name: str = "seeds") -> None:
    """Raises ValueError unless every seed is an integer >= 0 (what ``np.random.SeedSequence`` takes)."""
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"{name}: {seed!r} is not an integer >= 0")
