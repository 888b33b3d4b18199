"""One registry per process of everyone waiting for a task to finish.

Waiters are woken three ways, fastest first: a task finished by a worker in this process resolves them
directly; a "finished" notification makes the poller look at once; and a single poller, shared by every waiter
of the process, asks storage about all awaited tasks in one call, backing off while nothing changes.  There is
never a polling loop per waiter.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from stent._async import wait_event_or_timeout
from stent.errors import StentError
from stent.model import ExecutionRecord, TaskRecord
from stent.ports import Clock, Storage

log = logging.getLogger("stent.waiters")

_RECENT_LIMIT = 4096


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
        self._kick = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        # Tasks that finished in this process lately.  A waiter that registers just after its task finished
        # (the completion ran between the caller's read and its wait) finds the record here instead of waiting
        # for the next poll.
        self._recent: OrderedDict[str, TaskRecord] = OrderedDict()
        # Executions waited for, and those that ended lately (with their final record when it was read here).
        self._executions: dict[str, list[asyncio.Future[ExecutionRecord | None]]] = {}
        self._recent_executions: OrderedDict[str, ExecutionRecord | None] = OrderedDict()

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
        self._recent[record.task_id] = record
        if len(self._recent) > _RECENT_LIMIT:
            self._recent.popitem(last=False)
        for future in self._futures.pop(record.task_id, []):
            if not future.done():
                future.set_result(record)

    async def wait_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Return once the execution has ended: its final record when this registry read it, else ``None``."""
        if execution_id in self._recent_executions:
            return self._recent_executions[execution_id]
        future: asyncio.Future[ExecutionRecord | None] = asyncio.get_running_loop().create_future()
        self._executions.setdefault(execution_id, []).append(future)
        self._ensure_poller()
        try:
            return await future
        finally:
            waiters = self._executions.get(execution_id)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._executions[execution_id]

    def execution_finished(self, execution_id: str, record: ExecutionRecord | None = None) -> None:
        """The execution ended; ``record`` is its final record, when the caller read it."""
        self._recent_executions[execution_id] = record
        if len(self._recent_executions) > _RECENT_LIMIT:
            self._recent_executions.popitem(last=False)
        for future in self._executions.pop(execution_id, []):
            if not future.done():
                future.set_result(record)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll_loop())

    def hint(self) -> None:
        """Something may have finished elsewhere: poll now instead of at the next interval."""
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
        interval = self._min
        while self._futures or self._executions:
            kicked = await wait_event_or_timeout(self._kick, self._clock, interval)
            self._kick.clear()
            interval = self._min if kicked else min(interval * self._factor, self._max)
            try:
                ids = list(self._futures)
                if ids:
                    for record in await self._storage.get_tasks(ids):
                        self.resolve(record)
                for execution_id in list(self._executions):
                    execution = await self._storage.get_execution(execution_id)
                    if execution is None or execution.state.terminal:
                        self.execution_finished(execution_id, execution)
            except StentError as exc:
                log.warning("polling for finished work failed, will retry: %s", exc)
