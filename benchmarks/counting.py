"""Counting the storage port calls an executor makes, by wrapping the methods of its Storage object.

The wrapper is installed on the instance (each port method of :class:`stent.ports.Storage` replaced by a counting
one), not around it, so the object keeps its type: ``PostgresNotifier.hears_storage`` still recognises a
PostgreSQL storage that announces its own changes.  Calls a storage method makes to another port method of its
own are not counted: a count is of round trips core asked for.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from stent.ports import Storage

#: Every coroutine method the Storage port declares.
PORT_METHODS: tuple[str, ...] = tuple(
    sorted(name for name, value in vars(Storage).items() if inspect.iscoroutinefunction(value))
)

_inside = contextvars.ContextVar("benchmarks_inside_storage_call", default=False)


def _is_root(record: object) -> bool:
    """Whether a completion's result is the record of a root task (its execution finished)."""
    return hasattr(record, "parent_task_id") and record.parent_task_id is None


class StorageCalls:
    """Counts of the port calls made on one Storage object, and a few facts read from their results."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.completed_roots = 0  # complete_task calls that finished an execution's root task
        self.empty_claims = 0  # claim_tasks calls that found nothing
        self.last_claim_empty = False  # whether the latest claim to finish found nothing
        self._changed = asyncio.Event()
        for name in PORT_METHODS:
            method = getattr(storage, name, None)
            if method is not None:  # an adapter older than the port may lack a newer method
                setattr(storage, name, self._counted(name, method))

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def _counted(self, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            if _inside.get():
                return await method(*args, **kwargs)
            token = _inside.set(True)
            self.calls[name] += 1
            self.in_flight += 1
            try:
                result = await method(*args, **kwargs)
            finally:
                self.in_flight -= 1
                _inside.reset(token)
                self._changed.set()
            self._observe(name, result)
            return result

        return counted

    def _observe(self, name: str, result: Any) -> None:
        if name == "complete_task":
            self.completed_roots += _is_root(result)
        elif name == "complete_tasks":  # a group commit: records, or the error each failed completion got
            self.completed_roots += sum(_is_root(each) for each in result)
        elif name == "claim_tasks":
            self.last_claim_empty = not result
            self.empty_claims += not result

    async def until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Return once ``condition()`` holds, checked whenever a call ends (and every 10 ms, for conditions on
        other things); raise TimeoutError naming ``what`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"benchmark: {what} did not happen within {timeout:g}s")
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.01))
            except TimeoutError:
                pass

    async def settled(self, timeout: float = 30.0) -> None:
        """Return once no call is in flight and a few turns of the event loop started none."""
        while True:
            before = self.total
            for _ in range(5):
                await asyncio.sleep(0)
            await self.until(lambda: self.in_flight == 0, timeout, "the storage calls in flight finishing")
            if self.total == before:
                return

    async def idle(
        self, running: Callable[[], int], timeout: float = 30.0, *, after_empty_claim: bool = True
    ) -> None:
        """Return once the worker is idle: no call is in flight and ``running()`` (its running tasks) is 0, and,
        with ``after_empty_claim``, its last claim found nothing (a worker that just found work claims again only
        at its next poll, so between rounds of a latency benchmark that wait is not worth making); it then waits
        for a notification or its next poll."""
        await self.until(
            lambda: (self.last_claim_empty or not after_empty_claim) and self.in_flight == 0 and running() == 0,
            timeout,
            "the worker becoming idle",
        )
