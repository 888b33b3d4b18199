"""When storage next has work: what lets :class:`~stent.testing.harness.WorkflowHarness` skip idle virtual time.

Storage alone knows when work comes due: a pending task's ``scheduled_for`` (a delayed dispatch, a retry), a
suspended task's ``wake_at`` (a durable sleep, a signal timeout), a dead worker's lease expiry, an execution's
deadline.  While a live worker holds a task, or a worker could claim one now, time must move in small steps (the
worker's heartbeats and short in-memory timers run on the clock); otherwise nothing can happen before the next
due moment, and the clock may jump straight there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import attrs

from stent.model import SIGNAL_PREFIX, ExecutionState, TaskKind, TaskRecord, TaskState
from stent.ports import Storage

_UNFINISHED = (ExecutionState.PENDING, ExecutionState.RUNNING, ExecutionState.CANCELLING)


@attrs.frozen
class Claimer:
    """The ``queues`` and ``tags`` a ready worker claims from (``None``: any)."""

    queues: frozenset[str] | None = None
    tags: frozenset[str] | None = None

    @classmethod
    def of(cls, queues: Iterable[str] | None, tags: Iterable[str] | None) -> Claimer:
        return cls(None if queues is None else frozenset(queues), None if tags is None else frozenset(tags))

    def takes(self, task: TaskRecord) -> bool:
        in_queue = self.queues is None or task.queue in self.queues
        return in_queue and (self.tags is None or not task.tags or bool(self.tags.intersection(task.tags)))


async def _open_executions(storage: Storage) -> list[tuple[datetime | None, list[TaskRecord]]]:
    """Each unfinished execution's deadline and tasks."""
    found = []
    for state in _UNFINISHED:
        page = await storage.list_executions(state=state, queue=None, function=None, limit=10_000, offset=0)
        for execution in page.executions:
            found.append((execution.deadline, await storage.list_execution_tasks(execution.execution_id)))
    return found


async def seconds_until_work(
    storage: Storage, now: datetime, *, holders: set[str], claimers: list[Claimer]
) -> float | None:
    """``None`` while a task is held by a live worker (one of ``holders``) or claimable now by one of
    ``claimers``; otherwise the seconds until storage next has work, ``math.inf`` when nothing is scheduled."""
    due: list[datetime] = []
    for deadline, tasks in await _open_executions(storage):
        if deadline is not None:
            due.append(deadline)
        for task in tasks:
            if task.state.leased:
                if task.lease_owner in holders or task.lease_expires_at is None:
                    return None
                due.append(task.lease_expires_at)  # its worker is gone: claimable once the lease expires
            elif task.state is TaskState.PENDING and task.kind is TaskKind.CALL:
                if _taken(task, claimers):
                    due.append(task.scheduled_for)
            elif task.state is TaskState.SUSPENDED and task.wake_at is not None:
                due.append(task.wake_at)
    if not due:
        return math.inf
    wait = (min(due) - now).total_seconds()
    return None if wait <= 0 else wait


async def why_stuck(storage: Storage, execution_id: str, claimers: list[Claimer]) -> str:
    """What an execution that cannot go on by itself waits for, in words."""
    reasons = []
    for task in await storage.list_execution_tasks(execution_id):
        if task.kind is TaskKind.SIGNAL and not task.state.terminal:
            name = task.function.removeprefix(SIGNAL_PREFIX)
            reasons.append(
                f"signal {name!r} (send it with await executor.send_signal(execution_id, {name!r}, payload),"
                " or give the wait a timeout)"
            )
        elif task.kind is TaskKind.CALL and task.state is TaskState.PENDING and not _taken(task, claimers):
            tags = f" with tags {sorted(task.tags)}" if task.tags else ""
            reasons.append(
                f"a worker to run {task.function} on queue {task.queue!r}{tags} (no ready worker takes it: start"
                " one with start_worker(queues=[...]), or set stent_worker_options)"
            )
    return "; ".join(reasons) or "nothing: no task runs and none is scheduled"


def _taken(task: TaskRecord, claimers: list[Claimer]) -> bool:
    return any(claimer.takes(task) for claimer in claimers)
