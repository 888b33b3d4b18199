"""The storage's connection pool: a stack of idle asyncpg connections, opened on demand up to a limit.

asyncpg's own ``Pool`` does more around each operation than stent's short statements need (a proxy object, an
inactivity timer, a reset coroutine and a task for every release), and measured here that cost as much CPU as
the statement itself.  This one does the least that keeps a connection safe to share:

- ``acquire`` takes the most recently used idle connection (its statement cache and the server process are
  warm), opens a new one while fewer than ``max_size`` are open, or waits, first come first served;
- ``release`` is synchronous: a connection that is fine goes straight to the longest waiter or back on the
  stack; one a cancelled operation left inside a transaction is rolled back first, in the background; one that
  is closed (the server went away) is forgotten, and a waiter, if any, gets a new connection instead.

A statement cancelled half-way leaves asyncpg cancelling it on the server, and until that ends nobody knows
whether a transaction is open (a cancelled ``BEGIN`` may have opened one): such a connection is rolled back in
the background too, once the cancellation is over, before it is handed on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

log = logging.getLogger("stent_postgres")


class PoolClosed(asyncpg.InterfaceError):  # type: ignore[misc]  # asyncpg is untyped
    """The pool was closed (mapped to StorageUnavailable, like any connection that is gone)."""


class ConnectionPool:
    def __init__(
        self, connect: Callable[[], Awaitable[asyncpg.Connection]], *, min_size: int, max_size: int
    ) -> None:
        self._connect = connect
        self._min = min_size
        self._max = max_size
        self._idle: list[asyncpg.Connection] = []
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection]] = collections.deque()
        self._open: set[asyncpg.Connection] = set()
        self._opening = 0
        self._background: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return len(self._open) + self._opening

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def fill(self) -> None:
        """Open ``min_size`` connections (all or none: on a failure those opened are closed, and it raises)."""
        tasks = [asyncio.ensure_future(self._new()) for _ in range(self._min)]
        try:
            opened = await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:  # e.g. a timeout around the opening: those opened so far are closed too
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is None:
                    self._forget(task.result())
                    task.result().terminate()
            raise
        failure = next((c for c in opened if isinstance(c, BaseException)), None)
        if failure is not None:
            for conn in opened:
                if isinstance(conn, asyncpg.Connection):
                    self._forget(conn)
                    conn.terminate()
            raise failure
        self._idle.extend(opened)  # every one a connection: there was no failure

    def take(self) -> asyncpg.Connection | None:
        """An idle connection, at once, or ``None``."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._forget(conn)
        return None

    async def acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise PoolClosed("the connection pool is closed")
        conn = self.take()
        if conn is not None:
            return conn
        if self.size < self._max:
            return await self._new()
        waiter: asyncio.Future[asyncpg.Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed one just as this caller was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn.is_closed():
            self._forget(conn)
            if not conn.is_closed():
                self._in_background(_close(conn))
            self._replace_for_waiter()
            return
        if conn.is_in_transaction() or _unsettled(conn):  # a cancelled operation's: end it before anyone else
            self._in_background(self._roll_back(conn))
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def close(self) -> None:
        """Close every connection: idle ones now, those in use when they come back."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(PoolClosed("the connection pool was closed"))
        self._waiters.clear()
        idle, self._idle = self._idle, []
        for conn in idle:
            self._forget(conn)
        await asyncio.gather(*(c.close() for c in idle), return_exceptions=True)
        while self._background:  # rollbacks under way, and the closes they lead to
            await asyncio.gather(*self._background, return_exceptions=True)

    def terminate(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.terminate()
        self._open.clear()
        self._idle.clear()

    # -- internals ---------------------------------------------------------------------------------------------

    async def _new(self) -> asyncpg.Connection:
        self._opening += 1
        try:
            conn = await self._connect()
        finally:
            self._opening -= 1
        if self._closed:
            conn.terminate()
            raise PoolClosed("the connection pool was closed while a connection opened")
        self._open.add(conn)
        return conn

    def _forget(self, conn: asyncpg.Connection) -> None:
        self._open.discard(conn)

    def _replace_for_waiter(self) -> None:
        """A connection went away while someone waits for one: open another for them."""
        if self._closed or not self._waiters or self.size >= self._max:
            return
        self._in_background(self._open_for_waiter())

    async def _open_for_waiter(self) -> None:
        try:
            conn = await self._new()
        except Exception as exc:
            while self._waiters:  # the next in line learns why (it maps to StorageUnavailable) and may retry
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    self._replace_for_waiter()  # and those behind it are not left waiting for nothing
                    return
            return
        self.release(conn)

    async def _roll_back(self, conn: asyncpg.Connection) -> None:
        try:
            await conn.execute("ROLLBACK")  # waits first for a cancelled statement to end
            conn._top_xact = None  # a transaction block whose BEGIN was cancelled stays registered otherwise
        except Exception:
            log.debug("could not roll back a connection returned inside a transaction; closing it", exc_info=True)
            conn.terminate()
        self.release(conn)

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _unsettled(conn: asyncpg.Connection) -> bool:
    """A statement was cancelled and has not ended yet (the transaction status is not known until it has: a
    cancelled BEGIN may still open one), or a transaction block whose BEGIN was cancelled is still registered
    (asyncpg would make the next ``transaction()`` a savepoint).  asyncpg's own pool checks the same."""
    return bool(conn._protocol._is_cancelling()) or conn._top_xact is not None


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=5)
    except Exception:
        conn.terminate()
