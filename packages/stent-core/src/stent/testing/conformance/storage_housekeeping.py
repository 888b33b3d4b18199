"""Conformance: the leader lock, cleanup of finished executions, and worker heartbeat rows."""

from __future__ import annotations

from datetime import timedelta

from stent.clocks import FakeClock
from stent.model import ExecutionRecord, TaskFailure, WorkerInfo
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, ids, new_task, signal_wait


class LeaderConformance(StorageCase):
    async def test_the_lock_has_one_owner_at_a_time(self, storage: Storage, clock: FakeClock) -> None:
        """While one owner holds a lock nobody else gets it; the holder renews it; other names are separate."""
        assert await storage.acquire_leader("cleanup", "a", 30, clock.now()) is True
        assert await storage.acquire_leader("cleanup", "b", 30, clock.now()) is False
        assert await storage.acquire_leader("other-lock", "b", 30, clock.now()) is True
        clock.advance(20)
        assert await storage.acquire_leader("cleanup", "a", 30, clock.now()) is True  # renewed until 50 s
        clock.advance(20)
        assert await storage.acquire_leader("cleanup", "b", 30, clock.now()) is False

    async def test_the_lock_expires_after_its_ttl(self, storage: Storage, clock: FakeClock) -> None:
        """An owner that stops renewing loses the lock when its time-to-live runs out."""
        assert await storage.acquire_leader("cleanup", "a", 30, clock.now())
        clock.advance(29.999)
        assert not await storage.acquire_leader("cleanup", "b", 30, clock.now())
        clock.advance(0.001)
        assert await storage.acquire_leader("cleanup", "b", 30, clock.now())
        assert not await storage.acquire_leader("cleanup", "a", 30, clock.now())

    async def test_only_the_owner_releases_the_lock(self, storage: Storage, clock: FakeClock) -> None:
        """Release by another owner does nothing; release by the owner frees the lock at once."""
        assert await storage.acquire_leader("cleanup", "a", 30, clock.now())
        await storage.release_leader("cleanup", "b")
        assert not await storage.acquire_leader("cleanup", "b", 30, clock.now())
        await storage.release_leader("cleanup", "a")
        assert await storage.acquire_leader("cleanup", "b", 30, clock.now())
        await storage.release_leader("never-taken", "a")  # releasing what nobody holds is harmless


class CleanupConformance(StorageCase):
    async def _finished(self, storage: Storage, clock: FakeClock, *, fail: bool = False) -> ExecutionRecord:
        """An execution with a child and a signal, ended at the current time (completed, or failed)."""
        root = await self.running_root(storage, clock)
        await storage.send_signal(root.execution_id, "go", "1", clock.now())
        await self.add_steps(storage, clock, root, [signal_wait("go"), new_task("work")])
        child = await self.claim_one(storage, clock)
        await storage.complete_task(child.fence, "1", clock.now())
        if fail:
            await storage.fail_task(
                root.fence, TaskFailure(error="E", reason="error", dead_letter=False), clock.now()
            )
        else:
            await storage.complete_task(root.fence, "2", clock.now())
        return await self.execution(storage, root.execution_id)

    async def test_finished_executions_before_the_cutoff_are_deleted_whole(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Cleanup deletes finished executions that ended before the cutoff, with their tasks and signals."""
        old = await self._finished(storage, clock)
        old_failed = await self._finished(storage, clock, fail=True)
        old_tasks = ids(await storage.list_execution_tasks(old.execution_id))
        clock.advance(10)
        cutoff = clock.now()
        recent = await self._finished(storage, clock)  # ended at the cutoff itself: kept
        assert await storage.delete_executions_before(cutoff, 100) == 2
        for gone in (old, old_failed):
            assert await storage.get_execution(gone.execution_id) is None
            assert await storage.list_execution_tasks(gone.execution_id) == []
            assert await storage.list_signals(gone.execution_id) == []
        assert await storage.get_tasks(old_tasks) == []
        assert await storage.get_execution(recent.execution_id) == recent
        assert len(await storage.list_execution_tasks(recent.execution_id)) == 3
        assert len(await storage.list_signals(recent.execution_id)) == 1
        assert await storage.delete_executions_before(cutoff, 100) == 0

    async def test_cleanup_works_in_batches_oldest_first(self, storage: Storage, clock: FakeClock) -> None:
        """Each call deletes at most ``limit`` executions, those that ended first."""
        made = []
        for _ in range(5):
            made.append(await self._finished(storage, clock))
            clock.advance(1)
        assert await storage.delete_executions_before(clock.now(), 2) == 2
        assert [await storage.get_execution(e.execution_id) is None for e in made] == [True, True] + [False] * 3
        assert await storage.delete_executions_before(clock.now(), 2) == 2
        assert await storage.delete_executions_before(clock.now(), 2) == 1
        assert (await storage.list_executions()).total == 0

    async def test_cleanup_never_touches_unfinished_executions(self, storage: Storage, clock: FakeClock) -> None:
        """Pending, running, waiting, suspended and cancelling executions survive any cutoff, however old."""
        pending = await self.start(storage, clock)
        running = await self.running_root(storage, clock)
        waiting = await self.running_root(storage, clock, "waiter")
        await self.add_steps(storage, clock, waiting, [new_task("child")])
        suspended = await self.running_root(storage, clock, "sleeper")
        await storage.suspend_task(
            suspended.fence, waiting_on=[], wake_at=clock.now() + timedelta(days=30), now=clock.now()
        )
        cancelling = await self.running_root(storage, clock, "stopper")
        await storage.cancel_execution(cancelling.execution_id, clock.now())
        clock.advance(timedelta(days=365))
        deleted = await storage.delete_executions_before(clock.now(), 100)
        assert deleted == 0, f"cleanup deleted {deleted} unfinished execution(s)"
        for task in (running, waiting, suspended, cancelling):
            assert await storage.get_execution(task.execution_id) is not None
            assert await storage.get_task(task.task_id) is not None
        assert await storage.get_execution(pending.execution_id) is not None
        assert len(await storage.list_execution_tasks(waiting.execution_id)) == 2


def _worker(worker_id: str, clock: FakeClock, **fields: object) -> WorkerInfo:
    values: dict[str, object] = {
        "worker_id": worker_id,
        "hostname": "host-1",
        "pid": 4242,
        "queues": ("default", "mail"),
        "tags": None,
        "max_concurrency": 8,
        "running": 0,
        "state": "ready",
        "started_at": clock.now(),
        "last_seen": clock.now(),
    }
    values.update(fields)
    return WorkerInfo(**values)  # type: ignore[arg-type]


class WorkerRowConformance(StorageCase):
    async def test_worker_rows_round_trip_and_update(self, storage: Storage, clock: FakeClock) -> None:
        """A recorded worker row reads back as written, listed by worker id; recording again replaces it."""
        b = _worker("worker-b", clock, tags=("gpu", "ünï"), queues=None)
        a = _worker("worker-a", clock, queues=())
        await storage.record_worker(b)
        await storage.record_worker(a)
        assert await storage.list_workers() == [a, b]
        clock.advance(5)
        busier = _worker("worker-a", clock, running=3, state="draining", started_at=a.started_at, queues=())
        await storage.record_worker(busier)
        assert await storage.list_workers() == [busier, b]

    async def test_worker_rows_are_removed_and_aged_out(self, storage: Storage, clock: FakeClock) -> None:
        """remove_worker deletes one row; delete_workers_before deletes rows last seen before the cutoff."""
        await storage.record_worker(_worker("gone", clock))
        await storage.record_worker(_worker("stale", clock))
        clock.advance(60)
        fresh = _worker("fresh", clock)
        await storage.record_worker(fresh)
        await storage.remove_worker("gone")
        await storage.remove_worker("never-recorded")
        assert [w.worker_id for w in await storage.list_workers()] == ["fresh", "stale"]
        assert await storage.delete_workers_before(clock.now()) == 1
        assert await storage.list_workers() == [fresh]
        assert await storage.delete_workers_before(clock.now()) == 0
