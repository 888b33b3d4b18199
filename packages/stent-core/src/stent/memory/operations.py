"""Signals, cancellation, time limits, dead letters and housekeeping for :class:`~stent.memory.MemoryStorage`."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from stent.errors import ExecutionFinished, ExecutionNotFound, StentError, TaskNotFound
from stent.memory.state import MemoryState
from stent.model import (
    SIGNAL_PREFIX,
    DeadLetter,
    ExecutionRecord,
    ExecutionState,
    SignalRecord,
    StepKey,
    TaskKind,
    TaskRecord,
    TaskState,
    WorkerInfo,
)


class MemoryOperations(MemoryState):
    # -- signals ---------------------------------------------------------------------------------------------

    async def send_signal(self, execution_id: str, name: str, payload: str, now: datetime) -> SignalRecord:
        execution = self._executions.get(execution_id)
        if execution is None:
            raise ExecutionNotFound(execution_id)
        if execution.state.terminal or execution.state is ExecutionState.CANCELLING:
            raise ExecutionFinished(execution_id, execution.state.value, f"send signal {name!r}")
        self._signal_seq += 1
        signal = SignalRecord(self._signal_seq, execution_id, name, payload, now)
        waiting = [
            self._tasks[t]
            for t in self._by_execution.get(execution_id, [])
            if self._tasks[t].kind is TaskKind.SIGNAL
            and self._tasks[t].function == SIGNAL_PREFIX + name
            and self._tasks[t].state is TaskState.PENDING
        ]
        if waiting:
            step = waiting[0]
            step = self._set(step, state=TaskState.COMPLETED, result=payload, finished_at=now, updated_at=now)
            signal = attrs.evolve(signal, consumed_by=step.task_id)
            self._wake_parent(step, now)
        self._signals.setdefault(execution_id, []).append(signal)
        return signal

    async def list_signals(self, execution_id: str) -> list[SignalRecord]:
        return list(self._signals.get(execution_id, []))

    # -- cancellation and time limits ------------------------------------------------------------------------

    def _stop_unleased(self, execution_id: str, now: datetime) -> None:
        for task_id in self._by_execution.get(execution_id, []):
            task = self._tasks[task_id]
            if task.state in (TaskState.PENDING, TaskState.SUSPENDED):
                self._set(task, state=TaskState.CANCELLED, finished_at=now, updated_at=now, wake_at=None)

    async def cancel_execution(self, execution_id: str, now: datetime) -> tuple[ExecutionRecord, bool]:
        execution = self._executions.get(execution_id)
        if execution is None:
            raise ExecutionNotFound(execution_id)
        if execution.state.terminal or execution.state is ExecutionState.CANCELLING:
            return execution, False
        self._stop_unleased(execution_id, now)
        root = self._tasks[execution.root_task_id]
        if root.state.leased:
            execution = attrs.evolve(execution, state=ExecutionState.CANCELLING, updated_at=now)
        else:
            execution = attrs.evolve(execution, state=ExecutionState.CANCELLED, updated_at=now, finished_at=now)
        self._executions[execution_id] = execution
        return execution, True

    async def time_out_executions(self, now: datetime, limit: int) -> list[str]:
        return self._time_out(now, limit)

    def _time_out(self, now: datetime, limit: int) -> list[str]:
        due = [
            e
            for e in self._executions.values()
            if not e.state.terminal and e.deadline is not None and e.deadline <= now
        ]
        due.sort(key=lambda e: (e.deadline, e.execution_id))
        ids = []
        for execution in due[:limit]:
            self._stop_unleased(execution.execution_id, now)
            self._executions[execution.execution_id] = attrs.evolve(
                execution, state=ExecutionState.TIMED_OUT, updated_at=now, finished_at=now
            )
            ids.append(execution.execution_id)
        return ids

    # -- dead letters ----------------------------------------------------------------------------------------

    async def list_dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        rows = sorted(self._dead_letters.values(), key=lambda d: (d.created_at, d.task_id), reverse=True)
        return rows[offset : offset + limit]

    async def get_dead_letter(self, task_id: str) -> DeadLetter | None:
        return self._dead_letters.get(task_id)

    async def discard_dead_letter(self, task_id: str) -> bool:
        return self._dead_letters.pop(task_id, None) is not None

    async def replay_dead_letter(self, task_id: str, queue: str | None, now: datetime) -> TaskRecord:
        if task_id not in self._dead_letters:
            raise TaskNotFound(task_id)
        task = self._tasks.get(task_id)
        if task is None:
            raise StentError(f"dead letter {task_id} belongs to an execution that was cleaned up; discard it")
        del self._dead_letters[task_id]
        task = self._set(
            task,
            state=TaskState.PENDING,
            attempt=task.attempt + 1,
            queue=queue or task.queue,
            scheduled_for=now,
            error=None,
            finished_at=None,
            updated_at=now,
        )
        self._reopen_ancestors(task, now)
        return task

    def _reopen_ancestors(self, task: TaskRecord, now: datetime) -> None:
        """Parents that failed because this task failed wait for it again; so does a failed execution."""
        child = task
        while child.parent_task_id is not None:
            parent = self._tasks.get(child.parent_task_id)
            if parent is None or parent.state is not TaskState.FAILED or parent.attempt != child.parent_attempt:
                return
            self._dead_letters.pop(parent.task_id, None)
            child = self._set(parent, state=TaskState.SUSPENDED, error=None, finished_at=None, updated_at=now)
        execution = self._executions[child.execution_id]
        if execution.state is ExecutionState.FAILED:
            self._executions[execution.execution_id] = attrs.evolve(
                execution, state=ExecutionState.RUNNING, error=None, finished_at=None, updated_at=now
            )

    # -- idempotency and cache -------------------------------------------------------------------------------

    async def cache_get(self, key: str, now: datetime) -> str | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= now:
            del self._cache[key]
            return None
        return value

    async def cache_put(self, key: str, value: str, expires_at: datetime | None, now: datetime) -> None:
        self._cache[key] = (value, expires_at)

    # -- housekeeping ----------------------------------------------------------------------------------------

    async def acquire_leader(self, name: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        held = self._leaders.get(name)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self._leaders[name] = (owner, now + timedelta(seconds=ttl_seconds))
        return True

    async def release_leader(self, name: str, owner: str) -> None:
        held = self._leaders.get(name)
        if held is not None and held[0] == owner:
            del self._leaders[name]

    async def delete_executions_before(self, cutoff: datetime, limit: int) -> int:
        done = [
            e
            for e in self._executions.values()
            if e.state.terminal and e.finished_at is not None and e.finished_at < cutoff
        ]
        done.sort(key=lambda e: (e.finished_at, e.execution_id))
        for execution in done[:limit]:
            for task_id in self._by_execution.pop(execution.execution_id, []):
                task = self._tasks.pop(task_id)
                if task.step is not None and task.parent_task_id is not None:
                    self._steps.pop(StepKey(task.parent_task_id, task.parent_attempt or 0, task.step), None)
            self._signals.pop(execution.execution_id, None)
            del self._executions[execution.execution_id]
        return len(done[:limit])

    async def delete_dead_letters_before(self, cutoff: datetime, limit: int) -> int:
        # Ties broken by task id, as list_dead_letters orders them, not by the dict's insertion history.
        old = sorted(
            (d for d in self._dead_letters.values() if d.created_at < cutoff),
            key=lambda d: (d.created_at, d.task_id),
        )
        for dead in old[:limit]:
            del self._dead_letters[dead.task_id]
        return len(old[:limit])

    async def record_worker(self, info: WorkerInfo) -> None:
        self._workers[info.worker_id] = info

    async def remove_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def list_workers(self) -> list[WorkerInfo]:
        return sorted(self._workers.values(), key=lambda w: w.worker_id)

    async def delete_workers_before(self, cutoff: datetime) -> int:
        stale = [w for w in self._workers.values() if w.last_seen < cutoff]
        for worker in stale:
            del self._workers[worker.worker_id]
        return len(stale)
