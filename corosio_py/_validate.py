"""Argument checks shared by the public API: clear errors at the call."""

from __future__ import annotations

import math
import time


def seconds(value: object, name: str = "seconds") -> float:
    """Return ``value`` as a float duration; a negative one means "expired".

    Raises ``TypeError`` for a non-number (``bool`` included) and
    ``ValueError`` for NaN.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    result = float(value)
    if math.isnan(result):
        raise ValueError(f"{name} must not be NaN")
    return result


def deadline_after(delay: object, name: str = "seconds") -> float:
    """The monotonic deadline ``delay`` seconds from now (clamped, no overflow)."""
    d = seconds(delay, name)
    now = time.monotonic()
    if d <= 0.0:
        return now + d if d > -1e9 else now - 1e9
    return now + min(d, 1e15)


def deadline(value: object, name: str = "deadline") -> float:
    """Return ``value`` as an absolute ``time.monotonic()`` deadline."""
    return seconds(value, name)
