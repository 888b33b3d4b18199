"""Conformance: the batch operations, ``create_executions`` and ``complete_tasks`` (a group commit).

Each item of a batch must come out exactly as the single operation would have left it, whatever else is in the
batch: a refused completion changes nothing and the others still land, and a parent completed together with its
own child ends as if they had been completed one after the other.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import attrs

from stent.clocks import FakeClock
from stent.errors import LeaseLost, TaskNotFound
from stent.model import Completion, ContextUpdate, ExecutionState, Fence, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_execution, new_task, request


class BatchConformance(StorageCase):
    async def test_create_executions_creates_each_in_order(self, storage: Storage, clock: FakeClock) -> None:
        """A batch of new executions creates each with its root task pending, and answers in the order given."""
        news = [new_execution("work", queue=f"q{i}") for i in range(3)]
        made = await storage.create_executions(news, clock.now())
        assert [(e.execution_id, created) for e, created in made] == [(n.execution_id, True) for n in news]
        for (execution, _), new in zip(made, news, strict=True):
            assert (execution.state, execution.root_task_id, execution.queue) == (
                ExecutionState.PENDING,
                new.root.task_id,
                new.root.queue,
            )
            assert await self.execution(storage, new.execution_id) == execution
        claimed = await storage.claim_tasks(request(limit=10), clock.now())
        assert sorted(ids(claimed)) == sorted(n.root.task_id for n in news)

    async def test_a_batch_of_alike_executions_is_stored_as_one_by_one(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Executions alike but for their ids and arguments (a batch dispatch of one function, with options) are
        stored exactly as create_execution stores each."""
        options: dict[str, Any] = {
            "queue": "alike",
            "tags": ("t1", "t2"),
            "priority": 3,
            "max_attempts": 4,
            "max_concurrent": 2,
            "options": '{"retry": "x"}',
            "scheduled_for": clock.now(),
            "deadline": clock.now() + timedelta(hours=1),
        }
        news = [new_execution("alike_fn", args=json.dumps([i]), **dict(options)) for i in range(3)]
        single = new_execution("alike_fn", args="[9]", **dict(options))
        made = await storage.create_executions(news, clock.now())
        expected_execution, _ = await storage.create_execution(single, clock.now())
        expected_root = await storage.get_task(single.root.task_id)
        assert expected_root is not None
        for (execution, created), new in zip(made, news, strict=True):
            assert created
            assert execution == attrs.evolve(
                expected_execution, execution_id=new.execution_id, root_task_id=new.root.task_id
            )
            assert await self.execution(storage, new.execution_id) == execution
            assert await storage.get_task(new.root.task_id) == attrs.evolve(
                expected_root, task_id=new.root.task_id, execution_id=new.execution_id, args=new.root.args
            )

    async def test_create_executions_keeps_what_exists(self, storage: Storage, clock: FakeClock) -> None:
        """An id already stored, or given twice in the batch, is created once; later ones return it unchanged."""
        first = await self.start(storage, clock)
        again = new_execution(execution_id=first.execution_id)
        fresh = new_execution()
        twice = new_execution(execution_id=fresh.execution_id)
        made = await storage.create_executions([again, fresh, twice], clock.now())
        assert [created for _, created in made] == [False, True, False]
        assert made[0][0] == first
        assert made[2][0] == made[1][0] == await self.execution(storage, fresh.execution_id)
        assert made[1][0].root_task_id == fresh.root.task_id
        assert await storage.get_task(again.root.task_id) is None
        assert await storage.get_task(twice.root.task_id) is None

    async def test_empty_batches_change_nothing(self, storage: Storage, clock: FakeClock) -> None:
        """Empty batches return empty lists."""
        assert await storage.create_executions([], clock.now()) == []
        assert await storage.complete_tasks([], clock.now()) == []

    async def test_complete_tasks_completes_each_as_complete_task_would(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Children complete and wake their parent; a root completes its execution with its result."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [new_task("work"), new_task("work")])
        other = await self.start(storage, clock, "other")
        children = await storage.claim_tasks(request(limit=2), clock.now())
        root = await self.claim_one(storage, clock, "other")
        clock.advance(2)
        done = await storage.complete_tasks(
            [
                Completion(children[0].fence, "1"),
                Completion(root.fence, '"r"'),
                Completion(children[1].fence, "2"),
            ],
            clock.now(),
        )
        assert [(d.task_id, d.state, d.result) for d in done if not isinstance(d, Exception)] == [
            (children[0].task_id, TaskState.COMPLETED, "1"),
            (root.task_id, TaskState.COMPLETED, '"r"'),
            (children[1].task_id, TaskState.COMPLETED, "2"),
        ]
        for record in done:
            assert not isinstance(record, Exception)
            assert record == await self.current(storage, record)
            assert (record.lease_owner, record.lease_expires_at, record.finished_at) == (None, None, clock.now())
        assert (await self.current(storage, parent)).state is TaskState.RUNNING
        finished = await self.execution(storage, other.execution_id)
        assert (finished.state, finished.result) == (ExecutionState.COMPLETED, '"r"')

    async def test_a_refused_completion_does_not_stop_the_others(self, storage: Storage, clock: FakeClock) -> None:
        """A stale fence and an unknown task get their errors in place, change nothing, and the rest land."""
        await self.start(storage, clock, "taken")
        stale = await self.claim_one(storage, clock, "taken", worker="w1", lease=10)
        clock.advance(11)
        taken = await self.claim_one(storage, clock, "taken", worker="w2", lease=10)
        good = await self.running_root(storage, clock, "good")
        done = await storage.complete_tasks(
            [
                Completion(stale.fence, "stale"),
                Completion(Fence("no-such-task", 1), "x"),
                Completion(good.fence, "fine"),
            ],
            clock.now(),
        )
        assert isinstance(done[0], LeaseLost) and done[0].task_id == stale.task_id
        assert isinstance(done[1], TaskNotFound)
        assert not isinstance(done[2], Exception) and done[2].state is TaskState.COMPLETED
        assert await self.current(storage, taken) == taken
        assert (await self.execution(storage, good.execution_id)).result == "fine"

    async def test_a_parent_and_its_child_in_one_batch(self, storage: Storage, clock: FakeClock) -> None:
        """A parent completed in the same batch as its child ends completed, whichever comes first."""
        for parent_first in (False, True):
            parent = await self.running_root(storage, clock)
            [child_step] = await self.add_steps(storage, clock, parent, [new_task("work")])
            child = await self.claim_one(storage, clock)
            assert child.task_id == child_step.task_id
            parent = await self.current(storage, parent)
            pair = [Completion(child.fence, "1"), Completion(parent.fence, '"p"')]
            done = await storage.complete_tasks(pair[::-1] if parent_first else pair, clock.now())
            assert all(not isinstance(d, Exception) and d.state is TaskState.COMPLETED for d in done)
            assert (await self.current(storage, parent)).state is TaskState.COMPLETED
            assert (await self.current(storage, child)).result == "1"
            finished = await self.execution(storage, parent.execution_id)
            assert (finished.state, finished.result) == (ExecutionState.COMPLETED, '"p"')

    async def test_updates_in_a_batch_land_with_their_completion(self, storage: Storage, clock: FakeClock) -> None:
        """A completion's context update is applied with it, and a refused one's is not."""
        first = await self.running_root(storage, clock, "one")
        second = await self.running_root(storage, clock, "two")
        done = await storage.complete_tasks(
            [
                Completion(first.fence, "1", ContextUpdate(increments=(("n", 2),))),
                Completion(
                    Fence(second.task_id, second.fencing_token + 1), "2", ContextUpdate(increments=(("n", 5),))
                ),
            ],
            clock.now(),
        )
        assert not isinstance(done[0], Exception) and isinstance(done[1], LeaseLost)
        assert json.loads((await self.execution(storage, first.execution_id)).counters) == {"n": 2}
        assert json.loads((await self.execution(storage, second.execution_id)).counters) == {}
