"""One SQLite connection, its transactions, URL parsing, and the mapping of driver errors to stent's.

A storage instance owns one aiosqlite connection (which runs on its own thread).  An :class:`asyncio.Lock`
serializes everything done on it, so two coroutines' transactions never interleave on the shared connection;
other processes and other connections are kept apart by SQLite's own locking (``BEGIN IMMEDIATE`` takes the
write lock before the first read, so a read-then-write can never be overtaken by another writer).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiosqlite

from stent.errors import ConfigurationError, StorageCorrupt, StorageUnavailable

log = logging.getLogger("stent_sqlite")

MEMORY = ":memory:"

# Primary SQLite result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _PROTOCOL, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 15, 26
_RETRYABLE = frozenset({_BUSY, _LOCKED, _IOERR, _FULL, _CANTOPEN, _PROTOCOL})


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """The file path and query options of ``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``sqlite://:memory:``.

    The path is taken literally (no percent-decoding), as ``Stent.backends.SQLiteBackend`` builds it; a path
    holding ``?`` must be given to :class:`~stent_sqlite.SQLiteStorage` directly.
    """
    prefix = "sqlite://"
    if not isinstance(url, str) or not url.lower().startswith(prefix):
        raise ConfigurationError(
            f"{url!r} is not a SQLite URL; use sqlite:///relative/path.db, sqlite:////absolute/path.db"
            " or sqlite://:memory:"
        )
    rest, _, query = url[len(prefix) :].partition("?")
    if rest in (MEMORY, "/" + MEMORY):
        path = MEMORY
    elif rest.startswith("/"):
        path = rest[1:]
    else:
        raise ConfigurationError(
            f"{url!r} names a host; SQLite URLs have none: use sqlite:///relative/path.db (three slashes) or"
            " sqlite:////absolute/path.db (four)"
        )
    if not path:
        raise ConfigurationError(f"{url!r} names no file; use sqlite:///relative/path.db or sqlite:////abs.db")
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"URL option {pair!r} in {url!r} has no value; write {pair}=VALUE")
        options[name] = value
    return path, options


def translate(exc: sqlite3.Error, path: str) -> BaseException:
    """The stent error a driver error means, or ``exc`` itself when it is a bug rather than a condition."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    message = str(exc)
    if code in (_NOTADB, _CORRUPT) or "file is not a database" in message:
        return StorageCorrupt(
            f"{path!r} is not a usable SQLite database ({message}); point stent at another file or restore"
            " this one from a backup"
        )
    if "no such table: stent_" in message:
        return ConfigurationError(
            f"the stent schema is missing from {path!r}; call init_db() (or run `stent init`) once before use"
        )
    if code == _READONLY:
        return ConfigurationError(
            f"cannot write to {path!r} ({message}); the file and its directory must be writable (WAL mode"
            " keeps -wal and -shm files beside it)"
        )
    if code in _RETRYABLE or "database is locked" in message:
        return StorageUnavailable(f"SQLite database {path!r} is unavailable ({message}); retry later")
    return exc


@contextmanager
def translated(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        mapped = translate(exc, path)
        if mapped is exc:
            raise
        raise mapped from exc


class Database:
    """The connection of one storage instance, opened on first use and shared under a lock."""

    def __init__(self, path: str, *, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    def _check_location(self) -> None:
        if self.path == MEMORY:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise ConfigurationError(
                f"cannot open the SQLite database {self.path!r}: its directory {directory!r} does not exist;"
                f" create it first (mkdir -p {directory!r})"
            )
        if os.path.isdir(self.path):
            raise ConfigurationError(f"{self.path!r} is a directory; give the path of a database file inside it")

    async def _open(self) -> aiosqlite.Connection:
        if self._conn is not None:
            return self._conn
        self._check_location()
        # isolation_level=None: the driver never opens transactions by itself; we issue BEGIN IMMEDIATE.
        pending = aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        # aiosqlite runs the connection on a thread of its own; a daemon thread lets a program that never
        # closed its backend still exit when asyncio.run() returns (committed transactions are already on disk).
        thread = getattr(pending, "_thread", None)  # aiosqlite keeps its worker thread here (not yet started)
        if thread is not None and not thread.is_alive():
            thread.daemon = True
        conn = await pending
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL loses at most the last commits on power loss, never consistency.
            await conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _discard(self) -> None:
        """Drop a connection left in an unknown state; the next operation opens a fresh one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                log.debug("closing a discarded connection to %s failed", self.path, exc_info=True)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, held exclusively, with driver errors translated; for single statements."""
        async with self._lock:
            with translated(self.path):
                yield await self._open()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` for writes (the write lock up front), deferred for reads."""
        async with self._lock:
            with translated(self.path):
                conn = await self._open()
                try:
                    # BEGIN is inside the try: a cancellation while it waits for the lock must still roll back
                    # the transaction it opens in the driver's thread a moment later.
                    await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    # aiosqlite runs calls in submission order, so even when this task was cancelled while a
                    # statement was in flight, the rollback lands after it and before anyone's next BEGIN.
                    try:
                        await conn.rollback()
                    except Exception:
                        await self._discard()
                    raise

    async def fetchall(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Run one statement on its own (SQLite makes it atomic) and return its rows."""
        async with self.connection() as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def close(self) -> None:
        async with self._lock:
            await self._discard()


def check_busy_timeout(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigurationError(f"busy_timeout must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"busy_timeout must be a positive number of seconds, got {value!r}")
    return float(value)
