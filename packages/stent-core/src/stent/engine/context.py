"""The running task's context: its step counter, and how its durable operations reach storage.

A :class:`TaskContext` lives in a context variable while a task's function runs.  Durable operations started
inside (calls, sleeps, signal waits) read it to take their step number at call time and to journal the step;
code outside any task sees ``None``.

Replay.  When a task runs again after a crash, or after it was suspended, each operation it reaches finds its
step already recorded: a finished step gives its recorded outcome at once, an unfinished one is waited for, and
a step recorded for a different function than the code now calls is a :class:`NonDeterminismError`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from stent.engine.codec import Codec
from stent.errors import ExecutionFailed, ExecutionStopping, NonDeterminismError, SignalTimeout
from stent.model import (
    SIGNAL_PREFIX,
    SLEEP_FUNCTION,
    ContextUpdate,
    NewTask,
    StepKey,
    TaskKind,
    TaskRecord,
    TaskState,
)

if TYPE_CHECKING:
    from stent.engine.durable import DurableFunction

_CURRENT: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("stent_task", default=None)


def current_task() -> TaskContext | None:
    """The context of the task whose code is running, or ``None`` outside any task."""
    return _CURRENT.get()


class TaskHost(Protocol):
    """What a running task needs from the worker that runs it."""

    codec: Codec

    def now(self) -> datetime: ...

    def new_task_id(self) -> str: ...

    async def create_step(self, ctx: TaskContext, key: StepKey, new: NewTask) -> TaskRecord: ...

    async def wait_step(self, ctx: TaskContext, task_id: str, *, wake_at: datetime | None, suspend: bool) -> TaskRecord:
        """Wait for a step to finish; ``suspend`` (or a long ``wake_at``) parks the whole task in storage."""

    async def sleep_until(self, ctx: TaskContext, wake_at: datetime) -> None: ...

    async def expire_step(self, ctx: TaskContext, task_id: str, error: str) -> TaskRecord: ...


class TaskContext:
    """The state of one running task: its record, its step counter, and its host."""

    def __init__(self, task: TaskRecord, host: TaskHost) -> None:
        self.task = task
        self.host = host
        self._step = 0
        #: Steps created (or found) unfinished in this run whose outcome the code has not yet received.
        self.open_steps: set[str] = set()
        #: How many of this task's coroutines are waiting on a step or timer right now.
        self.waits = 0
        #: Timers the task waits on, by a token, so a suspension records the earliest.
        self.timers: dict[object, datetime] = {}
        self.cancel_requested = False
        self.suspended = False
        self.handle: asyncio.Task[Any] | None = None
        self.flushing: set[asyncio.Future[None]] = set()
        self._increments: dict[str, int] = {}
        self._state: dict[str, str] = {}

    @property
    def execution_id(self) -> str:
        return self.task.execution_id

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def attempt(self) -> int:
        return self.task.attempt

    @property
    def current_step(self) -> int:
        """The number of the most recent step this task started (0 before the first)."""
        return self._step

    @property
    def idempotency_key(self) -> str:
        """A key stable across re-runs of this task (crash recovery and retries alike), for external calls."""
        return f"{self.task.execution_id}:{self.task.task_id}:{self.task.step or 0}"

    def next_step(self) -> int:
        self._step += 1
        return self._step

    def activate(self) -> contextvars.Token[TaskContext | None]:
        return _CURRENT.set(self)

    @staticmethod
    def deactivate(token: contextvars.Token[TaskContext | None]) -> None:
        _CURRENT.reset(token)

    # -- execution context: counters and state, committed with the task's completion -------------------------

    def add_update(self, counters: dict[str, int] | None, state: dict[str, Any] | None) -> None:
        for name, amount in (counters or {}).items():
            self._increments[name] = self._increments.get(name, 0) + amount
        for name, value in (state or {}).items():
            self._state[name] = self.host.codec.serializer.dumps(value)

    def update(self) -> ContextUpdate | None:
        if not self._increments and not self._state:
            return None
        return ContextUpdate(tuple(sorted(self._increments.items())), tuple(sorted(self._state.items())))

    # -- durable operations --------------------------------------------------------------------------------

    async def _journal(self, step: int, new: NewTask, expected: str) -> TaskRecord:
        key = StepKey(self.task.task_id, self.task.attempt, step)
        try:
            record = await self.host.create_step(self, key, new)
        except ExecutionStopping:
            # The execution is being cancelled: interrupt this code the way asyncio does, so `finally` blocks
            # and compensation run (their own durable calls are then allowed).
            self.cancel_requested = True
            raise asyncio.CancelledError(f"execution {self.execution_id} is being cancelled") from None
        if record.function != expected:
            raise NonDeterminismError(task_id=self.task.task_id, step=step, recorded=record.function, called=expected)
        return record

    async def call_step(
        self, fn: DurableFunction[Any, Any], step: int, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> Any:
        from stent.engine.tasks import new_call_task

        # Encoding happens before any await: an unserializable argument fails the caller, nothing is written.
        new = new_call_task(fn, self.host.codec, self.host.new_task_id(), args, kwargs)
        record = await self._journal(step, new, fn.name)
        if not record.state.terminal:
            record = await self.host.wait_step(self, record.task_id, wake_at=None, suspend=False)
        self.open_steps.discard(record.task_id)
        if record.state is TaskState.CANCELLED:
            raise asyncio.CancelledError(f"step {step} ({fn.name}) was cancelled")
        if record.state is TaskState.COMPLETED:
            return self.host.codec.decode_result(fn, record.result)
        if record.state is TaskState.FAILED:
            error = self.host.codec.decode_error(record.error)
            try:
                error.__stent_from_step__ = True  # type: ignore[attr-defined]
            except AttributeError:  # pragma: no cover - exceptions with __slots__
                pass
            raise error
        raise ExecutionFailed(f"step {step} ({fn.name}) ended in state {record.state.value}")

    async def sleep(self, step: int, seconds: float) -> None:
        wake_at = self.host.now() + _timedelta(seconds)
        new = NewTask(
            task_id=self.host.new_task_id(),
            function=SLEEP_FUNCTION,
            args="{}",
            kind=TaskKind.SLEEP,
            state=TaskState.COMPLETED,
            result=wake_at.isoformat(),
        )
        record = await self._journal(step, new, SLEEP_FUNCTION)
        recorded = datetime.fromisoformat(record.result or wake_at.isoformat())
        await self.host.sleep_until(self, recorded)

    async def wait_signal(self, step: int, name: str, timeout: float | None) -> Any:
        from stent.engine.tasks import TaskOptions

        deadline = None if timeout is None else self.host.now() + _timedelta(timeout)
        options = TaskOptions(signal_deadline=deadline.isoformat() if deadline else None)
        new = NewTask(
            task_id=self.host.new_task_id(),
            function=SIGNAL_PREFIX + name,
            args="{}",
            kind=TaskKind.SIGNAL,
            options=options.dumps(),
        )
        record = await self._journal(step, new, SIGNAL_PREFIX + name)
        recorded = TaskOptions.loads(record.options).signal_deadline
        deadline = datetime.fromisoformat(recorded) if recorded else None
        if not record.state.terminal:
            if deadline is not None and self.host.now() >= deadline:
                record = await self.host.expire_step(self, record.task_id, f"no signal {name!r} within {timeout}s")
            else:
                self.open_steps.add(record.task_id)
                record = await self.host.wait_step(self, record.task_id, wake_at=deadline, suspend=True)
        self.open_steps.discard(record.task_id)
        if record.state is TaskState.COMPLETED:
            return self.host.codec.serializer.loads(record.result or "null")
        raise SignalTimeout(
            f"execution {self.execution_id} waited for signal {name!r} until {deadline} and none came"
        )


def _timedelta(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
