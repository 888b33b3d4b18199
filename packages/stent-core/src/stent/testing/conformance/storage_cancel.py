"""Conformance: cancelling executions, time limits, and how running tasks learn that they must stop."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stent.clocks import FakeClock
from stent.errors import ExecutionNotFound, ExecutionStopping
from stent.model import ExecutionRecord, ExecutionState, StepKey, TaskFailure, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_task, request


async def _execution(storage: Storage, execution_id: str) -> ExecutionRecord:
    record = await storage.get_execution(execution_id)
    assert record is not None, f"execution {execution_id} is missing"
    return record


class CancellationConformance(StorageCase):
    async def test_cancelling_with_a_running_root_marks_the_execution_cancelling(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A cancel cancels unleased tasks at once and leaves the execution cancelling while its root runs."""
        parent = await self.running_root(storage, clock)
        pending, running = await self.add_steps(storage, clock, parent, [new_task("idle"), new_task("work")])
        await self.claim_one(storage, clock)
        clock.advance(1)
        execution, changed = await storage.cancel_execution(parent.execution_id, clock.now())
        assert changed
        assert (execution.state, execution.updated_at, execution.finished_at) == (
            ExecutionState.CANCELLING,
            clock.now(),
            None,
        )
        assert await _execution(storage, parent.execution_id) == execution
        cancelled = await self.current(storage, pending)
        assert (cancelled.state, cancelled.finished_at) == (TaskState.CANCELLED, clock.now())
        assert (await self.current(storage, running)).state is TaskState.RUNNING  # learns at its next renewal
        assert (await self.current(storage, parent)).state is TaskState.WAITING

    async def test_cancelling_before_the_root_runs_ends_the_execution(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """With no task leased, a cancel ends the execution cancelled at once and nothing is left to claim."""
        started = await self.start(storage, clock)
        execution, changed = await storage.cancel_execution(started.execution_id, clock.now())
        assert changed
        assert (execution.state, execution.finished_at) == (ExecutionState.CANCELLED, clock.now())
        assert (await self.current(storage, started.root_task_id)).state is TaskState.CANCELLED
        assert await storage.claim_tasks(request(), clock.now()) == []

    async def test_cancelling_a_finished_or_unknown_execution(self, storage: Storage, clock: FakeClock) -> None:
        """Cancelling a finished execution changes nothing and says so; an unknown id raises ExecutionNotFound."""
        started = await self.start(storage, clock)
        task = await self.claim_one(storage, clock)
        await storage.complete_task(task.fence, "1", clock.now())
        done = await _execution(storage, started.execution_id)
        clock.advance(1)
        assert await storage.cancel_execution(started.execution_id, clock.now()) == (done, False)
        with pytest.raises(ExecutionNotFound):
            await storage.cancel_execution("nope", clock.now())

    async def test_renewal_tells_running_tasks_their_execution_is_stopping(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Leases of a cancelling execution are still renewed, and reported as stopping."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work")])
        child = await self.claim_one(storage, clock)
        other = await self.running_root(storage, clock, "other")
        await storage.cancel_execution(parent.execution_id, clock.now())
        report = await storage.renew_leases("w", [parent.fence, child.fence, other.fence], 30, clock.now())
        assert report.renewed == {parent.task_id, child.task_id, other.task_id}
        assert report.stopping == {parent.task_id, child.task_id}

    async def test_a_cancelling_execution_ends_cancelled_whatever_its_root_does(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A root completing after the cancel ends the execution cancelled, without a result."""
        root = await self.running_root(storage, clock)
        await storage.cancel_execution(root.execution_id, clock.now())
        clock.advance(1)
        await storage.complete_task(root.fence, '"late"', clock.now())
        execution = await _execution(storage, root.execution_id)
        assert (execution.state, execution.result, execution.finished_at) == (
            ExecutionState.CANCELLED,
            None,
            clock.now(),
        )

    async def test_cancel_task_ends_a_cancelled_root_and_its_execution(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A root whose code stopped for the cancel is cancelled, and so is its cancelling execution."""
        root = await self.running_root(storage, clock)
        await storage.cancel_execution(root.execution_id, clock.now())
        clock.advance(2)
        task = await storage.cancel_task(root.fence, "CancelledError()", clock.now())
        assert (task.state, task.error, task.finished_at, task.lease_owner) == (
            TaskState.CANCELLED,
            "CancelledError()",
            clock.now(),
            None,
        )
        execution = await _execution(storage, root.execution_id)
        assert (execution.state, execution.finished_at) == (ExecutionState.CANCELLED, clock.now())

    async def test_cancel_task_of_a_child_wakes_its_parent(self, storage: Storage, clock: FakeClock) -> None:
        """A cancelled child wakes the parent waiting on it, which then runs its compensation code."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work")])
        child = await self.claim_one(storage, clock)
        await storage.cancel_execution(parent.execution_id, clock.now())
        await storage.cancel_task(child.fence, None, clock.now())
        assert (await self.current(storage, parent)).state is TaskState.RUNNING

    async def test_a_stopping_execution_starts_no_new_steps(self, storage: Storage, clock: FakeClock) -> None:
        """Creating steps in a cancelling execution raises ExecutionStopping and creates nothing, unless allowed."""
        root = await self.running_root(storage, clock)
        await storage.cancel_execution(root.execution_id, clock.now())
        key = StepKey(root.task_id, root.attempt, 0)
        with pytest.raises(ExecutionStopping):
            await storage.get_or_create_steps(root.fence, [(key, new_task("work"))], clock.now())
        assert ids(await storage.list_execution_tasks(root.execution_id)) == [root.task_id]
        (compensation,) = await storage.get_or_create_steps(
            root.fence, [(key, new_task("undo"))], clock.now(), allow_stopping=True
        )
        assert compensation.function == "undo"

    async def test_no_retry_for_a_stopping_execution(self, storage: Storage, clock: FakeClock) -> None:
        """A failure with a retry time in a cancelling execution ends the task failed instead of retrying it."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work", max_attempts=5)])
        child = await self.claim_one(storage, clock)
        await storage.cancel_execution(parent.execution_id, clock.now())
        failure = TaskFailure(error="E", reason="error", retry_at=clock.now(), dead_letter=False)
        failed = await storage.fail_task(child.fence, failure, clock.now())
        assert (failed.state, failed.attempt) == (TaskState.FAILED, 1)


class TimeLimitConformance(StorageCase):
    async def test_executions_past_their_deadline_time_out(self, storage: Storage, clock: FakeClock) -> None:
        """Executions whose deadline passed end timed out, earliest deadline first, at most ``limit`` at a time."""
        soon = await self.start(storage, clock, deadline=clock.now() + timedelta(seconds=10))
        sooner = await self.start(storage, clock, deadline=clock.now() + timedelta(seconds=5))
        later = await self.start(storage, clock, deadline=clock.now() + timedelta(seconds=60))
        await self.start(storage, clock)  # no deadline
        clock.advance(4)
        assert await storage.time_out_executions(clock.now(), 10) == []
        clock.advance(6)
        assert await storage.time_out_executions(clock.now(), 1) == [sooner.execution_id]
        assert await storage.time_out_executions(clock.now(), 10) == [soon.execution_id]
        execution = await _execution(storage, soon.execution_id)
        assert (execution.state, execution.finished_at) == (ExecutionState.TIMED_OUT, clock.now())
        assert (await self.current(storage, soon.root_task_id)).state is TaskState.CANCELLED
        assert (await _execution(storage, later.execution_id)).state is ExecutionState.PENDING

    async def test_a_timed_out_execution_stops_its_running_tasks(self, storage: Storage, clock: FakeClock) -> None:
        """Tasks still running when their execution times out are reported as stopping at renewal."""
        execution = await self.start(storage, clock, "parent", deadline=clock.now() + timedelta(seconds=5))
        root = await self.claim_one(storage, clock, "parent")
        clock.advance(5)
        assert await storage.time_out_executions(clock.now(), 10) == [execution.execution_id]
        report = await storage.renew_leases("w", [root.fence], 30, clock.now())
        assert report.stopping == {root.task_id}
        await storage.cancel_task(root.fence, "timed out", clock.now())
        assert (await _execution(storage, execution.execution_id)).state is ExecutionState.TIMED_OUT
