"""Conformance: suspension (a waiting task gives its lease back) and every way a suspended task wakes up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stent.clocks import FakeClock
from stent.errors import LeaseLost
from stent.model import TaskFailure, TaskRecord, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_task, request


class SuspensionConformance(StorageCase):
    async def _suspended_on_child(self, storage: Storage, clock: FakeClock) -> tuple[TaskRecord, TaskRecord]:
        """A root task suspended until its one child finishes: (the parent as claimed, the child)."""
        parent = await self.running_root(storage, clock)
        (child,) = await self.add_steps(storage, clock, parent, [new_task("work")])
        await storage.suspend_task(parent.fence, waiting_on=[child.task_id], wake_at=None, now=clock.now())
        return parent, child

    async def test_a_suspended_task_holds_no_lease_and_is_not_claimed(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Suspending releases the lease and parks the task, same attempt, claimable by nobody until woken."""
        parent = await self.running_root(storage, clock)
        (child,) = await self.add_steps(storage, clock, parent, [new_task("work")])
        clock.advance(1)
        parked = await storage.suspend_task(
            parent.fence, waiting_on=[child.task_id], wake_at=None, now=clock.now()
        )
        assert (parked.state, parked.attempt, parked.wake_at, parked.updated_at) == (
            TaskState.SUSPENDED,
            parent.attempt,
            None,
            clock.now(),
        )
        assert parked.lease_owner is None and parked.lease_expires_at is None
        assert await self.current(storage, parent) == parked
        clock.advance(3600)  # no lease is left to expire
        assert await storage.claim_tasks(request("w2", ["parent"]), clock.now()) == []
        assert await storage.queue_depth(None, clock.now()) == 1  # only the child is pending

    async def test_a_finishing_step_makes_a_suspended_parent_claimable(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Completing the step a suspended parent waits on makes the parent pending at once, in the same call."""
        parent, _ = await self._suspended_on_child(storage, clock)
        child = await self.claim_one(storage, clock)
        clock.advance(2)
        await storage.complete_task(child.fence, "1", clock.now())
        woken = await self.current(storage, parent)
        assert (woken.state, woken.scheduled_for, woken.wake_at) == (TaskState.PENDING, clock.now(), None)
        again = await self.claim_one(storage, clock, "parent", worker="w2")
        assert (again.task_id, again.attempt, again.lease_owner) == (parent.task_id, parent.attempt, "w2")
        assert again.fencing_token != parent.fencing_token

    async def test_a_step_failing_for_good_wakes_a_suspended_parent(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A final failure of the awaited step wakes the suspended parent; a retry of it does not."""
        parent, _ = await self._suspended_on_child(storage, clock)
        child = await self.claim_one(storage, clock)
        retry = TaskFailure(error="E1", reason="error", retry_at=clock.now())
        await storage.fail_task(child.fence, retry, clock.now())
        assert (await self.current(storage, parent)).state is TaskState.SUSPENDED
        child = await self.claim_one(storage, clock)
        await storage.fail_task(child.fence, TaskFailure(error="E2", reason="error"), clock.now())
        assert (await self.current(storage, parent)).state is TaskState.PENDING

    async def test_a_suspended_task_wakes_at_its_wake_time(self, storage: Storage, clock: FakeClock) -> None:
        """A task suspended on a timer is claimable exactly when its wake time comes, and not before."""
        parent = await self.running_root(storage, clock)
        wake = clock.now() + timedelta(seconds=60)
        parked = await storage.suspend_task(parent.fence, waiting_on=[], wake_at=wake, now=clock.now())
        assert (parked.state, parked.wake_at) == (TaskState.SUSPENDED, wake)
        clock.advance(59.999)
        assert await storage.claim_tasks(request("w2", ["parent"]), clock.now()) == []
        clock.advance(0.001)
        again = await self.claim_one(storage, clock, "parent", worker="w2")
        assert (again.task_id, again.state, again.attempt) == (parent.task_id, TaskState.RUNNING, parent.attempt)
        assert again.wake_at is None

    async def test_suspending_after_the_step_finished_leaves_the_task_pending(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """When a step waited on finished before the suspension landed, the task is pending at once (no lost wake)."""
        parent = await self.running_root(storage, clock)
        (child,) = await self.add_steps(storage, clock, parent, [new_task("work")])
        claimed = await self.claim_one(storage, clock)
        await storage.complete_task(claimed.fence, "1", clock.now())
        clock.advance(1)
        later = clock.now() + timedelta(hours=1)
        parked = await storage.suspend_task(
            parent.fence, waiting_on=["no-such-step", child.task_id], wake_at=later, now=clock.now()
        )
        assert (parked.state, parked.scheduled_for, parked.wake_at) == (TaskState.PENDING, clock.now(), None)
        assert parked.lease_owner is None and parked.lease_expires_at is None
        assert ids([await self.claim_one(storage, clock, "parent", worker="w2")]) == [parent.task_id]

    async def test_suspending_with_a_past_wake_time_leaves_the_task_pending(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A wake time already reached makes the suspended task pending at once."""
        parent = await self.running_root(storage, clock)
        (child,) = await self.add_steps(storage, clock, parent, [new_task("work")])
        parked = await storage.suspend_task(
            parent.fence, waiting_on=[child.task_id], wake_at=clock.now(), now=clock.now()
        )
        assert (parked.state, parked.wake_at) == (TaskState.PENDING, None)
        assert ids([await self.claim_one(storage, clock, "parent")]) == [parent.task_id]

    async def test_suspend_is_fenced(self, storage: Storage, clock: FakeClock) -> None:
        """Suspending with a token from a lost lease raises LeaseLost and changes nothing."""
        await self.start(storage, clock, "parent")
        stale = await self.claim_one(storage, clock, "parent", worker="w1", lease=10)
        clock.advance(11)
        fresh = await self.claim_one(storage, clock, "parent", worker="w2", lease=10)
        with pytest.raises(LeaseLost):
            await storage.suspend_task(stale.fence, waiting_on=[], wake_at=None, now=clock.now())
        assert await self.current(storage, fresh) == fresh

    async def test_a_child_of_an_old_attempt_does_not_wake_a_suspended_parent(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A step made by an earlier attempt finishing leaves the suspended current attempt parked."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work")])
        orphan = await self.claim_one(storage, clock)
        await storage.fail_task(
            parent.fence, TaskFailure(error="e", reason="error", retry_at=clock.now()), clock.now()
        )
        retried = await self.claim_one(storage, clock, "parent")
        (step,) = await self.add_steps(storage, clock, retried, [new_task("other")])
        await storage.suspend_task(retried.fence, waiting_on=[step.task_id], wake_at=None, now=clock.now())
        await storage.complete_task(orphan.fence, "1", clock.now())
        assert (await self.current(storage, parent)).state is TaskState.SUSPENDED

    async def test_woken_tasks_are_ordered_by_wake_time(self, storage: Storage, clock: FakeClock) -> None:
        """Among tasks of one priority, a task woken by its timer is claimed in order of its wake time."""
        timer = await self.running_root(storage, clock, "job")
        await storage.suspend_task(
            timer.fence, waiting_on=[], wake_at=clock.now() + timedelta(seconds=10), now=clock.now()
        )
        clock.advance(5)
        early = await self.start(storage, clock, "job")  # due at 5 s
        late = await self.start(storage, clock, "job", scheduled_for=clock.now() + timedelta(seconds=10))  # 15 s
        clock.advance(20)
        order = []
        for _ in range(3):
            order += ids(await storage.claim_tasks(request(functions=["job"], limit=1), clock.now()))
        assert order == [early.root_task_id, timer.task_id, late.root_task_id]

    async def test_a_suspended_task_frees_its_concurrency_slot(self, storage: Storage, clock: FakeClock) -> None:
        """A suspended task of a limited function frees its slot, and when it wakes it waits for a free one."""
        first = await self.start(storage, clock, "limited", max_concurrent=1)
        second = await self.start(storage, clock, "limited", max_concurrent=1)
        task = await self.claim_one(storage, clock, "limited")
        assert task.task_id == first.root_task_id
        wake = clock.now() + timedelta(seconds=10)
        await storage.suspend_task(task.fence, waiting_on=[], wake_at=wake, now=clock.now())
        other = await self.claim_one(storage, clock, "limited")
        assert other.task_id == second.root_task_id
        clock.advance(10)
        assert await storage.claim_tasks(request(functions=["limited"]), clock.now()) == []
        await storage.complete_task(other.fence, "null", clock.now())
        assert ids(await storage.claim_tasks(request(functions=["limited"]), clock.now())) == [task.task_id]
