"""A Notifier on Redis pub/sub.

Each notifier holds two Redis connections, whatever the number of waiters and workers in the process: one that
publishes (replies switched off, so a batch is one write: :mod:`stent_redis.quiet`) and one subscribed to the
prefix's channel, read by one task that calls the listeners.  Core makes one notifier per process.

A lost connection is retried in the background with exponential backoff, logging one warning per outage; while
it is down, publishes fail fast with StorageUnavailable (core tolerates that and polls) instead of each one
waiting for a connect timeout on the task-completion path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from stent.clocks import SystemClock
from stent.errors import ConfigurationError, StorageUnavailable
from stent.notifier_kit import Backoff, OutageLog, decode_notification, describe_error, encode_notification
from stent.ports import Notification, NotificationListener
from stent_redis.quiet import QuietPublisher
from stent_redis.settings import RedisSettings

log = logging.getLogger("stent_redis")

#: Seconds a publish (or a reply during connect) may take before the connection counts as lost.
COMMAND_TIMEOUT = 5.0


class RedisNotifier:
    """Wake-up hints over Redis pub/sub, on the channel ``<prefix>:notifications``."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        #: The name both connections give themselves (``CLIENT LIST`` shows it), unique per notifier.
        self.client_name = f"stent-notifier:{settings.prefix}:{uuid.uuid4().hex[:8]}"
        self._listeners: list[NotificationListener] = []
        self._publisher: Redis | None = None
        self._quiet: QuietPublisher | None = None
        self._subscriber: Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._publish_lock = asyncio.Lock()
        self._outage = OutageLog("Redis", settings.address, log)
        self._publish_backoff = Backoff()
        self._publish_paused_until = 0.0
        # The real clock, bound at import: a worker may replace asyncio.sleep inside durable functions.
        self._clock = SystemClock()
        self._check_options()

    def __repr__(self) -> str:
        return f"<RedisNotifier {self.settings.address} channel={self.channel!r}>"

    @property
    def channel(self) -> str:
        return self.settings.channel

    @property
    def connected(self) -> bool:
        """Whether both connections are up (false while reconnecting)."""
        return self._reader is not None and self._outage.healthy

    # -- the Notifier port ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open both connections and subscribe; raises StorageUnavailable naming host:port when Redis is not
        reachable within the connect timeout.  Connecting a connected notifier does nothing."""
        async with self._connect_lock:
            if self._reader is not None:
                return
            publisher, subscriber = self._client(retries=1), self._client(retries=0)
            quiet = QuietPublisher(publisher.connection_pool, self._connect_budget)
            try:
                await quiet.open()  # also proves the server answers and takes the credentials
                if not quiet.supported:
                    await asyncio.wait_for(publisher.ping(), self._connect_budget)
                pubsub = await self._subscribe(subscriber)
            except BaseException as exc:
                await quiet.close()
                await _close_quietly(publisher, subscriber)
                if isinstance(exc, Exception):
                    raise self._unavailable(exc) from exc
                raise
            self._publisher, self._quiet, self._subscriber = publisher, quiet, subscriber
            self._reader = asyncio.get_running_loop().create_task(
                self._read(pubsub), name=f"stent-redis-reader {self.channel}"
            )

    async def close(self) -> None:
        """Stop reading and close both connections; closing again does nothing."""
        async with self._connect_lock:
            reader, self._reader = self._reader, None
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            quiet, self._quiet = self._quiet, None
            if quiet is not None:
                await quiet.close()
            clients = [c for c in (self._publisher, self._subscriber) if c is not None]
            self._publisher = self._subscriber = None
            await _close_quietly(*clients)

    async def publish(self, notifications: Sequence[Notification]) -> None:
        """Publish a batch in one round trip; raises StorageUnavailable when Redis cannot take it."""
        if not notifications:
            return
        publisher, quiet = self._publisher, self._quiet
        if publisher is None or quiet is None:
            raise StorageUnavailable(
                f"the Redis notifier for {self.settings.address} is not connected (connect() failed or was not"
                " called, or it was closed)"
            )
        if self._clock.monotonic() < self._publish_paused_until:
            raise StorageUnavailable(
                f"Redis at {self.settings.address} was unreachable a moment ago; not publishing until the next"
                " reconnection attempt"
            )
        payloads = [encode_notification(note) for note in notifications]
        # One publishing connection per notifier: concurrent batches queue here instead of opening more.
        async with self._publish_lock:
            try:
                if quiet.supported:  # one write, no reply (see stent_redis.quiet)
                    await quiet.publish(self.channel, payloads)
                elif len(payloads) == 1:  # a pipeline's bookkeeping costs more than one command
                    await publisher.publish(self.channel, payloads[0])
                else:
                    async with publisher.pipeline(transaction=False) as pipe:
                        for payload in payloads:
                            pipe.publish(self.channel, payload)
                        await pipe.execute()
            except Exception as exc:
                self._publish_paused_until = self._clock.monotonic() + self._publish_backoff.next_delay()
                self._outage.lost("publishing", exc)
                raise StorageUnavailable(
                    f"could not publish to Redis at {self.settings.address}: {describe_error(exc)}"
                ) from exc
        self._publish_backoff.reset()
        self._outage.restored("publishing")

    def publish_soon(self, notifications: Sequence[Notification]) -> bool:
        """Publish without being awaited (one write at the end of this turn of the loop); False when that cannot
        be done now (not connected, paused after a failure, or a server without CLIENT REPLY): then call
        :meth:`publish`."""
        quiet = self._quiet
        if quiet is None or not quiet.supported or self._clock.monotonic() < self._publish_paused_until:
            return False
        commands = quiet.pack(self.channel, [encode_notification(note) for note in notifications])
        # Not connected (yet, or any more): the ordinary path reconnects, and reports what fails.
        return commands is not None and quiet.publish_soon(commands)

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        """Call ``listener`` for every notification on the channel; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- connections ---------------------------------------------------------------------------------------

    @property
    def _connect_budget(self) -> float:
        # TCP connect, then TLS, AUTH and CLIENT SETNAME: room for a couple of round trips past the connect.
        return 2 * self.settings.connect_timeout

    def _client(self, *, retries: int) -> Redis:
        """A client over a pool of at most one connection.  The publisher retries once, at once, so that an idle
        connection the server dropped is replaced without losing the batch; the subscriber never retries on its
        own, as the reader task owns its reconnection."""
        options: dict[str, Any] = {
            "socket_connect_timeout": self.settings.connect_timeout,
            "socket_timeout": max(COMMAND_TIMEOUT, self.settings.connect_timeout),
            "socket_keepalive": True,
            "client_name": self.client_name,
            "retry": Retry(NoBackoff(), retries),
            "max_connections": 1,
        }
        options.update(self.settings.driver_options)
        client: Redis = Redis.from_url(self.settings.driver_url, **options)
        return client

    def _check_options(self) -> None:
        """Fail now, not at connect, on options redis-py does not take (building a connection opens nothing)."""
        try:
            self._client(retries=0).connection_pool.make_connection()  # type: ignore[no-untyped-call]
        except (TypeError, ValueError) as exc:
            reason = str(exc).rstrip(".")
            raise ConfigurationError(
                f"redis-py does not accept the options of the Redis notifier for {self.settings.address}: {reason}."
                " Check the URL's query and the keyword arguments (TLS options such as ssl_ca_certs need a"
                " rediss:// URL)"
            ) from exc

    async def _subscribe(self, client: Redis) -> PubSub:
        """Subscribe to the channel and wait for Redis to confirm, so nothing published afterwards is missed."""
        pubsub = client.pubsub()

        async def confirmed() -> None:
            await pubsub.subscribe(self.channel)
            while True:
                message = await pubsub.get_message(timeout=self._connect_budget)
                if message is not None and message.get("type") == "subscribe":
                    return

        try:
            await asyncio.wait_for(confirmed(), self._connect_budget)
        except BaseException:
            await _discard(pubsub)
            raise
        return pubsub

    async def _read(self, pubsub: PubSub | None) -> None:
        """Deliver what arrives on the channel, for the notifier's lifetime; resubscribe with backoff after a loss."""
        backoff = Backoff()
        try:
            while True:
                if pubsub is None:
                    assert self._subscriber is not None
                    await self._clock.sleep(backoff.next_delay())
                    try:
                        pubsub = await self._subscribe(self._subscriber)
                    except Exception as exc:
                        self._outage.lost("subscription", exc)
                        continue
                    backoff.reset()
                    self._publish_paused_until = 0.0  # Redis is back: the next publish need not wait either
                    self._outage.restored("subscription")
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                except Exception as exc:
                    self._outage.lost("subscription", exc)
                    await _discard(pubsub)
                    pubsub = None
                    continue
                if message is not None and message.get("type") == "message":
                    self._deliver(message["data"])
        finally:
            if pubsub is not None:
                await _discard(pubsub)

    def _deliver(self, data: bytes) -> None:
        note = decode_notification(data, log)
        if note is None:
            return
        for listener in list(self._listeners):
            # One listener's bug must neither starve the others nor end the reader task.
            try:
                listener(note)
            except Exception:
                log.exception("notification listener %r raised; ignored", listener)

    def _unavailable(self, exc: BaseException) -> StorageUnavailable:
        address = self.settings.address
        if isinstance(exc, AuthenticationError) or (
            isinstance(exc, ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS", "NOPERM"))
        ):
            return StorageUnavailable(
                f"Redis at {address} rejected the notifier's credentials ({describe_error(exc)}); check the user and"
                " password in the URL (redis://user:password@host:port)"
            )
        if isinstance(exc, TimeoutError | RedisTimeout):
            return StorageUnavailable(
                f"Redis at {address} did not answer within {self._connect_budget:g}s; check the host and port,"
                " or raise connect_timeout (e.g. ?connect_timeout=5)"
            )
        return StorageUnavailable(
            f"cannot reach Redis at {address} for notifications ({describe_error(exc)}); check that Redis runs there"
            " and that the URL's host, port and scheme (rediss:// for TLS) are right"
        )


async def _discard(pubsub: PubSub) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _close_quietly(*clients: Redis) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.aclose()
