"""Conformance under real concurrency: many clients of one backend racing for the same rows.

Each racer is a peer (``make_peer_storage``): for a database, its own connection, so the backend's locking is
what keeps the racers apart, not the event loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from stent.clocks import FakeClock
from stent.model import StepKey, TaskRecord, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import PeerFactory, StorageCase, ids, new_task, request

CLAIMERS = 20
TASKS = 2000


class ConcurrencyConformance(StorageCase):
    async def test_concurrent_claimers_never_share_a_task(
        self, storage: Storage, clock: FakeClock, open_peer: PeerFactory
    ) -> None:
        """Twenty claimers on their own connections take 2,000 tasks between them, each task exactly once."""
        parent = await self.running_root(storage, clock)
        created = await self.add_steps(storage, clock, parent, [new_task("work") for _ in range(TASKS)])
        peers = [await open_peer(storage) for _ in range(CLAIMERS)]

        async def claimer(number: int, peer: Storage) -> list[TaskRecord]:
            mine: list[TaskRecord] = []
            while True:
                # Batch sizes differ so that claims overlap in every way.
                got = await peer.claim_tasks(request(f"claimer-{number}", limit=3 + number % 9), clock.now())
                if not got:
                    return mine
                mine.extend(got)

        results = await asyncio.gather(*(claimer(n, p) for n, p in enumerate(peers)))
        claimed = [task for mine in results for task in mine]
        twice = [task_id for task_id, n in Counter(ids(claimed)).items() if n > 1]
        assert not twice, f"{len(twice)} tasks were claimed more than once, e.g. {twice[:5]}"
        assert sorted(ids(claimed)) == sorted(ids(created))
        assert len({t.fencing_token for t in claimed}) == TASKS
        stored = {t.task_id: t for t in await storage.get_tasks(ids(claimed))}
        for number, mine in enumerate(results):
            for task in mine:
                assert task.lease_owner == f"claimer-{number}"
                assert stored[task.task_id].lease_owner == task.lease_owner
                assert stored[task.task_id].fencing_token == task.fencing_token

    async def test_max_concurrent_holds_under_contention(
        self, storage: Storage, clock: FakeClock, open_peer: PeerFactory
    ) -> None:
        """Ten racing claimers never run more tasks of a function than its max_concurrent, round after round."""
        limit = 3
        parent = await self.running_root(storage, clock)
        limited = [new_task("limited", max_concurrent=limit) for _ in range(30)]
        free = [new_task("free") for _ in range(300)]
        await self.add_steps(storage, clock, parent, [*limited, *free])
        peers = [await open_peer(storage) for _ in range(10)]
        remaining = len(limited)
        while remaining:
            rounds = await asyncio.gather(
                *(
                    p.claim_tasks(request(f"w{n}", ["limited", "free"], limit=4), clock.now())
                    for n, p in enumerate(peers)
                )
            )
            taken = [t for got in rounds for t in got if t.function == "limited"]
            # Nothing finished during the round, so exactly the free slots were filled, never more.
            assert len(taken) == min(limit, remaining), f"{len(taken)} limited tasks running at once"
            stored = await storage.get_tasks([t.task_id for t in limited])
            assert sum(t.state is TaskState.RUNNING for t in stored) == len(taken)
            for task in [t for got in rounds for t in got]:
                await storage.complete_task(task.fence, "null", clock.now())
            remaining -= len(taken)

    async def test_racing_step_creation_creates_each_step_once(
        self, storage: Storage, clock: FakeClock, open_peer: PeerFactory
    ) -> None:
        """Two clients creating the same steps at once get the same tasks, and each step exists once."""
        parent = await self.running_root(storage, clock)
        peers = [await open_peer(storage) for _ in range(4)]
        keys = [StepKey(parent.task_id, parent.attempt, n) for n in range(50)]

        async def create(peer: Storage) -> list[TaskRecord]:
            return await peer.get_or_create_steps(parent.fence, [(k, new_task("work")) for k in keys], clock.now())

        results = await asyncio.gather(*(create(p) for p in peers))
        assert all(ids(r) == ids(results[0]) for r in results)
        assert len(await storage.list_execution_tasks(parent.execution_id)) == 1 + len(keys)
