"""What the notifier conformance classes share: the adapter's fixtures as types, a listener a test can wait on,
bounded waits, and a TCP proxy for staging outages."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import pytest

from stent import StentError
from stent.clocks import SystemClock
from stent.ports import Notification, Notifier
from stent.testing.async_support import ASYNCIO_MARKS
from stent.testing.conformance.capabilities import gate_notifier_test


class NotifierFactory(Protocol):
    """The adapter's ``make_notifier`` fixture: a fresh connected notifier in a namespace of this test."""

    def __call__(self, *, namespace: str = "main") -> Awaitable[Notifier]: ...


BreakConnection = Callable[[Notifier], Awaitable[None]]


def marker(label: str = "note") -> Notification:
    """A notification no other test publishes, to recognise on arrival."""
    tag = uuid.uuid4().hex[:12]
    return Notification(kind="finished", task_id=f"{label}-task-{tag}", execution_id=f"{label}-exec-{tag}")


class Inbox:
    """A listener that keeps what it receives and lets a test wait, bounded, for a condition on it."""

    def __init__(self) -> None:
        self.notes: list[Notification] = []
        self._changed = asyncio.Event()

    def __call__(self, note: Notification) -> None:
        self.notes.append(note)
        self._changed.set()

    async def changed(self, timeout: float) -> None:
        """Return when a notification arrives or ``timeout`` seconds pass, whichever is first."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def until(self, done: Callable[[list[Notification]], bool], timeout: float, what: str) -> None:
        """Wait until ``done(notes)`` holds; fail the test naming ``what`` after ``timeout`` seconds."""

        async def satisfied() -> None:
            while not done(self.notes):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(satisfied(), timeout)
        except TimeoutError:
            pytest.fail(f"{what}: not seen within {timeout:g}s; received {len(self.notes)}: {self.notes[-5:]!r}")

    async def receives(self, notes: Sequence[Notification], timeout: float, what: str = "delivery") -> None:
        """Wait until every one of ``notes`` has arrived (as many times as it is listed)."""
        wanted = Counter(notes)
        await self.until(lambda got: not wanted - Counter(got), timeout, what)


async def publish_until_received(
    publisher: Notifier, note: Notification, inbox: Inbox, timeout: float, what: str
) -> None:
    """Publish ``note`` again and again until ``inbox`` has it: notifications sent while a connection is down
    are lost by design, so after a fault a test retries, as stent's next event would."""
    clock = SystemClock()
    deadline = clock.monotonic() + timeout
    while note not in inbox.notes:
        left = deadline - clock.monotonic()
        if left <= 0:
            pytest.fail(f"{what}: {note!r} was not delivered within {timeout:g}s of publishing it repeatedly")
        with contextlib.suppress(StentError, OSError):  # the two failures core tolerates from publish()
            await asyncio.wait_for(publisher.publish([note]), left)
        await inbox.changed(min(0.2, max(left, 0.01)))


class TcpProxy:
    """A TCP proxy to a server that a test can take down and bring back on the same port, or whose live
    connections it can cut, to stage outages of a shared server without touching it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen on 127.0.0.1 (on the same port as before, after a stop)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the live ones: the server is down as far as clients can tell."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        # Wait for the relays to notice, so no socket outlives the proxy (or the test's event loop).
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def cut(self) -> None:
        """Abort every live connection abruptly (no goodbye), leaving the proxy listening."""
        for writer in list(self._live):
            writer.transport.abort()
        self._live.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._live.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._handlers.discard(handler)
            return
        self._live.add(upstream_writer)
        try:
            await asyncio.gather(self._pump(reader, upstream_writer), self._pump(upstream_reader, writer))
        finally:
            self._handlers.discard(handler)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._live.discard(writer)
            writer.transport.abort()


class NotifierCase:
    """Base of the notifier conformance classes: bounds and fixtures built on the adapter's ones."""

    pytestmark = ASYNCIO_MARKS

    #: Seconds a healthy notifier may take to deliver.
    DELIVERY_TIMEOUT = 5.0
    #: Seconds a notifier may take to reconnect after its connection was cut.
    RECONNECT_TIMEOUT = 20.0
    #: Seconds ``connect()`` may take to fail against a server that is down.
    CONNECT_FAIL_TIMEOUT = 10.0

    @pytest.fixture(autouse=True)
    def _capabilities(self, request: pytest.FixtureRequest) -> None:
        """Skips the test of an optional capability whose fixture the adapter does not define."""
        gate_notifier_test(request)

    @pytest.fixture
    def breaker(self, request: pytest.FixtureRequest) -> BreakConnection:
        """The adapter's ``break_connection`` fixture, or a skip naming the capability."""
        try:
            hook: BreakConnection = request.getfixturevalue("break_connection")
        except pytest.FixtureLookupError:
            pytest.skip(
                "optional capability 'break_connection' not provided: define a break_connection fixture that"
                " cuts a notifier's connections to test reconnection"
            )
        return hook

    @pytest.fixture
    def unreachable(self, request: pytest.FixtureRequest) -> Callable[[], Notifier]:
        """The adapter's ``make_unreachable_notifier`` fixture, or a skip naming the capability."""
        try:
            factory: Callable[[], Notifier] = request.getfixturevalue("make_unreachable_notifier")
        except pytest.FixtureLookupError:
            pytest.skip(
                "optional capability 'make_unreachable_notifier' not provided: define it to return a notifier"
                " configured for a server that is down"
            )
        return factory

    async def pair(self, make_notifier: NotifierFactory) -> tuple[Notifier, Notifier, Inbox]:
        """A publisher, a subscriber on another connection, and the subscriber's inbox."""
        publisher, subscriber = await make_notifier(), await make_notifier()
        inbox = Inbox()
        subscriber.subscribe(inbox)
        return publisher, subscriber, inbox
