"""Running one claimed task: call its function, journal its steps, and record how it ended.

The runner is the task's :class:`~stent.engine.context.TaskHost`.  Step creation is batched per task: every
durable call a task starts in one turn of the event loop (``asyncio.gather`` of ten calls, say) reaches storage
in a single ``get_or_create_steps`` call.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from stent.engine.context import TaskContext
from stent.engine.durable import DurableFunction, lookup_function, registered_functions
from stent.errors import (
    LeaseLost,
    SerializationError,
    StentError,
    StorageUnavailable,
    UnregisteredFunctionError,
)
from stent.model import NewTask, StepKey, TaskFailure, TaskRecord
from stent.runtime import Runtime

log = logging.getLogger("stent.runner")


class TaskAbandoned(Exception):
    """Raised inside the runner when the task must stop without writing (its lease is gone)."""


class _StepBatch:
    def __init__(self) -> None:
        self.items: list[tuple[StepKey, NewTask, asyncio.Future[TaskRecord]]] = []


class TaskRunner:
    """Runs tasks for one worker; implements the TaskHost protocol for the tasks it runs."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        on_waiting: Callable[[str], None],
        on_resumed: Callable[[str], None],
        lease_seconds: float,
    ) -> None:
        self.runtime = runtime
        self._on_waiting = on_waiting
        self._on_resumed = on_resumed
        self._lease_seconds = lease_seconds
        self._batches: dict[str, _StepBatch] = {}

    # -- TaskHost ------------------------------------------------------------------------------------------

    def new_task_id(self) -> str:
        return uuid.uuid4().hex

    def encode_call(self, fn: DurableFunction[Any, Any], args: Sequence[Any], kwargs: dict[str, Any]) -> str:
        return self.runtime.codec.encode_call(fn, args, kwargs)

    def step_outcome(self, fn: DurableFunction[Any, Any], record: TaskRecord) -> Any:
        if record.state.value == "completed":
            return self.runtime.codec.decode_result(fn, record.result)
        raise self.runtime.codec.decode_error(record.error)

    async def create_step(self, ctx: TaskContext, key: StepKey, new: NewTask) -> TaskRecord:
        future: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        batch = self._batches.get(ctx.task_id)
        if batch is None:
            batch = self._batches[ctx.task_id] = _StepBatch()
            # Flush after every coroutine scheduled in this turn of the loop has added its step.
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush(ctx)))
        batch.items.append((key, new, future))
        return await future

    async def _flush(self, ctx: TaskContext) -> None:
        batch = self._batches.pop(ctx.task_id, None)
        if batch is None or not batch.items:
            return
        storage = self.runtime.storage
        try:
            records = await storage.get_or_create_steps(
                ctx.task.fence, [(k, n) for k, n, _ in batch.items], self.runtime.clock.now()
            )
        except BaseException as exc:
            for _, _, future in batch.items:
                if not future.done():
                    future.set_exception(exc)
            return
        created_queues = [
            r.queue for r, (_, n, _) in zip(records, batch.items) if r.task_id == n.task_id and not r.state.terminal
        ]
        for record, (_, _, future) in zip(records, batch.items):
            if not future.done():
                future.set_result(record)
        if created_queues:
            await self.runtime.work_created(created_queues)

    async def wait_step(self, ctx: TaskContext, task_id: str) -> TaskRecord:
        self._on_waiting(ctx.task_id)
        try:
            return await self.runtime.waiters.wait(task_id)
        finally:
            self._on_resumed(ctx.task_id)

    # -- running -------------------------------------------------------------------------------------------

    async def run(self, task: TaskRecord) -> None:
        """Run ``task`` to an outcome and record it.  Raises :class:`TaskAbandoned` if the lease was lost."""
        runtime = self.runtime
        started = runtime.clock.monotonic()
        fn = lookup_function(task.function)
        if fn is None:
            error = UnregisteredFunctionError(task.function, registered_functions())
            await self._fail(task, fn, error, reason="unregistered function", started=started)
            return
        try:
            args, kwargs = runtime.codec.decode_call(fn, task.args)
        except Exception as exc:
            error = SerializationError(f"the stored arguments of task {task.task_id} cannot be decoded: {exc}")
            await self._fail(task, fn, error, reason="undecodable arguments", started=started)
            return
        ctx = TaskContext(task, self)
        token = ctx.activate()
        try:
            value = await fn.func(*args, **kwargs)
        except LeaseLost as exc:
            raise TaskAbandoned(str(exc)) from exc
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # user code may raise anything; the worker must go on
            await self._fail(task, fn, exc, reason=f"{type(exc).__name__}: {exc}", started=started)
            return
        finally:
            TaskContext.deactivate(token)
        try:
            result = runtime.codec.encode_result(fn, value)
        except SerializationError as exc:
            await self._fail(task, fn, exc, reason="unserializable result", started=started)
            return
        record = await self._write(task, lambda now: runtime.storage.complete_task(task.fence, result, now))
        runtime.metrics.emit(
            "task_completed",
            queue=task.queue,
            step_name=task.function,
            kind=task.kind.value,
            duration_s=runtime.clock.monotonic() - started,
        )
        await runtime.task_finished(record)

    async def _fail(
        self,
        task: TaskRecord,
        fn: DurableFunction[Any, Any] | None,
        exc: BaseException,
        *,
        reason: str,
        started: float,
    ) -> None:
        runtime = self.runtime
        try:
            error = runtime.codec.encode_error(exc)
        except Exception as encode_exc:  # pragma: no cover - encode_exception falls back to repr itself
            error = runtime.codec.encode_error(StentError(f"{reason} (error not storable: {encode_exc})"))
        failure = TaskFailure(error=error, reason=reason[:1000], retry_at=None, dead_letter=True)
        record = await self._write(task, lambda now: runtime.storage.fail_task(task.fence, failure, now))
        fields = {"queue": task.queue, "step_name": task.function, "kind": task.kind.value}
        runtime.metrics.emit("task_failed", reason=failure.reason, retrying=False, **fields)
        if record.state.terminal and failure.dead_letter:
            runtime.metrics.emit("dead_lettered", reason=failure.reason, **fields)
        if record.state.terminal:
            await runtime.task_finished(record)

    async def _write(self, task: TaskRecord, write: Callable[[Any], Any]) -> TaskRecord:
        """Perform a fenced write, retrying through storage outages while the lease may still hold."""
        clock = self.runtime.clock
        give_up_at = clock.monotonic() + self._lease_seconds
        delay = 0.05
        while True:
            try:
                record: TaskRecord = await write(clock.now())
                return record
            except LeaseLost as exc:
                raise TaskAbandoned(str(exc)) from exc
            except StorageUnavailable as exc:
                if clock.monotonic() + delay >= give_up_at:
                    raise TaskAbandoned(f"storage unavailable past the lease: {exc}") from exc
                log.warning("storage unavailable writing task %s, retrying in %.2fs: %s", task.task_id, delay, exc)
                await clock.sleep(delay)
                delay = min(delay * 2, 2.0)
