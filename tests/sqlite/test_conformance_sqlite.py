"""The storage conformance suite against SQLite: a file per test, peers on their own connections to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from stent.clocks import FakeClock
from stent.ports import Storage
from stent.testing.conformance import StorageConformance
from stent_sqlite import SQLiteStorage


@pytest.fixture
async def make_storage(tmp_path: Path) -> AsyncIterator[Callable[[FakeClock], Awaitable[Storage]]]:
    made: list[SQLiteStorage] = []

    async def make(clock: FakeClock) -> Storage:
        storage = SQLiteStorage(tmp_path / f"stent-{len(made)}.db")
        await storage.init_db()
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


@pytest.fixture
async def make_peer_storage() -> AsyncIterator[Callable[[Storage], Awaitable[Storage]]]:
    peers: list[SQLiteStorage] = []

    async def peer(storage: Storage) -> Storage:
        assert isinstance(storage, SQLiteStorage)
        # A generous busy timeout: twenty connections queue for one write lock in the concurrency tests.
        other = SQLiteStorage(storage.path, busy_timeout=60)
        peers.append(other)
        return other

    yield peer
    for other in peers:
        await other.close()


class TestSQLiteConformance(StorageConformance):
    pass
