"""Durations: seconds, timedeltas and text such as "1h30m" read as one number of seconds."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from stent.durations import parse_duration, to_timedelta
from stent.errors import ConfigurationError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(90, 90.0, id="int"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(Fraction(1, 4), 0.25, id="fraction"),
        pytest.param(timedelta(minutes=2, microseconds=500), 120.0005, id="timedelta"),
        pytest.param("90", 90.0, id="bare-number-is-seconds"),
        pytest.param("2.5", 2.5, id="bare-decimal-number"),
        pytest.param("45s", 45.0, id="seconds"),
        pytest.param("1.5s", 1.5, id="fractional-seconds"),
        pytest.param(".5s", 0.5, id="leading-point"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param("10m", 600.0, id="minutes"),
        pytest.param("1h30m", 5400.0, id="hours-minutes"),
        pytest.param("1h 30m", 5400.0, id="spaced-parts"),
        pytest.param(" 2 h ", 7200.0, id="spaces-around-number-and-unit"),
        pytest.param("2d", 172800.0, id="days"),
        pytest.param("1w", 604800.0, id="weeks"),
        pytest.param("1w2d3h4m5s6ms", 604800 + 172800 + 10800 + 240 + 5 + 0.006, id="every-unit"),
    ],
)
def test_accepted_forms_give_seconds(value: Any, seconds: float) -> None:
    """Each accepted form gives its length in seconds."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(-1, "must not be negative", id="negative-int"),
        pytest.param(-0.5, "must not be negative", id="negative-float"),
        pytest.param("-5s", "must not be negative", id="negative-text"),
        pytest.param(timedelta(seconds=-1), "must not be negative", id="negative-timedelta"),
        pytest.param(math.nan, "finite", id="nan"),
        pytest.param(math.inf, "finite", id="inf"),
        pytest.param("1" * 400, "finite", id="text-overflowing-to-inf"),
        pytest.param(10**400, "too large", id="int-too-large-for-float"),
        pytest.param(True, "a bool is not a duration", id="bool"),
        pytest.param(None, "None is not a duration", id="none"),
        pytest.param([1], "a list is not a duration", id="list"),
        pytest.param(Decimal(1), "a Decimal is not a duration", id="decimal"),
        pytest.param("1x", "cannot read '1x'", id="unknown-unit"),
        pytest.param("h", "cannot read 'h'", id="unit-without-number"),
        pytest.param("", "it is empty", id="empty"),
        pytest.param("   ", "it is empty", id="blank"),
        pytest.param("1h1h", "the unit 'h' appears twice", id="repeated-unit"),
        pytest.param("30m1h", "put larger units first", id="units-out-of-order"),
        pytest.param("1h30", "cannot read '30'", id="trailing-bare-number"),
        pytest.param("1.2.3s", "cannot read", id="malformed-number"),
        pytest.param("1e3s", "cannot read", id="exponent"),
        pytest.param("1hours", "cannot read", id="long-unit-name"),
        pytest.param("1H", "cannot read", id="uppercase-unit"),
        pytest.param("1mss", "cannot read", id="stray-letters"),
    ],
)
def test_rejected_values_raise_configuration_error_saying_why(value: Any, problem: str) -> None:
    """Each bad value raises ConfigurationError naming the value, the problem and the accepted forms."""
    with pytest.raises(ConfigurationError) as caught:
        parse_duration(value)
    message = str(caught.value)
    assert problem in message
    assert "Accepted:" in message and "'1h30m'" in message


@pytest.mark.parametrize("zero", [0, 0.0, "0", "0s", "0h 0m", timedelta(0)])
def test_zero_is_rejected_unless_allowed(zero: Any) -> None:
    """Zero raises 'must be positive' by default and is 0.0 with allow_zero=True."""
    with pytest.raises(ConfigurationError, match="must be positive"):
        parse_duration(zero)
    assert parse_duration(zero, allow_zero=True) == 0.0


def test_error_names_the_option() -> None:
    """The name argument appears in the error, so the user knows which option was wrong."""
    with pytest.raises(ConfigurationError, match="invalid lease_duration '5 minutes'"):
        parse_duration("5 minutes", name="lease_duration")


def test_long_values_are_shortened_in_errors() -> None:
    """A huge bad value is cut short in the error message."""
    with pytest.raises(ConfigurationError) as caught:
        parse_duration("x" * 10_000)
    assert len(str(caught.value)) < 600


def test_configuration_error_is_a_value_error() -> None:
    """Callers catching ValueError also catch a bad duration."""
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_to_timedelta_converts_every_form() -> None:
    """to_timedelta gives a timedelta for seconds and text alike."""
    assert to_timedelta("1h30m") == timedelta(hours=1, minutes=30)
    assert to_timedelta(2.5) == timedelta(seconds=2.5)
    assert to_timedelta("0s", allow_zero=True) == timedelta(0)


def test_to_timedelta_keeps_a_timedelta_exact() -> None:
    """A timedelta passed in comes back unchanged, microseconds and all."""
    value = timedelta(days=10_000, microseconds=1)
    assert to_timedelta(value) is value


def test_to_timedelta_rejects_what_parse_duration_rejects() -> None:
    """to_timedelta raises the same ConfigurationError for bad input and for zero."""
    with pytest.raises(ConfigurationError, match="must be positive"):
        to_timedelta(0)
    with pytest.raises(ConfigurationError, match="appears twice"):
        to_timedelta("1m1m")


def test_to_timedelta_reports_durations_too_long_for_a_timedelta() -> None:
    """A finite duration beyond timedelta's range raises ConfigurationError, not OverflowError."""
    with pytest.raises(ConfigurationError, match="longer than a timedelta can hold"):
        to_timedelta(1e300)
