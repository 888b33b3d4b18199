"""Conformance of the optional storage capabilities (see :mod:`~stent.testing.conformance.capabilities`).

Each test here runs only when the storage declares its capability, and then it must pass.  The fixtures a
capability needs beyond ``make_storage`` come from the adapter's test module; a storage that declares a
capability whose fixture is missing fails, naming the fixture, rather than passing untested:

``shared``
    ``make_peer_storage(storage)`` opens another client of the same store (its own connection or pool).
``durable``
    ``reopen_storage(storage)`` opens the store of ``storage`` again after ``storage`` was closed, as a restarted
    process would; without it the suite uses ``make_peer_storage``.  The fixture closes what it opened.
``transactional_notifications``
    ``make_storage_listener(storage)`` returns a connected Notifier that hears what ``storage`` announces; the
    fixture closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from stent.clocks import FakeClock
from stent.errors import LeaseLost
from stent.model import Completion, ContextUpdate, TaskFailure, WorkerInfo
from stent.ports import Notifier, Storage
from stent.testing.async_support import async_fixture
from stent.testing.conformance._support import (
    PeerFactory,
    StorageCase,
    new_execution,
    new_task,
    request,
    signal_wait,
)
from stent.testing.conformance.capabilities import adapter_fixture, requires_capability
from stent.testing.conformance.notifier_support import Inbox


class SharedStoreConformance(StorageCase):
    """``shared``: clients on separate connections see one store, and the store keeps them apart."""

    @pytest.fixture
    def open_client(self, request: pytest.FixtureRequest) -> PeerFactory:
        """The adapter's ``make_peer_storage`` (a sync fixture: the adapter's may be async)."""
        factory: PeerFactory = adapter_fixture(request, "shared", "make_peer_storage")
        return factory

    @async_fixture
    async def peer(self, open_client: PeerFactory, storage: Storage) -> Storage:
        """A second client of the store."""
        other = await open_client(storage)
        assert other is not storage, "make_peer_storage returned the same instance, not a second client"
        return other

    @requires_capability("shared")
    async def test_each_client_sees_the_others_writes(
        self, storage: Storage, peer: Storage, clock: FakeClock
    ) -> None:
        """An execution created through one client is read and claimed through another, and the claim is
        visible to the first."""
        execution = await self.start(storage, clock)
        assert await peer.get_execution(execution.execution_id) == execution
        claimed = await self.claim_one(peer, clock, worker="w-peer")
        assert claimed.task_id == execution.root_task_id
        assert await storage.claim_tasks(request("w-first"), clock.now()) == []
        assert await self.current(storage, claimed) == claimed

    @requires_capability("shared")
    async def test_a_stale_token_from_another_client_is_rejected(
        self, storage: Storage, peer: Storage, clock: FakeClock
    ) -> None:
        """Fencing lives in the store: after a takeover through one client, the other's stale write is refused."""
        await self.start(storage, clock)
        stale = await self.claim_one(storage, clock, worker="w1", lease=10)
        clock.advance(11)
        fresh = await self.claim_one(peer, clock, worker="w2", lease=10)
        with pytest.raises(LeaseLost):
            await storage.complete_task(stale.fence, '"late"', clock.now())
        done = await peer.complete_task(fresh.fence, '"on time"', clock.now())
        assert (await self.current(storage, done)).result == '"on time"'

    @requires_capability("shared")
    async def test_the_leader_lock_is_exclusive_across_clients(
        self, storage: Storage, peer: Storage, clock: FakeClock
    ) -> None:
        """One client's leader lock keeps another client out until its time-to-live runs out."""
        assert await storage.acquire_leader("cleanup", "a", 30, clock.now())
        assert not await peer.acquire_leader("cleanup", "b", 30, clock.now())
        clock.advance(30)
        assert await peer.acquire_leader("cleanup", "b", 30, clock.now())
        assert not await storage.acquire_leader("cleanup", "a", 30, clock.now())

    @requires_capability("shared")
    async def test_schema_setup_from_many_clients_at_once_keeps_the_store(
        self, storage: Storage, open_client: PeerFactory, clock: FakeClock
    ) -> None:
        """Workers starting together all run init_db at once: none fails and no record is lost."""
        execution = await self.start(storage, clock)
        clients = [await open_client(storage) for _ in range(5)]
        await asyncio.gather(*(client.init_db() for client in clients))
        for client in clients:
            assert await client.get_execution(execution.execution_id) == execution


class DurabilityConformance(StorageCase):
    """``durable``: what was written survives close() and a reopen."""

    @pytest.fixture
    def reopen(self, request: pytest.FixtureRequest) -> Callable[[Storage], Awaitable[Storage]]:
        """Opens the store of a closed storage again, initialised as a restarted worker would."""
        factory: PeerFactory = adapter_fixture(request, "durable", "reopen_storage", "make_peer_storage")

        async def reopen(storage: Storage) -> Storage:
            again = await factory(storage)
            await again.init_db()  # on a store that has data: must keep it
            return again

        return reopen

    async def _everything(self, storage: Storage, clock: FakeClock) -> dict[str, Any]:
        """Build a store with a record of every kind; return what reading them back gives."""
        done = await self.running_root(storage, clock, "finished", worker="w0")
        await storage.complete_task(done.fence, '"result"', clock.now(), ContextUpdate(increments=(("n", 2),)))
        dead = await self.running_root(storage, clock, "doomed", worker="w0")
        await storage.fail_task(dead.fence, TaskFailure(error="E", reason="error"), clock.now())
        parent = await self.running_root(storage, clock)
        await storage.send_signal(parent.execution_id, "buffered", '"s"', clock.now())
        later = clock.now() + timedelta(hours=1)
        await self.add_steps(
            storage, clock, parent, [new_task("work", priority=5, scheduled_for=later), signal_wait("go")]
        )
        await storage.cache_put("key", '"cached"', None, clock.now())
        assert await storage.acquire_leader("cleanup", "w0", 3600, clock.now())
        await storage.record_worker(
            WorkerInfo("w0", "host", 1, ("default",), None, 4, 1, "ready", clock.now(), clock.now())
        )
        return await self._read(storage, clock, [done.execution_id, dead.execution_id, parent.execution_id])

    async def _read(self, storage: Storage, clock: FakeClock, executions: list[str]) -> dict[str, Any]:
        tasks = [t for e in executions for t in await storage.list_execution_tasks(e)]
        return {
            "executions": [await storage.get_execution(e) for e in executions],
            "tasks": tasks,
            "signals": [await storage.list_signals(e) for e in executions],
            "dead letters": await storage.list_dead_letters(),
            "cache": await storage.cache_get("key", clock.now()),
            "workers": await storage.list_workers(),
            "listing": await storage.list_executions(),
            "depth": await storage.queue_depth(None, clock.now() + timedelta(hours=2)),
        }

    @requires_capability("durable")
    async def test_every_record_survives_close_and_reopen(
        self, storage: Storage, clock: FakeClock, reopen: Callable[[Storage], Awaitable[Storage]]
    ) -> None:
        """Executions, tasks, steps, signals, dead letters, cache, leader lock and worker rows read back the same
        after the store was closed and opened again."""
        before = await self._everything(storage, clock)
        await storage.close()
        again = await reopen(storage)
        executions = [e.execution_id for e in before["executions"]]
        after = await self._read(again, clock, executions)
        for what, value in before.items():
            assert after[what] == value, f"{what} changed across close() and reopen"
        assert not await again.acquire_leader("cleanup", "w1", 30, clock.now()), "the leader lock was lost"

    @requires_capability("durable")
    async def test_leases_and_fencing_tokens_outlive_a_reopen(
        self, storage: Storage, clock: FakeClock, reopen: Callable[[Storage], Awaitable[Storage]]
    ) -> None:
        """A lease taken before the close still holds after it, and tokens handed out later never repeat one."""
        for _ in range(3):
            await self.start(storage, clock)
        held, stale = await storage.claim_tasks(request("w1", limit=2, lease=30), clock.now())
        before = {held.fencing_token, stale.fencing_token}
        await storage.close()
        again = await reopen(storage)
        (third,) = await again.claim_tasks(request("w2", lease=300), clock.now())  # the two leases still hold
        assert third.task_id not in {held.task_id, stale.task_id}
        assert (await again.renew_leases("w1", [held.fence], 60, clock.now())).renewed == {held.task_id}
        clock.advance(31)
        (taken,) = await again.claim_tasks(request("w3"), clock.now())
        assert taken.task_id == stale.task_id
        assert taken.fencing_token not in before | {third.fencing_token}, "a fencing token was handed out twice"
        with pytest.raises(LeaseLost):
            await again.complete_task(stale.fence, "null", clock.now())
        await again.complete_task(held.fence, "null", clock.now())


class TransactionalNotificationConformance(StorageCase):
    """``transactional_notifications``: the store announces exactly the changes it commits."""

    #: Seconds the store's announcement may take to arrive.
    DELIVERY_TIMEOUT = 5.0

    @pytest.fixture
    def open_listener(self, request: pytest.FixtureRequest) -> Callable[[Storage], Awaitable[Notifier]]:
        """The adapter's ``make_storage_listener``."""
        factory: Callable[[Storage], Awaitable[Notifier]] = adapter_fixture(
            request, "transactional_notifications", "make_storage_listener"
        )
        return factory

    @async_fixture
    async def heard(self, open_listener: Callable[[Storage], Awaitable[Notifier]], storage: Storage) -> Inbox:
        """What the store announces from now on."""
        inbox = Inbox()
        (await open_listener(storage)).subscribe(inbox)
        return inbox

    @requires_capability("transactional_notifications")
    async def test_new_work_is_announced_on_its_queue(
        self, storage: Storage, clock: FakeClock, heard: Inbox
    ) -> None:
        """Creating an execution announces work on its queue."""
        await self.start(storage, clock, queue="announced")
        await heard.until(
            lambda notes: any(n.kind == "work" and n.queue == "announced" for n in notes),
            self.DELIVERY_TIMEOUT,
            "work announced on queue 'announced'",
        )

    @requires_capability("transactional_notifications")
    async def test_a_finished_task_is_announced(self, storage: Storage, clock: FakeClock, heard: Inbox) -> None:
        """Completing a task announces that it finished, naming the task and its execution."""
        root = await self.running_root(storage, clock)
        await storage.complete_task(root.fence, "null", clock.now())
        await heard.until(
            lambda notes: any(
                n.kind == "finished" and (n.task_id, n.execution_id) == (root.task_id, root.execution_id)
                for n in notes
            ),
            self.DELIVERY_TIMEOUT,
            f"task {root.task_id} announced as finished",
        )

    @requires_capability("transactional_notifications")
    async def test_batches_are_announced(self, storage: Storage, clock: FakeClock, heard: Inbox) -> None:
        """A batch of new executions announces work on their queue; a batch of completions announces each."""
        await storage.create_executions([new_execution("batched", queue="batch-q")], clock.now())
        await heard.until(
            lambda notes: any(n.kind == "work" and n.queue == "batch-q" for n in notes),
            self.DELIVERY_TIMEOUT,
            "work announced on queue 'batch-q'",
        )
        roots = [await self.running_root(storage, clock, f"batch-{i}") for i in range(2)]
        await storage.complete_tasks([Completion(r.fence, "null") for r in roots], clock.now())
        wanted = {(r.task_id, r.execution_id) for r in roots}
        await heard.until(
            lambda notes: wanted <= {(n.task_id, n.execution_id) for n in notes if n.kind == "finished"},
            self.DELIVERY_TIMEOUT,
            "both tasks of the batch announced as finished",
        )

    @requires_capability("transactional_notifications")
    async def test_a_rejected_write_announces_nothing(
        self, storage: Storage, clock: FakeClock, heard: Inbox
    ) -> None:
        """A completion refused for its stale token announces nothing, while a later accepted one is heard
        (announcements arrive in commit order, so the refused one would have come first)."""
        await self.start(storage, clock, "taken")
        stale = await self.claim_one(storage, clock, "taken", worker="w1", lease=10)
        clock.advance(11)
        await self.claim_one(storage, clock, "taken", worker="w2", lease=10)
        with pytest.raises(LeaseLost):
            await storage.complete_task(stale.fence, "null", clock.now())
        other = await self.running_root(storage, clock, "other")
        await storage.complete_task(other.fence, "null", clock.now())
        await heard.until(
            lambda notes: any(n.kind == "finished" and n.task_id == other.task_id for n in notes),
            self.DELIVERY_TIMEOUT,
            f"task {other.task_id} announced as finished",
        )
        refused = [n for n in heard.notes if n.task_id == stale.task_id]
        assert not refused, f"a refused completion was announced: {refused}"
