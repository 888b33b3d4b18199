"""Conformance: dead letters, recorded with a task's final failure, listed, discarded and replayed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stent.clocks import FakeClock
from stent.errors import StentError, TaskNotFound
from stent.model import DeadLetter, ExecutionState, TaskFailure, TaskRecord, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, new_task, request


class DeadLetterConformance(StorageCase):
    async def _dead_child(
        self, storage: Storage, clock: FakeClock, **fields: object
    ) -> tuple[TaskRecord, TaskRecord]:
        """A running root whose one child failed for good, dead-lettered: (root, failed child)."""
        root = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, root, [new_task("work", **fields)])
        child = await self.claim_one(storage, clock)
        failed = await storage.fail_task(child.fence, TaskFailure(error="Boom", reason="exhausted"), clock.now())
        return root, failed

    async def test_a_final_failure_records_a_dead_letter(self, storage: Storage, clock: FakeClock) -> None:
        """A task failing for good with dead_letter set is listed with its reason, error and attempt count."""
        root = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, root, [new_task("work", queue="mail", max_attempts=2)])
        task = await self.claim_one(storage, clock)
        retry = TaskFailure(error="E1", reason="error", retry_at=clock.now())
        await storage.fail_task(task.fence, retry, clock.now())
        assert await storage.list_dead_letters() == []  # a retry is not a dead letter
        task = await self.claim_one(storage, clock)
        clock.advance(1)
        await storage.fail_task(task.fence, TaskFailure(error="E2", reason="exhausted"), clock.now())
        expected = DeadLetter(
            task_id=task.task_id,
            execution_id=root.execution_id,
            function="work",
            queue="mail",
            reason="exhausted",
            error="E2",
            attempts=2,
            created_at=clock.now(),
        )
        assert await storage.list_dead_letters() == [expected]
        assert await storage.get_dead_letter(task.task_id) == expected
        assert await storage.get_dead_letter("no-such-task") is None

    async def test_a_failure_without_dead_letter_records_none(self, storage: Storage, clock: FakeClock) -> None:
        """A final failure with dead_letter=False fails the task and lists nothing."""
        await self.start(storage, clock)
        task = await self.claim_one(storage, clock)
        failure = TaskFailure(error="E", reason="cancelled", dead_letter=False)
        assert (await storage.fail_task(task.fence, failure, clock.now())).state is TaskState.FAILED
        assert await storage.list_dead_letters() == []

    async def test_dead_letters_list_newest_first_in_pages(self, storage: Storage, clock: FakeClock) -> None:
        """Dead letters list newest first; limit and offset page through them."""
        made = []
        for _ in range(4):
            _, failed = await self._dead_child(storage, clock)
            made.append(failed.task_id)
            clock.advance(1)
        newest_first = list(reversed(made))
        assert [d.task_id for d in await storage.list_dead_letters()] == newest_first
        assert [d.task_id for d in await storage.list_dead_letters(limit=2)] == newest_first[:2]
        assert [d.task_id for d in await storage.list_dead_letters(limit=2, offset=3)] == newest_first[3:]

    async def test_discarding_removes_a_dead_letter_once(self, storage: Storage, clock: FakeClock) -> None:
        """discard_dead_letter removes it and says so; a second discard finds nothing; the task stays failed."""
        _, failed = await self._dead_child(storage, clock)
        assert await storage.discard_dead_letter(failed.task_id) is True
        assert await storage.discard_dead_letter(failed.task_id) is False
        assert await storage.get_dead_letter(failed.task_id) is None
        assert (await self.current(storage, failed)).state is TaskState.FAILED

    async def test_replay_runs_the_task_again_as_a_new_attempt(self, storage: Storage, clock: FakeClock) -> None:
        """A replayed dead letter is pending at the next attempt, on the queue asked for, with its error cleared."""
        root, failed = await self._dead_child(storage, clock)
        clock.advance(5)
        replayed = await storage.replay_dead_letter(failed.task_id, "retry-queue", clock.now())
        assert (replayed.state, replayed.attempt, replayed.queue) == (TaskState.PENDING, 2, "retry-queue")
        assert (replayed.scheduled_for, replayed.error, replayed.finished_at) == (clock.now(), None, None)
        assert await self.current(storage, failed) == replayed
        assert await storage.get_dead_letter(failed.task_id) is None
        assert await storage.claim_tasks(request(queues=["default"]), clock.now()) == []
        again = await self.claim_one(storage, clock, queues=["retry-queue"])
        assert (again.task_id, again.attempt) == (failed.task_id, 2)
        assert (await self.current(storage, root)).state is TaskState.RUNNING  # untouched: it did not fail

    async def test_replay_keeps_the_queue_when_none_is_given(self, storage: Storage, clock: FakeClock) -> None:
        """Replaying without a queue runs the task on its own queue."""
        _, failed = await self._dead_child(storage, clock, queue="mail")
        replayed = await storage.replay_dead_letter(failed.task_id, None, clock.now())
        assert replayed.queue == "mail"

    async def test_replay_reopens_the_ancestors_that_failed_and_the_execution(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Replaying a grandchild whose failure failed its parent, root and execution suspends them again."""
        root = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, root, [new_task("middle")])
        middle = await self.claim_one(storage, clock, "middle")
        await self.add_steps(storage, clock, middle, [new_task("work")])
        leaf = await self.claim_one(storage, clock)
        await storage.fail_task(leaf.fence, TaskFailure(error="Leaf", reason="exhausted"), clock.now())
        await storage.fail_task(middle.fence, TaskFailure(error="Leaf", reason="child failed"), clock.now())
        await storage.fail_task(root.fence, TaskFailure(error="Leaf", reason="child failed"), clock.now())
        assert (await self.execution(storage, root.execution_id)).state is ExecutionState.FAILED
        assert len(await storage.list_dead_letters()) == 3
        clock.advance(1)
        await storage.replay_dead_letter(leaf.task_id, None, clock.now())
        for ancestor in (middle, root):
            stored = await self.current(storage, ancestor)
            assert (stored.state, stored.error, stored.finished_at, stored.attempt) == (
                TaskState.SUSPENDED,
                None,
                None,
                ancestor.attempt,
            )
        assert await storage.list_dead_letters() == []
        execution = await self.execution(storage, root.execution_id)
        assert (execution.state, execution.error, execution.finished_at) == (ExecutionState.RUNNING, None, None)
        # The journey back: the leaf completes, which wakes the middle, whose completion wakes the root.
        leaf = await self.claim_one(storage, clock)
        await storage.complete_task(leaf.fence, "1", clock.now())
        middle = await self.claim_one(storage, clock, "middle")
        await storage.complete_task(middle.fence, "2", clock.now())
        root = await self.claim_one(storage, clock, "parent")
        await storage.complete_task(root.fence, "3", clock.now())
        assert (await self.execution(storage, root.execution_id)).state is ExecutionState.COMPLETED

    async def test_replay_leaves_an_ancestor_that_did_not_fail_alone(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A parent that handled its child's failure and runs on is not touched by replaying that child."""
        root, failed = await self._dead_child(storage, clock)
        before = await self.current(storage, root)
        assert before.state is TaskState.RUNNING
        clock.advance(1)
        await storage.replay_dead_letter(failed.task_id, None, clock.now())
        assert await self.current(storage, root) == before
        assert (await self.execution(storage, root.execution_id)).state is ExecutionState.RUNNING

    async def test_replaying_a_root_reopens_its_execution(self, storage: Storage, clock: FakeClock) -> None:
        """A replayed root task makes its failed execution running again, and its completion completes it."""
        execution = await self.start(storage, clock)
        root = await self.claim_one(storage, clock)
        await storage.fail_task(root.fence, TaskFailure(error="E", reason="exhausted"), clock.now())
        await storage.replay_dead_letter(root.task_id, None, clock.now())
        assert (await self.execution(storage, execution.execution_id)).state is ExecutionState.RUNNING
        again = await self.claim_one(storage, clock)
        await storage.complete_task(again.fence, '"ok"', clock.now())
        done = await self.execution(storage, execution.execution_id)
        assert (done.state, done.result) == (ExecutionState.COMPLETED, '"ok"')

    async def test_replaying_what_is_not_a_dead_letter_raises(self, storage: Storage, clock: FakeClock) -> None:
        """Replaying an unknown id, or one already replayed, raises TaskNotFound and changes nothing."""
        _, failed = await self._dead_child(storage, clock)
        with pytest.raises(TaskNotFound):
            await storage.replay_dead_letter("no-such-task", None, clock.now())
        replayed = await storage.replay_dead_letter(failed.task_id, None, clock.now())
        with pytest.raises(TaskNotFound):
            await storage.replay_dead_letter(failed.task_id, None, clock.now())
        assert await self.current(storage, failed) == replayed

    async def test_a_dead_letter_of_a_cleaned_up_execution_cannot_be_replayed(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Once its execution was deleted, replaying a dead letter raises a StentError rather than resurrecting it."""
        execution = await self.start(storage, clock)
        root = await self.claim_one(storage, clock)
        await storage.fail_task(root.fence, TaskFailure(error="E", reason="exhausted"), clock.now())
        clock.advance(10)
        assert await storage.delete_executions_before(clock.now(), 10) == 1
        with pytest.raises(StentError):
            await storage.replay_dead_letter(root.task_id, None, clock.now())
        assert await storage.get_execution(execution.execution_id) is None
        assert await storage.get_task(root.task_id) is None

    async def test_old_dead_letters_are_deleted_in_batches(self, storage: Storage, clock: FakeClock) -> None:
        """delete_dead_letters_before removes up to ``limit`` dead letters created before the cutoff, oldest first."""
        made = []
        for _ in range(5):
            _, failed = await self._dead_child(storage, clock)
            made.append(failed.task_id)
            clock.advance(1)
        cutoff = clock.now() - timedelta(seconds=2)  # the first three are older than this
        assert await storage.delete_dead_letters_before(cutoff, 2) == 2
        assert await storage.delete_dead_letters_before(cutoff, 2) == 1
        assert await storage.delete_dead_letters_before(cutoff, 2) == 0
        assert sorted(d.task_id for d in await storage.list_dead_letters()) == sorted(made[3:])
        assert len(await storage.get_tasks(made)) == 5  # the failed tasks themselves are kept
