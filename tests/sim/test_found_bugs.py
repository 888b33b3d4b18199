"""Bugs the simulator found in core, each pinned by a minimal test on the plain fake-clock harness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

import pytest

from stent import Stent
from stent.clocks import FakeClock
from stent.engine.runner import TaskAbandoned, TaskRunner
from stent.errors import StorageUnavailable
from stent.memory import MemoryStorage
from stent.model import ClaimRequest, ContextUpdate, Fence, NewTask, StepKey, TaskRecord, TaskState
from stent.testing.harness import WorkflowHarness
from stent.worker.lifecycle import WorkerLifecycle
from stent.worker.machine import (
    Claim,
    ClaimDone,
    DrainRequested,
    Started,
    Stop,
    TaskEnded,
    Tick,
    WorkerConfig,
    WorkerMachine,
)
from stent.worker.options import ServeOptions
from stent.worker.shell import WorkerShell


class StepOutageOnce(MemoryStorage):
    """Fails the first ``get_or_create_steps`` with StorageUnavailable, before or after it commits."""

    def __init__(self, *, after_commit: bool) -> None:
        super().__init__()
        self.after_commit = after_commit
        self.failed = False

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        if self.failed:
            return await super().get_or_create_steps(parent, steps, now, allow_stopping=allow_stopping)
        self.failed = True
        if self.after_commit:
            await super().get_or_create_steps(parent, steps, now, allow_stopping=allow_stopping)
        raise StorageUnavailable("connection reset")


@Stent.durable
async def double(x: int) -> int:
    return 2 * x


@Stent.durable
async def one_step(x: int) -> int:
    return await double(x)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
async def test_storage_blip_while_journaling_a_step_does_not_fail_the_workflow(after_commit: bool) -> None:
    """A transient StorageUnavailable from step creation is retried (steps are get-or-create), not raised."""
    harness = WorkflowHarness(StepOutageOnce(after_commit=after_commit))
    try:
        await harness.start_worker()
        execution_id = await harness.executor.dispatch(one_step, 21)
        assert await harness.finish(execution_id, max_virtual=3600) == 42
    finally:
        await harness.stop()


RUNS: list[str] = []


@Stent.durable
async def side_effect(key: str) -> str:
    RUNS.append(key)
    return key


async def test_code_does_not_start_once_the_lease_expired_between_claim_and_start() -> None:
    """A worker that stalls between claiming a task and starting it (past its lease) abandons it unrun.

    Found by the simulator (pause faults): the stalled worker started the code of a step another worker had
    meanwhile claimed and completed, running a committed step's side effects again.
    """
    RUNS.clear()
    clock = FakeClock()
    storage = MemoryStorage()
    executor = Stent(storage, clock=clock)
    await executor.dispatch(side_effect, "once")
    request = ClaimRequest(worker_id="w1", functions=frozenset({side_effect.name}), limit=1, lease_seconds=10)
    [record] = await storage.claim_tasks(request, clock.now())
    clock.advance(11)  # the worker stalls here, past its lease
    runner = TaskRunner(
        executor._rt(), on_waiting=lambda _: None, on_resumed=lambda _: None, lease_seconds=10, suspend_after=60
    )
    with pytest.raises(TaskAbandoned):
        await runner.run(record)
    assert RUNS == []


class StepOutageUntil(MemoryStorage):
    """Every ``get_or_create_steps`` fails with StorageUnavailable until the clock passes ``until``."""

    def __init__(self, clock: FakeClock, until: float) -> None:
        super().__init__()
        self.clock = clock
        self.until = until

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        if self.clock.monotonic() < self.until:
            raise StorageUnavailable("database restarting")
        return await super().get_or_create_steps(parent, steps, now, allow_stopping=allow_stopping)


async def test_storage_outage_longer_than_the_lease_abandons_the_task_instead_of_failing_it() -> None:
    """Journaling that cannot reach storage for longer than the lease gives the task up for another try.

    Found by the simulator (a pause during the retries): giving up raised StorageUnavailable into the workflow,
    which then failed for good although nothing was wrong with it.
    """
    harness = WorkflowHarness()
    storage = StepOutageUntil(harness.clock, until=40)
    harness.storage = storage
    harness.executor = Stent(storage, clock=harness.clock)
    try:
        await harness.start_worker(lease_duration=10, heartbeat_interval=3)
        execution_id = await harness.executor.dispatch(one_step, 4)
        assert await harness.finish(execution_id, max_virtual=3600) == 8
    finally:
        await harness.stop()


class CacheOutageOnce(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def cache_get(self, key: str, now: datetime) -> str | None:
        if not self.failed:
            self.failed = True
            raise StorageUnavailable("connection reset")
        return await super().cache_get(key, now)


@Stent.durable(cached=True)
async def cached_double(x: int) -> int:
    return 2 * x


async def test_storage_blip_on_a_cache_lookup_is_retried_not_logged_as_a_worker_bug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A transient StorageUnavailable from the idempotency cache is retried; no error is logged.

    Found by the simulator: it escaped the runner as a "worker bug" and the task waited for its lease to expire.
    """
    harness = WorkflowHarness(CacheOutageOnce())
    try:
        await harness.start_worker()
        execution_id = await harness.executor.dispatch(cached_double, 5)
        assert await harness.finish(execution_id, max_virtual=60) == 10
    finally:
        await harness.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("stent")]


@Stent.durable(timeout="10s")
async def side_effect_with_timeout(key: str) -> str:
    RUNS.append(key)
    return key


async def test_code_of_a_function_with_a_timeout_does_not_start_once_the_lease_expired() -> None:
    """The lease check also guards code started in a task of its own (functions with a ``timeout``).

    Found by the simulator (pause faults): the check ran before that task was created, and a pause in between
    let the code start with a long-expired lease, repeating a step another worker had completed.
    """
    RUNS.clear()
    clock = FakeClock()
    storage = MemoryStorage()
    executor = Stent(storage, clock=clock)
    await executor.dispatch(side_effect_with_timeout, "once")
    request = ClaimRequest(
        worker_id="w1", functions=frozenset({side_effect_with_timeout.name}), limit=1, lease_seconds=10
    )
    [record] = await storage.claim_tasks(request, clock.now())
    runner = TaskRunner(
        executor._rt(), on_waiting=lambda _: None, on_resumed=lambda _: None, lease_seconds=10, suspend_after=60
    )
    running = asyncio.ensure_future(runner.run(record))
    await asyncio.sleep(0)  # the runner has created the task that will run the code, which has not started yet
    clock.advance(11)  # the worker stalls here, past its lease
    with pytest.raises(TaskAbandoned):
        await running
    assert RUNS == []


def test_draining_worker_past_its_drain_timeout_does_not_ask_to_be_woken_in_the_past() -> None:
    """Past the drain timeout with nothing running but a claim still in flight, the machine waits for events.

    Found by the simulator (restart and pause faults): ``next_deadline()`` kept returning the passed drain
    deadline, which ``_drain`` only acts on when tasks are running, so the shell spun with a zero timeout (a busy
    loop burning a CPU) until the claim came back.
    """
    machine = WorkerMachine(
        WorkerConfig(
            max_concurrency=4, poll_interval=1, poll_interval_max=5, poll_backoff_factor=2, heartbeat_interval=5
        )
    )
    assert any(isinstance(c, Claim) for c in machine.handle(Started(now=0.0)))  # a claim is now in flight
    machine.handle(DrainRequested(now=1.0, timeout=10.0))
    machine.handle(Tick(now=20.0))  # the drain timeout has passed; still nothing running
    deadline = machine.next_deadline()
    assert deadline is None or deadline > 20.0
    done = machine.handle(ClaimDone(now=21.0, requested=4, claimed=()))
    assert any(isinstance(c, Stop) for c in done)


class FailsOneCompletion(MemoryStorage):
    """``complete_task`` of the task named ``flaky_id`` fails once with StorageUnavailable."""

    flaky_id = ""
    failed = False

    async def complete_task(
        self, fence: Fence, result: str, now: datetime, update: ContextUpdate | None = None
    ) -> TaskRecord:
        if fence.task_id == self.flaky_id and not self.failed:
            self.failed = True
            raise StorageUnavailable("connection reset")
        return await super().complete_task(fence, result, now, update)


@Stent.durable
async def waits_for_double(x: int) -> int:
    return await double(x)


async def test_waiting_task_that_resumes_before_its_suspension_starts_is_not_parked_forever() -> None:
    """A draining worker's suspension of a waiting task, overtaken by the task resuming, does not park it.

    Found by the simulator (restart faults): the step the task waited on finished, its code resumed and moved
    on (its completion retrying a storage blip), and only then did the suspension run: it parked the task with
    nothing to wait for, so it never ran again, and cancelled the completion in flight.
    """
    clock = FakeClock()
    storage = FailsOneCompletion()
    executor = Stent(storage, clock=clock)
    runtime = executor._rt()
    await executor.dispatch(waits_for_double, 21)
    request = ClaimRequest(worker_id="w1", functions=frozenset({waits_for_double.name}), limit=1, lease_seconds=60)
    [parent] = await storage.claim_tasks(request, clock.now())
    storage.flaky_id = parent.task_id
    runner = TaskRunner(
        runtime, on_waiting=lambda _: None, on_resumed=lambda _: None, lease_seconds=60, suspend_after=60
    )
    running = asyncio.ensure_future(runner.run(parent))
    for _ in range(20):  # the parent journals its step and waits for it
        await asyncio.sleep(0)
    child_request = ClaimRequest(worker_id="w2", functions=frozenset({double.name}), limit=1, lease_seconds=60)
    [child] = await storage.claim_tasks(child_request, clock.now())
    finished = await storage.complete_task(child.fence, executor.codec.encode_result(double, 42), clock.now())
    runtime.waiters.resolve(finished)  # the parent's code resumes at its next turn...
    runner.suspend(parent.task_id)  # ...and the draining worker's suspension starts just after
    for _ in range(20):
        await asyncio.sleep(0)
    clock.advance(1)  # the parent's completion retries after its storage blip
    await asyncio.wait_for(running, 5)
    record = await storage.get_task(parent.task_id)
    assert record is not None and record.state is TaskState.COMPLETED


async def test_task_released_before_its_code_started_is_handed_back_and_reported_ended() -> None:
    """A claimed task stopped before its coroutine ever ran is still handed back and reported ended.

    Found by the simulator (restart and pause faults): a claim came back after the drain timeout, in the same
    turn of the loop in which the worker's loop woke up, so the worker released the new task at once and
    cancelled its coroutine before it started.  Its cleanup never ran: the worker kept renewing the lease of a
    task nobody ran, the execution hung, and the draining worker never stopped.
    """
    clock = FakeClock()
    storage = MemoryStorage()
    executor = Stent(storage, clock=clock)
    execution_id = await executor.dispatch(one_step, 5)
    options = ServeOptions.build(
        worker_id="w1", queues=None, tags=None, max_concurrency=4, poll_interval=1, poll_interval_max=5,
        poll_backoff_factor=2, lease_duration=30, heartbeat_interval=10, cleanup_interval=3600,
        retention_period=86400,
    )  # fmt: skip
    shell = WorkerShell(executor._rt(), options, WorkerLifecycle("w1"), frozenset({one_step.name}))
    await shell._claim(1)  # the claim came back: the task's coroutine exists but has not run yet
    [task_id] = list(shell._coroutines)
    shell._stop_task(task_id, "release")  # the drain timeout has passed: hand it back at once
    for _ in range(10):
        await asyncio.sleep(0)
    assert any(isinstance(event, TaskEnded) and event.task_id == task_id for event in shell._events)
    assert task_id not in shell._records and task_id not in shell._coroutines
    [record] = await storage.list_execution_tasks(execution_id)
    assert record.state is TaskState.PENDING and record.lease_owner is None
