"""The connection pool, transactions with retry of conflicts, and the mapping of driver errors to stent's.

One pool per storage instance, opened on first use.  Statements are schema-qualified text that never changes
for an instance, so asyncpg's per-connection statement cache prepares each one once per connection.

Errors: deadlocks and serialization failures are transient conflicts between transactions that PostgreSQL has
already rolled back, so the whole operation runs again (a few times, with a short jittered pause); anything that
means the server is unreachable, restarting or overloaded becomes :class:`~stent.errors.StorageUnavailable`,
which core retries with backoff; wrong credentials, a missing database, missing privileges and a schema that
was never created become :class:`~stent.errors.ConfigurationError` saying what to do.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from stent.errors import ConfigurationError, StentError, StorageUnavailable
from stent_postgres.config import PostgresSettings
from stent_postgres.pool import ConnectionPool

log = logging.getLogger("stent_postgres")

T = TypeVar("T")

#: Conflicts PostgreSQL resolved by rolling one transaction back; running the operation again is safe.
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, asyncpg.InvalidCachedStatementError)
MAX_ATTEMPTS = 6

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,  # 08xxx, and the connection dropping under a query
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.QueryCanceledError,  # 57014: statement timeout or cancelled by an operator
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a standby after a failover
    asyncpg.InsufficientResourcesError,  # 53xxx: disk full, out of memory
    OSError,
    asyncio.TimeoutError,
)


def unavailable(settings: PostgresSettings, exc: BaseException) -> StorageUnavailable:
    detail = str(exc) or type(exc).__name__
    return StorageUnavailable(
        f"PostgreSQL at {settings.host}:{settings.port} (database {settings.database!r}) is unavailable:"
        f" {detail}. Check that the server runs and accepts connections there"
    )


def translate(exc: BaseException, settings: PostgresSettings) -> BaseException:
    """The stent error ``exc`` means, or ``exc`` itself when it is a bug rather than a condition."""
    if isinstance(exc, StentError):
        return exc
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return ConfigurationError(
            f"PostgreSQL at {settings.host}:{settings.port} refused the credentials of user {settings.user!r}"
            f" ({exc}); check the user name and password in the URL (or PGUSER/PGPASSWORD, ~/.pgpass)"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConfigurationError(
            f"PostgreSQL at {settings.host}:{settings.port} has no database {settings.database!r} ({exc});"
            f" create it (CREATE DATABASE {settings.database}) or fix the database name in the URL"
        )
    if isinstance(
        exc, asyncpg.UndefinedTableError | asyncpg.UndefinedFunctionError | asyncpg.InvalidSchemaNameError
    ):
        return ConfigurationError(
            f"the stent schema {settings.schema!r} is missing or incomplete at {settings.where} ({exc}); call"
            " init_db() (or run `stent init`) once before use"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return ConfigurationError(
            f"PostgreSQL user {settings.user!r} lacks a privilege stent needs on the schema {settings.schema!r}"
            f" ({exc}); grant it USAGE and CREATE on the schema and SELECT, INSERT, UPDATE, DELETE on its tables"
            " (or let stent's init_db() create the schema as that user)"
        )
    if isinstance(exc, RETRYABLE):
        return StorageUnavailable(f"PostgreSQL kept reporting conflicts at {settings.where} ({exc}); retry later")
    if isinstance(exc, _UNAVAILABLE):
        return unavailable(settings, exc)
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return unavailable(settings, exc)
    if isinstance(exc, asyncpg.InternalClientError):  # a connection left in a state the client cannot use
        return unavailable(settings, exc)
    if isinstance(exc, asyncpg.DataError):
        return ConfigurationError(f"PostgreSQL refused a value stent sent ({exc})")
    return exc


class Database:
    """A lazily opened asyncpg pool and the transactions run on it."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._pool: ConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._random = random.Random()
        #: The server processes of the pool's open connections (what a NOTIFY they send is signed with).
        self.backend_pids: set[int] = set()

    async def pool(self) -> ConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await self._open()
        return self._pool

    async def _open(self) -> ConnectionPool:
        settings = self.settings
        pool = ConnectionPool(self._connect, min_size=settings.min_size, max_size=settings.max_size)
        try:
            # The whole opening is bounded: the pool opens min_size connections, each with its own timeout.
            await asyncio.wait_for(pool.fill(), timeout=settings.connect_timeout * 2)
            return pool
        except TimeoutError as exc:
            raise StorageUnavailable(
                f"could not connect to PostgreSQL at {settings.host}:{settings.port} within"
                f" {settings.connect_timeout:g} s (connect_timeout); check the host, port and firewall"
            ) from exc
        except Exception as exc:
            mapped = translate(exc, settings)
            if mapped is exc:
                raise
            raise mapped from exc

    async def _connect(self) -> asyncpg.Connection:
        settings = self.settings
        server_settings = {"jit": "off"}  # JIT compiling costs more than these short statements ever take
        if "application_name=" not in settings.dsn:
            server_settings["application_name"] = "stent"
        conn = await asyncpg.connect(
            settings.dsn,
            timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            statement_cache_size=settings.statement_cache_size,
            server_settings=server_settings,
        )
        self._track(conn)
        return conn

    def _track(self, conn: asyncpg.Connection) -> None:
        """Note a new connection's server process, and forget it when the connection ends."""
        pid = int(conn.get_server_pid())
        self.backend_pids.add(pid)
        conn.add_termination_listener(lambda _: self.backend_pids.discard(pid))

    async def run(self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, transaction: bool = True) -> T:
        """``work(conn)`` in one transaction (or alone, for a single statement), run again after a conflict."""
        attempt = 0
        while True:
            attempt += 1
            try:
                pool = self._pool or await self.pool()
                conn = pool.take() or await pool.acquire()
                try:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction():
                        return await work(conn)
                finally:
                    pool.release(conn)
            except RETRYABLE as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise translate(exc, self.settings) from exc
                log.debug("PostgreSQL conflict (%s); running the operation again", exc)
                # A jittered pause so that the two sides of a deadlock do not collide again at once.
                await asyncio.sleep(self._random.uniform(0.001, 0.005 * 2**attempt))
            except StentError:
                raise
            except Exception as exc:
                mapped = translate(exc, self.settings)
                if mapped is exc:
                    raise
                raise mapped from exc

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement on its own (PostgreSQL makes it atomic)."""
        return await self.run(lambda conn: conn.fetch(sql, *args), transaction=False)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.run(lambda conn: conn.fetchrow(sql, *args), transaction=False)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.run(lambda conn: conn.fetchval(sql, *args), transaction=False)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (TimeoutError, Exception):
                log.debug("closing the PostgreSQL pool did not finish cleanly; terminating it", exc_info=True)
                pool.terminate()
