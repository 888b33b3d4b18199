"""The small asyncio helpers: waiting for a flag, or for a future, or a timeout on the Clock port, without helper
tasks and without losing a cancellation."""

from __future__ import annotations

import asyncio

from stent._async import Wakeup, wait_done
from stent.clocks import FakeClock, SystemClock


async def test_a_cancellation_is_not_lost_whichever_turn_it_lands_in() -> None:
    """A task looping on Wakeup.wait stops when cancelled, whichever loop turn after a wake-up the cancel lands in
    (an earlier helper swallowed it while it cancelled its inner waits)."""
    for turns in range(10):
        wakeup = Wakeup()

        async def loop(wakeup: Wakeup = wakeup) -> None:
            while True:
                await wakeup.wait(SystemClock(), 10)  # the flag wakes it; no real wait
                wakeup.clear()

        task = asyncio.ensure_future(loop())
        for _ in range(3):
            await asyncio.sleep(0)
        wakeup.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done, f"the cancel that landed {turns} turns after the wake-up was lost"
        assert task.cancelled()


async def test_the_flag_or_the_timeout_decides() -> None:
    """The result says whether the flag was set; the timeout runs on the given clock."""
    clock = FakeClock()
    wakeup = Wakeup()
    waiting = asyncio.ensure_future(wakeup.wait(clock, 5))
    await asyncio.sleep(0)
    clock.advance(5)
    assert await waiting is False
    wakeup.set()
    assert await wakeup.wait(clock, 5) is True
    wakeup.clear()
    assert wakeup.is_set() is False


async def test_set_wakes_every_waiter_on_the_next_turn_and_leaves_no_timer() -> None:
    clock = FakeClock()
    wakeup = Wakeup()
    waiting = [asyncio.ensure_future(wakeup.wait(clock, 60)) for _ in range(3)]
    await asyncio.sleep(0)
    assert clock.sleepers == 3
    wakeup.set()
    assert await asyncio.gather(*waiting) == [True, True, True]
    assert clock.sleepers == 0, "a wait that the flag ended must cancel its timer"


async def test_a_due_timeout_still_yields_to_the_loop() -> None:
    """A caller looping on a deadline already past (timeout 0) lets other tasks run."""
    wakeup = Wakeup()
    ran: list[int] = []

    async def other() -> None:
        ran.append(1)

    asyncio.ensure_future(other())
    assert await wakeup.wait(FakeClock(), 0) is False
    assert ran == [1], "the other task did not run while the caller waited for a due timeout"


async def test_wait_done_returns_whether_the_future_finished_and_never_cancels_it() -> None:
    clock = FakeClock()
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(wait_done(future, clock, 5))
    await asyncio.sleep(0)
    clock.advance(5)
    assert await waiting is False
    assert not future.done()

    waiting = asyncio.ensure_future(wait_done(future, clock, 5))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert not future.cancelled(), "cancelling the waiter must leave the future it waited for alone"

    waiting = asyncio.ensure_future(wait_done(future, clock, None))
    await asyncio.sleep(0)
    future.set_result(7)
    assert await waiting is True
    assert clock.sleepers == 0


async def test_system_clock_sleep_is_a_future_that_takes_its_timer_along_when_cancelled() -> None:
    loop = asyncio.get_running_loop()
    sleeping = SystemClock().sleep(3600)
    assert isinstance(sleeping, asyncio.Future)
    timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
    sleeping.cancel()
    await asyncio.sleep(0)
    cancelled = [h for h in loop._scheduled if h.cancelled()]  # type: ignore[attr-defined]
    assert len(loop._scheduled) - len(cancelled) == timers_before - 1  # type: ignore[attr-defined]
    await SystemClock().sleep(0)  # zero (and less) only yields once
    await SystemClock().sleep(-1)
