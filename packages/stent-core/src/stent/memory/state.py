"""The dictionaries behind :class:`~stent.memory.MemoryStorage`, and the transitions every operation shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from stent.model import (
    DeadLetter,
    ExecutionRecord,
    ExecutionState,
    SignalRecord,
    StepKey,
    TaskRecord,
    TaskState,
    WorkerInfo,
)


class MemoryState:
    def __init__(self) -> None:
        self._executions: dict[str, ExecutionRecord] = {}
        self._tasks: dict[str, TaskRecord] = {}
        self._steps: dict[StepKey, str] = {}
        self._by_execution: dict[str, list[str]] = {}
        self._signals: dict[str, list[SignalRecord]] = {}
        self._signal_seq = 0
        self._dead_letters: dict[str, DeadLetter] = {}
        self._cache: dict[str, tuple[str, datetime | None]] = {}
        self._leaders: dict[str, tuple[str, datetime]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._token_seq = 0
        self.closed = False

    def _insert(self, task: TaskRecord) -> None:
        self._tasks[task.task_id] = task
        self._by_execution.setdefault(task.execution_id, []).append(task.task_id)

    def _set(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        updated = attrs.evolve(task, **changes)
        self._tasks[task.task_id] = updated
        return updated

    def _stopping(self, execution_id: str) -> bool:
        execution = self._executions.get(execution_id)
        return execution is None or execution.state.terminal or execution.state is ExecutionState.CANCELLING

    def _finish_execution(self, execution_id: str, state: ExecutionState, now: datetime, **fields: Any) -> None:
        execution = self._executions[execution_id]
        if execution.state.terminal:
            return
        if execution.state is ExecutionState.CANCELLING:
            state, fields = ExecutionState.CANCELLED, {}
        self._executions[execution_id] = attrs.evolve(
            execution, state=state, updated_at=now, finished_at=now, **fields
        )

    def _after_finish(self, task: TaskRecord, now: datetime) -> None:
        """Wake the parent waiting on a finished task, or finish the execution of a finished root."""
        if task.parent_task_id is None:
            if task.state is TaskState.COMPLETED:
                self._finish_execution(task.execution_id, ExecutionState.COMPLETED, now, result=task.result)
            elif task.state is TaskState.FAILED:
                self._finish_execution(task.execution_id, ExecutionState.FAILED, now, error=task.error)
            elif task.state is TaskState.CANCELLED:
                self._finish_execution(task.execution_id, ExecutionState.CANCELLED, now, error=task.error)
            return
        self._wake_parent(task, now)

    def _wake_parent(self, task: TaskRecord, now: datetime) -> None:
        parent = self._tasks.get(task.parent_task_id or "")
        if parent is None or parent.attempt != task.parent_attempt:
            return
        if parent.state is TaskState.WAITING:
            self._set(parent, state=TaskState.RUNNING, updated_at=now)
        elif parent.state is TaskState.SUSPENDED:
            self._set(parent, state=TaskState.PENDING, scheduled_for=now, wake_at=None, updated_at=now)

    def _add_dead_letter(self, task: TaskRecord, reason: str, now: datetime) -> None:
        self._dead_letters[task.task_id] = DeadLetter(
            task_id=task.task_id,
            execution_id=task.execution_id,
            function=task.function,
            queue=task.queue,
            reason=reason,
            error=task.error or "",
            attempts=task.attempt,
            created_at=now,
        )
