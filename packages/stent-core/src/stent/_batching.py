"""Group calls: many callers in one turn of the event loop share one call of an operation that takes a batch;
and a pipeline of batch calls, a few under way at a time.

This is how completions share a commit and notifications share a publish.  The first caller of a turn schedules
a flush for the end of the turn (``call_soon``), so everything issued in that turn goes together; while a flush
is in flight, new items gather for the next one, so a busy process sends fewer, larger batches (a group commit)
and an idle one pays no wait at all.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")
R = TypeVar("R")

#: Runs a batch: one result per item, in order; an exception in an item's place is raised to that item's caller.
BatchRun = Callable[[list[I]], Awaitable[Sequence[R | BaseException]]]


class GroupCall(Generic[I, R]):
    """``await group(item)`` runs ``item`` as part of the next batch and returns its result (or raises its error).

    When the batch call itself raises, every caller in that batch gets the error (each its own copy, so their
    tracebacks stay apart).  A caller that is cancelled while waiting does not withdraw its item from a batch
    already sent: the operation may still land, exactly as when a reply is lost.
    """

    def __init__(self, run: BatchRun[I, R], *, max_batch: int = 500) -> None:
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[tuple[I, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the rest of this turn's callers add their items
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                await self._send(batch)
        finally:
            self._flusher = None
            # Only when this flusher was cancelled (its loop is closing): nobody will send these, so say so.
            left, self._waiting = self._waiting, []
            for _, future in left:
                future.cancel()

    async def _send(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(_own_copy(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _own_copy(exc: BaseException) -> BaseException:
    try:
        return copy.copy(exc)
    except Exception:
        return exc


async def pipelined(calls: Sequence[Callable[[], Awaitable[R]]], depth: int = 2) -> list[R]:
    """Each of ``calls`` awaited, ``depth`` at a time in order; their results in order.  The first failure is
    raised once the calls under way have ended (none is left running), and no later call starts."""
    results: list[R] = []
    running: deque[asyncio.Future[R]] = deque()
    try:
        for call in calls:
            running.append(asyncio.ensure_future(call()))
            if len(running) >= depth:
                results.append(await running.popleft())
        while running:
            results.append(await running.popleft())
    finally:
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    return results
