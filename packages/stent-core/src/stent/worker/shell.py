"""The async shell around :class:`~stent.worker.machine.WorkerMachine`.

The shell owns the I/O: it turns storage replies, finished task coroutines, notifications and the passing of
time into machine events, and performs the commands the machine returns.  It makes no decisions of its own
beyond how to perform a command.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

from stent._async import Wakeup
from stent.engine.durable import registered_functions
from stent.engine.operations import install_sleep_promotion, uninstall_sleep_promotion
from stent.engine.runner import TaskAbandoned, TaskRunner
from stent.errors import StentError
from stent.model import ClaimRequest, Fence, TaskRecord
from stent.runtime import Runtime
from stent.worker.housekeeping import TIMEOUT_BATCH, Housekeeper
from stent.worker.lifecycle import WorkerLifecycle
from stent.worker.machine import (
    AbandonTask,
    Claim,
    ClaimDone,
    Command,
    DrainRequested,
    Event,
    Housekeep,
    InterruptTask,
    LifecycleState,
    ReleaseRunning,
    RenewDone,
    RenewLeases,
    Started,
    Stop,
    SuspendWaiting,
    TaskEnded,
    TaskFinishing,
    TaskResumed,
    TaskWaiting,
    WorkerConfig,
    WorkerMachine,
    WorkNotified,
)
from stent.worker.options import ServeOptions

log = logging.getLogger("stent.worker")

_LOST = "lost"  # stop without writing: the lease is gone
_RELEASE = "release"  # stop and hand the task back (drain)


class WorkerShell:
    def __init__(
        self,
        runtime: Runtime,
        options: ServeOptions,
        lifecycle: WorkerLifecycle,
        functions: frozenset[str] | None,
        *,
        suspend_after: float = 60.0,
        promote_sleep: bool = True,
    ) -> None:
        self.runtime = runtime
        self.options = options
        self.lifecycle = lifecycle
        self.functions = functions
        self.machine = WorkerMachine(
            WorkerConfig(
                max_concurrency=options.max_concurrency,
                poll_interval=options.poll_interval,
                poll_interval_max=options.poll_interval_max,
                poll_backoff_factor=options.poll_backoff_factor,
                heartbeat_interval=options.heartbeat_interval,
                housekeeping_interval=min(options.poll_interval_max, 5.0),
            )
        )
        self.housekeeper = Housekeeper(runtime, options)
        self._promote_sleep = promote_sleep
        self.runner = TaskRunner(
            runtime,
            on_waiting=lambda task_id: self._post(TaskWaiting(self._now(), task_id, self._limited(task_id))),
            on_resumed=lambda task_id: self._post(TaskResumed(self._now(), task_id)),
            on_finishing=lambda task_id: self._post(TaskFinishing(self._now(), task_id)),
            lease_seconds=options.lease_duration,
            suspend_after=suspend_after,
        )
        self._events: list[Event] = []
        self._wake = Wakeup()
        self._coroutines: dict[str, asyncio.Task[None]] = {}
        self._records: dict[str, TaskRecord] = {}
        self._stop_mode: dict[str, str] = {}
        self._io: set[asyncio.Task[None]] = set()
        self._drain_posted = False

    # -- plumbing ------------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.runtime.clock.monotonic()

    def _post(self, event: Event) -> None:
        self._events.append(event)
        self._wake.set()

    def request_drain(self) -> None:
        self._wake.set()

    def _spawn_io(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(self._guarded(coro))
        self._io.add(task)
        task.add_done_callback(self._io.discard)

    @staticmethod
    async def _guarded(coro: Coroutine[Any, Any, None]) -> None:
        # A bug in an adapter must not take the worker loop down with it: log, and let the next cycle retry.
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker I/O failed unexpectedly; continuing")

    def _on_work(self, queue: str | None) -> None:
        if queue is None or self.options.queues is None or queue in self.options.queues:
            self._post(WorkNotified(self._now()))

    # -- the loop ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.runtime.start()
        unsubscribe = self.runtime.on_work(self._on_work)
        self.lifecycle.worker_id = self.options.worker_id
        self.lifecycle._on_drain.append(self.request_drain)
        if self._promote_sleep:
            install_sleep_promotion()
        try:
            self._post(Started(self._now()))
            while True:
                if self.lifecycle.drain_requested and not self._drain_posted:
                    self._drain_posted = True
                    self.runner.draining = True
                    self._post(DrainRequested(self._now(), self.lifecycle.drain_timeout))
                self._wake.clear()
                events, self._events = self._events, []
                self._perform(self.machine.handle_all(events, self._now()))
                self._sync_lifecycle()
                if self.machine.state is LifecycleState.STOPPED:
                    return
                if self._events:
                    continue
                deadline = self.machine.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - self._now())
                await self._wake.wait(self.runtime.clock, timeout)
        finally:
            unsubscribe()
            self.lifecycle._on_drain.remove(self.request_drain)
            await self._shutdown()
            if self._promote_sleep:
                uninstall_sleep_promotion()
            self.lifecycle._set_state(LifecycleState.STOPPED)

    def _sync_lifecycle(self) -> None:
        self.lifecycle.running_tasks = len(self.machine.running) + len(self.machine.finishing)
        if self.lifecycle.state is not self.machine.state:
            self.lifecycle._set_state(self.machine.state)
            log.info("worker %s is %s", self.options.worker_id, self.machine.state.value)

    async def _shutdown(self) -> None:
        """Leaving serve() (drained, or cancelled): stop anything still running and hand it back."""
        for task_id in list(self._coroutines):
            self._stop_task(task_id, _RELEASE)
        pending = list(self._coroutines.values()) + list(self._io)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self.runtime.storage.remove_worker(self.options.worker_id)
        except StentError as exc:
            log.info("could not remove the heartbeat row of worker %s: %s", self.options.worker_id, exc)

    # -- commands ------------------------------------------------------------------------------------------

    def _perform(self, commands: Iterable[Command]) -> None:
        for command in commands:
            match command:
                case Claim(limit):
                    self._spawn_io(self._claim(limit))
                case RenewLeases(task_ids):
                    self._spawn_io(self._renew(task_ids))
                case AbandonTask(task_id, reason):
                    if task_id in self.runner.finishing:
                        # Its final write is on its way (a renewal that ran just after it committed finds the
                        # lease released): the fenced write itself tells whether the lease still held.
                        log.debug("task %s not renewed while its final write is on its way", task_id)
                        continue
                    log.warning("task %s stopped: %s", task_id, reason)
                    self._stop_task(task_id, _LOST)
                case InterruptTask(task_id):
                    self.runner.interrupt(task_id)
                case SuspendWaiting(task_ids):
                    self.runner.draining = True
                    for task_id in task_ids:
                        self.runner.suspend(task_id)
                case ReleaseRunning(task_ids):
                    for task_id in task_ids:
                        self._stop_task(task_id, _RELEASE)
                case Housekeep():
                    self._spawn_io(
                        self.housekeeper.run(state=self.machine.state.value, running=len(self.machine.running))
                    )
                case Stop():
                    pass

    def _stop_task(self, task_id: str, mode: str) -> None:
        coroutine = self._coroutines.get(task_id)
        if coroutine is None or task_id in self._stop_mode:
            return
        self._stop_mode[task_id] = mode
        coroutine.cancel()

    async def _claim(self, limit: int) -> None:
        runtime = self.runtime
        sweep = self.housekeeper.claim_sweeps()
        request = ClaimRequest(
            worker_id=self.options.worker_id,
            # None: whatever is registered now, so functions imported after serve() started are claimed too.
            functions=self.functions if self.functions is not None else frozenset(registered_functions()),
            limit=limit,
            lease_seconds=self.options.lease_duration,
            queues=self.options.queues,
            tags=self.options.tags,
            time_out_limit=TIMEOUT_BATCH if sweep else 0,
        )
        try:
            records = await runtime.storage.claim_tasks(request, runtime.clock.now())
        except Exception as exc:
            log.warning("claim failed, will retry after the poll interval: %s", exc)
            self._post(ClaimDone(self._now(), limit, (), failed=True))
            return
        self.housekeeper.claimed(swept=sweep)
        for record in records:
            self._records[record.task_id] = record
            coroutine = asyncio.ensure_future(self._run(record))
            coroutine.add_done_callback(functools.partial(self._run_done, record))
            self._coroutines[record.task_id] = coroutine
            runtime.metrics.emit(
                "task_claimed", queue=record.queue, step_name=record.function, kind=record.kind.value
            )
        self._post(ClaimDone(self._now(), limit, tuple(r.task_id for r in records)))

    async def _renew(self, task_ids: tuple[str, ...]) -> None:
        runtime = self.runtime
        fences = [self._records[t].fence for t in task_ids if t in self._records]
        try:
            report = await runtime.storage.renew_leases(
                self.options.worker_id, fences, self.options.lease_duration, runtime.clock.now()
            )
        except Exception as exc:
            log.warning("lease renewal failed, will retry at the next heartbeat: %s", exc)
            self._post(RenewDone(self._now(), frozenset(), frozenset(task_ids), failed=True))
            return
        for fence in fences:
            runtime.metrics.emit("lease_renewed", task_id=fence.task_id, success=fence.task_id in report.renewed)
        asked = frozenset(f.task_id for f in fences)
        self._post(RenewDone(self._now(), report.renewed, asked, stopping=report.stopping))

    async def _run(self, record: TaskRecord) -> None:
        task_id = record.task_id
        try:
            await self.runner.run(record)
        except TaskAbandoned as exc:
            log.warning("task %s abandoned: %s", task_id, exc)
        except asyncio.CancelledError:
            if self._stop_mode.get(task_id) == _RELEASE:
                await self._release(record.fence, record.queue)
            elif task_id not in self._stop_mode:
                raise
        except Exception:
            log.exception(
                "worker bug while running task %s; its lease will expire and it will be retried", task_id
            )
        finally:
            # A stale run of a task this worker has claimed again (its lease expired while a write was retried)
            # must not end the bookkeeping of the current run.
            if self._coroutines.get(task_id) is asyncio.current_task():
                self._coroutines.pop(task_id, None)
                self._records.pop(task_id, None)
                self._stop_mode.pop(task_id, None)
                self._post(TaskEnded(self._now(), task_id, record.max_concurrent is not None))

    def _run_done(self, record: TaskRecord, coroutine: asyncio.Task[None]) -> None:
        """A task's coroutine cancelled before it ever ran skipped ``_run``'s cleanup: do it here."""
        task_id = record.task_id
        if self._coroutines.get(task_id) is not coroutine:
            return  # _run cleaned up after itself
        self._coroutines.pop(task_id, None)
        self._records.pop(task_id, None)
        if self._stop_mode.pop(task_id, None) == _RELEASE:
            self._spawn_io(self._release(record.fence, record.queue))
        self._post(TaskEnded(self._now(), task_id, record.max_concurrent is not None))

    def _limited(self, task_id: str) -> bool:
        record = self._records.get(task_id)
        return record is not None and record.max_concurrent is not None

    async def _release(self, fence: Fence, queue: str) -> None:
        try:
            await self.runtime.storage.release_task(fence, self.runtime.clock.now())
        except Exception as exc:  # lease already gone, or storage down: either way the lease will expire
            log.info("task %s not handed back (%s); its lease will expire", fence.task_id, exc)
            return
        await self.runtime.work_created([queue])
