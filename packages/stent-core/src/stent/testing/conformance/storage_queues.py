"""Conformance: the per-queue overview (``queue_overview``) that ``stent stats``, ``stent watch`` and the
Prometheus gauges read, and ``queue_depth`` agreeing with it."""

from __future__ import annotations

from datetime import datetime, timedelta

from stent.clocks import FakeClock
from stent.model import QueueStats, TaskFailure
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, new_task, request, signal_wait

_US = timedelta(microseconds=1)


class QueueOverviewConformance(StorageCase):
    async def _suspend(
        self, storage: Storage, clock: FakeClock, function: str, queue: str, wake_at: datetime
    ) -> None:
        """A new execution of ``function`` on ``queue`` whose root is suspended until ``wake_at``."""
        await self.start(storage, clock, function, queue=queue)
        task = await self.claim_one(storage, clock, function)
        await storage.suspend_task(task.fence, waiting_on=[], wake_at=wake_at, now=clock.now())

    async def _depths_agree(self, storage: Storage, now: datetime, overview: list[QueueStats]) -> None:
        for row in overview:
            assert await storage.queue_depth(row.queue, now) == row.ready + row.scheduled, row
        assert await storage.queue_depth(None, now) == sum(row.ready + row.scheduled for row in overview)

    async def test_empty_storage_has_no_queues(self, storage: Storage, clock: FakeClock) -> None:
        """A storage without tasks reports no queue at all."""
        assert await storage.queue_overview(clock.now()) == []

    async def test_each_unfinished_call_counts_once_by_where_it_stands(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Due, delayed, retrying, running, waiting, suspended (on a step or a timer), woken and lease-expired
        tasks land in their counts; finished tasks and signal waits count nowhere; queue_depth is ready +
        scheduled."""
        t0 = clock.now()
        await self.start(storage, clock, "due", queue="mix")
        await self.start(storage, clock, "later", queue="mix", scheduled_for=t0 + timedelta(hours=1))
        await self.start(storage, clock, "flaky", queue="mix")
        flaky = await self.claim_one(storage, clock, "flaky")
        retry = TaskFailure("RuntimeError: boom", "RuntimeError", retry_at=t0 + timedelta(minutes=5))
        await storage.fail_task(flaky.fence, retry, clock.now())
        await self.start(storage, clock, "busy", queue="mix")
        await self.claim_one(storage, clock, "busy", lease=3600)
        await self.start(storage, clock, "parent", queue="mix")
        parent = await self.claim_one(storage, clock, "parent", lease=3600)
        # The parent now waits (leased) on a call on another queue and on a signal, which is no work.
        await self.add_steps(
            storage, clock, parent, [new_task("child", queue="side"), signal_wait("go", queue="sig")]
        )
        await self.start(storage, clock, "holder", queue="mix")
        holder = await self.claim_one(storage, clock, "holder")
        (kid,) = await self.add_steps(storage, clock, holder, [new_task("child", queue="side")])
        await storage.suspend_task(holder.fence, waiting_on=[kid.task_id], wake_at=None, now=clock.now())
        await self._suspend(storage, clock, "sleeper", "mix", t0 + timedelta(hours=1))
        await self._suspend(storage, clock, "waker", "mix", t0 + timedelta(seconds=10))
        await self.start(storage, clock, "lost", queue="mix")
        await self.claim_one(storage, clock, "lost", lease=20)
        await self.start(storage, clock, "done", queue="finished")
        done = await self.claim_one(storage, clock, "done")
        await storage.complete_task(done.fence, "null", clock.now())
        gone = await self.start(storage, clock, "gone", queue="cancelled")
        await storage.cancel_execution(gone.execution_id, clock.now())
        clock.advance(30)

        overview = await storage.queue_overview(clock.now())
        assert overview == [
            QueueStats("mix", ready=3, scheduled=2, running=2, suspended=2, oldest_ready_at=t0),
            QueueStats("side", ready=2, oldest_ready_at=t0),
        ]
        await self._depths_agree(storage, clock.now(), overview)
        assert await storage.queue_depth("finished", clock.now()) == 0
        # Ready is what a claim of every function takes: the due task, the woken timer and the expired lease.
        functions = ["due", "later", "flaky", "busy", "parent", "holder", "sleeper", "waker", "lost"]
        claimed = await storage.claim_tasks(request("w2", functions, limit=100, queues=["mix"]), clock.now())
        assert sorted(t.function for t in claimed) == ["due", "lost", "waker"]
        after = await storage.queue_overview(clock.now())
        assert after[0] == QueueStats("mix", ready=0, scheduled=2, running=5, suspended=2)

    async def test_oldest_ready_at_is_when_each_task_became_ready(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A due task is ready from its scheduled time, a suspended one from its wake time, a task whose lease
        ran out from its lease expiry, whatever their creation times."""
        t0 = clock.now()
        await self.start(storage, clock, "delayed", queue="pending", scheduled_for=t0 + timedelta(seconds=12))
        await self.start(storage, clock, "lost", queue="leases")
        await self.claim_one(storage, clock, "lost", lease=5)
        await self._suspend(storage, clock, "waker", "timers", t0 + timedelta(seconds=10))
        clock.advance(20)
        for queue in ("pending", "leases", "timers"):
            await self.start(storage, clock, "fresh", queue=queue)
        overview = await storage.queue_overview(clock.now())
        assert [(q.queue, q.ready, q.oldest_ready_at) for q in overview] == [
            ("leases", 2, t0 + timedelta(seconds=5)),
            ("pending", 2, t0 + timedelta(seconds=12)),
            ("timers", 2, t0 + timedelta(seconds=10)),
        ]

    async def test_a_task_is_ready_from_the_very_microsecond_a_claim_could_take_it(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Scheduled time, wake time and lease expiry equal to ``now`` count as ready, one microsecond
        earlier as scheduled, suspended and running."""
        t0 = clock.now()
        due = t0 + timedelta(seconds=10)
        await self.start(storage, clock, "delayed", queue="q", scheduled_for=due)
        await self._suspend(storage, clock, "waker", "q", due)
        await self.start(storage, clock, "lost", queue="q")
        await self.claim_one(storage, clock, "lost", lease=10)
        before = await storage.queue_overview(due - _US)
        assert before == [QueueStats("q", scheduled=1, running=1, suspended=1)]
        await self._depths_agree(storage, due - _US, before)
        at = await storage.queue_overview(due)
        assert at == [QueueStats("q", ready=3, oldest_ready_at=due)]
        await self._depths_agree(storage, due, at)

    async def test_queues_are_sorted_by_name_in_code_point_order(self, storage: Storage, clock: FakeClock) -> None:
        """Every queue with unfinished work is listed once, sorted as Python sorts strings (capitals first)."""
        names = ["beta", "alpha", "Zulu", "_under", "Émile", "alpha"]
        for name in names:
            await self.start(storage, clock, queue=name)
        overview = await storage.queue_overview(clock.now())
        assert [q.queue for q in overview] == sorted(set(names))
        assert [q.ready for q in overview] == [names.count(q.queue) for q in overview]
        assert overview[2] == QueueStats("alpha", ready=2, oldest_ready_at=clock.now())
