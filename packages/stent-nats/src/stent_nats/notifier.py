"""A Notifier on core NATS subjects.

Each notifier holds one NATS connection, whatever the number of waiters and workers in the process, with one
subscription to ``<prefix>.*``; core makes one notifier per process.  A batch is published as buffered
messages that nats-py's writer sends at once; publishing never waits for the server (a hint is worth a
round trip to nobody: one lost with a dying connection costs a poll's delay); nats-py's close() sends what is
still buffered.

nats-py's own reconnection is switched off: it retries at a fixed pace and, at start-up, never gives up on a
server that is down.  Instead the first connect fails fast, and a supervisor task replaces a lost connection
with a new one, with exponential backoff and one warning per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import logging
import os
import ssl
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import AuthorizationError, NoServersError
from nats.protocol.command import pub_cmd

from stent.clocks import SystemClock
from stent.errors import ConfigurationError, StorageUnavailable
from stent.notifier_kit import Backoff, OutageLog, decode_notification, describe_error, encode_notification
from stent.ports import Notification, NotificationListener
from stent_nats.settings import NatsSettings

log = logging.getLogger("stent_nats")

#: Seconds a flush may take before the connection counts as lost.
COMMAND_TIMEOUT = 5.0
#: Seconds between the client's pings, and how many may go unanswered: a dead peer is noticed in about a minute.
PING_INTERVAL, MAX_OUTSTANDING_PINGS = 20, 3
#: connect() options the notifier decides, so callers may not pass them.
_OWN_OPTIONS = frozenset(
    {"servers", "allow_reconnect", "max_reconnect_attempts", "reconnect_time_wait", "error_cb", "closed_cb", "disconnected_cb", "reconnected_cb", "connect_timeout",
     "name", "tls", "tls_hostname", "tls_handshake_first", "user_credentials", "nkeys_seed"}
)  # fmt: skip


class NatsNotifier:
    """Wake-up hints over NATS, on the subjects ``<prefix>.work``, ``<prefix>.finished`` and ``<prefix>.other``."""

    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self._listeners: list[NotificationListener] = []
        # Whether the server leaves out this connection's own messages (see _options), which publish() then
        # delivers to this notifier's listeners itself.
        self._no_echo = bool(settings.driver_options.get("no_echo", True))
        self._soon: list[bytes] = []
        self._client: Client | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        # Set when a client closes, so a flush in flight stops waiting for a reply that cannot come.
        self._closed: weakref.WeakKeyDictionary[Client, asyncio.Event] = weakref.WeakKeyDictionary()
        self._connect_lock = asyncio.Lock()
        self._outage = OutageLog("NATS", settings.address, log)
        # The real clock, bound at import: a worker may replace asyncio.sleep inside durable functions.
        self._clock = SystemClock()
        self._check_options()

    def __repr__(self) -> str:
        return f"<NatsNotifier {self.settings.address} subjects={self.settings.subjects!r}>"

    @property
    def client(self) -> Client | None:
        """The current nats-py client, for diagnostics (``client.connected_url``); the notifier owns it."""
        return self._client

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    # -- the Notifier port ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and subscribe; raises StorageUnavailable naming host:port when NATS is not reachable within
        the connect timeout.  Connecting a connected notifier does nothing."""
        async with self._connect_lock:
            if self._supervisor is not None:
                return
            self._closing = False
            # Made here, not in __init__: an event belongs to the loop that first waits on it, and a notifier
            # may be connected again, after close(), under another loop.
            self._lost = asyncio.Event()
            self._client = await self._open()
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"stent-nats-supervisor {self.settings.subjects}"
            )

    async def close(self) -> None:
        """Stop reconnecting and close the connection; closing again does nothing."""
        async with self._connect_lock:
            self._closing = True
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is not None:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
            client, self._client = self._client, None
            if client is not None:
                await _close_quietly(client)

    async def publish(self, notifications: Sequence[Notification]) -> None:
        """Publish a batch (buffered, sent without waiting for the server); raises StorageUnavailable when the
        connection is down."""
        if not notifications:
            return
        client = self._client
        if client is None or not client.is_connected:
            raise StorageUnavailable(
                f"the NATS notifier for {self.settings.address} is not connected (reconnecting, connect() failed or"
                " was not called, or it was closed)"
            )
        try:
            for note in notifications:
                await client.publish(self.settings.subject(note.kind), encode_notification(note))
        except Exception as exc:
            raise StorageUnavailable(
                f"could not publish to NATS at {self.settings.address}: {describe_error(exc)}"
            ) from exc
        if self._no_echo:  # what the server no longer echoes, this notifier's listeners get here
            for note in notifications:
                self._deliver(note)

    def publish_soon(self, notifications: Sequence[Notification]) -> bool:
        """Publish without being awaited: the messages go into the connection's write buffer at the end of this turn
        of the loop, in one write, beside nats-py's own (a whole protocol message each).  False when not connected:
        then call :meth:`publish`."""
        client = self._client
        transport = getattr(client, "_transport", None)
        if client is None or not client.is_connected or not callable(getattr(transport, "writelines", None)):
            return False
        commands = [
            pub_cmd(self.settings.subject(note.kind), "", encode_notification(note)) for note in notifications
        ]
        if not self._soon:
            asyncio.get_running_loop().call_soon(self._write_soon, transport)
        self._soon.extend(commands)
        if self._no_echo:
            for note in notifications:
                self._deliver(note)
        return True

    def _write_soon(self, transport: Any) -> None:
        commands, self._soon = self._soon, []
        with contextlib.suppress(Exception):  # a connection going down: lost hints, which polling covers
            transport.writelines(commands)

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        """Call ``listener`` for every notification of the prefix; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- the connection ------------------------------------------------------------------------------------

    @property
    def _connect_budget(self) -> float:
        # TCP connect, INFO, TLS and CONNECT/PING each wait up to connect_timeout in nats-py.
        return 2 * self.settings.connect_timeout

    def _check_options(self) -> None:
        """Fail now, not at connect, on keyword options nats-py's connect() does not take or stent decides."""
        taken = set(inspect.signature(Client.connect).parameters) - {"self"}
        for name in self.settings.driver_options:
            if name in _OWN_OPTIONS:
                raise ConfigurationError(f"the NATS notifier sets {name!r} itself; remove it from the options")
            if name not in taken:
                known = ", ".join(sorted(taken - _OWN_OPTIONS))
                raise ConfigurationError(
                    f"nats-py's connect() takes no option {name!r}; check the spelling (it takes {known})"
                )
        if self.settings.wants_tls:
            self._tls_context()  # a missing CA or key file is a configuration error, found now
        for option, path in (("creds", self.settings.creds), ("nkey", self.settings.nkey)):
            if path is None:
                continue
            if not os.path.isfile(path):
                raise ConfigurationError(f"the {option} file {path!r} of the NATS notifier does not exist")
            if importlib.util.find_spec("nkeys") is None:
                raise ConfigurationError(
                    f"{option}= needs nats-py's nkeys support, which is not installed: pip install 'stent-nats[nkeys]'"
                )

    def _tls_context(self) -> ssl.SSLContext:
        settings = self.settings
        try:
            context = ssl.create_default_context(cafile=settings.tls_ca)
            if settings.tls_cert is not None:
                context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"the TLS files of the NATS notifier for {settings.address} cannot be read: {describe_error(exc)}; check"
                " tls_ca, tls_cert and tls_key"
            ) from exc
        return context

    def _options(self) -> dict[str, Any]:
        settings = self.settings
        options: dict[str, Any] = {
            "name": settings.name or f"stent-notifier {settings.prefix}",
            "connect_timeout": settings.connect_timeout,
            "ping_interval": PING_INTERVAL,
            "max_outstanding_pings": MAX_OUTSTANDING_PINGS,
            # The server does not send this connection's own messages back: publish() hands them to this
            # notifier's listeners directly, without the round trip and the parsing.
            "no_echo": True,
        }
        if settings.wants_tls:
            options["tls"] = self._tls_context()
            options["tls_hostname"] = settings.tls_hostname
            options["tls_handshake_first"] = settings.tls_handshake_first
        if settings.creds is not None:
            options["user_credentials"] = settings.creds
        if settings.nkey is not None:
            options["nkeys_seed"] = settings.nkey
        options.update(settings.driver_options)
        return options

    async def _open(self) -> Client:
        """A connected client subscribed to the prefix, once the server has confirmed the subscription."""
        client = Client()

        async def on_error(error: Exception) -> None:
            log.debug("NATS client error from %s: %s", self.settings.address, describe_error(error))

        closed = self._closed[client] = asyncio.Event()

        async def on_closed() -> None:
            closed.set()
            # Fires for every close; only the loss of the current connection, not ours, calls for a new one.
            if client is self._client and not self._closing:
                self._lost.set()

        try:
            await asyncio.wait_for(
                client.connect(
                    servers=[self.settings.server_url],
                    # No reconnection by nats-py, and a connect that gives up after its second quick attempt
                    # (nats-py cannot be told to make only one): the supervisor owns retrying.
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    error_cb=on_error,
                    closed_cb=on_closed,
                    **self._options(),
                ),
                self._connect_budget,
            )
            if self.settings.wants_tls and _in_plain_text(client):
                raise _PlainTextRefused
            await client.subscribe(self.settings.subjects, cb=self._on_message)
            await self._flush(client, self._connect_budget)
        except Exception as exc:
            # Briefly: after a failed TLS handshake, nats-py's close() waits for a socket that never reports closed.
            await _close_quietly(client, timeout=0.25)
            # "No servers available" hides why: the last attempt's error says it.
            cause = client.last_error if isinstance(exc, NoServersError) and client.last_error else exc
            raise self._unavailable(cause) from exc
        except BaseException:
            await _close_quietly(client, timeout=0.25)
            raise
        return client

    async def _flush(self, client: Client, timeout: float) -> None:
        """Wait until the server has everything sent so far, or fail as soon as the client closes."""
        flushed = asyncio.ensure_future(client.flush(timeout=timeout))  # type: ignore[arg-type]  # annotated int
        closed = asyncio.ensure_future(self._closed[client].wait())
        try:
            await asyncio.wait((flushed, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not flushed.done():
                flushed.cancel()
                await asyncio.gather(flushed, return_exceptions=True)
        if not flushed.done() or flushed.cancelled():
            raise ConnectionError("the connection closed before the server confirmed the messages")
        flushed.result()

    async def _supervise(self) -> None:
        """For the notifier's lifetime: when the connection is lost, open a new one, with backoff."""
        while True:
            await self._lost.wait()
            self._lost.clear()
            lost, self._client = self._client, None
            error = (lost.last_error if lost is not None else None) or ConnectionError("connection closed")
            self._outage.lost("connection", error)
            backoff = Backoff()
            while True:
                await self._clock.sleep(backoff.next_delay())
                try:
                    client = await self._open()
                except StorageUnavailable as exc:
                    self._outage.lost("connection", exc.__cause__ or exc)
                    continue
                self._client = client
                self._outage.restored("connection")
                break

    async def _on_message(self, message: Msg) -> None:
        note = decode_notification(message.data, log)
        if note is not None:
            self._deliver(note)

    def _deliver(self, note: Notification) -> None:
        for listener in list(self._listeners):
            # One listener's bug must neither starve the others nor end the subscription.
            try:
                listener(note)
            except Exception:
                log.exception("notification listener %r raised; ignored", listener)

    def _unavailable(self, exc: BaseException) -> StorageUnavailable:
        address = self.settings.address
        if isinstance(exc, _PlainTextRefused):
            return StorageUnavailable(
                f"NATS at {address} does not offer TLS, but the notifier's URL asks for it; the connection was"
                " closed rather than used in plain text. Enable TLS on the server, or drop the tls options"
            )
        if isinstance(exc, AuthorizationError) or "authorization" in str(exc).lower():
            return StorageUnavailable(
                f"NATS at {address} rejected the notifier's credentials ({describe_error(exc)}); check the user and"
                " password or token in the URL, or the creds / nkey file"
            )
        if isinstance(exc, TimeoutError):
            return StorageUnavailable(
                f"NATS at {address} did not answer within {self._connect_budget:g}s; check the host and port,"
                " or raise connect_timeout (e.g. ?connect_timeout=5)"
            )
        return StorageUnavailable(
            f"cannot reach NATS at {address} for notifications ({describe_error(exc)}); check that NATS runs there,"
            " the URL's host and port, and ?tls=true if the server requires TLS"
        )


class _PlainTextRefused(Exception):
    """The URL asked for TLS and the server did not require it, so nats-py stayed in plain text."""


def _in_plain_text(client: Client) -> bool:
    """Whether the connection is unencrypted.  nats-py upgrades to TLS only when the server requires it, and has
    no public way to tell, so this looks at its transport; when that cannot be read it assumes TLS is on."""
    writer = getattr(getattr(client, "_transport", None), "_io_writer", None)
    get_extra_info = getattr(writer, "get_extra_info", None)
    return callable(get_extra_info) and get_extra_info("ssl_object") is None


async def _close_quietly(client: Client, timeout: float = COMMAND_TIMEOUT) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), timeout)
