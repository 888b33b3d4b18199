"""Fixtures for the PostgreSQL tests: the local server (through the shared ``services`` helper), and a fresh
schema per test, dropped afterwards, so tests never see each other's rows and never touch other tables."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from stent_postgres import PostgresStorage


@pytest.fixture
def pg_url(services) -> str:  # type: ignore[no-untyped-def]
    """DSN of the local PostgreSQL; skips (or fails under STENT_REQUIRE_SERVICES=1) when it is down."""
    return services.postgres()


def new_schema_name() -> str:
    return f"stent_test_{uuid.uuid4().hex[:16]}"


async def drop_schemas(url: str, names: list[str]) -> None:
    if not names:
        return
    conn = await asyncpg.connect(url)
    try:
        for name in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def schemas(pg_url: str) -> AsyncIterator[Callable[[], str]]:
    """``schemas()`` names a fresh schema; every one named is dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(new_schema_name())
        return made[-1]

    yield make
    await drop_schemas(pg_url, made)


#: Initialised schemas free for the next test of this process (pytest-xdist runs one process per worker), so
#: most tests skip the DDL of a fresh schema and only empty one (much cheaper).  Dropped when the session ends.
_SPARE_SCHEMAS: list[str] = []
_ALL_SPARES: list[str] = []

_TABLES = ("tasks", "executions", "limited_functions", "signals", "dead_letters", "cache", "leaders", "workers")


async def reset_schema(url: str, name: str) -> None:
    """Empty a stent schema and restart its counters, as if it had just been created."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "; ".join(f'DELETE FROM "{name}".{table}' for table in _TABLES)
            + f"; SELECT setval('\"{name}\".fencing_tokens', 1, false)"
            + f'; ALTER TABLE "{name}".tasks ALTER COLUMN seq RESTART'
            + f'; ALTER TABLE "{name}".signals ALTER COLUMN signal_id RESTART'
        )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def spare_schemas(services) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    yield _SPARE_SCHEMAS
    if _ALL_SPARES:
        asyncio.run(drop_schemas(services.postgres(), _ALL_SPARES))


@pytest.fixture
async def open_storage(
    pg_url: str, schemas: Callable[[], str], spare_schemas: list[str]
) -> AsyncIterator[Callable[..., Awaitable[PostgresStorage]]]:
    """``await open_storage(schema=None, init=True, **options)``: a storage on a fresh (or the given) schema.

    A fresh initialised schema comes emptied from the spares when there is one; it goes back after the test.
    """
    opened: list[PostgresStorage] = []
    borrowed: list[str] = []

    async def make(schema: str | None = None, *, init: bool = True, **options: object) -> PostgresStorage:
        options.setdefault("max_size", 4)
        if schema is None and init and spare_schemas:
            schema = spare_schemas.pop()
            borrowed.append(schema)
            await reset_schema(pg_url, schema)
        elif schema is None and init:
            schema = new_schema_name()
            borrowed.append(schema)
            _ALL_SPARES.append(schema)
        storage = PostgresStorage(pg_url, schema=schema or schemas(), **options)
        opened.append(storage)
        if init:
            await storage.init_db()
        return storage

    yield make
    for storage in opened:
        await storage.close()
    spare_schemas.extend(borrowed)


@pytest.fixture
async def pg(open_storage: Callable[..., Awaitable[PostgresStorage]]) -> PostgresStorage:
    """An initialised storage on a schema of its own."""
    return await open_storage()


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the server, to inspect and kill the connections under test."""
    conn = await asyncpg.connect(pg_url)
    yield conn
    await conn.close()


@pytest.fixture
def closed_port_url() -> str:
    """A PostgreSQL URL of a port nothing listens on (port 1 on this host refuses at once)."""
    return "postgresql://postgres@127.0.0.1:1/test"
