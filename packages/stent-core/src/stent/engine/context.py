"""The running task's context: its step counter and the way its durable calls reach storage.

A :class:`TaskContext` lives in a context variable while a task's function runs.  Durable calls made inside
read it to number their steps and to journal them; code outside any task sees ``None``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from stent.errors import ExecutionFailed, NonDeterminismError
from stent.model import NewTask, StepKey, TaskRecord, TaskState

if TYPE_CHECKING:
    from stent.engine.durable import DurableFunction

_CURRENT: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("stent_task", default=None)


def current_task() -> TaskContext | None:
    """The context of the task whose code is running, or ``None`` outside any task."""
    return _CURRENT.get()


class TaskHost(Protocol):
    """What a running task needs from the worker that runs it."""

    async def create_step(self, ctx: TaskContext, key: StepKey, new: NewTask) -> TaskRecord: ...

    async def wait_step(self, ctx: TaskContext, task_id: str) -> TaskRecord: ...

    def encode_call(self, fn: DurableFunction[Any, Any], args: Sequence[Any], kwargs: dict[str, Any]) -> str: ...

    def new_task_id(self) -> str: ...

    def step_outcome(self, fn: DurableFunction[Any, Any], record: TaskRecord) -> Any: ...


class TaskContext:
    """The state of one running task: its record, its step counter, and its host."""

    def __init__(self, task: TaskRecord, host: TaskHost) -> None:
        self.task = task
        self.host = host
        self._step = 0

    @property
    def execution_id(self) -> str:
        return self.task.execution_id

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def current_step(self) -> int:
        """The number of the most recent step this task started (0 before the first)."""
        return self._step

    @property
    def idempotency_key(self) -> str:
        """A key stable across re-runs of this task, for calls to external systems."""
        return f"{self.task.execution_id}:{self.task.task_id}:{self.task.step or 0}"

    def next_step(self) -> int:
        self._step += 1
        return self._step

    def activate(self) -> contextvars.Token[TaskContext | None]:
        return _CURRENT.set(self)

    @staticmethod
    def deactivate(token: contextvars.Token[TaskContext | None]) -> None:
        _CURRENT.reset(token)

    async def call_step(
        self, fn: DurableFunction[Any, Any], step: int, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> Any:
        key = StepKey(self.task.task_id, self.task.attempt, step)
        # Encoding happens before any await: an unserializable argument fails the caller, nothing is written.
        new = NewTask(
            task_id=self.host.new_task_id(),
            function=fn.name,
            args=self.host.encode_call(fn, args, kwargs),
            queue=fn.queue,
            tags=fn.tags,
            priority=fn.priority,
            max_concurrent=fn.max_concurrent,
        )
        record = await self.host.create_step(self, key, new)
        if record.function != fn.name:
            raise NonDeterminismError(
                task_id=self.task.task_id, step=step, recorded=record.function, called=fn.name
            )
        if not record.state.terminal:
            record = await self.host.wait_step(self, record.task_id)
        if record.state is TaskState.CANCELLED:
            raise asyncio.CancelledError(f"step {step} ({fn.name}) was cancelled")
        if record.state is not TaskState.COMPLETED and record.state is not TaskState.FAILED:
            raise ExecutionFailed(f"step {step} ({fn.name}) ended in state {record.state.value}")
        return self.host.step_outcome(fn, record)
