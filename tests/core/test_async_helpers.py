"""The small asyncio helpers: waiting for an event or a timeout without losing a cancellation."""

from __future__ import annotations

import asyncio

from stent._async import wait_event_or_timeout
from stent.clocks import FakeClock, SystemClock


async def test_a_cancellation_during_the_cleanup_is_not_lost() -> None:
    """A task looping on wait_event_or_timeout stops when cancelled, whichever loop turn the cancel lands in
    (it used to be swallowed while the helper cancelled its inner waits)."""
    for turns in range(10):
        event = asyncio.Event()

        async def loop(event: asyncio.Event = event) -> None:
            while True:
                await wait_event_or_timeout(event, SystemClock(), 10)  # the event wakes it; no real wait
                event.clear()

        task = asyncio.ensure_future(loop())
        for _ in range(3):
            await asyncio.sleep(0)
        event.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done, f"the cancel that landed {turns} turns after the wake-up was lost"
        assert task.cancelled()


async def test_the_event_or_the_timeout_decides() -> None:
    """The result says whether the event was set; the timeout runs on the given clock."""
    clock = FakeClock()
    event = asyncio.Event()
    waiting = asyncio.ensure_future(wait_event_or_timeout(event, clock, 5))
    await asyncio.sleep(0)
    clock.advance(5)
    assert await waiting is False
    event.set()
    assert await wait_event_or_timeout(event, clock, 5) is True
