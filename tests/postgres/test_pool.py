"""The storage's connection pool (``stent_postgres.pool.ConnectionPool``) against the local server: what a user of
the storage notices.  Opening up to the limits, waiting first come first served, rolling back a connection
returned inside a transaction, replacing connections the server ended, cancellation of waiters and of
statements, closing, and a failed opening.

Nothing here sleeps to let something happen: the tests wait on tasks and on connections' termination listeners,
with ``SAFETY`` as a timeout that only a broken pool ever reaches (the one real-time timeout, 0.1 s, is how a
statement gets cancelled half-way).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pytest

from stent.errors import StorageUnavailable
from stent_postgres import PostgresStorage
from stent_postgres.pool import ConnectionPool, PoolClosed

Opener = Callable[..., Awaitable[PostgresStorage]]
Connect = Callable[[], Awaitable[asyncpg.Connection]]
T = TypeVar("T")

#: Seconds: a safety net for waits that end on an event (or a cancelled statement) within milliseconds.
SAFETY = 5.0


class Connector:
    """The pool's connect function: ``asyncpg.connect`` to the test server under an application_name of its own
    (so the server's view of exactly these connections can be counted), keeping every connection it made."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.name = f"stent_pool_{uuid.uuid4().hex[:12]}"
        self.made: list[asyncpg.Connection] = []
        #: Raised by the next calls, one each, instead of connecting (a server refusing for a while).
        self.failures: list[BaseException] = []

    async def __call__(self) -> asyncpg.Connection:
        if self.failures:
            raise self.failures.pop(0)
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": self.name})
        self.made.append(conn)
        return conn

    def terminate_all(self) -> None:
        for conn in self.made:
            conn.terminate()


@pytest.fixture
async def connector(pg_url: str) -> AsyncIterator[Connector]:
    connector = Connector(pg_url)
    yield connector
    connector.terminate_all()


@pytest.fixture
async def new_pool(connector: Connector) -> AsyncIterator[Callable[..., ConnectionPool]]:
    """``new_pool(min_size=0, max_size=1, connect=connector)``; every pool made is terminated afterwards."""
    pools: list[ConnectionPool] = []

    def make(*, min_size: int = 0, max_size: int = 1, connect: Connect | None = None) -> ConnectionPool:
        pools.append(ConnectionPool(connect or connector, min_size=min_size, max_size=max_size))
        return pools[-1]

    yield make
    for pool in pools:
        pool.terminate()


@pytest.fixture
async def table(admin: asyncpg.Connection, schemas: Callable[[], str], connector: Connector) -> AsyncIterator[str]:
    """A one-column table in a fresh schema (dropped by ``schemas``, after this test's connections are gone)."""
    schema = schemas()
    await admin.execute(f'CREATE SCHEMA "{schema}"; CREATE TABLE "{schema}".rows (n int)')
    yield f'"{schema}".rows'
    connector.terminate_all()  # none may still hold a lock on the table when the schema is dropped


async def on_server(admin: asyncpg.Connection, connector: Connector) -> int:
    """How many of the connector's connections the server has."""
    count = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", connector.name
    )
    return int(count)


async def closed(conn: asyncpg.Connection) -> None:
    """Return once ``conn`` is closed (by the server, the pool or the test)."""
    if conn.is_closed():
        return
    ended = asyncio.Event()
    conn.add_termination_listener(lambda _: ended.set())
    await asyncio.wait_for(ended.wait(), SAFETY)
    assert conn.is_closed()


async def kill(admin: asyncpg.Connection, conn: asyncpg.Connection) -> None:
    """End ``conn``'s server process, as an operator or a restarting server would, and wait until it notices."""
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    await closed(conn)


async def blocked(*tasks: asyncio.Future[Any]) -> None:
    """Let ``tasks`` run as far as they can without I/O, then check that each is still waiting."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not any(task.done() for task in tasks)


def acquiring(pool: ConnectionPool) -> asyncio.Task[asyncpg.Connection]:
    return asyncio.ensure_future(pool.acquire())


async def within(awaitable: Awaitable[T]) -> T:
    """``await awaitable``, failing the test if a broken pool leaves it waiting."""
    return await asyncio.wait_for(awaitable, SAFETY)


# -- opening and waiting ---------------------------------------------------------------------------------------


async def test_fill_opens_min_size_connections_and_acquire_opens_more_up_to_max_size(
    new_pool: Callable[..., ConnectionPool], connector: Connector, admin: asyncpg.Connection
) -> None:
    pool = new_pool(min_size=2, max_size=3)
    await pool.fill()
    assert (pool.size, pool.idle) == (2, 2)
    assert await on_server(admin, connector) == 2

    first = await within(pool.acquire())
    second = await within(pool.acquire())
    assert first is not second
    assert len(connector.made) == 2  # the idle ones: nothing new opened
    third = await within(pool.acquire())
    assert len(connector.made) == 3
    assert (pool.size, pool.idle) == (3, 0)
    assert await on_server(admin, connector) == 3

    waiter = acquiring(pool)
    await blocked(waiter)  # at max_size: waits instead of opening a fourth
    assert pool.size == 3
    pool.release(second)
    assert await within(waiter) is second
    assert len(connector.made) == 3

    for conn in (first, second):
        pool.release(conn)
    assert await within(pool.acquire()) is second  # the most recently used idle connection
    for conn in (second, third):
        pool.release(conn)
    assert (pool.size, pool.idle) == (3, 3)


async def test_waiters_are_served_first_come_first_served(
    new_pool: Callable[..., ConnectionPool], connector: Connector
) -> None:
    pool = new_pool(max_size=2)
    a = await within(pool.acquire())
    b = await within(pool.acquire())
    waiters = [acquiring(pool) for _ in range(3)]
    await blocked(*waiters)

    pool.release(b)
    assert await within(waiters[0]) is b
    await blocked(*waiters[1:])
    pool.release(a)
    assert await within(waiters[1]) is a
    await blocked(waiters[2])
    pool.release(b)
    assert await within(waiters[2]) is b
    assert len(connector.made) == 2
    assert (pool.size, pool.idle) == (2, 0)


# -- transactions and cancelled statements ---------------------------------------------------------------------


async def test_a_connection_released_inside_a_transaction_is_rolled_back_before_anyone_else_gets_it(
    new_pool: Callable[..., ConnectionPool], admin: asyncpg.Connection, table: str
) -> None:
    pool = new_pool(max_size=1)
    conn = await within(pool.acquire())
    await conn.execute("BEGIN")
    await conn.execute(f"INSERT INTO {table} VALUES (1)")
    waiter = acquiring(pool)
    await blocked(waiter)
    pool.release(conn)
    got = await within(waiter)  # a waiter gets it only once rolled back
    assert got is conn
    assert not got.is_in_transaction()
    assert await got.fetchval(f"SELECT count(*) FROM {table}") == 0

    await got.execute("BEGIN")
    await got.execute(f"INSERT INTO {table} VALUES (2)")
    pool.release(got)
    again = await within(pool.acquire())  # so does the next caller when nobody waited
    assert again is conn
    assert not again.is_in_transaction()
    await again.execute(f"INSERT INTO {table} VALUES (3)")  # on its own: committed at once
    pool.release(again)
    assert await admin.fetch(f"SELECT n FROM {table}") == [(3,)]


async def test_a_begin_cancelled_in_flight_does_not_swallow_the_next_users_writes(
    new_pool: Callable[..., ConnectionPool], admin: asyncpg.Connection, table: str
) -> None:
    """Cancelled after BEGIN went out but before its answer: the client does not know yet that a transaction is
    open when the connection comes back, so the pool must wait for the cancellation before handing it on."""
    pool = new_pool(max_size=1)
    conn = await within(pool.acquire())
    begin = asyncio.ensure_future(conn.execute("BEGIN"))
    await asyncio.sleep(0)  # BEGIN is sent
    begin.cancel()
    with pytest.raises(asyncio.CancelledError):
        await begin
    pool.release(conn)

    nxt = await within(pool.acquire())
    assert nxt is conn
    await nxt.execute(f"INSERT INTO {table} VALUES (1)")
    assert not nxt.is_in_transaction()
    pool.release(nxt)
    assert await admin.fetch(f"SELECT n FROM {table}") == [(1,)]


async def test_a_storage_call_cancelled_while_its_transaction_begins_leaves_the_connection_fit_for_later_calls(
    open_storage: Opener, admin: asyncpg.Connection, table: str
) -> None:
    """Cancelled while its BEGIN is in flight (a caller's timeout, a worker stopping): the next call on its own is
    committed, and the next transaction is not taken for a nested one (asyncpg keeps the cancelled block)."""
    storage = await open_storage(init=False, max_size=1)
    db = storage._db
    assert await within(db.fetchval("SELECT 1")) == 1  # the pool is open, its one connection idle
    call = asyncio.ensure_future(db.run(lambda conn: conn.execute(f"INSERT INTO {table} VALUES (0)")))
    await asyncio.sleep(0)  # BEGIN is sent
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    await within(db.run(lambda conn: conn.execute(f"INSERT INTO {table} VALUES (1)"), transaction=False))
    await within(db.run(lambda conn: conn.execute(f"INSERT INTO {table} VALUES (2)")))
    assert sorted(await admin.fetch(f"SELECT n FROM {table}")) == [(1,), (2,)]


async def test_a_statement_cancelled_half_way_leaves_its_connection_fit_for_the_next_user(
    new_pool: Callable[..., ConnectionPool], admin: asyncpg.Connection, table: str
) -> None:
    pool = new_pool(max_size=1)
    conn = await within(pool.acquire())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(5)"), 0.1)
    pool.release(conn)
    nxt = await within(pool.acquire())
    assert nxt is conn
    assert await within(nxt.fetchval("SELECT 41 + 1")) == 42  # not 5 s: pg_sleep was cancelled

    # The same inside a transaction: the write before the cancelled statement is rolled back.
    await nxt.execute("BEGIN")
    await nxt.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(nxt.fetchval("SELECT pg_sleep(5)"), 0.1)
    pool.release(nxt)
    last = await within(pool.acquire())
    assert last is conn
    assert not last.is_in_transaction()
    assert await within(last.fetchval(f"SELECT count(*) FROM {table}")) == 0
    pool.release(last)
    assert await admin.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_a_storage_statement_cancelled_half_way_does_not_disturb_the_next_call(open_storage: Opener) -> None:
    storage = await open_storage(init=False, max_size=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(storage._db.fetchval("SELECT pg_sleep(5)"), 0.1)
    assert await within(storage._db.fetchval("SELECT 41 + 1")) == 42


# -- connections the server ended -------------------------------------------------------------------------------


async def test_a_connection_the_server_ended_while_idle_is_not_handed_out_again(
    new_pool: Callable[..., ConnectionPool], connector: Connector, admin: asyncpg.Connection
) -> None:
    pool = new_pool(min_size=1, max_size=1)
    await pool.fill()
    conn = await within(pool.acquire())
    pool.release(conn)
    await kill(admin, conn)

    fresh = await within(pool.acquire())
    assert fresh is not conn
    assert not fresh.is_closed()
    assert await fresh.fetchval("SELECT pg_backend_pid()") != conn.get_server_pid()
    assert len(connector.made) == 2
    assert pool.size == 1
    pool.release(fresh)
    assert (pool.size, pool.idle) == (1, 1)
    assert await on_server(admin, connector) == 1


async def test_a_waiter_gets_a_new_connection_when_the_one_in_use_turns_out_closed_on_release(
    new_pool: Callable[..., ConnectionPool], connector: Connector, admin: asyncpg.Connection
) -> None:
    pool = new_pool(max_size=1)
    held = await within(pool.acquire())
    waiter = acquiring(pool)
    await blocked(waiter)
    await kill(admin, held)
    pool.release(held)

    got = await within(waiter)
    assert got is not held
    assert await got.fetchval("SELECT 1") == 1
    assert len(connector.made) == 2
    assert pool.size == 1


async def test_waiters_are_not_stranded_when_opening_a_replacement_fails(
    new_pool: Callable[..., ConnectionPool], connector: Connector, admin: asyncpg.Connection
) -> None:
    """The server refuses the replacement once: the first waiter learns why; the next still gets a connection."""
    pool = new_pool(max_size=1)
    held = await within(pool.acquire())
    waiters = [acquiring(pool) for _ in range(2)]
    await blocked(*waiters)
    await kill(admin, held)
    connector.failures.append(ConnectionRefusedError("refused"))
    pool.release(held)

    with pytest.raises(ConnectionRefusedError):
        await within(waiters[0])
    got = await within(waiters[1])
    assert await got.fetchval("SELECT 1") == 1
    assert pool.size == 1


async def test_a_storage_call_after_the_server_ended_its_idle_connection_gets_a_fresh_one(
    open_storage: Opener, admin: asyncpg.Connection
) -> None:
    storage = await open_storage(init=False, max_size=1)
    db = storage._db
    old_pid = await within(db.fetchval("SELECT pg_backend_pid()"))
    pool = await db.pool()
    conn = await within(pool.acquire())  # the idle connection, to watch it end
    pool.release(conn)
    await kill(admin, conn)

    new_pid = await within(db.fetchval("SELECT pg_backend_pid()"))
    assert new_pid != old_pid
    assert set(storage.backend_pids) == {new_pid}


# -- cancelled waiters ------------------------------------------------------------------------------------------


async def test_a_caller_cancelled_while_waiting_does_not_lose_a_connection(
    new_pool: Callable[..., ConnectionPool], connector: Connector
) -> None:
    pool = new_pool(max_size=1)
    held = await within(pool.acquire())
    waiter = acquiring(pool)
    await blocked(waiter)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (pool.size, pool.idle) == (1, 0)

    pool.release(held)
    assert (pool.size, pool.idle) == (1, 1)
    assert await within(pool.acquire()) is held
    assert len(connector.made) == 1


async def test_a_waiter_cancelled_just_as_it_is_handed_a_connection_passes_it_on(
    new_pool: Callable[..., ConnectionPool], connector: Connector
) -> None:
    pool = new_pool(max_size=1)
    held = await within(pool.acquire())
    first, second = acquiring(pool), acquiring(pool)
    await blocked(first, second)
    pool.release(held)  # handed to the first waiter ...
    first.cancel()  # ... which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await within(second) is held
    pool.release(held)

    third = acquiring(pool)
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third
    assert (pool.size, pool.idle) == (1, 1)
    assert await within(pool.acquire()) is held
    assert len(connector.made) == 1


# -- closing ----------------------------------------------------------------------------------------------------


async def test_close_fails_waiting_acquirers_and_every_later_acquire(
    new_pool: Callable[..., ConnectionPool],
) -> None:
    pool = new_pool(max_size=1)
    held = await within(pool.acquire())
    waiters = [acquiring(pool) for _ in range(2)]
    await blocked(*waiters)
    await within(pool.close())
    for waiter in waiters:
        with pytest.raises(PoolClosed):
            await within(waiter)
    with pytest.raises(PoolClosed):
        await within(pool.acquire())

    assert not held.is_closed()  # in use: closed when it comes back
    pool.release(held)
    await closed(held)
    assert (pool.size, pool.idle) == (0, 0)


async def test_close_closes_idle_connections(
    new_pool: Callable[..., ConnectionPool], connector: Connector
) -> None:
    pool = new_pool(min_size=2, max_size=3)
    await pool.fill()
    pool.release(await within(pool.acquire()))
    await within(pool.close())
    assert len(connector.made) == 2
    assert all(conn.is_closed() for conn in connector.made)
    assert (pool.size, pool.idle) == (0, 0)


async def test_close_also_closes_a_connection_returned_inside_a_transaction(
    new_pool: Callable[..., ConnectionPool], table: str
) -> None:
    pool = new_pool(max_size=1)
    conn = await within(pool.acquire())
    await conn.execute("BEGIN")
    await conn.execute(f"INSERT INTO {table} VALUES (1)")
    pool.release(conn)  # rolling back in the background when the pool closes
    await within(pool.close())
    assert conn.is_closed()
    assert (pool.size, pool.idle) == (0, 0)


async def test_through_the_storage_a_closed_pool_is_storage_unavailable(open_storage: Opener) -> None:
    storage = await open_storage(init=False, max_size=1)
    db = storage._db
    pool = await db.pool()
    held = await within(pool.acquire())
    call = asyncio.ensure_future(db.fetchval("SELECT 1"))  # waits for the one connection
    await blocked(call)
    await within(storage.close())
    with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1:5432.*closed"):
        await within(call)
    pool.release(held)
    await closed(held)

    other = await open_storage(init=False, max_size=1)
    other_pool = await other._db.pool()
    await within(other_pool.close())  # the storage still holds this pool: its next call meets it closed
    with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1:5432.*closed"):
        await within(other._db.fetchval("SELECT 1"))


# -- a failed opening -------------------------------------------------------------------------------------------


async def test_fill_that_cannot_connect_raises_and_leaves_nothing_open(
    new_pool: Callable[..., ConnectionPool], closed_port_url: str
) -> None:
    pool = new_pool(min_size=2, max_size=2, connect=lambda: asyncpg.connect(closed_port_url, timeout=SAFETY))
    with pytest.raises(OSError):
        await pool.fill()
    assert (pool.size, pool.idle) == (0, 0)


async def test_fill_failing_part_way_closes_the_connections_it_opened(
    new_pool: Callable[..., ConnectionPool], connector: Connector
) -> None:
    calls = 0

    async def connect() -> asyncpg.Connection:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionRefusedError("the third is refused")
        return await connector()

    pool = new_pool(min_size=3, max_size=3, connect=connect)
    with pytest.raises(ConnectionRefusedError, match="third"):
        await pool.fill()
    assert len(connector.made) == 2
    assert all(conn.is_closed() for conn in connector.made)
    assert (pool.size, pool.idle) == (0, 0)


async def test_fill_cancelled_part_way_closes_the_connections_it_opened(
    new_pool: Callable[..., ConnectionPool], connector: Connector
) -> None:
    """A caller's timeout around the opening (Database bounds it so) must not leave connections behind."""
    calls = 0
    one_open = asyncio.Event()

    async def connect() -> asyncpg.Connection:
        nonlocal calls
        calls += 1
        if calls == 1:
            conn = await connector()
            one_open.set()
            return conn
        await asyncio.Event().wait()  # a server that never answers
        raise AssertionError("unreachable")

    pool = new_pool(min_size=2, max_size=2, connect=connect)
    filling = asyncio.ensure_future(pool.fill())
    await within(one_open.wait())
    filling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await filling
    assert len(connector.made) == 1
    assert connector.made[0].is_closed()
    assert (pool.size, pool.idle) == (0, 0)
