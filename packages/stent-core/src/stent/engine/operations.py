"""The durable operations a workflow calls besides durable functions: sleep, signals, context, gather.

Each one that is a step takes its step number when it is called, before anything is awaited, like a durable
function call does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from datetime import timedelta
from typing import Any

from stent.clocks import SystemClock
from stent.durations import parse_duration
from stent.engine.context import current_task
from stent.errors import ConfigurationError


def sleep(duration: float | timedelta | str) -> Coroutine[Any, Any, None]:
    """Sleep durably inside a durable function: the wake time is recorded once, so it survives restarts.

    Outside a durable function this is an ordinary sleep.
    """
    seconds = parse_duration(duration, allow_zero=True, name="sleep duration")
    ctx = current_task()
    if ctx is None:
        return _plain_sleep(seconds)
    return ctx.sleep(ctx.next_step(), seconds)


async def _plain_sleep(seconds: float) -> None:
    await SystemClock().sleep(seconds)


def wait_for_signal(name: str, timeout: float | timedelta | str | None = None) -> Coroutine[Any, Any, Any]:
    """Wait for the next signal called ``name`` sent to this execution, and return its payload.

    Signals sent before the wait are kept and consumed oldest first, each exactly once.  With ``timeout``,
    raise :class:`~stent.errors.SignalTimeout` (a ``TimeoutError``) if none arrives in time.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a signal name is a non-empty string, got {name!r}")
    seconds = None if timeout is None else parse_duration(timeout, name="signal timeout")
    ctx = current_task()
    if ctx is None:
        raise ConfigurationError("wait_for_signal() works only inside a durable function run by a worker")
    return ctx.wait_signal(ctx.next_step(), name, seconds)


def context(*, counters: dict[str, int] | None = None, state: dict[str, Any] | None = None) -> None:
    """Add to this execution's counters and set keys of its custom state, with this task's completion.

    The changes land only when the task completes, in the same transaction: a run that crashed or failed adds
    nothing.  Read them back with ``state_of``.
    """
    ctx = current_task()
    if ctx is None:
        raise ConfigurationError("Stent.context() works only inside a durable function run by a worker")
    for key, amount in (counters or {}).items():
        if not isinstance(key, str) or isinstance(amount, bool) or not isinstance(amount, int):
            raise ConfigurationError(f"counters map names to int increments, got {key!r}: {amount!r}")
    for key in state or {}:
        if not isinstance(key, str):
            raise ConfigurationError(f"state keys are strings, got {key!r}")
    ctx.add_update(counters, state)


async def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await durable calls in parallel; results in order, the first failure raised."""
    return list(await asyncio.gather(*awaitables))


# -- asyncio.sleep inside durable functions ---------------------------------------------------------------

PROMOTE_AT = 1.0  # seconds: asyncio.sleep of at least this long inside a durable function sleeps durably
_original_sleep = asyncio.sleep
_installed = 0
_lock = threading.Lock()


def _promoted_sleep(delay: float, result: Any = None) -> Coroutine[Any, Any, Any]:
    ctx = current_task()
    if ctx is None or not isinstance(delay, (int, float)) or delay < PROMOTE_AT or result is not None:
        return _original_sleep(delay, result)
    return ctx.sleep(ctx.next_step(), float(delay))


def install_sleep_promotion() -> None:
    """Make ``asyncio.sleep(d)`` with d >= 1 s durable inside durable functions (while a worker runs).

    Code outside durable functions is unaffected: the replacement defers to the original there.
    """
    global _installed
    with _lock:
        _installed += 1
        if _installed == 1:
            asyncio.sleep = _promoted_sleep


def uninstall_sleep_promotion() -> None:
    global _installed
    with _lock:
        _installed = max(0, _installed - 1)
        if _installed == 0 and asyncio.sleep is _promoted_sleep:
            asyncio.sleep = _original_sleep
