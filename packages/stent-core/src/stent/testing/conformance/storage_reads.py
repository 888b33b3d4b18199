"""Conformance: reading executions and tasks back."""

from __future__ import annotations

from datetime import timedelta

from stent.clocks import FakeClock
from stent.model import ExecutionState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_task


class ReadConformance(StorageCase):
    async def test_missing_records_read_as_none(self, storage: Storage, clock: FakeClock) -> None:
        """Reads of ids that do not exist return None, or leave them out of a batch."""
        execution = await self.start(storage, clock)
        assert await storage.get_execution("nope") is None
        assert await storage.get_task("nope") is None
        assert ids(await storage.get_tasks(["nope", execution.root_task_id])) == [execution.root_task_id]
        assert await storage.get_tasks([]) == []
        assert await storage.list_execution_tasks("nope") == []

    async def test_list_executions_pages_newest_first_with_a_total(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Executions list newest first; limit and offset page through them and the total counts them all."""
        made = []
        for _ in range(5):
            made.append(await self.start(storage, clock))
            clock.advance(1)
        newest_first = [e.execution_id for e in reversed(made)]
        page = await storage.list_executions(limit=2)
        assert ([e.execution_id for e in page.executions], page.total) == (newest_first[:2], 5)
        page = await storage.list_executions(limit=2, offset=4)
        assert [e.execution_id for e in page.executions] == newest_first[4:]
        page = await storage.list_executions(offset=10)
        assert (page.executions, page.total) == ((), 5)
        assert (await storage.list_executions()).executions == tuple(reversed(made))

    async def test_list_executions_filters_by_state_queue_and_function(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Filters combine, and the total counts only what matches them."""
        a = await self.start(storage, clock, "alpha", queue="q1")
        await self.start(storage, clock, "alpha", queue="q2")
        await self.start(storage, clock, "beta", queue="q1")
        await self.claim_one(storage, clock, "alpha", queues=["q1"])
        running = await storage.list_executions(state=ExecutionState.RUNNING)
        assert ([e.execution_id for e in running.executions], running.total) == ([a.execution_id], 1)
        assert (await storage.list_executions(queue="q1")).total == 2
        assert (await storage.list_executions(function="alpha")).total == 2
        both = await storage.list_executions(function="alpha", queue="q2", state=ExecutionState.PENDING)
        assert both.total == 1 and both.executions[0].queue == "q2"
        assert (await storage.list_executions(queue="none")).total == 0

    async def test_queue_depth_counts_pending_tasks(self, storage: Storage, clock: FakeClock) -> None:
        """Queue depth counts pending tasks, due or scheduled later, per queue or in all queues."""
        await self.start(storage, clock, queue="a")
        await self.start(storage, clock, queue="a", scheduled_for=clock.now() + timedelta(hours=1))
        await self.start(storage, clock, queue="b")
        await self.start(storage, clock, "other", queue="b")
        assert await storage.queue_depth("a", clock.now()) == 2
        assert await storage.queue_depth(None, clock.now()) == 4
        await self.claim_one(storage, clock, "other")
        assert await storage.queue_depth("b", clock.now()) == 1
        assert await storage.queue_depth("missing", clock.now()) == 0

    async def test_an_executions_tasks_list_oldest_first(self, storage: Storage, clock: FakeClock) -> None:
        """An execution's tasks list in creation order, root first, and no other execution's tasks."""
        parent = await self.running_root(storage, clock)
        await self.start(storage, clock)  # another execution
        clock.advance(1)
        first = await self.add_steps(storage, clock, parent, [new_task("a"), new_task("b")])
        clock.advance(1)
        second = await self.add_steps(storage, clock, parent, [new_task("c")], first=2)
        listed = await storage.list_execution_tasks(parent.execution_id)
        assert ids(listed) == [parent.task_id, *ids(first), *ids(second)]
