"""Small asyncio helpers shared by the worker shell, the task runner, the waiter registry and ``wait_for``.

Waiting for something or a timeout is on every hot path (each cycle of a worker, each wait for a result), so it
is done with futures and callbacks: no helper task, and the waiter resumes on the very loop turn that wakes it.
The timeout runs on the Clock port, so a fake or simulated clock drives it.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from stent.clocks import wake
from stent.ports import Clock


async def _await_gate(gate: asyncio.Future[None], clock: Clock, timeout: float | None) -> None:
    """Await ``gate``, which a timer on ``clock`` opens after ``timeout`` seconds (``None``: no timer)."""
    if timeout is None:
        await gate
        return
    sleeping = clock.sleep(timeout)
    # FakeClock, SimClock and SystemClock return a future; a clock whose sleep is a coroutine costs a task.
    timer = sleeping if asyncio.isfuture(sleeping) else asyncio.ensure_future(sleeping)
    timer.add_done_callback(functools.partial(wake, gate))
    try:
        await gate
    finally:
        timer.cancel()


async def wait_done(future: asyncio.Future[Any], clock: Clock, timeout: float | None) -> bool:
    """Wait until ``future`` is done or ``timeout`` seconds pass on ``clock``; return whether it is done.

    Cancelling the caller does not cancel ``future``.
    """
    if future.done():
        return True
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    opener = functools.partial(wake, gate)
    future.add_done_callback(opener)
    try:
        await _await_gate(gate, clock, timeout)
    finally:
        future.remove_done_callback(opener)
    return future.done()


class Wakeup:
    """A flag to wait for, like :class:`asyncio.Event`, whose wait takes a timeout on the Clock port."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, []
        for gate in waiters:
            wake(gate)

    def clear(self) -> None:
        self._set = False

    async def wait(self, clock: Clock, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` seconds pass on ``clock``; return whether it is set."""
        if self._set:
            return True
        if timeout is not None and timeout <= 0:
            await clock.sleep(0)  # still yield, so a caller looping on a due deadline never starves the loop
            return self._set
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(gate)
        try:
            await _await_gate(gate, clock, timeout)
        finally:
            if gate in self._waiters:  # the timer (or a cancellation) ended the wait, not set()
                self._waiters.remove(gate)
        return self._set
