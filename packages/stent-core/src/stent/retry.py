"""``RetryPolicy``: how many attempts a task gets, how long to wait between them, and for which errors."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

import attrs

from stent.durations import parse_duration
from stent.errors import ConfigurationError
from stent.serialization import qualified_name


def _exception_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, Iterable) or isinstance(value, str):
        raise ConfigurationError(
            f"retry_for must be an exception class or a tuple of them, got {value!r}"
        )
    names = []
    for item in value:
        if isinstance(item, str) and item:
            names.append(item)  # a qualified name read back from storage
        elif isinstance(item, type) and issubclass(item, BaseException):
            names.append(qualified_name(item))
        else:
            raise ConfigurationError(f"retry_for entries must be exception classes, got {item!r}")
    if not names:
        raise ConfigurationError("retry_for is empty, so nothing would be retried; omit it to retry any Exception")
    return tuple(names)


def _initial_delay(value: Any) -> float:
    return parse_duration(value, name="initial_delay", allow_zero=True)


def _max_delay(value: Any) -> float:
    return parse_duration(value, name="max_delay", allow_zero=True)


def _jitter(value: Any) -> float:
    if value is True:
        return 0.25
    if value is False or value is None:
        return 0.0
    if isinstance(value, (int, float)) and 0.0 <= value <= 1.0 and not math.isnan(value):
        return float(value)
    raise ConfigurationError(f"jitter must be a fraction between 0 and 1 (or True for 0.25), got {value!r}")


@attrs.frozen
class RetryPolicy:
    """Retry a failed task up to ``max_attempts`` attempts in all.

    The n-th retry waits ``initial_delay * backoff_factor ** (n - 1)``, capped at ``max_delay``, then spread by
    ``jitter`` (a fraction: 0.25 waits between 75 % and 125 % of that), drawn from the executor's random source.
    Only exceptions that are instances of a class in ``retry_for`` are retried (by default any ``Exception``).
    Each retry is a new attempt with a fresh journal.
    """

    max_attempts: int = attrs.field(default=3)
    initial_delay: float = attrs.field(default=1.0, converter=_initial_delay)
    backoff_factor: float = attrs.field(default=2.0)
    max_delay: float = attrs.field(default=300.0, converter=_max_delay)
    jitter: float = attrs.field(default=0.0, converter=_jitter)
    retry_for: tuple[str, ...] = attrs.field(default=(Exception,), converter=_exception_names)

    @max_attempts.validator
    def _check_attempts(self, _: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"max_attempts must be an int of at least 1, got {value!r}")

    @backoff_factor.validator
    def _check_factor(self, _: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= value < math.inf:
            raise ConfigurationError(f"backoff_factor must be a finite number of at least 1.0, got {value!r}")

    def delay(self, retry_number: int, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        base = min(self.initial_delay * self.backoff_factor ** (retry_number - 1), self.max_delay)
        if self.jitter:
            base *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base)

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` is of a kind this policy retries."""
        names = {qualified_name(cls) for cls in type(exc).__mro__}
        return any(name in names for name in self.retry_for)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(**data)


NO_RETRY = RetryPolicy(max_attempts=1)
