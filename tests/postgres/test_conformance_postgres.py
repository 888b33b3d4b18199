"""The storage conformance suite against PostgreSQL: a schema per storage, peers on pools of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from stent.clocks import FakeClock
from stent.ports import Storage
from stent.testing.conformance import StorageConformance
from stent_postgres import PostgresStorage


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


class TestPostgresConformance(StorageConformance):
    pass
