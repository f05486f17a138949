"""Validation of settings at construction: every bad value is a ``ValueError`` naming the setting, the value and the
allowed range, raised before any data is read."""

import math
from collections.abc import Callable
from typing import Any


def check_int(name: str, value: Any, minimum: int = 1, allow_none: bool = False) -> None:
    """An integer (not a bool) of at least ``minimum``, or None when allowed.

    :param name: the setting's name
    :param value: its value
    :param minimum: smallest allowed value
    :param allow_none: whether None is allowed
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{extra}, got {value!r}")


def check_float(
    name: str, value: Any, low: float, high: float = math.inf, low_open: bool = True, high_open: bool = False
) -> None:
    """A finite real number in the interval from ``low`` to ``high`` (open or closed at each end).

    :param name: the setting's name
    :param value: its value
    :param low: lower end
    :param high: upper end (inf: unbounded)
    :param low_open: exclude ``low``
    :param high_open: exclude ``high``
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or math.isinf(high) else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")


def check_learning_rate(name: str, value: Any) -> None:
    """A positive finite learning rate, or a schedule (a callable of the remaining progress).

    :param name: the setting's name
    :param value: its value
    """
    if isinstance(value, Callable):  # type: ignore[arg-type]
        return
    check_float(name, value, 0.0)


def check_bool(name: str, value: Any) -> None:
    """A bool.

    :param name: the setting's name
    :param value: its value
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
