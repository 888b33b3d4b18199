"""One SQLite connection on a thread of its own, its transactions, URL parsing, and the mapping of driver errors.

A storage instance owns one daemon thread, which owns one stdlib :mod:`sqlite3` connection (opened on first
use).  Each port operation is one plain function run on that thread with :meth:`Database.run`: the
``BEGIN IMMEDIATE``, every statement, the ``COMMIT`` (or the rollback) and the translation of driver errors all
happen there, and the event loop hears back once.  A hop between the loop and the thread costs far more than a
short statement, so a transaction pays for one hop, not one per statement.

The thread runs operations one at a time, in the order they were submitted, so two coroutines' transactions
never interleave on the shared connection; other processes and other connections are kept apart by SQLite's own
locking (``BEGIN IMMEDIATE`` takes the write lock before the first read, so a read-then-write can never be
overtaken by another writer).

A caller cancelled while its operation is queued or running stops waiting at once, but the operation still runs
to its end on the thread, committing or rolling back as a whole: as when a reply is lost on the network, the
change may or may not have been made, and never half made.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from queue import SimpleQueue
from typing import Any, TypeVar

from stent.errors import ConfigurationError, StorageCorrupt, StorageUnavailable

log = logging.getLogger("stent_sqlite")

T = TypeVar("T")

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


class _Thread:
    """A daemon thread running jobs one at a time, in order, and the connection only those jobs touch.

    Daemon, so that a program that never closed its storage still exits when ``asyncio.run()`` returns
    (committed transactions are already on disk).
    """

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.conn: sqlite3.Connection | None = None
        self.jobs: SimpleQueue[Callable[[], None] | None] = SimpleQueue()
        threading.Thread(target=self._serve, name=f"stent-sqlite {path}", daemon=True).start()

    def _serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()
        self.discard()

    def connection(self) -> sqlite3.Connection:
        """The connection, opened on first use."""
        if self.conn is None:
            self.conn = self._open()
        return self.conn

    def _open(self) -> sqlite3.Connection:
        _check_location(self.path)
        # isolation_level=None: the driver never opens transactions by itself; Database.run issues BEGIN.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL loses at most the last commits on power loss, never consistency.
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def discard(self) -> None:
        """Drop the connection (closing, or left in an unknown state); the next job opens a fresh one."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing a discarded connection to %s failed", self.path, exc_info=True)


def _check_location(path: str) -> None:
    if path == MEMORY:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigurationError(
            f"cannot open the SQLite database {path!r}: its directory {directory!r} does not exist;"
            f" create it first (mkdir -p {directory!r})"
        )
    if os.path.isdir(path):
        raise ConfigurationError(f"{path!r} is a directory; give the path of a database file inside it")


class Database:
    """The connection of one storage instance, on its own thread, opened on first use."""

    def __init__(self, path: str, *, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._thread: _Thread | None = None
        self._starting = threading.Lock()  # the storage may be used from more than one event loop's thread

    async def run(
        self, work: Callable[[sqlite3.Connection], T], *, write: bool = True, transaction: bool = True
    ) -> T:
        """``work(conn)`` run on the database thread, in one transaction; its result, with one hop each way.

        Writes take the write lock up front (``BEGIN IMMEDIATE``); ``write=False`` opens a deferred (read)
        transaction; ``transaction=False`` runs ``work`` on its own, for a single statement, which SQLite makes
        atomic.  Any exception rolls the transaction back; driver errors become stent's (:func:`translate`).
        """
        with self._starting:
            if self._thread is None:
                self._thread = _Thread(self.path, self.busy_timeout)
            thread = self._thread
        return await _call(thread, lambda: self._transact(thread, work, write, transaction))

    def _transact(
        self, thread: _Thread, work: Callable[[sqlite3.Connection], T], write: bool, transaction: bool
    ) -> T:
        try:
            conn = thread.connection()
            if not transaction:
                return work(conn)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except Exception:
                        thread.discard()
                raise
            return result
        except sqlite3.Error as exc:
            mapped = translate(exc, self.path)
            if mapped is exc:
                raise
            raise mapped from exc

    async def fetchall(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Run one statement on its own (SQLite makes it atomic) and return its rows."""
        return await self.run(lambda conn: conn.execute(sql, params).fetchall(), transaction=False)

    async def close(self) -> None:
        """Close the connection once the operations already submitted have run; a later call opens a new one."""
        with self._starting:
            thread, self._thread = self._thread, None
        if thread is not None:
            try:
                await _call(thread, thread.discard)
            finally:
                thread.jobs.put(None)  # the thread ends after the operations queued before it


async def _call(thread: _Thread, job: Callable[[], T]) -> T:
    """``job()`` run on ``thread``; its result or exception delivered to the calling loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        deliver: Callable[[], None]
        try:
            deliver = functools.partial(_set_result, future, job())
        except BaseException as exc:
            deliver = functools.partial(_set_exception, future, exc)
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop was closed: nobody is waiting for this reply
            log.debug("an operation on %s finished after its event loop closed", thread.path)

    thread.jobs.put(run)
    return await future


def _set_result(future: asyncio.Future[T], result: T) -> None:
    if not future.cancelled():  # a cancelled caller stopped waiting; the job ran all the same
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(error)


def check_busy_timeout(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigurationError(f"busy_timeout must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"busy_timeout must be a positive number of seconds, got {value!r}")
    return float(value)
