"""``SimClock``: the Clock port on a :class:`~stent.testing.sim.loop.SimLoop`'s virtual time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from stent.clocks import cancels_its_timer, wake
from stent.testing.sim.loop import SimLoop

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
"""Virtual time 0 as a wall-clock reading (before any worker's clock offset)."""


class SimClock:
    """Virtual time; ``offset`` seconds ahead of the fleet's true time (negative: behind), like a skewed host.

    ``monotonic()`` is the loop's time.  ``sleep`` returns a future (like :class:`~stent.clocks.FakeClock`), so the
    wake time is fixed when it is called.  A sleep called from a task in ``idle_tasks`` (a worker's polling loop)
    is an idle timer, which the simulator may fire late while the whole fleet has nothing to do.
    """

    def __init__(self, loop: SimLoop, offset: float = 0.0, *, idle_tasks: set[Any] | None = None) -> None:
        self.loop = loop
        self.offset = offset
        self.idle_tasks: set[Any] = idle_tasks if idle_tasks is not None else set()

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.loop.time() + self.offset)

    def monotonic(self) -> float:
        return self.loop.time()

    def sleep(self, seconds: float) -> asyncio.Future[None]:
        loop = self.loop
        future: asyncio.Future[None] = loop.create_future()
        if seconds <= 0:
            loop.call_soon(wake, future)
            return future
        when = loop.time() + seconds
        if _is_idle(self.idle_tasks):
            handle = loop.call_idle_at(when, wake, future)
        else:
            handle = loop.call_at(when, wake, future)
        return cancels_its_timer(future, handle)


def _is_idle(idle_tasks: set[Any]) -> bool:
    task = asyncio.current_task()
    if task is None:
        return False
    if task in idle_tasks:
        return True
    # The waiter registry's single poller: it only asks storage whether awaited tasks have finished.
    return getattr(task.get_coro(), "__qualname__", "") == "WaiterRegistry._poll_loop"
