"""The storage conformance suite against PostgreSQL: a schema per storage, peers on pools of their own.

A second class runs the parts whose statements send NOTIFY on storages made with ``notify=true``, and the
``transactional_notifications`` capability's own tests with a LISTEN/NOTIFY notifier on the storage's channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from stent.clocks import FakeClock
from stent.ports import Notifier, Storage
from stent.testing.conformance import (
    CancellationConformance,
    FinishConformance,
    SignalConformance,
    StorageConformance,
    SuspensionConformance,
    TransactionalNotificationConformance,
)
from stent_postgres import PostgresNotifier, PostgresStorage


@pytest.fixture
async def make_storage(
    open_storage: Callable[..., Awaitable[PostgresStorage]],
) -> Callable[[FakeClock], Awaitable[Storage]]:
    async def make(clock: FakeClock) -> Storage:
        return await open_storage()

    return make


@pytest.fixture
async def make_peer_storage(pg_url: str) -> AsyncIterator[Callable[[Storage], Awaitable[Storage]]]:
    peers: list[PostgresStorage] = []

    async def peer(storage: Storage) -> Storage:
        assert isinstance(storage, PostgresStorage)
        # Another pool on the same schema: racing peers contend through PostgreSQL's locks, not the event
        # loop.  One connection each, so twenty peers stay well within the server's connection limit.
        other = PostgresStorage(pg_url, schema=storage.settings.schema, min_size=1, max_size=1)
        peers.append(other)
        return other

    yield peer
    for other in peers:
        await other.close()


@pytest.fixture
async def make_storage_listener(pg_url: str) -> AsyncIterator[Callable[[Storage], Awaitable[Notifier]]]:
    listeners: list[PostgresNotifier] = []

    async def listen(storage: Storage) -> Notifier:
        assert isinstance(storage, PostgresStorage)
        notifier = PostgresNotifier(pg_url, schema=storage.settings.schema)
        listeners.append(notifier)
        await notifier.connect()
        return notifier

    yield listen
    for notifier in listeners:
        await notifier.close()


class TestPostgresConformance(StorageConformance):
    pass


class TestPostgresNotifyingConformance(
    TransactionalNotificationConformance,
    FinishConformance,
    SuspensionConformance,
    SignalConformance,
    CancellationConformance,
):
    @pytest.fixture
    async def make_storage(
        self, open_storage: Callable[..., Awaitable[PostgresStorage]]
    ) -> Callable[[FakeClock], Awaitable[Storage]]:
        async def make(clock: FakeClock) -> Storage:
            return await open_storage(notify=True)

        return make
