"""Running one claimed task: call its function, journal its steps, and record how it ended.

The runner is the tasks' :class:`~stent.engine.context.TaskHost`.  Step creation is batched per task: every
durable call a task starts in one turn of the event loop (``asyncio.gather`` of ten calls, say) reaches storage
in a single ``get_or_create_steps`` call.

How a run ends, and what is written:

* the function returned: ``complete_task`` with its result and its context updates, in one transaction;
* it raised: ``fail_task``, as a retry at a later time when its retry policy allows, otherwise for good (a
  task's own error is dead-lettered; an error that came from a failed child is not, the child already is);
* its execution is being cancelled: ``cancel_task`` after its ``finally`` blocks ran;
* it was suspended: the suspension was already written, nothing more;
* its lease was lost: nothing (the write would be rejected anyway).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from stent import tracing
from stent._async import wait_done
from stent._batching import GroupCall
from stent.engine.context import TaskContext
from stent.engine.durable import DurableFunction, lookup_function, registered_functions
from stent.engine.tasks import TaskOptions
from stent.errors import (
    ActivityTimeout,
    LeaseLost,
    SerializationError,
    StentError,
    StorageUnavailable,
    UnregisteredFunctionError,
)
from stent.model import Completion, NewTask, StepKey, TaskFailure, TaskRecord
from stent.runtime import Runtime

log = logging.getLogger("stent.runner")

T = TypeVar("T")


class TaskAbandoned(Exception):
    """The task must stop without writing anything more (its lease is gone)."""


class TaskRunner:
    """Runs tasks for one worker and is the TaskHost of the tasks it runs."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        on_waiting: Callable[[str], None],
        on_resumed: Callable[[str], None],
        lease_seconds: float,
        suspend_after: float,
        on_finishing: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.codec = runtime.codec
        self._on_waiting = on_waiting
        self._on_resumed = on_resumed
        self._on_finishing = on_finishing
        self._lease_seconds = lease_seconds
        self._suspend_after = suspend_after
        self._batches: dict[str, list[tuple[StepKey, NewTask, asyncio.Future[TaskRecord]]]] = {}
        self._active: dict[str, TaskContext] = {}
        #: Tasks whose final write (complete, fail, cancel) is on its way: that fenced write decides their fate.
        self.finishing: set[str] = set()
        self.draining = False
        # Completions of one loop turn share a transaction (a group commit): a worker finishing fifty tasks at
        # once commits once, not fifty times.
        self._complete_many: GroupCall[Completion, TaskRecord] = GroupCall(
            lambda completions: runtime.storage.complete_tasks(completions, runtime.clock.now())
        )

    # -- TaskHost ------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.runtime.clock.now()

    def new_task_id(self) -> str:
        return uuid.uuid4().hex

    async def create_step(self, ctx: TaskContext, key: StepKey, new: NewTask) -> TaskRecord:
        future: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        batch = self._batches.get(ctx.task_id)
        if batch is None:
            batch = self._batches[ctx.task_id] = []
            flushed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            ctx.flushing.add(flushed)
            # Flush after every coroutine scheduled in this turn of the loop has added its step.
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush(ctx, flushed)))
        batch.append((key, new, future))
        return await future

    async def _flush(self, ctx: TaskContext, flushed: asyncio.Future[None]) -> None:
        batch = self._batches.pop(ctx.task_id, [])
        try:
            if not batch:
                return
            steps = [(k, n) for k, n, _ in batch]
            try:
                # Get-or-create is idempotent, so a storage blip (before or after it committed) is retried here
                # rather than raised into the workflow's code, which would fail the task for good.
                records = await self._retry_unavailable(
                    ctx.task_id,
                    lambda now: self.runtime.storage.get_or_create_steps(
                        ctx.task.fence, steps, now, allow_stopping=ctx.cancel_requested
                    ),
                )
            except StorageUnavailable as exc:
                # Still down after a lease's worth of retries: give the task up (another worker replays it once
                # the lease expires) instead of raising the outage into the workflow, which would fail it.
                abandoned = TaskAbandoned(f"storage unavailable past the lease while journaling steps: {exc}")
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(abandoned)
                return
            except BaseException as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            created_queues = []
            for record, (_, new, future) in zip(records, batch):
                if not record.state.terminal:
                    ctx.open_steps.add(record.task_id)
                    if record.task_id == new.task_id and record.kind.value == "call":
                        created_queues.append(record.queue)
                if not future.done():
                    future.set_result(record)
            if created_queues:
                await self.runtime.work_created(created_queues)
        finally:
            ctx.flushing.discard(flushed)
            if not flushed.done():
                flushed.set_result(None)

    async def wait_step(
        self, ctx: TaskContext, task_id: str, *, wake_at: datetime | None, suspend: bool
    ) -> TaskRecord:
        token = object()
        if wake_at is not None:
            ctx.timers[token] = wake_at
        self._begin_wait(ctx)
        try:
            if suspend or self.draining:
                await self._suspend_from_inside(ctx)
            return await self.runtime.waiters.wait(task_id)
        finally:
            ctx.timers.pop(token, None)
            self._end_wait(ctx)

    async def sleep_until(self, ctx: TaskContext, wake_at: datetime) -> None:
        remaining = (wake_at - self.now()).total_seconds()
        if remaining <= 0:
            return
        token = object()
        ctx.timers[token] = wake_at
        self._begin_wait(ctx)
        try:
            if remaining > self._suspend_after or self.draining:
                await self._suspend_from_inside(ctx)
            await self.runtime.clock.sleep(remaining)
        finally:
            ctx.timers.pop(token, None)
            self._end_wait(ctx)

    async def expire_step(self, ctx: TaskContext, task_id: str, error: str) -> TaskRecord:
        text = self.codec.encode_error(StentError(error))
        return await self._retry_unavailable(
            ctx.task_id, lambda now: self.runtime.storage.expire_step(ctx.task.fence, task_id, text, now)
        )

    def _begin_wait(self, ctx: TaskContext) -> None:
        ctx.waits += 1
        if ctx.waits == 1:
            self._on_waiting(ctx.task_id)

    def _end_wait(self, ctx: TaskContext) -> None:
        ctx.waits -= 1
        if ctx.waits == 0 and not ctx.suspended:
            self._on_resumed(ctx.task_id)

    # -- suspension and interruption -----------------------------------------------------------------------

    async def _suspend_from_inside(self, ctx: TaskContext) -> None:
        """Park the task in storage, then end its code here; never returns."""
        await self._suspend(ctx)
        await asyncio.get_running_loop().create_future()  # the cancellation from _suspend lands here

    async def _suspend(self, ctx: TaskContext) -> None:
        if ctx.suspended:
            return
        if ctx.waits == 0:
            # It resumed since the worker chose to suspend it (what it waited on finished meanwhile): its code
            # runs again and will end by itself; parking it now would leave it nothing to wake it.
            return
        ctx.suspended = True
        # The wake condition as it stands before any await: code of the task may still run while the suspension
        # is on its way (a gathered branch, say), and a step it consumes meanwhile must still wake the task.
        waiting_on = set(ctx.open_steps)
        timers = list(ctx.timers.values())
        if ctx.flushing:  # steps being journaled right now must be known before the wake condition is written
            await asyncio.gather(*ctx.flushing, return_exceptions=True)
        waiting_on |= ctx.open_steps
        timers += ctx.timers.values()
        wake_at = min(timers) if timers else None
        try:
            await self.runtime.storage.suspend_task(
                ctx.task.fence, waiting_on=sorted(waiting_on), wake_at=wake_at, now=self.now()
            )
        except StentError as exc:
            log.warning(
                "could not suspend task %s (%s); it will be recovered when its lease expires", ctx.task_id, exc
            )
        if ctx.handle is not None:
            ctx.handle.cancel()

    def suspend(self, task_id: str) -> None:
        """Suspend a waiting task from outside (a draining worker)."""
        ctx = self._active.get(task_id)
        if ctx is not None and not ctx.suspended:
            asyncio.ensure_future(self._suspend(ctx))

    def interrupt(self, task_id: str) -> None:
        """Raise CancelledError into a task whose execution is being cancelled."""
        ctx = self._active.get(task_id)
        if ctx is not None and not ctx.cancel_requested:
            ctx.cancel_requested = True
            if ctx.handle is not None:
                ctx.handle.cancel()

    # -- running -------------------------------------------------------------------------------------------

    async def run(self, task: TaskRecord) -> None:
        """Run ``task`` to an outcome and record it.  Raises :class:`TaskAbandoned` if the lease was lost."""
        with tracing.task_span(task):  # nothing unless a tracer is installed (stent.tracing)
            await self._run(task)

    async def _run(self, task: TaskRecord) -> None:
        runtime = self.runtime
        started = runtime.clock.monotonic()
        fn = lookup_function(task.function)
        if fn is None:
            missing = UnregisteredFunctionError(task.function, registered_functions())
            await self._fail(task, None, missing, TaskOptions(), started, reason="unregistered function")
            return
        try:
            options = TaskOptions.loads(task.options)
            args, kwargs = self.codec.decode_call(fn, task.args)
        except Exception as exc:
            undecodable = SerializationError(f"the stored task {task.task_id} cannot be decoded: {exc}")
            await self._fail(task, fn, undecodable, TaskOptions(), started, reason="undecodable task")
            return
        if options.cache_key is not None:
            cache_key = options.cache_key
            try:
                cached = await self._retry_unavailable(
                    task.task_id, lambda now: runtime.storage.cache_get(cache_key, now)
                )
            except StorageUnavailable as exc:
                raise TaskAbandoned(f"storage unavailable past the lease reading the cache: {exc}") from exc
            if cached is not None:
                await self._complete(task, cached, None, started)
                return
        ctx = TaskContext(task, self)
        ctx.handle = asyncio.current_task()
        self._active[task.task_id] = ctx
        token = ctx.activate()
        try:
            value = await self._call(task, fn, args, kwargs, options.timeout)
        except (LeaseLost, TaskAbandoned) as exc:
            raise TaskAbandoned(str(exc)) from exc
        except asyncio.CancelledError as exc:
            if ctx.suspended:
                return
            if ctx.cancel_requested:
                await self._cancelled(task, exc)
                return
            raise
        except BaseException as exc:  # user code may raise anything; the worker must go on
            if ctx.cancel_requested:
                await self._cancelled(task, exc)
                return
            await self._fail(task, fn, exc, options, started, reason=f"{type(exc).__name__}: {exc}")
            return
        finally:
            TaskContext.deactivate(token)
            self._active.pop(task.task_id, None)
        try:
            result = self.codec.encode_result(fn, value)
        except SerializationError as exc:
            await self._fail(task, fn, exc, TaskOptions(), started, reason=str(exc))
            return
        await self._complete(task, result, ctx, started)
        if options.cache_key is not None:
            expires = None if options.cache_ttl is None else self.now() + timedelta(seconds=options.cache_ttl)
            try:
                await runtime.storage.cache_put(options.cache_key, result, expires, self.now())
            except StentError as exc:
                log.warning("could not store the idempotent result of %s: %s", task.function, exc)

    async def _call(
        self,
        task: TaskRecord,
        fn: DurableFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        if timeout is None:
            return await self._start(task, fn, args, kwargs)
        inner = asyncio.ensure_future(self._start(task, fn, args, kwargs))
        try:
            finished = await wait_done(inner, self.runtime.clock, timeout)
        except asyncio.CancelledError:
            inner.cancel()
            raise
        if not finished:
            inner.cancel()
            await asyncio.gather(inner, return_exceptions=True)
            raise ActivityTimeout(f"{fn.name} ran longer than its timeout of {timeout:g}s")
        return inner.result()

    async def _start(
        self, task: TaskRecord, fn: DurableFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Start the task's code, unless its lease ran out meanwhile."""
        if task.lease_expires_at is not None and self.now() >= task.lease_expires_at:
            # The worker stalled since the claim (a long pause, a blocked event loop): the task may be another
            # worker's already, even finished, so its code must not start.  No await separates this check from
            # the code's first line, here and in the task that runs code with a timeout.
            raise TaskAbandoned(f"the lease on task {task.task_id} expired before its code started")
        return await fn.func(*args, **kwargs)

    async def _complete(self, task: TaskRecord, result: str, ctx: TaskContext | None, started: float) -> None:
        runtime = self.runtime
        update = ctx.update() if ctx is not None else None
        record = await self._write(task, lambda now: self._complete_many(Completion(task.fence, result, update)))
        runtime.metrics.emit(
            "task_completed",
            queue=task.queue,
            step_name=task.function,
            kind=task.kind.value,
            duration_s=runtime.clock.monotonic() - started,
        )
        await runtime.task_finished(record)

    async def _cancelled(self, task: TaskRecord, exc: BaseException) -> None:
        error = self.codec.encode_error(exc if isinstance(exc, Exception) else asyncio.CancelledError("cancelled"))
        record = await self._write(task, lambda now: self.runtime.storage.cancel_task(task.fence, error, now))
        await self.runtime.task_finished(record)

    async def _fail(
        self,
        task: TaskRecord,
        fn: DurableFunction[Any, Any] | None,
        exc: BaseException,
        options: TaskOptions,
        started: float,
        *,
        reason: str,
    ) -> None:
        runtime = self.runtime
        policy = options.retry
        from_child = bool(getattr(exc, "__stent_from_step__", False))
        retrying = (
            not from_child
            and isinstance(exc, Exception)
            and task.attempt < policy.max_attempts
            and policy.retries(exc)
        )
        retry_at = None
        if retrying:
            retry_at = self.now() + timedelta(seconds=policy.delay(task.attempt, runtime.rng))
        failure = TaskFailure(
            error=self.codec.encode_error(exc), reason=reason[:1000], retry_at=retry_at, dead_letter=not from_child
        )
        record = await self._write(task, lambda now: runtime.storage.fail_task(task.fence, failure, now))
        fields = {"queue": task.queue, "step_name": task.function, "kind": task.kind.value}
        runtime.metrics.emit("task_failed", reason=failure.reason, retrying=retrying, **fields)
        tracing.task_failed(exc, retrying=retrying)
        if record.state.terminal:
            if failure.dead_letter:
                runtime.metrics.emit("dead_lettered", reason=failure.reason, **fields)
            await runtime.task_finished(record)
        elif retry_at is not None:
            log.info(
                "task %s (%s) failed, attempt %d will run at %s",
                task.task_id,
                task.function,
                task.attempt + 1,
                retry_at,
            )

    async def _write(self, task: TaskRecord, write: Callable[[datetime], Awaitable[TaskRecord]]) -> TaskRecord:
        """Perform a fenced write, retrying through storage outages while the lease may still hold."""
        self.finishing.add(task.task_id)
        if self._on_finishing is not None:
            self._on_finishing(task.task_id)
        try:
            return await self._retry_unavailable(task.task_id, write)
        except LeaseLost as exc:
            raise TaskAbandoned(str(exc)) from exc
        except StorageUnavailable as exc:
            raise TaskAbandoned(f"storage unavailable past the lease: {exc}") from exc
        finally:
            self.finishing.discard(task.task_id)

    async def _retry_unavailable(self, task_id: str, operation: Callable[[datetime], Awaitable[T]]) -> T:
        """Run an idempotent storage operation of a task, retrying StorageUnavailable while the lease may hold."""
        clock = self.runtime.clock
        give_up_at = clock.monotonic() + self._lease_seconds
        delay = 0.05
        while True:
            try:
                return await operation(clock.now())
            except StorageUnavailable as exc:
                if clock.monotonic() + delay >= give_up_at:
                    raise
                log.warning("storage unavailable for task %s, retrying in %.2fs: %s", task_id, delay, exc)
                await clock.sleep(delay)
                delay = min(delay * 2, 2.0)
