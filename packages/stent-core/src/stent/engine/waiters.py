"""One registry per process of everyone waiting for a task to finish.

Waiters are woken three ways, fastest first: a task finished by a worker in this process resolves them
directly; a "finished" notification makes the poller look at once (at the executions it names, when it names
them); and a single poller, shared by every waiter of the process, asks storage about all awaited tasks in one
call, backing off while nothing changes.  There is never a polling loop per waiter.

An execution dispatched by this process is known to exist and to have been unfinished a moment ago, so
``wait_for`` after ``dispatch`` need not read it first when notifications are heard: if it finishes before the
waiter registers, its "finished" hint was remembered here, and registering makes the poller look at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from typing import TypeVar

from stent._async import Wakeup
from stent.errors import StentError
from stent.model import ExecutionRecord, TaskRecord
from stent.ports import Clock, Storage

log = logging.getLogger("stent.waiters")

_RECENT_LIMIT = 4096

V = TypeVar("V")


class WaiterRegistry:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        *,
        poll_min_interval: float,
        poll_max_interval: float,
        poll_backoff_factor: float,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._min = poll_min_interval
        self._max = poll_max_interval
        self._factor = poll_backoff_factor
        self._futures: dict[str, list[asyncio.Future[TaskRecord]]] = {}
        self._kick = Wakeup()
        self._poller: asyncio.Task[None] | None = None
        # Tasks that finished in this process lately.  A waiter that registers just after its task finished
        # (the completion ran between the caller's read and its wait) finds the record here instead of waiting
        # for the next poll.
        self._recent: OrderedDict[str, TaskRecord] = OrderedDict()
        # Executions waited for, and those that ended lately (with their final record when it was read here).
        self._executions: dict[str, list[asyncio.Future[ExecutionRecord | None]]] = {}
        self._recent_executions: OrderedDict[str, ExecutionRecord | None] = OrderedDict()
        # The root task of executions this process dispatched lately, and of awaited executions when known: a
        # hint that a child of one finished is no reason to read the execution.
        self._dispatched: OrderedDict[str, str] = OrderedDict()
        self._roots: dict[str, str] = {}
        # Executions whose end (their root's, or a task's of an unknown root) a hint announced lately.
        self._hinted: OrderedDict[str, None] = OrderedDict()
        # What the next poll after a hint reads: the awaited executions hints named since the last poll, or every
        # awaited one when a hint named none.
        self._look_at: set[str] = set()
        self._look_all = False

    @property
    def waiting(self) -> int:
        """How many tasks someone in this process is waiting for."""
        return len(self._futures)

    async def wait(self, task_id: str) -> TaskRecord:
        """Return the task's record once it is finished."""
        recent = self._recent.get(task_id)
        if recent is not None:
            return recent
        future: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(task_id, []).append(future)
        self._ensure_poller()
        try:
            return await future
        finally:
            waiters = self._futures.get(task_id)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._futures[task_id]

    def is_waited(self, task_id: str) -> bool:
        """Whether someone in this process waits for the task right now."""
        return task_id in self._futures

    def resolve(self, record: TaskRecord) -> None:
        """A task finished (known first-hand): wake everyone waiting for it."""
        if not record.state.terminal:
            return
        _remember(self._recent, record.task_id, record)
        for future in self._futures.pop(record.task_id, []):
            if not future.done():
                future.set_result(record)

    def dispatched(self, execution_id: str, root_task_id: str) -> None:
        """This process just created the execution (so it exists, unfinished)."""
        _remember(self._dispatched, execution_id, root_task_id)

    def dispatched_here(self, execution_id: str) -> bool:
        """Whether this process created the execution lately."""
        return execution_id in self._dispatched

    def wait_execution(
        self, execution_id: str, root_task_id: str | None = None
    ) -> asyncio.Future[ExecutionRecord | None]:
        """A future done once the execution has ended: with its final record when this registry read it, else
        ``None``.  Cancel it to stop waiting.

        ``root_task_id`` (when the caller read it) lets hints about the execution's other tasks pass unread.
        """
        future: asyncio.Future[ExecutionRecord | None] = asyncio.get_running_loop().create_future()
        if execution_id in self._recent_executions:
            future.set_result(self._recent_executions[execution_id])
            return future
        self._executions.setdefault(execution_id, []).append(future)
        future.add_done_callback(functools.partial(self._forget_execution_waiter, execution_id))
        root = root_task_id or self._dispatched.get(execution_id)
        if root is not None:
            self._roots[execution_id] = root
        self._ensure_poller()
        if execution_id in self._hinted:  # it finished (or moved) before this waiter came: look now
            self._look_at.add(execution_id)
            self._kick.set()
        return future

    def _forget_execution_waiter(self, execution_id: str, future: asyncio.Future[ExecutionRecord | None]) -> None:
        waiters = self._executions.get(execution_id)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._executions[execution_id]
                self._roots.pop(execution_id, None)

    def execution_finished(self, execution_id: str, record: ExecutionRecord | None = None) -> None:
        """The execution ended; ``record`` is its final record, when the caller read it."""
        _remember(self._recent_executions, execution_id, record)
        self._dispatched.pop(execution_id, None)
        for future in self._executions.pop(execution_id, []):
            if not future.done():
                future.set_result(record)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll_loop())

    def hint(self, execution_id: str | None = None, task_id: str | None = None) -> None:
        """Task ``task_id`` of ``execution_id`` may have finished elsewhere (something may have, when the hint
        names nothing): poll now, for what it concerns, instead of at the next interval."""
        if execution_id is None or task_id is None:
            self._look_all = True
            self._kick.set()
            return
        root = self._roots.get(execution_id) or self._dispatched.get(execution_id)
        relevant = task_id in self._futures
        if root is None or task_id == root:
            _remember(self._hinted, execution_id, None)
            if execution_id in self._executions:
                self._look_at.add(execution_id)
                relevant = True
        if relevant:
            self._kick.set()

    async def close(self) -> None:
        if self._poller is not None and not self._poller.done():
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        self._poller = None

    async def _poll_loop(self) -> None:
        # Every awaited task and execution is read at backed-off intervals (a hint lost costs at most one of
        # them); a hint in between reads the awaited tasks and the executions it named (all of them, for a hint
        # that named none), and restarts the backoff.
        interval = self._min
        next_full = self._clock.monotonic() + interval
        while self._futures or self._executions:
            kicked = await self._kick.wait(self._clock, max(0.0, next_full - self._clock.monotonic()))
            self._kick.clear()
            full = self._look_all or self._clock.monotonic() >= next_full
            named, self._look_at, self._look_all = self._look_at, set(), False
            if kicked:
                interval = self._min
            if full:  # the next one backs off further (poll_min_interval, then times the factor each time)
                interval = min(interval * self._factor, self._max)
                next_full = self._clock.monotonic() + interval
            try:
                ids = list(self._futures)
                if ids:
                    for record in await self._storage.get_tasks(ids):
                        self.resolve(record)
                awaited = list(self._executions) if full else [e for e in named if e in self._executions]
                for execution_id in awaited:
                    execution = await self._storage.get_execution(execution_id)
                    if execution is None or execution.state.terminal:
                        self.execution_finished(execution_id, execution)
            except StentError as exc:
                log.warning("polling for finished work failed, will retry: %s", exc)


def _remember(recent: OrderedDict[str, V], key: str, value: V) -> None:
    """``recent[key] = value``, newest last, forgetting the oldest beyond _RECENT_LIMIT entries."""
    recent[key] = value
    recent.move_to_end(key)
    if len(recent) > _RECENT_LIMIT:
        recent.popitem(last=False)
