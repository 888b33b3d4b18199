"""Conformance: what a claim takes, in which order, and how many."""

from __future__ import annotations

from datetime import timedelta

import attrs

from stent.clocks import FakeClock
from stent.model import ExecutionState, TaskState, WorkerInfo
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_task, request


class ClaimConformance(StorageCase):
    async def test_claim_leases_the_task_with_a_new_token(self, storage: Storage, clock: FakeClock) -> None:
        """A claimed task is running, owned by the worker, leased until now + lease, with a token never seen."""
        execution = await self.start(storage, clock)
        before = await self.current(storage, execution.root_task_id)
        clock.advance(2)
        (task,) = await storage.claim_tasks(request("worker-9", lease=45), clock.now())
        assert task.task_id == execution.root_task_id
        assert (task.state, task.lease_owner, task.attempt) == (TaskState.RUNNING, "worker-9", 1)
        assert task.lease_expires_at == clock.now() + timedelta(seconds=45)
        assert task.started_at == task.updated_at == clock.now()
        assert task.fencing_token != before.fencing_token
        assert await self.current(storage, task) == task

    async def test_each_claim_gets_a_distinct_token(self, storage: Storage, clock: FakeClock) -> None:
        """Tokens of tasks claimed together, and of one task claimed again, are all different."""
        for _ in range(3):
            await self.start(storage, clock)
        batch = await storage.claim_tasks(request(lease=10), clock.now())
        clock.advance(11)
        again = await storage.claim_tasks(request("worker-2", lease=10), clock.now())
        tokens = [t.fencing_token for t in batch + again]
        assert len(batch) == len(again) == 3
        assert len(set(tokens)) == 6

    async def test_claiming_a_root_task_starts_its_execution(self, storage: Storage, clock: FakeClock) -> None:
        """The execution of a claimed root task moves from pending to running."""
        execution = await self.start(storage, clock)
        clock.advance(1)
        await self.claim_one(storage, clock)
        started = await storage.get_execution(execution.execution_id)
        assert started is not None
        assert (started.state, started.updated_at) == (ExecutionState.RUNNING, clock.now())

    async def test_only_registered_functions_are_claimed(self, storage: Storage, clock: FakeClock) -> None:
        """A worker never claims a task of a function it does not register."""
        await self.start(storage, clock, "unknown")
        mine = await self.start(storage, clock, "work")
        assert ids(await storage.claim_tasks(request(functions=["work", "other"]), clock.now())) == [
            mine.root_task_id
        ]
        assert await storage.claim_tasks(request(functions=[]), clock.now()) == []

    async def test_queues_filter_what_is_claimed(self, storage: Storage, clock: FakeClock) -> None:
        """A worker with queues claims only those queues; a worker without a queue filter claims any queue."""
        a = await self.start(storage, clock, queue="a")
        b = await self.start(storage, clock, queue="b")
        c = await self.start(storage, clock, queue="c")
        got = await storage.claim_tasks(request(queues=["a", "c"]), clock.now())
        assert sorted(ids(got)) == sorted([a.root_task_id, c.root_task_id])
        assert ids(await storage.claim_tasks(request(), clock.now())) == [b.root_task_id]

    async def test_tags_match_overlapping_or_untagged_tasks(self, storage: Storage, clock: FakeClock) -> None:
        """A worker with tags claims tasks sharing a tag and untagged tasks; without tags, every task."""
        billing = await self.start(storage, clock, tags=("billing",))
        both = await self.start(storage, clock, tags=("billing", "notifications"))
        notes = await self.start(storage, clock, tags=("notifications",))
        plain = await self.start(storage, clock)
        got = await storage.claim_tasks(request(tags=["billing", "audit"]), clock.now())
        assert sorted(ids(got)) == sorted([billing.root_task_id, both.root_task_id, plain.root_task_id])
        assert await storage.claim_tasks(request(tags=["audit"]), clock.now()) == []
        assert ids(await storage.claim_tasks(request(tags=None), clock.now())) == [notes.root_task_id]

    async def test_names_are_matched_literally(self, storage: Storage, clock: FakeClock) -> None:
        """Queue, tag and function names with quotes, wildcards and unicode match only themselves."""
        odd = "q'%_\"[*]ü; --"
        await self.start(storage, clock, "fn'%", queue=odd, tags=(odd,))
        assert await storage.queue_depth(odd, clock.now()) == 1
        assert await storage.queue_depth("q%", clock.now()) == 0
        assert await storage.claim_tasks(request(functions=["fn'%"], queues=["q%", "q'%"]), clock.now()) == []
        assert await storage.claim_tasks(request(functions=["fn'%"], tags=["q%"]), clock.now()) == []
        assert await storage.claim_tasks(request(functions=["fn%"]), clock.now()) == []
        got = await storage.claim_tasks(request(functions=["fn'%"], queues=[odd], tags=[odd]), clock.now())
        assert len(got) == 1 and got[0].queue == odd and got[0].tags == (odd,)
        assert await storage.queue_depth(odd, clock.now()) == 0

    async def test_future_tasks_are_claimed_only_when_due(self, storage: Storage, clock: FakeClock) -> None:
        """A task scheduled for later is not claimed before its time and is claimed at it."""
        execution = await self.start(storage, clock, scheduled_for=clock.now() + timedelta(seconds=60))
        clock.advance(59.999)
        assert await storage.claim_tasks(request(), clock.now()) == []
        clock.advance(0.001)
        assert ids(await storage.claim_tasks(request(), clock.now())) == [execution.root_task_id]

    async def test_highest_priority_first_then_oldest(self, storage: Storage, clock: FakeClock) -> None:
        """Claims take the highest priority first and, within a priority, the earliest scheduled."""
        low_old = await self.start(storage, clock, priority=0)
        clock.advance(1)
        high_new = await self.start(storage, clock, priority=5)
        clock.advance(1)
        low_new = await self.start(storage, clock, priority=0)
        early = await self.start(storage, clock, priority=0, scheduled_for=clock.now() - timedelta(seconds=10))
        negative = await self.start(storage, clock, priority=-1)
        order = []
        for _ in range(5):
            order += ids(await storage.claim_tasks(request(limit=1), clock.now()))
        expected = [high_new, early, low_old, low_new, negative]
        assert order == [e.root_task_id for e in expected]

    async def test_a_batch_is_ordered_and_limited(self, storage: Storage, clock: FakeClock) -> None:
        """A claim returns at most ``limit`` tasks, in claim order; a limit of zero claims nothing."""
        started = []
        for priority in (1, 3, 2, 0, 4):
            started.append(await self.start(storage, clock, priority=priority))
        assert await storage.claim_tasks(request(limit=0), clock.now()) == []
        got = await storage.claim_tasks(request(limit=3), clock.now())
        assert [t.priority for t in got] == [4, 3, 2]
        assert len(await storage.claim_tasks(request(limit=10), clock.now())) == 2

    async def test_ineligible_tasks_never_block_an_eligible_one(self, storage: Storage, clock: FakeClock) -> None:
        """However many higher-priority ineligible tasks come first, an eligible task is claimed."""
        parent = await self.running_root(storage, clock)
        blocker = await self.start(storage, clock, "limited", max_concurrent=1, priority=9)
        await self.claim_one(storage, clock, "limited", worker="busy")  # limited is now at its limit
        later = clock.now() + timedelta(hours=1)
        ahead = []
        for _ in range(60):
            ahead += [
                new_task("unregistered", priority=9),
                new_task("work", priority=9, queue="other"),
                new_task("work", priority=9, tags=("elsewhere",)),
                new_task("work", priority=9, scheduled_for=later),
                new_task("limited", priority=9, max_concurrent=1),
            ]
        target = new_task("work", priority=0)
        await self.add_steps(storage, clock, parent, [*ahead, target])
        got = await storage.claim_tasks(
            request(functions=["work", "limited"], queues=["default"], tags=["mine"], limit=5), clock.now()
        )
        assert ids(got) == [target.task_id]
        assert blocker.root_task_id not in ids(got)

    async def test_max_concurrent_caps_running_tasks_of_a_function(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A batch never brings a function beyond max_concurrent running tasks; a finished one frees a slot."""
        limited = [await self.start(storage, clock, "limited", max_concurrent=2) for _ in range(5)]
        free = [await self.start(storage, clock, "free") for _ in range(3)]
        got = await storage.claim_tasks(request(functions=["limited", "free"], limit=10), clock.now())
        expected = [limited[0], limited[1], *free]
        assert sorted(ids(got)) == sorted(e.root_task_id for e in expected)
        assert await storage.claim_tasks(request("worker-2", ["limited"]), clock.now()) == []
        running_limited = [t for t in got if t.function == "limited"]
        await storage.complete_task(running_limited[0].fence, "null", clock.now())
        assert ids(await storage.claim_tasks(request("worker-2", ["limited"]), clock.now())) == [
            limited[2].root_task_id
        ]

    async def test_waiting_tasks_do_not_count_toward_max_concurrent(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A limited task waiting on its steps gives its slot back."""
        first = await self.start(storage, clock, "limited", max_concurrent=1)
        second = await self.start(storage, clock, "limited", max_concurrent=1)
        task = await self.claim_one(storage, clock, "limited")
        assert task.task_id == first.root_task_id
        assert await storage.claim_tasks(request(functions=["limited"]), clock.now()) == []
        await self.add_steps(storage, clock, task, [new_task("child")])
        assert ids(await storage.claim_tasks(request(functions=["limited"]), clock.now())) == [second.root_task_id]

    async def test_a_reclaimed_running_task_keeps_its_slot(self, storage: Storage, clock: FakeClock) -> None:
        """An expired running task of a function at its limit is reclaimable, and no other task takes a slot."""
        first = await self.start(storage, clock, "limited", max_concurrent=1)
        clock.advance(1)
        await self.start(storage, clock, "limited", max_concurrent=1)
        await self.claim_one(storage, clock, "limited", lease=10)
        clock.advance(11)
        got = await storage.claim_tasks(request("worker-2", ["limited"], limit=5), clock.now())
        assert ids(got) == [first.root_task_id]
        assert got[0].lease_owner == "worker-2"


class ClaimChoresConformance(StorageCase):
    """What a claim does besides claiming: the deadline sweep it may carry, and the claimer's sign of life."""

    async def test_a_claim_can_end_executions_past_their_deadline_first(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """With time_out_limit, overdue executions end timed_out before the claim, so their tasks are not run."""
        late = await self.start(storage, clock, deadline=clock.now() + timedelta(seconds=5))
        on_time = await self.start(storage, clock, deadline=clock.now() + timedelta(seconds=60))
        clock.advance(10)
        claimed = await storage.claim_tasks(request(limit=10, time_out_limit=10), clock.now())
        assert ids(claimed) == [on_time.root_task_id]
        assert (await self.execution(storage, late.execution_id)).state is ExecutionState.TIMED_OUT
        assert (await self.current(storage, late.root_task_id)).state is TaskState.CANCELLED
        assert (await self.execution(storage, on_time.execution_id)).state is ExecutionState.RUNNING

    async def test_the_sweep_is_bounded_and_optional(self, storage: Storage, clock: FakeClock) -> None:
        """A claim sweeps at most time_out_limit executions, oldest deadline first, and none without it."""
        overdue = [
            await self.start(storage, clock, deadline=clock.now() + timedelta(seconds=i + 1)) for i in range(3)
        ]
        clock.advance(10)
        await storage.claim_tasks(request(functions=["other"]), clock.now())
        assert {(await self.execution(storage, e.execution_id)).state for e in overdue} == {ExecutionState.PENDING}
        await storage.claim_tasks(request(functions=["other"], time_out_limit=2), clock.now())
        states = [(await self.execution(storage, e.execution_id)).state for e in overdue]
        assert states == [ExecutionState.TIMED_OUT, ExecutionState.TIMED_OUT, ExecutionState.PENDING]

    async def test_a_claim_refreshes_the_claimers_heartbeat_row(self, storage: Storage, clock: FakeClock) -> None:
        """A claim sets last_seen of the claiming worker's row to now, changes nothing else, and creates no row."""
        row = WorkerInfo(
            worker_id="worker-1",
            hostname="h",
            pid=7,
            queues=None,
            tags=None,
            max_concurrency=4,
            running=1,
            state="ready",
            started_at=clock.now(),
            last_seen=clock.now(),
        )
        await storage.record_worker(row)
        clock.advance(30)
        await storage.claim_tasks(request("worker-1"), clock.now())
        await storage.claim_tasks(request("worker-2"), clock.now())
        assert await storage.list_workers() == [attrs.evolve(row, last_seen=clock.now())]
