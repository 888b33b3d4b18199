"""Conformance: completing, failing and releasing tasks, and what finishing does to parents and executions."""

from __future__ import annotations

from datetime import timedelta

from stent.clocks import FakeClock
from stent.model import ExecutionState, TaskFailure, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_task, request


class FinishConformance(StorageCase):
    async def test_completing_the_root_task_completes_the_execution(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Completing a root task stores its result and completes its execution with it, in one step."""
        execution = await self.start(storage, clock)
        task = await self.claim_one(storage, clock)
        clock.advance(3)
        done = await storage.complete_task(task.fence, '{"ok": 1}', clock.now())
        assert (done.state, done.result, done.finished_at, done.updated_at) == (
            TaskState.COMPLETED,
            '{"ok": 1}',
            clock.now(),
            clock.now(),
        )
        assert done.lease_owner is None and done.lease_expires_at is None
        assert await self.current(storage, task) == done
        finished = await storage.get_execution(execution.execution_id)
        assert finished is not None
        assert (finished.state, finished.result, finished.finished_at) == (
            ExecutionState.COMPLETED,
            '{"ok": 1}',
            clock.now(),
        )

    async def test_completing_a_child_wakes_its_waiting_parent(self, storage: Storage, clock: FakeClock) -> None:
        """A waiting parent runs again when a child finishes; its execution stays running."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work")])
        child = await self.claim_one(storage, clock)
        clock.advance(2)
        await storage.complete_task(child.fence, "5", clock.now())
        woken = await self.current(storage, parent)
        assert (woken.state, woken.updated_at, woken.fencing_token) == (
            TaskState.RUNNING,
            clock.now(),
            parent.fencing_token,
        )
        execution = await storage.get_execution(parent.execution_id)
        assert execution is not None and execution.state is ExecutionState.RUNNING

    async def test_a_child_of_an_old_attempt_does_not_wake_the_parent(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A child made by a parent's earlier attempt finishing leaves the parent's current attempt alone."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work")])
        orphan = await self.claim_one(storage, clock)
        await storage.fail_task(
            parent.fence, TaskFailure(error="e", reason="error", retry_at=clock.now()), clock.now()
        )
        retried = await self.claim_one(storage, clock, "parent")
        await self.add_steps(storage, clock, retried, [new_task("other")])
        await storage.complete_task(orphan.fence, "1", clock.now())
        assert (await self.current(storage, parent)).state is TaskState.WAITING

    async def test_failing_with_a_retry_schedules_a_new_attempt(self, storage: Storage, clock: FakeClock) -> None:
        """A retried task is pending at the next attempt, due at retry_at, with its lease gone and error kept."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work", max_attempts=3)])
        task = await self.claim_one(storage, clock)
        retry_at = clock.now() + timedelta(seconds=30)
        failed = await storage.fail_task(
            task.fence, TaskFailure(error="E1", reason="error", retry_at=retry_at), clock.now()
        )
        assert (failed.state, failed.attempt, failed.scheduled_for, failed.error) == (
            TaskState.PENDING,
            2,
            retry_at,
            "E1",
        )
        assert failed.lease_owner is None and failed.lease_expires_at is None and failed.finished_at is None
        assert await self.current(storage, task) == failed
        assert (await self.current(storage, parent)).state is TaskState.WAITING  # not finished, so no wake-up
        clock.advance(29)
        assert await storage.claim_tasks(request(), clock.now()) == []
        clock.advance(1)
        again = await self.claim_one(storage, clock)
        assert (again.task_id, again.attempt) == (task.task_id, 2)

    async def test_a_final_failure_fails_the_task_and_wakes_the_parent(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A failure without retry ends the task failed, clears its lease and wakes the waiting parent."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work")])
        task = await self.claim_one(storage, clock)
        clock.advance(1)
        failed = await storage.fail_task(task.fence, TaskFailure(error="E", reason="error"), clock.now())
        assert (failed.state, failed.error, failed.finished_at, failed.attempt) == (
            TaskState.FAILED,
            "E",
            clock.now(),
            1,
        )
        assert failed.lease_owner is None and failed.lease_expires_at is None
        assert (await self.current(storage, parent)).state is TaskState.RUNNING

    async def test_a_final_failure_of_the_root_fails_the_execution(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Failing a root task for good fails its execution with the same error."""
        execution = await self.start(storage, clock)
        task = await self.claim_one(storage, clock)
        await storage.fail_task(
            task.fence, TaskFailure(error="Boom", reason="error", dead_letter=False), clock.now()
        )
        finished = await storage.get_execution(execution.execution_id)
        assert finished is not None
        assert (finished.state, finished.error, finished.finished_at) == (
            ExecutionState.FAILED,
            "Boom",
            clock.now(),
        )

    async def test_release_gives_the_task_back_at_the_same_attempt(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A released task is pending at once, same attempt, unleased, and another worker can claim it."""
        await self.start(storage, clock)
        task = await self.claim_one(storage, clock, worker="w1")
        clock.advance(4)
        await storage.release_task(task.fence, clock.now())
        released = await self.current(storage, task)
        assert (released.state, released.attempt, released.scheduled_for) == (TaskState.PENDING, 1, clock.now())
        assert released.lease_owner is None and released.lease_expires_at is None
        again = await self.claim_one(storage, clock, worker="w2")
        assert (again.task_id, again.attempt) == (task.task_id, 1)
        assert ids([again]) == ids([task])
