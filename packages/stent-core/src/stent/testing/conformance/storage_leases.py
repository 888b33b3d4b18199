"""Conformance: leases in virtual time, renewal, and fencing of every worker write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stent.clocks import FakeClock
from stent.errors import LeaseLost, TaskNotFound
from stent.model import Fence, LeaseReport, StepKey, TaskFailure, TaskRecord, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_task, request


class LeaseConformance(StorageCase):
    async def test_expired_lease_is_reclaimed_by_another_worker(self, storage: Storage, clock: FakeClock) -> None:
        """A lease is exclusive until it expires; then another worker takes the task, same attempt, new token."""
        await self.start(storage, clock)
        first = await self.claim_one(storage, clock, worker="w1", lease=30)
        clock.advance(29.999)
        assert await storage.claim_tasks(request("w2"), clock.now()) == []
        clock.advance(0.001)
        (second,) = await storage.claim_tasks(request("w2", lease=30), clock.now())
        assert second.task_id == first.task_id
        assert (second.lease_owner, second.attempt, second.state) == ("w2", first.attempt, TaskState.RUNNING)
        assert second.fencing_token != first.fencing_token
        assert second.started_at == first.started_at  # the task started when it was first claimed

    async def test_expired_waiting_task_is_reclaimed_as_running(self, storage: Storage, clock: FakeClock) -> None:
        """A waiting task whose worker stopped renewing is claimed again and runs (to replay its journal)."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("child")])
        clock.advance(31)
        (again,) = await storage.claim_tasks(request("w2", ["parent"]), clock.now())
        assert (again.task_id, again.state, again.lease_owner) == (parent.task_id, TaskState.RUNNING, "w2")

    async def test_renew_extends_only_the_leases_still_held(self, storage: Storage, clock: FakeClock) -> None:
        """Renewal extends held leases and reports exactly those; stale, unknown and unleased ones are left."""
        for _ in range(3):
            await self.start(storage, clock)
        held, released, other = await storage.claim_tasks(request("w1", lease=30), clock.now())
        await storage.release_task(released.fence, clock.now())
        clock.advance(20)
        fences = [
            held.fence,
            other.fence,
            Fence(held.task_id, held.fencing_token + 1000),
            released.fence,
            Fence("no-such-task", 1),
        ]
        report = await storage.renew_leases("w1", fences, 30, clock.now())
        assert report.renewed == {held.task_id, other.task_id}
        assert report.stopping == set()  # nothing is being cancelled
        assert (await self.current(storage, held)).lease_expires_at == clock.now() + timedelta(seconds=30)
        assert (await self.current(storage, released)).lease_expires_at is None
        clock.advance(25)  # past the first lease, within the renewed one
        assert ids(await storage.claim_tasks(request("w2"), clock.now())) == [released.task_id]
        assert await storage.renew_leases("w1", [], 30, clock.now()) == LeaseReport(frozenset(), frozenset())

    async def test_renewing_a_lease_lost_to_another_worker_fails(self, storage: Storage, clock: FakeClock) -> None:
        """After a takeover the old holder's renewal reports nothing and leaves the new lease alone."""
        await self.start(storage, clock)
        old = await self.claim_one(storage, clock, worker="w1", lease=10)
        clock.advance(11)
        new = await self.claim_one(storage, clock, worker="w2", lease=10)
        assert (await storage.renew_leases("w1", [old.fence], 60, clock.now())).renewed == set()
        assert await self.current(storage, new) == new


class FencingConformance(StorageCase):
    async def _taken_over(self, storage: Storage, clock: FakeClock) -> tuple[TaskRecord, TaskRecord]:
        """A child task claimed by w1, whose lease expired and which w2 now holds: (w1's view, w2's view)."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work")])
        stale = await self.claim_one(storage, clock, worker="w1", lease=10)
        clock.advance(11)
        fresh = await self.claim_one(storage, clock, worker="w2", lease=10)
        return stale, fresh

    async def _assert_unchanged(self, storage: Storage, fresh: TaskRecord) -> None:
        assert await self.current(storage, fresh) == fresh
        parent = await self.current(storage, fresh.parent_task_id or "")
        assert parent.state is TaskState.WAITING  # nothing woke it
        assert len(await storage.list_execution_tasks(fresh.execution_id)) == 2

    async def test_stale_token_cannot_complete(self, storage: Storage, clock: FakeClock) -> None:
        """Completing with a token from a lost lease raises LeaseLost and changes nothing."""
        stale, fresh = await self._taken_over(storage, clock)
        with pytest.raises(LeaseLost):
            await storage.complete_task(stale.fence, '"late"', clock.now())
        await self._assert_unchanged(storage, fresh)

    async def test_stale_token_cannot_fail(self, storage: Storage, clock: FakeClock) -> None:
        """Failing with a token from a lost lease, for good or for a retry, raises LeaseLost and changes nothing."""
        stale, fresh = await self._taken_over(storage, clock)
        with pytest.raises(LeaseLost):
            await storage.fail_task(stale.fence, TaskFailure(error="e", reason="error"), clock.now())
        with pytest.raises(LeaseLost):
            await storage.fail_task(
                stale.fence, TaskFailure(error="e", reason="error", retry_at=clock.now()), clock.now()
            )
        await self._assert_unchanged(storage, fresh)

    async def test_stale_token_cannot_release(self, storage: Storage, clock: FakeClock) -> None:
        """Releasing with a token from a lost lease raises LeaseLost and changes nothing."""
        stale, fresh = await self._taken_over(storage, clock)
        with pytest.raises(LeaseLost):
            await storage.release_task(stale.fence, clock.now())
        await self._assert_unchanged(storage, fresh)

    async def test_stale_token_cannot_create_steps(self, storage: Storage, clock: FakeClock) -> None:
        """Creating steps under a parent fence that was taken over raises LeaseLost and creates nothing."""
        stale, fresh = await self._taken_over(storage, clock)
        with pytest.raises(LeaseLost):
            await storage.get_or_create_steps(
                stale.fence, [(StepKey(stale.task_id, stale.attempt, 0), new_task("grandchild"))], clock.now()
            )
        await self._assert_unchanged(storage, fresh)

    async def test_writes_to_an_unleased_task_are_rejected(self, storage: Storage, clock: FakeClock) -> None:
        """A finished, released or never-claimed task accepts no worker write, even with its current token."""
        done = await self.start(storage, clock)
        task = await self.claim_one(storage, clock)
        completed = await storage.complete_task(task.fence, "1", clock.now())
        with pytest.raises(LeaseLost):
            await storage.complete_task(task.fence, "2", clock.now())
        with pytest.raises(LeaseLost):
            await storage.get_or_create_steps(task.fence, [(StepKey(task.task_id, 1, 0), new_task())], clock.now())
        assert await self.current(storage, task) == completed
        assert len(await storage.list_execution_tasks(done.execution_id)) == 1
        pending = await self.start(storage, clock)
        never = await self.current(storage, pending.root_task_id)
        with pytest.raises(LeaseLost):
            await storage.release_task(never.fence, clock.now())
        assert await self.current(storage, never) == never

    async def test_writes_to_an_unknown_task_raise_task_not_found(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A fence naming no task raises TaskNotFound."""
        with pytest.raises(TaskNotFound):
            await storage.complete_task(Fence("missing", 1), "null", clock.now())
        with pytest.raises(TaskNotFound):
            await storage.get_or_create_steps(Fence("missing", 1), [], clock.now())
