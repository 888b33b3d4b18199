"""Deliberately broken variants of the reference storage, each breaking one guarantee the conformance suite covers.

:mod:`test_conformance_teeth` runs the suite against each of them and checks that it fails, by name, the tests
of the guarantee that was broken.  Each variant changes as little as possible of :class:`MemoryStorage`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from stent.errors import TaskNotFound
from stent.memory import MemoryStorage
from stent.model import SIGNAL_PREFIX, ClaimRequest, ContextUpdate, Fence, StepKey, TaskRecord, TaskState


class IgnoresMaxConcurrent(MemoryStorage):
    """Claims as if no function had a ``max_concurrent``."""

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        limits = {i: t.max_concurrent for i, t in self._tasks.items() if t.max_concurrent is not None}
        for task_id in limits:
            self._tasks[task_id] = attrs.evolve(self._tasks[task_id], max_concurrent=None)
        try:
            claimed = await super().claim_tasks(request, now)
        finally:
            for task_id, limit in limits.items():
                self._tasks[task_id] = attrs.evolve(self._tasks[task_id], max_concurrent=limit)
        return [self._tasks[t.task_id] for t in claimed]


class SkipsFencing(MemoryStorage):
    """Accepts every worker write for a task that exists, whatever its token and state."""

    def _fenced(self, fence: Fence) -> TaskRecord:
        task = self._tasks.get(fence.task_id)
        if task is None:
            raise TaskNotFound(fence.task_id)
        return task


class RacyClaim(MemoryStorage):
    """Reads the candidates, yields, then takes them from what it read: two claimers can take one task."""

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        seen = dict(self._tasks)
        await asyncio.sleep(0)  # like a read and a write in two transactions: another claimer runs between
        live, self._tasks = self._tasks, seen
        try:
            claimed = await super().claim_tasks(request, now)
        finally:
            self._tasks = live
        for task in claimed:
            live[task.task_id] = task
        return claimed


class CompletionWakesNobody(MemoryStorage):
    """Completing a task never wakes the parent waiting on it."""

    async def complete_task(
        self, fence: Fence, result: str, now: datetime, update: ContextUpdate | None = None
    ) -> TaskRecord:
        self._wake_parent = lambda task, now: None  # type: ignore[method-assign]
        try:
            return await super().complete_task(fence, result, now, update)
        finally:
            del self._wake_parent


class CleanupDeletesRunning(MemoryStorage):
    """Cleanup deletes every execution created before the cutoff, finished or not."""

    async def delete_executions_before(self, cutoff: datetime, limit: int) -> int:
        old = sorted(
            (e for e in self._executions.values() if (e.finished_at or e.created_at) < cutoff),
            key=lambda e: (e.finished_at or e.created_at, e.execution_id),
        )[:limit]
        for execution in old:
            for task_id in self._by_execution.pop(execution.execution_id, []):
                task = self._tasks.pop(task_id)
                if task.step is not None and task.parent_task_id is not None:
                    self._steps.pop(StepKey(task.parent_task_id, task.parent_attempt or 0, task.step), None)
            self._signals.pop(execution.execution_id, None)
            del self._executions[execution.execution_id]
        return len(old)


class SuspendLosesWakeUps(MemoryStorage):
    """Suspends without looking whether what the task waits for already happened."""

    async def suspend_task(
        self, fence: Fence, *, waiting_on: Sequence[str], wake_at: datetime | None, now: datetime
    ) -> TaskRecord:
        task = self._fenced(fence)
        changes: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
        return self._set(task, state=TaskState.SUSPENDED, wake_at=wake_at, **changes)


class SignalsConsumedTwice(MemoryStorage):
    """A new signal wait takes a buffered signal without marking it consumed, so the next wait takes it again."""

    def _match_buffered_signal(self, step: TaskRecord, now: datetime) -> TaskRecord:
        name = step.function[len(SIGNAL_PREFIX) :]
        for signal in self._signals.get(step.execution_id, []):
            if signal.name == name and signal.consumed_by is None:
                return self._set(
                    step, state=TaskState.COMPLETED, result=signal.payload, finished_at=now, updated_at=now
                )
        return step


class CompletionOverwritesCancellation(MemoryStorage):
    """A root completing after a cancel completes its execution with the result."""

    def _finish_execution(self, execution_id: str, state: Any, now: datetime, **fields: Any) -> None:
        execution = self._executions[execution_id]
        if execution.state.terminal:
            return
        self._executions[execution_id] = attrs.evolve(
            execution, state=state, updated_at=now, finished_at=now, **fields
        )
