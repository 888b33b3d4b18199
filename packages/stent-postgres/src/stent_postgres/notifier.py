"""PostgresNotifier: wake-up hints over PostgreSQL LISTEN/NOTIFY.

One dedicated connection per notifier (and stent keeps one notifier per process): it LISTENs on the schema's
channel and also carries what this process publishes, so a hundred waiting tasks cost no extra connection.
Publishing coalesces: notifications published while a send is in flight go out together in the next
statement, and a batch is always one round trip.

When the connection is lost the notifier logs one warning and reconnects in the background with exponential
backoff (stent polls meanwhile).  Once back, it tells its subscribers that work may be ready and tasks may have
finished, since whatever was announced during the outage never arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from stent.errors import ConfigurationError, StentError, StorageUnavailable
from stent.notifier_kit import Backoff, OutageLog
from stent.ports import Notification, NotificationListener
from stent_postgres import channel
from stent_postgres.config import parse_settings
from stent_postgres.database import translate

log = logging.getLogger("stent_postgres.notifier")

_PUBLISH = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"
#: What subscribers hear after a reconnect: anything may have happened while nobody listened.
_AFTER_OUTAGE = (Notification(kind="work"), Notification(kind="finished"))


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class PostgresNotifier:
    """A Notifier on LISTEN/NOTIFY, on the channel of a schema (``stent_<schema>``)."""

    def __init__(
        self,
        dsn: str,
        *,
        reconnect_delay: float = 0.1,
        reconnect_max_delay: float = 5.0,
        ping_interval: float = 15.0,
        **options: Any,
    ) -> None:
        """``dsn`` is the ``postgresql://`` URL; its ``schema`` (default ``stent``) picks the channel.

        The storage's options are accepted too (so one URL serves both) and ignored but for ``schema`` and
        ``connect_timeout``.  ``reconnect_delay`` doubles after each failed attempt up to
        ``reconnect_max_delay``; ``ping_interval`` is how often an idle connection is checked (a server that
        vanished without closing the socket is noticed then).
        """
        self.settings = parse_settings(dsn, options)
        self.channel = channel.channel_for(self.settings.schema)
        self.reconnect_delay = _seconds("reconnect_delay", reconnect_delay)
        self.reconnect_max_delay = max(_seconds("reconnect_max_delay", reconnect_max_delay), self.reconnect_delay)
        self.ping_interval = _seconds("ping_interval", ping_interval)
        self._listeners: list[NotificationListener] = []
        self._echo_sources: list[Any] = []
        self._conn: asyncpg.Connection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closed = True
        self._outbox: list[tuple[list[str], asyncio.Future[None]]] = []
        self._flusher: asyncio.Future[None] | None = None
        # One statement at a time on the connection (a publish and a ping must not overlap).
        self._using = asyncio.Lock()
        self._backoff = Backoff(self.reconnect_delay, self.reconnect_max_delay, random.Random())
        self._outage = OutageLog("PostgreSQL", f"{self.settings.host}:{self.settings.port}", log)
        self._loss: BaseException = StorageUnavailable("the server closed the connection")
        #: How many times the connection was (re)opened; tests and diagnostics read it.
        self.connections_opened = 0

    def __repr__(self) -> str:
        return f"PostgresNotifier({self.settings.safe_dsn!r}, channel={self.channel!r})"

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def hears_storage(self, storage: object) -> bool:
        """Whether ``storage`` announces its own changes where this notifier listens: a PostgresStorage with
        ``notify`` on, on the same server, database and channel.  Core can then leave publishing to it."""
        from stent_postgres.storage import PostgresStorage

        if not isinstance(storage, PostgresStorage) or not storage.settings.notify:
            return False
        mine, theirs = self.settings, storage.settings
        same_server = (mine.host, mine.port, mine.database) == (theirs.host, theirs.port, theirs.database)
        return same_server and self.channel == storage._channel

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (``pg_stat_activity.pid``), or ``None`` when down."""
        conn = self._conn
        return None if conn is None else int(conn.get_server_pid())

    # -- the connection --------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the listening connection.  If the server cannot be reached, keep trying in the background and
        raise :class:`~stent.errors.StorageUnavailable` (stent then warns once and polls)."""
        if not self._closed:
            return
        self._closed = False
        self._lost.clear()
        try:
            await self._open()
        except Exception as exc:
            self._lost.set()  # the supervisor starts reconnecting at once
            self._supervisor = asyncio.ensure_future(self._supervise())
            mapped = translate(exc, self.settings)
            if isinstance(mapped, StorageUnavailable):
                raise StorageUnavailable(
                    f"{mapped} (the notifier keeps reconnecting in the background; stent polls meanwhile)"
                ) from exc
            raise mapped from exc
        self._supervisor = asyncio.ensure_future(self._supervise())

    async def _open(self) -> None:
        settings = self.settings
        conn = await asyncpg.connect(
            settings.dsn,
            timeout=settings.connect_timeout,
            statement_cache_size=settings.statement_cache_size,
            # The URL's application_name, when it has one, names the connection in pg_stat_activity.
            server_settings=None
            if "application_name=" in settings.dsn
            else {"application_name": "stent-notifier"},
        )
        try:
            await conn.add_listener(self.channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._on_terminated)
        self._conn = conn
        self.connections_opened += 1

    def _on_terminated(self, conn: asyncpg.Connection) -> None:
        if conn is self._conn and not self._closed:
            self._conn = None
            self._loss = StorageUnavailable("the server closed the connection")
            self._lost.set()

    async def _supervise(self) -> None:
        """Reconnect after a loss; also ping an idle connection, which notices a server gone silent."""
        while not self._closed:
            try:
                await asyncio.wait_for(self._lost.wait(), timeout=self.ping_interval)
            except TimeoutError:
                await self._ping()
                continue
            self._lost.clear()
            if self._closed:
                return
            if self.connections_opened:
                # Never connected at all: stent's runtime has already warned that connect() failed.
                self._outage.lost("LISTEN", self._loss)
            await self._reconnect()

    async def _ping(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            async with self._using:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self.settings.connect_timeout)
        except Exception as exc:
            log.debug("the notifier's connection failed its ping", exc_info=True)
            self._drop(conn, exc)

    async def _reconnect(self) -> None:
        self._backoff.reset()
        while not self._closed:
            try:
                await self._open()
            except Exception as exc:
                log.debug("notifier reconnect to %s:%s failed: %s", self.settings.host, self.settings.port, exc)
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self._outage.restored("LISTEN")
            for note in _AFTER_OUTAGE:
                self._deliver(note)
            return

    async def close(self) -> None:
        self._closed = True
        self._lost.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            # Let an in-flight send finish (it is bounded), so the connection closes cleanly.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(flusher), timeout=self.settings.connect_timeout)
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except Exception:
                conn.terminate()
        for _, future in self._outbox:
            if not future.done():
                future.set_exception(StorageUnavailable("the notifier was closed"))
        self._outbox.clear()

    # -- receiving -------------------------------------------------------------------------------------------

    def skip_echoes_of(self, storage: object) -> None:
        """Deliver nothing that ``storage``'s own connections sent: the process acted on its own changes when it
        made them (core calls this for the storage this notifier hears, when that storage is a PostgresStorage)."""
        from stent_postgres.storage import PostgresStorage

        if isinstance(storage, PostgresStorage) and storage not in self._echo_sources:
            self._echo_sources.append(storage)

    def _on_notify(self, conn: object, pid: int, channel_name: str, payload: str) -> None:
        if any(pid in source.backend_pids for source in self._echo_sources):
            return  # sent by this process's own storage
        note = channel.decode(payload)
        if note is not None:
            self._deliver(note)

    def _deliver(self, note: Notification) -> None:
        for listener in list(self._listeners):
            try:
                listener(note)
            except Exception:
                log.exception("a notification listener failed")

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- publishing ------------------------------------------------------------------------------------------

    async def publish(self, notifications: Sequence[Notification]) -> None:
        """Send ``notifications``; concurrent calls share one statement.  Raises StorageUnavailable when down."""
        payloads = channel.encode_all(notifications)
        if not payloads:
            return
        if not self.connected:
            raise StorageUnavailable(
                f"the PostgreSQL notifier is not connected to {self.settings.host}:{self.settings.port}"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((payloads, future))
        # The send runs in a task of its own: a publisher that is cancelled stops waiting, but never cancels a
        # statement half-way through, which would leave the connection unusable.
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        await future

    async def _flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            payloads = list(dict.fromkeys(p for entry, _ in batch for p in entry))
            conn = self._conn
            try:
                if conn is None:
                    raise StorageUnavailable("the PostgreSQL notifier lost its connection")
                async with self._using:
                    await asyncio.wait_for(
                        conn.execute(_PUBLISH, self.channel, payloads), timeout=self.settings.connect_timeout
                    )
            except Exception as exc:
                if conn is not None and not _connection_survives(exc):
                    self._drop(conn, exc)
                mapped = translate(exc, self.settings)
                if not isinstance(mapped, StentError | OSError):
                    mapped = StorageUnavailable(f"the PostgreSQL notifier could not publish: {exc!r}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(mapped)
                        future.exception()  # retrieved here: a caller that was cancelled never sees it
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _drop(self, conn: asyncpg.Connection, reason: BaseException) -> None:
        """Give up a connection in an unknown state; the supervisor reconnects (warning once)."""
        conn.terminate()
        if self._conn is conn:
            self._conn = None
            self._loss = reason
            self._lost.set()


def _connection_survives(exc: BaseException) -> bool:
    """Whether the connection is still usable after ``exc``: a server-side error in a statement leaves it so;
    a lost connection, a timeout or a client-side protocol error does not."""
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.PostgresConnectionError)
