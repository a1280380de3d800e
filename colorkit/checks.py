"""Checks of the values a user gives, shared by the edges that take them (the CLI,
``TrainConfig``, ``models.build``, the API, hints files).

Python counts ``True`` as the integer 1, so "is it a number?" needs care: these
helpers answer it once. Each ``check_*`` returns the value or raises
``ColorkitError`` with one sentence naming the option and what it must be.
"""

from __future__ import annotations

import math

import numpy as np

from colorkit.errors import ColorkitError


def is_whole(value) -> bool:
    """An integer (Python's or numpy's), and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A finite integer or float (Python's or numpy's), and not a bool."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _bounds(low, high, low_open: bool = False) -> str:
    if high is None:
        return f", {'above' if low_open else 'at least'} {low}"
    return f" in {'(' if low_open else '['}{low}, {high}]"


def check_whole(value, name: str, low=None, high=None) -> int:
    """``value`` as an int, refused unless a whole number within [low, high] (either bound optional)."""
    if not is_whole(value) or (low is not None and value < low) or (high is not None and value > high):
        span = "" if low is None else _bounds(low, high)
        raise ColorkitError(f"{name} must be a whole number{span}, got {value!r}")
    return int(value)


def check_real(value, name: str, low=None, high=None, low_open: bool = False) -> float:
    """``value`` as a float, refused unless finite and within [low, high] ((low, high] with ``low_open``)."""
    if not is_real(value) or _below(value, low, low_open) or (high is not None and value > high):
        span = "" if low is None else _bounds(low, high, low_open)
        raise ColorkitError(f"{name} must be a number{span}, got {value!r}")
    return float(value)


def _below(value, low, low_open: bool) -> bool:
    return low is not None and (value <= low if low_open else value < low)


def check_flag(value, name: str) -> bool:
    """``value``, refused unless True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ColorkitError(f"{name} must be True or False, got {value!r}")
    return bool(value)
