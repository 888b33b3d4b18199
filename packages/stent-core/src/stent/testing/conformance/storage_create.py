"""Conformance: creating executions and journaled steps."""

from __future__ import annotations

from datetime import timedelta

from stent.clocks import FakeClock
from stent.model import ExecutionState, NewTask, StepKey, TaskFailure, TaskKind, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_execution, new_task, request


class ExecutionCreationConformance(StorageCase):
    async def test_create_execution_stores_the_execution_and_its_root_task(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A new execution is pending, named after its root task, and its root task is pending at attempt 1."""
        new = new_execution("work", queue="q1")
        execution, created = await storage.create_execution(new, clock.now())
        assert created
        assert execution.execution_id == new.execution_id
        assert execution.root_task_id == new.root.task_id
        assert (execution.function, execution.queue, execution.state) == ("work", "q1", ExecutionState.PENDING)
        assert execution.created_at == execution.updated_at == clock.now()
        assert await storage.get_execution(new.execution_id) == execution
        root = await self.current(storage, new.root.task_id)
        assert root.execution_id == new.execution_id
        assert (root.state, root.attempt, root.parent_task_id, root.step) == (TaskState.PENDING, 1, None, None)
        assert root.scheduled_for == root.created_at == clock.now()
        assert root.lease_owner is None and root.lease_expires_at is None and root.started_at is None

    async def test_create_execution_is_idempotent_on_execution_id(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Creating an execution id that exists returns the stored execution, unchanged, and creates nothing."""
        first, created = await storage.create_execution(new_execution("work", execution_id="same"), clock.now())
        clock.advance(5)
        again, created_again = await storage.create_execution(
            new_execution("other", execution_id="same", queue="elsewhere"), clock.now()
        )
        assert created and not created_again
        assert again == first
        assert ids(await storage.list_execution_tasks("same")) == [first.root_task_id]

    async def test_task_fields_round_trip(self, storage: Storage, clock: FakeClock) -> None:
        """Every field of a new task is stored as given, times as the same aware UTC instants."""
        clock.advance(0.123456)  # microseconds must survive
        later = clock.now() + timedelta(hours=2, microseconds=7)
        deadline = clock.now() + timedelta(days=1)
        new = new_execution(
            "work",
            queue="reports",
            tags=("billing", "ünïcode"),
            priority=-3,
            args='{"x": "é\\u2603"}',
            max_attempts=4,
            max_concurrent=2,
            options='{"retry": 1}',
            scheduled_for=later,
            deadline=deadline,
        )
        execution, _ = await storage.create_execution(new, clock.now())
        assert (await storage.get_execution(execution.execution_id)) == execution
        assert execution.deadline == deadline
        root = await self.current(storage, new.root.task_id)
        assert root.kind is TaskKind.CALL
        assert (root.queue, root.tags, root.priority, root.args) == (
            "reports",
            ("billing", "ünïcode"),
            -3,
            new.root.args,
        )
        assert (root.max_attempts, root.max_concurrent, root.options) == (4, 2, '{"retry": 1}')
        assert root.scheduled_for == later and root.created_at == clock.now()
        for moment in (root.scheduled_for, root.created_at, root.updated_at):
            assert moment.utcoffset() == timedelta(0)


class StepCreationConformance(StorageCase):
    async def test_steps_are_created_in_order_under_their_parent(self, storage: Storage, clock: FakeClock) -> None:
        """New steps are pending tasks of the parent's execution, keyed by parent, attempt and step number."""
        parent = await self.running_root(storage, clock)
        clock.advance(1)
        steps = await self.add_steps(storage, clock, parent, [new_task("a"), new_task("b"), new_task("c")])
        assert [s.function for s in steps] == ["a", "b", "c"]
        for number, step in enumerate(steps):
            assert (step.parent_task_id, step.parent_attempt, step.step) == (parent.task_id, 1, number)
            assert step.execution_id == parent.execution_id
            assert (step.state, step.attempt, step.created_at) == (TaskState.PENDING, 1, clock.now())
        assert ids(await storage.list_execution_tasks(parent.execution_id)) == [parent.task_id, *ids(steps)]

    async def test_existing_steps_are_returned_as_stored(self, storage: Storage, clock: FakeClock) -> None:
        """Asking again for a step that exists returns the stored task, even when the call now differs."""
        parent = await self.running_root(storage, clock)
        first = await self.add_steps(storage, clock, parent, [new_task("a"), new_task("b")])
        clock.advance(3)
        again = await self.add_steps(storage, clock, parent, [new_task("changed"), new_task("b"), new_task("c")])
        assert again[:2] == first
        assert again[0].function == "a"  # the recorded function, so the caller can detect non-determinism
        assert again[2].function == "c" and again[2].step == 2
        assert len(await storage.list_execution_tasks(parent.execution_id)) == 4

    async def test_same_step_twice_in_one_call_is_one_task(self, storage: Storage, clock: FakeClock) -> None:
        """A key repeated within one call creates one task and returns it for both."""
        parent = await self.running_root(storage, clock)
        key = StepKey(parent.task_id, parent.attempt, 0)
        got = await storage.get_or_create_steps(
            parent.fence, [(key, new_task("a")), (key, new_task("a"))], clock.now()
        )
        assert got[0] == got[1]
        assert len(await storage.list_execution_tasks(parent.execution_id)) == 2

    async def test_parent_waits_while_a_step_is_unfinished(self, storage: Storage, clock: FakeClock) -> None:
        """Creating an unfinished step moves a running parent to waiting, keeping its lease and token."""
        parent = await self.running_root(storage, clock)
        clock.advance(1)
        await self.add_steps(storage, clock, parent, [new_task("a")])
        now = await self.current(storage, parent)
        assert now.state is TaskState.WAITING
        assert (now.fencing_token, now.lease_owner, now.lease_expires_at) == (
            parent.fencing_token,
            parent.lease_owner,
            parent.lease_expires_at,
        )
        assert now.updated_at == clock.now()

    async def test_parent_keeps_running_when_every_step_is_finished(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A step recorded already finished (a sleep's wake time) leaves the parent running."""
        parent = await self.running_root(storage, clock)
        wake = '"2030-01-02T00:00:00+00:00"'
        sleep = new_task("stent.sleep", kind=TaskKind.SLEEP, state=TaskState.COMPLETED, result=wake)
        (step,) = await self.add_steps(storage, clock, parent, [sleep])
        assert (step.kind, step.state, step.result, step.finished_at) == (
            TaskKind.SLEEP,
            TaskState.COMPLETED,
            wake,
            clock.now(),
        )
        assert (await self.current(storage, parent)).state is TaskState.RUNNING

    async def test_a_new_attempt_has_a_fresh_journal(self, storage: Storage, clock: FakeClock) -> None:
        """Step numbers of a retried parent's new attempt create new tasks, apart from the old attempt's."""
        parent = await self.running_root(storage, clock)
        (old,) = await self.add_steps(storage, clock, parent, [new_task("a")])
        await storage.fail_task(
            parent.fence, TaskFailure(error="boom", reason="error", retry_at=clock.now()), clock.now()
        )
        retried = (await storage.claim_tasks(request("worker-p", ["parent"]), clock.now()))[0]
        assert retried.attempt == 2
        (new,) = await self.add_steps(storage, clock, retried, [NewTask(task_id="fresh", function="a", args="[]")])
        assert new.task_id == "fresh" != old.task_id
        assert (new.parent_attempt, new.step) == (2, 0)
