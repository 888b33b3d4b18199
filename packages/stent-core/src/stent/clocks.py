"""Clocks: the only place core gets time from.

:class:`SystemClock` reads the real clock.  :class:`FakeClock` stands still until a test advances it, waking
the sleepers whose time has come, so timers, retries and lease expiry can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

# Bound once at import: inside durable functions ``asyncio.sleep`` may be replaced by a durable sleep while a
# worker runs, and the clocks must keep sleeping for real.
_asyncio_sleep = asyncio.sleep


def wake(future: asyncio.Future[None], _: object = None) -> None:
    """Resolve ``future`` unless it is done already (a timer's, or a done-callback's, target)."""
    if not future.done():
        future.set_result(None)


def cancels_its_timer(future: asyncio.Future[None], handle: asyncio.TimerHandle) -> asyncio.Future[None]:
    """``future``, whose timer ``handle`` leaves the loop's heap when the sleep is abandoned (cancelled) early."""
    future.add_done_callback(functools.partial(_drop_timer, handle))
    return future


def _drop_timer(handle: asyncio.TimerHandle, future: asyncio.Future[None]) -> None:
    if future.cancelled():
        handle.cancel()


class SystemClock:
    """Real time: ``datetime.now(timezone.utc)``, ``time.monotonic`` and the event loop's timers.

    ``sleep`` returns a future (like ``asyncio.sleep`` without its coroutine), so a wait for "this or a timeout"
    can race it against something else without a task.  ``sleep(0)`` yields to the event loop once.
    """

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> Awaitable[None]:
        if not seconds > 0:  # also NaN
            return _asyncio_sleep(0)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        return cancels_its_timer(future, loop.call_later(seconds, wake, future))


class FakeClock:
    """A clock that moves only when :meth:`advance` is called.

    ``sleep`` parks the caller until the clock has been advanced past its wake time.  ``sleep(0)`` yields to
    the event loop once, like ``asyncio.sleep(0)``.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2030, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be an aware datetime (use tzinfo=timezone.utc)")
        self._start = start
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def sleep(self, seconds: float) -> Awaitable[None]:
        # The wake time is fixed when sleep() is called, not when the caller's coroutine first runs, so a test
        # advancing the clock in between cannot stretch the sleep.
        if seconds <= 0:
            return _asyncio_sleep(0)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._seq), future))
        return future

    @property
    def sleepers(self) -> int:
        """How many coroutines are parked in :meth:`sleep`."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_wake(self) -> float | None:
        """Seconds until the earliest sleeper wakes, or ``None`` when nobody sleeps."""
        live = [t for t, _, f in self._sleepers if not f.done()]
        return None if not live else max(0.0, min(live) - self._elapsed)

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(
                f"FakeClock.advance() got {seconds:g} seconds, but a clock cannot go backwards: pass a duration of"
                " 0 or more (to start from an earlier time, make a new FakeClock(start=...))"
            )
        self._elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
