"""``Stent``: the executor a program creates to dispatch, run and watch durable executions."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs

from stent._async import wait_done
from stent._batching import pipelined
from stent.backends import Backends, Notifications
from stent.clocks import SystemClock
from stent.engine import operations
from stent.engine.codec import Codec
from stent.engine.dispatch import DispatchOptions, call_of, check_execution_id, fresh_ids
from stent.engine.durable import DurableFunction, durable, lookup_function
from stent.errors import (
    ConfigurationError,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionNotFound,
    ExecutionTimeout,
    TaskNotFound,
)
from stent.model import DeadLetter, ExecutionPage, ExecutionRecord, ExecutionState, TaskRecord
from stent.ports import Clock, Notifier, Storage
from stent.result import Error, Ok, Result
from stent.retry import RetryPolicy
from stent.runtime import Runtime
from stent.serialization import Serializer
from stent.worker.lifecycle import WorkerLifecycle
from stent.worker.machine import LifecycleState
from stent.worker.options import ServeOptions, default_worker_id, seconds_of
from stent.worker.shell import WorkerShell

_MISSING: Any = object()
#: Executions per storage transaction in dispatch_many: big enough to amortize a commit, small enough to keep
#: each transaction short.
_DISPATCH_BATCH = 1000


@attrs.frozen
class ExecutionStatus:
    """What ``state_of`` reports about an execution."""

    execution_id: str
    function: str
    state: ExecutionState
    queue: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    error_type: str | None = None
    counters: dict[str, int] = attrs.Factory(dict)
    state_values: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class StepProgress:
    """One entry of an execution's progress log: a step (call, sleep or signal wait) and how it stands."""

    task_id: str
    parent_task_id: str | None
    step: int | None
    function: str
    kind: str
    state: str
    attempt: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Stent:
    """Dispatches durable executions, waits for them, and runs workers (``serve``).

    ``backend`` is a Storage (for example ``Stent.backends.SQLiteBackend("app.db")``) or a storage URL.
    """

    backends = Backends
    notifications = Notifications
    durable = durable  # a DurableDecorator, not a function: it needs no staticmethod to stay unbound
    sleep = staticmethod(operations.sleep)
    wait_for_signal = staticmethod(operations.wait_for_signal)
    context = staticmethod(operations.context)
    gather = staticmethod(operations.gather)

    _current: ClassVar[Stent | None] = None

    def __init__(
        self,
        backend: Storage | str | None = None,
        *,
        notification_backend: Notifier | str | None = None,
        serializer: Serializer | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        metrics: object | None = None,
        poll_min_interval: float = 0.025,
        poll_max_interval: float = 2.0,
        poll_backoff_factor: float = 1.5,
        max_payload_bytes: int | None = None,
        suspend_timers_after: float | timedelta | str = 60.0,
        promote_asyncio_sleep: bool = True,
    ) -> None:
        if backend is None:
            url = os.environ.get("STENT_STORAGE_URL")
            if not url:
                raise ConfigurationError(
                    "Stent() needs a backend: pass backend=Stent.backends.SQLiteBackend('app.db') (or a storage"
                    " URL), or set STENT_STORAGE_URL"
                )
            backend = url
        if isinstance(backend, str):
            backend = Backends.from_url(backend)
        if isinstance(notification_backend, str):
            notification_backend = Notifications.from_url(notification_backend)
        for name, method in (("claim_tasks", "claim"), ("complete_task", "complete")):
            if not callable(getattr(backend, name, None)):
                raise ConfigurationError(
                    f"backend must be a stent Storage (from Stent.backends...), got {type(backend).__name__}"
                )
        if max_payload_bytes is not None and (not isinstance(max_payload_bytes, int) or max_payload_bytes < 1):
            raise ConfigurationError(
                f"max_payload_bytes must be a positive int or None, got {max_payload_bytes!r}"
            )
        self.poll_min_interval = seconds_of("poll_min_interval", poll_min_interval)
        self.poll_max_interval = seconds_of("poll_max_interval", poll_max_interval)
        if self.poll_max_interval < self.poll_min_interval:
            raise ConfigurationError("poll_max_interval must be at least poll_min_interval")
        if (
            isinstance(poll_backoff_factor, bool)
            or not isinstance(poll_backoff_factor, (int, float))
            or (poll_backoff_factor < 1.0)
        ):
            raise ConfigurationError(
                f"poll_backoff_factor must be a number of at least 1.0, got {poll_backoff_factor!r}"
            )
        self.poll_backoff_factor = float(poll_backoff_factor)
        self.suspend_timers_after = seconds_of("suspend_timers_after", suspend_timers_after, allow_zero=True)
        if not isinstance(promote_asyncio_sleep, bool):
            raise ConfigurationError(f"promote_asyncio_sleep must be True or False, got {promote_asyncio_sleep!r}")
        self.promote_asyncio_sleep = promote_asyncio_sleep
        self.backend: Storage = backend
        self.notification_backend = notification_backend
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.codec = Codec(serializer, max_payload_bytes=max_payload_bytes)
        self.metrics = metrics
        self._runtime: Runtime | None = None
        self._runtime_loop: asyncio.AbstractEventLoop | None = None
        self._lifecycles: dict[str, WorkerLifecycle] = {}

    # -- the process's current executor ----------------------------------------------------------------------

    @classmethod
    def use(cls, executor: Stent) -> Stent:
        """Make ``executor`` the one that durable functions awaited outside any worker dispatch to."""
        if not isinstance(executor, Stent):
            raise ConfigurationError(f"Stent.use() takes a Stent executor, got {type(executor).__name__}")
        cls._current = executor
        return executor

    @classmethod
    def current(cls) -> Stent:
        if cls._current is None:
            raise ConfigurationError(
                "a durable function was awaited outside any worker, but no executor is current;"
                " call Stent.use(executor) or await Stent.bootstrap(backend) first"
            )
        return cls._current

    @classmethod
    async def bootstrap(cls, backend: Storage | str | None = None, **options: Any) -> Stent:
        """Create an executor, initialise its storage, and make it current."""
        executor = cls(backend, **options)
        await executor.backend.init_db()
        return cls.use(executor)

    # -- runtime -------------------------------------------------------------------------------------------

    def _rt(self) -> Runtime:
        loop = asyncio.get_running_loop()
        if self._runtime is None or self._runtime_loop is not loop:
            self._runtime = Runtime(
                storage=self.backend,
                clock=self.clock,
                codec=self.codec,
                rng=self.rng,
                notifier=self.notification_backend,
                metrics=self.metrics,
                poll_min_interval=self.poll_min_interval,
                poll_max_interval=self.poll_max_interval,
                poll_backoff_factor=self.poll_backoff_factor,
            )
            self._runtime_loop = loop
        return self._runtime

    async def _started(self) -> Runtime:
        """The runtime, with its notifier connected (clients need wake-ups as much as workers do)."""
        rt = self._rt()
        await rt.start()
        return rt

    async def close(self) -> None:
        """Close the notifier connection and the storage."""
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None
        await self.backend.close()

    # -- dispatch and results ------------------------------------------------------------------------------

    async def dispatch(
        self,
        fn: DurableFunction[..., Any] | str,
        *args: Any,
        execution_id: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        tags: Iterable[str] | None = None,
        delay: float | timedelta | str | None = None,
        max_duration: float | timedelta | str | None = None,
        retry_policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> str:
        """Start a new execution of ``fn`` and return its id; the same ``execution_id`` twice returns the first.

        ``execution_id``, ``queue``, ``priority``, ``tags``, ``delay``, ``max_duration`` and ``retry_policy`` are
        options of the dispatch, not arguments of ``fn``.
        """
        check_execution_id(execution_id)
        plan = DispatchOptions.check(
            fn,
            queue=queue,
            priority=priority,
            tags=tags,
            delay=delay,
            max_duration=max_duration,
            retry_policy=retry_policy,
        )
        rt = await self._started()
        now = rt.clock.now()
        new = plan.execution(self.codec, args, kwargs, now, execution_id)
        execution, created = await self.backend.create_execution(new, now)
        if created:
            rt.waiters.dispatched(execution.execution_id, execution.root_task_id)
            await rt.work_created([new.root.queue])
        return execution.execution_id

    async def dispatch_many(
        self,
        fn: DurableFunction[..., Any] | str,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        queue: str | None = None,
        priority: int | None = None,
        tags: Iterable[str] | None = None,
        delay: float | timedelta | str | None = None,
        max_duration: float | timedelta | str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> list[str]:
        """Start one execution of ``fn`` per item of ``calls``, in one storage transaction per thousand; their ids,
        in order.

        Each item is a call's positional arguments as a tuple (``(order_id,)`` for one argument) or its keyword
        arguments as a dict.  The options are ``dispatch``'s and apply to every execution.  Every argument is
        encoded before anything is written, so one bad item stores none of them.  Two transactions are under way
        at a time (one is prepared while the database writes the other); when storage fails, the thousands that
        committed stay and the call raises.
        """
        plan = DispatchOptions.check(
            fn,
            queue=queue,
            priority=priority,
            tags=tags,
            delay=delay,
            max_duration=max_duration,
            retry_policy=retry_policy,
        )
        if isinstance(calls, str | bytes) or not isinstance(calls, Iterable):
            raise ConfigurationError(f"dispatch_many() takes an iterable of calls, got {calls!r}")
        arguments = [call_of(item, index) for index, item in enumerate(calls)]
        if not arguments:
            return []
        rt = await self._started()
        now = rt.clock.now()
        fresh = fresh_ids()
        news = [plan.execution(self.codec, args, kwargs, now, None, fresh) for args, kwargs in arguments]
        chunks = [news[start : start + _DISPATCH_BATCH] for start in range(0, len(news), _DISPATCH_BATCH)]
        made = await pipelined([functools.partial(self.backend.create_executions, chunk, now) for chunk in chunks])
        ids: list[str] = []
        for execution, created in (pair for chunk in made for pair in chunk):
            ids.append(execution.execution_id)
            if created:
                rt.waiters.dispatched(execution.execution_id, execution.root_task_id)
        await rt.work_created({new.root.queue for new in news})
        return ids

    async def _execution(self, execution_id: str) -> ExecutionRecord:
        if not isinstance(execution_id, str) or not execution_id:
            raise ConfigurationError(f"an execution id is a non-empty string, got {execution_id!r}")
        execution = await self.backend.get_execution(execution_id)
        if execution is None:
            raise ExecutionNotFound(execution_id)
        return execution

    def _outcome(self, execution: ExecutionRecord) -> Result[Any]:
        fn = lookup_function(execution.function)
        if execution.state is ExecutionState.COMPLETED:
            return Ok(self.codec.decode_result(fn, execution.result))
        if execution.state is ExecutionState.TIMED_OUT:
            limit = ""
            if execution.deadline is not None:
                limit = f" of {(execution.deadline - execution.created_at).total_seconds():g}s"
            return Error(ExecutionTimeout(f"execution {execution.execution_id} ran past its max_duration{limit}"))
        if execution.state is ExecutionState.CANCELLED:
            return Error(ExecutionCancelled(f"execution {execution.execution_id} was cancelled"))
        if execution.error:
            return Error(self.codec.decode_error(execution.error))
        return Error(ExecutionFailed(f"execution {execution.execution_id} ended {execution.state.value}"))

    async def result_of(self, execution_id: str) -> Result[Any] | None:
        """``Ok(value)`` or ``Error(exception)`` for a finished execution; ``None`` while it runs."""
        execution = await self._execution(execution_id)
        return self._outcome(execution) if execution.state.terminal else None

    async def state_of(self, execution_id: str) -> ExecutionStatus:
        execution = await self._execution(execution_id)
        error = error_type = None
        if execution.error:
            exc = self.codec.decode_error(execution.error)
            error, error_type = str(exc), type(exc).__name__
        return ExecutionStatus(
            execution_id=execution.execution_id,
            function=execution.function,
            state=execution.state,
            queue=execution.queue,
            created_at=execution.created_at,
            updated_at=execution.updated_at,
            finished_at=execution.finished_at,
            error=error,
            error_type=error_type,
            counters=json.loads(execution.counters or "{}"),
            state_values={
                key: self.codec.serializer.loads(value)
                for key, value in json.loads(execution.custom_state or "{}").items()
            },
        )

    async def progress_of(self, execution_id: str, *, limit: int = 100) -> list[StepProgress]:
        """The execution's most recent ``limit`` steps (its root first when it fits), oldest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive int, got {limit!r}")
        await self._execution(execution_id)
        tasks = await self.backend.list_execution_tasks(execution_id)
        tasks.sort(key=lambda t: (t.created_at, t.step or 0))
        return [
            StepProgress(
                task_id=t.task_id,
                parent_task_id=t.parent_task_id,
                step=t.step,
                function=t.function,
                kind=t.kind.value,
                state=t.state.value,
                attempt=t.attempt,
                created_at=t.created_at,
                started_at=t.started_at,
                finished_at=t.finished_at,
            )
            for t in tasks[-limit:]
        ]

    async def wait_for(self, execution_id: str, expiry: float | timedelta | None = None) -> Any:
        """Wait until the execution finishes; return its result or raise its error.

        With ``expiry`` (seconds or a timedelta), raise :class:`~stent.errors.ExecutionTimeout` if it has not
        finished by then.
        """
        limit = None if expiry is None else seconds_of("expiry", expiry)
        rt = await self._started()
        # An execution dispatched here is known to exist; with hints heard, its end is not missed unread.
        unread = isinstance(execution_id, str) and rt.hears_hints and rt.waiters.dispatched_here(execution_id)
        execution = None if unread else await self._execution(execution_id)
        if execution is None or not execution.state.terminal:
            waiter = rt.waiters.wait_execution(execution_id, None if execution is None else execution.root_task_id)
            try:
                if not await wait_done(waiter, rt.clock, limit):
                    raise ExecutionTimeout(
                        f"execution {execution_id} did not finish within {limit:g}s (wait_for expiry)"
                    )
            finally:
                waiter.cancel()
            final = waiter.result()  # the record the registry read, when it did; read it here otherwise
            execution = (
                final if final is not None and final.state.terminal else await self._execution(execution_id)
            )
        return self._outcome(execution).unwrap()

    async def list_executions(
        self,
        *,
        state: ExecutionState | str | None = None,
        queue: str | None = None,
        function: DurableFunction[..., Any] | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ExecutionPage:
        if isinstance(state, str):
            try:
                state = ExecutionState(state)
            except ValueError:
                choices = ", ".join(s.value for s in ExecutionState)
                raise ConfigurationError(f"unknown execution state {state!r}; one of: {choices}") from None
        if isinstance(function, DurableFunction):
            function = function.name
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive int, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ConfigurationError(f"offset must be an int of 0 or more, got {offset!r}")
        return await self.backend.list_executions(
            state=state, queue=queue, function=function, limit=limit, offset=offset
        )

    async def queue_depth(self, queue: str | None = None) -> int:
        """Tasks ready or scheduled to run, in ``queue`` or in all queues."""
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise ConfigurationError(f"queue must be a non-empty string or None, got {queue!r}")
        return await self.backend.queue_depth(queue, self.clock.now())

    # -- signals and cancellation ------------------------------------------------------------------------

    async def send_signal(self, execution_id: str, name: str, payload: Any = None) -> None:
        """Deliver a signal to an execution; a workflow waiting for ``name`` receives ``payload``.

        Signals sent before anyone waits are kept, in order.  Raises
        :class:`~stent.errors.ExecutionNotFound` or :class:`~stent.errors.ExecutionFinished`.
        """
        await self._execution(execution_id)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a signal name is a non-empty string, got {name!r}")
        from stent.serialization import encode_value

        text = encode_value(
            self.codec.serializer,
            payload,
            what=f"the payload of signal {name!r}",
            max_bytes=self.codec.max_payload_bytes,
        )
        rt = await self._started()
        await self.backend.send_signal(execution_id, name, text, rt.clock.now())
        await rt.work_created_anywhere()

    async def cancel(self, execution_id: str) -> bool:
        """Cancel an execution: waiting work stops at once, running code gets ``CancelledError``.

        Returns ``False`` (and changes nothing) when the execution had already finished.
        """
        await self._execution(execution_id)
        _, changed = await self.backend.cancel_execution(execution_id, self.clock.now())
        if changed:
            (await self._started()).waiters.hint()
        return changed

    # -- dead letters ----------------------------------------------------------------------------------

    async def list_dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive int, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ConfigurationError(f"offset must be an int of 0 or more, got {offset!r}")
        return await self.backend.list_dead_letters(limit=limit, offset=offset)

    async def get_dead_letter(self, task_id: str) -> DeadLetter:
        dead = await self.backend.get_dead_letter(task_id) if isinstance(task_id, str) else None
        if dead is None:
            raise TaskNotFound(str(task_id))
        return dead

    async def discard_dead_letter(self, task_id: str) -> None:
        await self.get_dead_letter(task_id)
        await self.backend.discard_dead_letter(task_id)

    async def replay_dead_letter(self, task_id: str, *, queue: str | None = None) -> TaskRecord:
        """Run a dead-lettered task again (optionally on another queue); a parent that waited on it resumes."""
        await self.get_dead_letter(task_id)
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise ConfigurationError(f"queue must be a non-empty string, got {queue!r}")
        record = await self.backend.replay_dead_letter(task_id, queue, self.clock.now())
        await (await self._started()).work_created([record.queue])
        return record

    # -- workers -------------------------------------------------------------------------------------------

    def create_worker_lifecycle(self, name: str) -> WorkerLifecycle:
        lifecycle = WorkerLifecycle(name)
        self._lifecycles[name] = lifecycle
        return lifecycle

    def request_worker_drain(
        self, lifecycle: WorkerLifecycle | None = None, *, timeout: float | None = None
    ) -> None:
        """Ask one worker (or every worker of this executor) to stop claiming, finish, and stop."""
        drain_timeout = None if timeout is None else seconds_of("timeout", timeout)
        if lifecycle is None:
            for each in self._lifecycles.values():
                each._request_drain(drain_timeout)
            return
        if not isinstance(lifecycle, WorkerLifecycle) or self._lifecycles.get(lifecycle.name) is not lifecycle:
            raise ConfigurationError(
                f"{lifecycle!r} is not a lifecycle of this executor; create it with create_worker_lifecycle()"
            )
        lifecycle._request_drain(drain_timeout)

    def drain_on_signals(
        self,
        lifecycle: WorkerLifecycle | None = None,
        signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
    ) -> Callable[[], None]:
        """Drain ``lifecycle`` (or every worker of this executor) when the process gets SIGTERM or SIGINT.

        Call it from inside the running event loop, after creating the lifecycle.  Returns a function that
        removes the handlers.  A second signal while draining does nothing more: the drain is already under way.
        """
        if lifecycle is not None and self._lifecycles.get(str(getattr(lifecycle, "name", ""))) is not lifecycle:
            raise ConfigurationError(f"{lifecycle!r} is not a lifecycle of this executor")
        loop = asyncio.get_running_loop()
        chosen = list(signals)
        for sig in chosen:
            loop.add_signal_handler(sig, self.request_worker_drain, lifecycle)

        def remove() -> None:
            for sig in chosen:
                loop.remove_signal_handler(sig)

        return remove

    def worker_status_overview(self) -> dict[str, Any]:
        """``ready``: some worker started serving and has not stopped (a draining worker still counts, so a health
        check can tell "draining" from "not ready"); ``draining``: some worker drains."""
        workers = [
            {
                "name": lc.name,
                "worker_id": lc.worker_id,
                "state": lc.state.value,
                "running_tasks": lc.running_tasks,
            }
            for lc in self._lifecycles.values()
        ]
        states = [lc.state for lc in self._lifecycles.values()]
        return {
            "ready": any(s in (LifecycleState.READY, LifecycleState.DRAINING) for s in states),
            "draining": any(s is LifecycleState.DRAINING for s in states),
            "workers": workers,
        }

    async def serve(
        self,
        worker_id: str | None = None,
        queues: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        max_concurrency: int = 10,
        poll_interval: float = 0.5,
        poll_interval_max: float = 5.0,
        poll_backoff_factor: float = 2.0,
        lease_duration: timedelta | float = timedelta(minutes=5),
        heartbeat_interval: timedelta | float | None = None,
        cleanup_interval: float = 3600.0,
        retention_period: timedelta | float = timedelta(days=7),
        lifecycle: WorkerLifecycle | None = None,
        drain_timeout: timedelta | float | None = None,
    ) -> None:
        """Run a worker until it is drained (or the task running it is cancelled).

        ``heartbeat_interval`` defaults to ``lease_duration / 2.5`` (two minutes for the default five-minute lease).
        """
        if worker_id is None:
            # A named lifecycle names its worker; otherwise host, process and a random suffix.
            if isinstance(lifecycle, WorkerLifecycle):
                worker_id = lifecycle.name
            else:
                worker_id = default_worker_id()
        options = ServeOptions.build(
            worker_id=worker_id,
            queues=queues,
            tags=tags,
            max_concurrency=max_concurrency,
            poll_interval=poll_interval,
            poll_interval_max=poll_interval_max,
            poll_backoff_factor=poll_backoff_factor,
            lease_duration=lease_duration,
            heartbeat_interval=heartbeat_interval,  # None: derived from the lease
            cleanup_interval=cleanup_interval,
            retention_period=retention_period,
            drain_timeout=drain_timeout,
        )
        if lifecycle is None:
            lifecycle = self.create_worker_lifecycle(worker_id)
        elif not isinstance(lifecycle, WorkerLifecycle):
            raise ConfigurationError(f"lifecycle must come from create_worker_lifecycle(), got {lifecycle!r}")
        else:
            self._lifecycles.setdefault(lifecycle.name, lifecycle)
        if lifecycle.state is not LifecycleState.STARTING:
            raise ConfigurationError(
                f"lifecycle {lifecycle.name!r} was already used by a worker; create a new one"
            )
        if lifecycle.drain_timeout is None and options.drain_timeout is not None:
            lifecycle.drain_timeout = options.drain_timeout
        functions = None  # the worker claims whatever durable functions are registered at each claim
        shell = WorkerShell(
            self._rt(),
            options,
            lifecycle,
            functions,
            suspend_after=self.suspend_timers_after,
            promote_sleep=self.promote_asyncio_sleep,
        )
        await shell.run()
