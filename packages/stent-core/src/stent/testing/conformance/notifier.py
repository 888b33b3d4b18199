"""Conformance: what every Notifier must do, as test classes a notifier adapter's tests subclass.

A notifier adapter proves itself by running :class:`NotifierConformance`::

    import uuid
    import pytest
    from stent.testing.conformance.notifier import NotifierConformance

    @pytest.fixture
    async def make_notifier():
        run = uuid.uuid4().hex          # one namespace per test: nothing leaks in from other tests
        made = []

        async def make(namespace="main"):
            notifier = MyNotifier(url, prefix=f"test-{run}-{namespace}")
            await notifier.connect()
            made.append(notifier)
            return notifier

        yield make
        for notifier in made:
            await notifier.close()

    class TestMyNotifierConformance(NotifierConformance):
        pass

``make_notifier`` is the one fixture an adapter must provide: ``await make_notifier()`` returns a fresh,
connected notifier with its own connection to the backend.  Notifiers made with the same ``namespace`` in one
test see each other's notifications; notifiers of different namespaces, and of other tests, never do.  The
fixture closes what it made (close must be idempotent: the suite closes some notifiers itself).

Optional capabilities, each an adapter fixture; a test that needs one is skipped, naming it, when it is absent:

``break_connection``
    ``await break_connection(notifier)`` cuts the notifier's connections abruptly (the server kills the client,
    say), so the notifier must notice, reconnect with backoff, and deliver again.
``make_unreachable_notifier``
    ``make_unreachable_notifier()`` returns an unconnected notifier configured for a server that is down.

For outages longer than a cut (the server gone for a while, then back), :class:`TcpProxy` stands between a
notifier and its server and can be taken down and brought back on the same port, without touching a server that
other tests share.

Every notifier here is a hint channel (DESIGN section 4): stent also polls, so the last class of the suite runs a
real worker over the notifier under test and shows that a lost notification delays work but never loses it.
Waits are bounded waits on conditions, never sleeps; the bounds are class attributes an adapter may raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import attrs
import pytest

from stent import DurableFunction, Stent, StentError, durable
from stent.clocks import SystemClock
from stent.memory import MemoryStorage
from stent.model import ClaimRequest, TaskRecord
from stent.ports import Notification, NotificationListener, Notifier


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

    pytestmark = pytest.mark.asyncio

    #: Seconds a healthy notifier may take to deliver.
    DELIVERY_TIMEOUT = 5.0
    #: Seconds a notifier may take to reconnect after its connection was cut.
    RECONNECT_TIMEOUT = 20.0
    #: Seconds ``connect()`` may take to fail against a server that is down.
    CONNECT_FAIL_TIMEOUT = 10.0

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


def odd_notifications(tag: str) -> list[Notification]:
    """Notifications whose fields exercise an adapter's encoding: absent and empty fields, separators, wildcards,
    quotes, newlines, unicode, long ids, and a kind core does not use yet (kinds must pass through unchanged)."""
    odd = f"q.{tag} with spaces/*>'\"\n\tü→🚀%_"
    return [
        Notification(kind="work", queue="default"),
        Notification(kind="work", queue=odd),
        Notification(kind="work", queue=None),
        Notification(kind="finished", task_id=f"task-{tag}", execution_id=f"exec-{tag}"),
        Notification(kind="finished", task_id=f"t-{tag}-" + "x" * 2000, execution_id=None),
        Notification(kind="finished", task_id="", execution_id=""),
        Notification(kind=f"future-kind.{tag}", queue=odd, task_id=odd, execution_id=odd),
    ]


class NotifierDeliveryConformance(NotifierCase):
    async def test_every_field_round_trips(self, make_notifier: NotifierFactory) -> None:
        """Every field of every notification arrives unchanged at a subscriber on another connection."""
        publisher, _, inbox = await self.pair(make_notifier)
        sent = odd_notifications(uuid.uuid4().hex[:8])
        await publisher.publish(sent)
        await inbox.receives(sent, self.DELIVERY_TIMEOUT, "round trip")
        assert set(inbox.notes) == set(sent)

    async def test_a_batch_arrives_whole(self, make_notifier: NotifierFactory) -> None:
        """All notifications of one large publish call are delivered."""
        publisher, _, inbox = await self.pair(make_notifier)
        sent = [marker(f"batch{i}") for i in range(500)]
        await publisher.publish(sent)
        await inbox.receives(sent, self.DELIVERY_TIMEOUT, "a batch of 500")

    async def test_concurrent_publishes_all_arrive(self, make_notifier: NotifierFactory) -> None:
        """Many publish calls in flight at once on one notifier all deliver."""
        publisher, _, inbox = await self.pair(make_notifier)
        batches = [[marker(f"c{i}-{j}") for j in range(5)] for i in range(40)]
        await asyncio.gather(*(publisher.publish(batch) for batch in batches))
        await inbox.receives(
            [n for batch in batches for n in batch], self.DELIVERY_TIMEOUT, "concurrent publishes"
        )

    async def test_empty_publish_is_harmless(self, make_notifier: NotifierFactory) -> None:
        """Publishing no notifications succeeds and the notifier keeps delivering."""
        publisher, _, inbox = await self.pair(make_notifier)
        await publisher.publish([])
        note = marker()
        await publisher.publish([note])
        await inbox.receives([note], self.DELIVERY_TIMEOUT)

    async def test_fan_out_reaches_every_listener_of_every_notifier(self, make_notifier: NotifierFactory) -> None:
        """One publish reaches two listeners on each of three other notifiers (separate connections)."""
        publisher = await make_notifier()
        inboxes = []
        for _ in range(3):
            subscriber = await make_notifier()
            for _ in range(2):
                inbox = Inbox()
                subscriber.subscribe(inbox)
                inboxes.append(inbox)
        sent = [marker("fan"), Notification(kind="work", queue="fan-out")]
        await publisher.publish(sent)
        for number, inbox in enumerate(inboxes):
            await inbox.receives(sent, self.DELIVERY_TIMEOUT, f"fan-out to listener {number}")

    async def test_namespaces_are_isolated(self, make_notifier: NotifierFactory) -> None:
        """Notifiers of another namespace (another deployment's prefix) never see ours, nor we theirs."""
        ours_pub, _, ours = await self.pair(make_notifier)
        theirs_pub = await make_notifier(namespace="other")
        theirs_sub = await make_notifier(namespace="other")
        theirs = Inbox()
        theirs_sub.subscribe(theirs)
        # Each side's later note arrives after any leaked earlier one would have, as a server fans a publish out
        # to every subscriber before it handles the next: so a later arrival proves an earlier absence.
        first, second, third = marker("ours"), marker("theirs"), marker("ours-again")
        await ours_pub.publish([first])
        await ours.receives([first], self.DELIVERY_TIMEOUT)
        await theirs_pub.publish([second])
        await theirs.receives([second], self.DELIVERY_TIMEOUT)
        await ours_pub.publish([third])
        await ours.receives([third], self.DELIVERY_TIMEOUT)
        assert first not in theirs.notes, "a notification crossed into another namespace"
        assert second not in ours.notes, "another namespace's notification reached us"

    async def test_unsubscribe_stops_delivery(self, make_notifier: NotifierFactory) -> None:
        """A listener that unsubscribed gets nothing more, while the notifier's other listeners still do."""
        publisher, subscriber, staying = await self.pair(make_notifier)
        leaving = Inbox()
        unsubscribe = subscriber.subscribe(leaving)
        before = marker("before")
        await publisher.publish([before])
        await leaving.receives([before], self.DELIVERY_TIMEOUT)
        unsubscribe()
        unsubscribe()  # a second call is harmless
        after = marker("after")
        await publisher.publish([after])
        await staying.receives([before, after], self.DELIVERY_TIMEOUT)
        assert leaving.notes == [before]

    async def test_a_raising_listener_does_not_stop_delivery(self, make_notifier: NotifierFactory) -> None:
        """A listener that raises neither breaks the publisher nor stops later deliveries to anyone."""
        publisher, subscriber = await make_notifier(), await make_notifier()
        calls = []

        def broken(note: Notification) -> None:
            calls.append(note)
            raise RuntimeError("listener bug")

        for notifier in (publisher, subscriber):
            notifier.subscribe(broken)
        inbox = Inbox()
        subscriber.subscribe(inbox)
        sent = [marker("one"), marker("two")]
        for note in sent:
            await publisher.publish([note])
        await inbox.receives(sent, self.DELIVERY_TIMEOUT, "delivery beside a raising listener")
        assert calls, "the raising listener was never called"


class NotifierLifecycleConformance(NotifierCase):
    async def test_connect_again_is_a_no_op(self, make_notifier: NotifierFactory) -> None:
        """``connect()`` on a connected notifier (core calls it once per process) keeps it working."""
        publisher, subscriber, inbox = await self.pair(make_notifier)
        await subscriber.connect()
        await publisher.connect()
        note = marker()
        await publisher.publish([note])
        await inbox.receives([note], self.DELIVERY_TIMEOUT)

    async def test_close_is_idempotent_and_publish_after_close_fails_cleanly(
        self, make_notifier: NotifierFactory
    ) -> None:
        """Closing twice is fine; a publish after close raises a StentError or OSError (which core tolerates) or
        does nothing."""
        notifier = await make_notifier()
        await notifier.close()
        await notifier.close()
        with contextlib.suppress(StentError, OSError):
            await notifier.publish([marker()])

    async def test_unreachable_server_fails_connect_quickly(self, unreachable: Callable[[], Notifier]) -> None:
        """``connect()`` to a server that is down raises a StentError within a bounded time, and closing after
        that is fine."""
        notifier = unreachable()
        try:
            with pytest.raises(StentError):
                await asyncio.wait_for(notifier.connect(), self.CONNECT_FAIL_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"connect() to a server that is down did not fail within {self.CONNECT_FAIL_TIMEOUT:g}s")
        finally:
            await notifier.close()
            await notifier.close()


class NotifierReconnectConformance(NotifierCase):
    async def test_subscriber_receives_again_after_its_connection_is_cut(
        self, make_notifier: NotifierFactory, breaker: BreakConnection
    ) -> None:
        """After its connection is cut, a notifier reconnects and its existing listeners receive again."""
        publisher, subscriber, inbox = await self.pair(make_notifier)
        first = marker("first")
        await publisher.publish([first])
        await inbox.receives([first], self.DELIVERY_TIMEOUT)
        await breaker(subscriber)
        await publish_until_received(
            publisher, marker("after-cut"), inbox, self.RECONNECT_TIMEOUT, "delivery to a reconnected subscriber"
        )

    async def test_publisher_publishes_again_after_its_connection_is_cut(
        self, make_notifier: NotifierFactory, breaker: BreakConnection
    ) -> None:
        """After its connection is cut, a notifier's publishes fail cleanly, then reach subscribers again."""
        publisher, _, inbox = await self.pair(make_notifier)
        await breaker(publisher)
        await publish_until_received(
            publisher, marker("from-cut"), inbox, self.RECONNECT_TIMEOUT, "delivery from a reconnected publisher"
        )

    async def test_a_cut_connection_logs_at_most_one_warning(
        self, make_notifier: NotifierFactory, breaker: BreakConnection, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Losing and regaining a connection logs at most one warning, not one per retry or per publish."""
        caplog.set_level(logging.DEBUG)
        publisher, subscriber, inbox = await self.pair(make_notifier)
        back = Inbox()
        publisher.subscribe(back)
        await breaker(subscriber)
        await publish_until_received(publisher, marker("a"), inbox, self.RECONNECT_TIMEOUT, "resubscription")
        await publish_until_received(subscriber, marker("b"), back, self.RECONNECT_TIMEOUT, "republishing")
        # asyncio's own loggers are not the notifier's: its SSL transport warns when a TLS peer vanishes.
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "asyncio"]
        assert len(warnings) <= 1, [r.getMessage() for r in warnings]

    async def test_close_during_reconnect_returns_promptly(
        self, make_notifier: NotifierFactory, breaker: BreakConnection
    ) -> None:
        """Closing a notifier whose connection was just cut does not wait for the reconnection."""
        notifier = await make_notifier()
        await breaker(notifier)
        await asyncio.wait_for(notifier.close(), self.DELIVERY_TIMEOUT)


# -- end to end: a real worker over the notifier under test -------------------------------------------------

_STARTED: dict[str, asyncio.Event] = {}


@attrs.frozen
class Workflows:
    """The durable functions the end-to-end tests run."""

    report_start: DurableFunction[[str], str]
    sum_of_doubles: DurableFunction[[int], int]


@functools.cache
def workflows() -> Workflows:
    """Define (and so register) the end-to-end tests' durable functions on first use, not at import: importing
    the suite must not add functions to every worker of the process."""

    @durable(name="notifier-conformance:report-start")
    async def report_start(token: str) -> str:
        """Tell the test that a worker started this task."""
        event = _STARTED.get(token)
        if event is not None:
            event.set()
        return token

    @durable(name="notifier-conformance:double")
    async def double(value: int) -> int:
        return value * 2

    @durable(name="notifier-conformance:sum-of-doubles")
    async def sum_of_doubles(count: int) -> int:
        """A parent with children, so finishing tasks wakes waiters inside the worker as well as outside."""
        return sum(await asyncio.gather(*(double(i) for i in range(count))))

    return Workflows(report_start, sum_of_doubles)


class ObservedStorage(MemoryStorage):
    """Memory storage that tells a test when a worker's claim found nothing, so the worker is idle."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = asyncio.Event()

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        claimed = await super().claim_tasks(request, now)
        if not claimed:
            self.idle.set()
        return claimed


class LosingNotifier:
    """Wraps a notifier and loses every notification it receives, as a flaky network may."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner
        self.lost = 0
        self._lost = asyncio.Event()

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, notifications: Sequence[Notification]) -> None:
        await self.inner.publish(notifications)

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        def lose(note: Notification) -> None:
            self.lost += 1
            self._lost.set()

        return self.inner.subscribe(lose)

    async def wait_lost(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._lost.wait(), timeout)
        except TimeoutError:
            pytest.fail(f"no notification reached the worker's notifier within {timeout:g}s, so none was lost")


@contextlib.asynccontextmanager
async def serving(executor: Stent, **options: Any) -> AsyncIterator[None]:
    """Run a worker of ``executor`` for the duration of the block, then drain it."""
    workflows()  # registered before the worker starts, since a worker claims the functions known at its start
    lifecycle = executor.create_worker_lifecycle(f"conformance-{uuid.uuid4().hex[:8]}")
    worker = asyncio.ensure_future(executor.serve(lifecycle=lifecycle, **options))
    try:
        await asyncio.wait_for(lifecycle.wait_until_ready(), 10)
        yield
    finally:
        executor.request_worker_drain(lifecycle)
        try:
            await asyncio.wait_for(asyncio.shield(worker), 10)
        except TimeoutError:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            raise


class NotifierPollingFallbackConformance(NotifierCase):
    """Two executors over one storage stand for two processes: a client that dispatches and waits, and a worker;
    each has its own notifier, so only the notifier under test carries wake-ups between them."""

    #: The idle worker's poll interval in the pick-up test; a notification must beat it by far.
    IDLE_POLL_INTERVAL = 5.0
    #: Seconds an idle worker may take to start a task announced by a notification.
    PICKUP_LIMIT = 1.0
    #: Seconds the polling fallback may take to finish the executions of the lost-notification test.
    FALLBACK_TIMEOUT = 15.0

    async def test_idle_worker_picks_up_announced_work_well_before_its_poll(
        self, make_notifier: NotifierFactory
    ) -> None:
        """A worker idling on a 5 s poll interval starts a task dispatched by another process in under 1 s."""
        storage = ObservedStorage()
        await storage.init_db()
        worker = Stent(storage, notification_backend=await make_notifier())
        client = Stent(storage, notification_backend=await make_notifier())
        token = uuid.uuid4().hex
        started = _STARTED[token] = asyncio.Event()
        clock = SystemClock()
        try:
            interval = self.IDLE_POLL_INTERVAL
            async with serving(worker, poll_interval=interval, poll_interval_max=interval):
                await asyncio.wait_for(storage.idle.wait(), self.DELIVERY_TIMEOUT)
                dispatched_at = clock.monotonic()
                await client.dispatch(workflows().report_start, token)
                try:
                    await asyncio.wait_for(started.wait(), interval)
                except TimeoutError:
                    pytest.fail(f"the idle worker did not start the task within its {interval:g}s poll interval")
                latency = clock.monotonic() - dispatched_at
        finally:
            _STARTED.pop(token, None)
            await worker.close()
            await client.close()
        assert latency < self.PICKUP_LIMIT < interval, (
            f"the worker took {latency:.3f}s to start announced work; a notification should wake it in well under"
            f" {self.PICKUP_LIMIT:g}s, its poll interval being {interval:g}s"
        )

    async def test_lost_notifications_delay_but_never_lose_work(self, make_notifier: NotifierFactory) -> None:
        """With every notification lost on arrival, workers and waiters still finish everything by polling."""
        storage = MemoryStorage()
        await storage.init_db()
        worker_side = LosingNotifier(await make_notifier())
        client_side = LosingNotifier(await make_notifier())
        polling: dict[str, Any] = {"poll_min_interval": 0.05, "poll_max_interval": 0.2}
        worker = Stent(storage, notification_backend=worker_side, **polling)
        client = Stent(storage, notification_backend=client_side, **polling)
        try:
            async with serving(worker, poll_interval=0.05, poll_interval_max=0.2):
                ids = [await client.dispatch(workflows().sum_of_doubles, n) for n in (1, 3, 5)]
                results = [await client.wait_for(i, expiry=self.FALLBACK_TIMEOUT) for i in ids]
                # The notifier did carry the announcement; losing it is what this test is about.
                await worker_side.wait_lost(self.DELIVERY_TIMEOUT)
        finally:
            await worker.close()
            await client.close()
        assert results == [0, 6, 20]

    async def test_unreachable_notifier_leaves_stent_polling_with_one_warning(
        self, unreachable: Callable[[], Notifier], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A notifier whose server is down at start costs one warning; dispatch, work and waits still succeed."""
        caplog.set_level(logging.DEBUG)
        storage = MemoryStorage()
        await storage.init_db()
        polling: dict[str, Any] = {"poll_min_interval": 0.05, "poll_max_interval": 0.2}
        worker = Stent(storage, notification_backend=unreachable(), **polling)
        client = Stent(storage, notification_backend=unreachable(), **polling)
        try:
            async with serving(worker, poll_interval=0.05, poll_interval_max=0.2):
                run = workflows().sum_of_doubles
                ids = [await client.dispatch(run, 3), await worker.dispatch(run, 4)]
                results = [await client.wait_for(i, expiry=self.FALLBACK_TIMEOUT) for i in ids]
        finally:
            await worker.close()
            await client.close()
        assert results == [6, 12]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]


class NotifierConformance(
    NotifierDeliveryConformance,
    NotifierLifecycleConformance,
    NotifierReconnectConformance,
    NotifierPollingFallbackConformance,
):
    """Every behaviour of the Notifier port; the optional capabilities' tests skip when not provided."""


__all__ = [
    "BreakConnection",
    "Inbox",
    "LosingNotifier",
    "NotifierConformance",
    "NotifierDeliveryConformance",
    "NotifierFactory",
    "NotifierLifecycleConformance",
    "NotifierPollingFallbackConformance",
    "NotifierReconnectConformance",
    "TcpProxy",
    "marker",
    "publish_until_received",
]
