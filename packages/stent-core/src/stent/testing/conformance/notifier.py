"""Conformance: what every Notifier must do, as test classes a notifier adapter's tests subclass.

A notifier adapter proves itself by running :class:`NotifierConformance`::

    import uuid
    import pytest
    from stent.testing.conformance.notifier import NotifierConformance

    @pytest.fixture
    async def make_notifier():
        run = uuid.uuid4().hex          # one namespace per test: nothing leaks in from other tests
        made = []

        async def make(*, namespace="main"):
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

The suite lives in three modules: this one (delivery, lifecycle, reconnection, and the classes to subclass),
:mod:`~stent.testing.conformance.notifier_fallback` (the end-to-end tests with a worker) and
:mod:`~stent.testing.conformance.notifier_support` (fixture types, :class:`Inbox`, :class:`TcpProxy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

import pytest

from stent import StentError
from stent.ports import Notification, Notifier
from stent.testing.conformance.capabilities import requires_capability
from stent.testing.conformance.notifier_fallback import LosingNotifier, NotifierPollingFallbackConformance
from stent.testing.conformance.notifier_support import (
    BreakConnection,
    Inbox,
    NotifierCase,
    NotifierFactory,
    TcpProxy,
    marker,
    publish_until_received,
)


def odd_notifications(tag: str) -> list[Notification]:
    """Notifications whose fields exercise an adapter's encoding: absent and empty fields, separators, wildcards,
    quotes, newlines, unicode, long ids, an origin, and a kind core does not use yet (kinds must pass through
    unchanged)."""
    odd = f"q.{tag} with spaces/*>'\"\n\tü→🚀%_"
    return [
        Notification(kind="work", queue="default"),
        Notification(kind="work", queue=odd),
        Notification(kind="work", queue=None),
        Notification(kind="finished", task_id=f"task-{tag}", execution_id=f"exec-{tag}"),
        Notification(kind="finished", task_id=f"t-{tag}-" + "x" * 2000, execution_id=None),
        Notification(kind="finished", task_id="", execution_id=""),
        Notification(kind=f"future-kind.{tag}", queue=odd, task_id=odd, execution_id=odd),
        Notification(kind="work", queue="default", origin=f"origin-{tag}"),
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

    @requires_capability("make_unreachable_notifier")
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
    @requires_capability("break_connection")
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

    @requires_capability("break_connection")
    async def test_publisher_publishes_again_after_its_connection_is_cut(
        self, make_notifier: NotifierFactory, breaker: BreakConnection
    ) -> None:
        """After its connection is cut, a notifier's publishes fail cleanly, then reach subscribers again."""
        publisher, _, inbox = await self.pair(make_notifier)
        await breaker(publisher)
        await publish_until_received(
            publisher, marker("from-cut"), inbox, self.RECONNECT_TIMEOUT, "delivery from a reconnected publisher"
        )

    @requires_capability("break_connection")
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

    @requires_capability("break_connection")
    async def test_close_during_reconnect_returns_promptly(
        self, make_notifier: NotifierFactory, breaker: BreakConnection
    ) -> None:
        """Closing a notifier whose connection was just cut does not wait for the reconnection."""
        notifier = await make_notifier()
        await breaker(notifier)
        await asyncio.wait_for(notifier.close(), self.DELIVERY_TIMEOUT)


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
