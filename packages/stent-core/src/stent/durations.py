"""Reading durations given as seconds, timedeltas or text such as ``"1h30m"``.

Every option that takes a duration goes through :func:`parse_duration`, so all of them accept the same forms
and reject bad input with the same clear :class:`~stent.errors.ConfigurationError`.
"""

from __future__ import annotations

import math
import numbers
import re
from datetime import timedelta

from stent.errors import ConfigurationError

UNIT_SECONDS: dict[str, float] = {
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
"""Seconds per unit, largest first: the order units must appear in a string."""

ACCEPTED_FORMS = (
    "seconds as an int or float (90, 1.5), a datetime.timedelta, or a string: a number of seconds ('90') or"
    " number+unit parts, largest unit first, each unit at most once ('45s', '1.5s', '500ms', '1h30m',"
    " '1h 30m', '2d', '1w'; units: w, d, h, m, s, ms)"
)

_ORDER = list(UNIT_SECONDS)
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE_NUMBER = re.compile(rf"\s*({_NUMBER})\s*")
# "ms" is tried before "m" so that "500ms" is not read as 500 minutes followed by a stray "s".
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|w|d|h|m|s)(?![a-z])\s*")


def parse_duration(value: object, *, allow_zero: bool = False, name: str = "duration") -> float:
    """Return ``value`` as a number of seconds.

    Accepts int or float seconds, a ``timedelta``, and strings like ``"1h30m"``, ``"1h 30m"``, ``"45s"``,
    ``"1.5s"``, ``"500ms"``, ``"2d"``, ``"1w"`` or ``"90"`` (seconds).  Raises ConfigurationError, naming
    ``name``, for negative, NaN or infinite values, bools, other types, malformed strings (unknown or repeated
    units, units out of order), and zero unless ``allow_zero`` is true.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, timedelta, str)):
        kind = "None" if value is None else f"a {type(value).__name__}"
        raise _error(name, value, f"{kind} is not a duration")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _parse_text(value, name)
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise _error(name, value, "it is too large") from None
    if math.isnan(seconds) or math.isinf(seconds):
        raise _error(name, value, "it must be a finite number of seconds")
    if seconds < 0:
        raise _error(name, value, "it must not be negative")
    if seconds == 0 and not allow_zero:
        raise _error(name, value, "it must be positive")
    return seconds


def to_timedelta(value: object, *, allow_zero: bool = False, name: str = "duration") -> timedelta:
    """Return ``value`` (any form :func:`parse_duration` accepts) as a ``timedelta``.

    A timedelta comes back unchanged, keeping its exact microseconds.
    """
    seconds = parse_duration(value, allow_zero=allow_zero, name=name)
    if isinstance(value, timedelta):
        return value
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise _error(name, value, "it is longer than a timedelta can hold") from None


def _parse_text(text: str, name: str) -> float:
    if not text.strip():
        raise _error(name, text, "it is empty")
    bare = _BARE_NUMBER.fullmatch(text)
    if bare:
        return float(bare.group(1))
    if text.strip().startswith("-"):
        raise _error(name, text, "it must not be negative")
    total = 0.0
    seen: list[str] = []
    position = 0
    while position < len(text):
        part = _PART.match(text, position)
        if part is None:
            raise _error(name, text, f"cannot read {text[position:].strip()!r:.40}")
        number, unit = part.group(1), part.group(2)
        if unit in seen:
            raise _error(name, text, f"the unit {unit!r} appears twice")
        if seen and _ORDER.index(unit) < _ORDER.index(seen[-1]):
            raise _error(name, text, f"{unit!r} comes after the smaller unit {seen[-1]!r}; put larger units first")
        seen.append(unit)
        total += float(number) * UNIT_SECONDS[unit]
        position = part.end()
    return total


def _error(name: str, value: object, problem: str) -> ConfigurationError:
    return ConfigurationError(f"invalid {name} {value!r:.80}: {problem}. Accepted: {ACCEPTED_FORMS}.")
