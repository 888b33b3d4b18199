"""The transactional_notifications capability against PostgreSQL with ``notify=true``: the storage NOTIFYs inside
its transactions, and a PostgresNotifier on the same schema hears exactly what was committed.

(tests/postgres runs the whole suite with notify off, where this capability is not declared and so skipped.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from stent.clocks import FakeClock
from stent.ports import Notifier, Storage
from stent.testing.conformance import TransactionalNotificationConformance
from stent_postgres import PostgresNotifier, PostgresStorage


@pytest.fixture
def pg_url(services) -> str:  # type: ignore[no-untyped-def]
    return services.postgres()  # type: ignore[no-any-return]


@pytest.fixture
async def make_storage(pg_url: str) -> AsyncIterator[Callable[[FakeClock], Awaitable[Storage]]]:
    made: list[PostgresStorage] = []

    async def make(clock: FakeClock) -> Storage:
        schema = f"stent_announce_{uuid.uuid4().hex[:12]}"
        storage = PostgresStorage(pg_url, schema=schema, notify=True, max_size=2)
        made.append(storage)
        await storage.init_db()
        return storage

    yield make
    for storage in made:
        await storage.close()
    conn = await asyncpg.connect(pg_url)
    try:
        for storage in made:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{storage.settings.schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def make_storage_listener(pg_url: str) -> AsyncIterator[Callable[[Storage], Awaitable[Notifier]]]:
    listening: list[PostgresNotifier] = []

    async def listen(storage: Storage) -> Notifier:
        assert isinstance(storage, PostgresStorage)
        notifier = PostgresNotifier(pg_url, schema=storage.settings.schema)
        await notifier.connect()
        listening.append(notifier)
        return notifier

    yield listen
    for notifier in listening:
        await notifier.close()


class TestPostgresAnnouncesInItsTransactions(TransactionalNotificationConformance):
    pass
