"""Small asyncio helpers shared by the worker shell and the waiter registry."""

from __future__ import annotations

import asyncio

from stent.ports import Clock


async def wait_event_or_timeout(event: asyncio.Event, clock: Clock, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass on ``clock``; return whether the event was set.

    The timeout runs on the Clock port, so a fake or simulated clock drives it.
    """
    if event.is_set():
        return True
    if timeout is None:
        await event.wait()
        return True
    if timeout <= 0:
        await clock.sleep(0)  # still yield, so a caller looping on a due deadline never starves the loop
        return event.is_set()
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Cancel the helpers and wait for them to end, without swallowing a cancellation of this task that
        # arrives meanwhile (asyncio.wait never raises the helpers' CancelledError, only this task's own).
        pending = [fut for fut in (waiter, sleeper) if not fut.done()]
        for fut in pending:
            fut.cancel()
        if pending:
            await asyncio.wait(pending)
    return event.is_set()
