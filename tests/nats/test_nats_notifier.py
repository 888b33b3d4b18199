"""The NATS notifier on the local server: subjects and wire format, connection count, failures and outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from local_servers import LogWatch, closed_port, silent_server
from stent import Stent, StorageUnavailable, durable
from stent.clocks import SystemClock
from stent.memory import MemoryStorage
from stent.ports import Notification
from stent.testing.conformance.notifier import Inbox, NotifierFactory, TcpProxy, marker, publish_until_received
from stent_nats import NatsNotifier

clock = SystemClock()


async def raw_client(nats_url: str) -> Client:
    client = Client()
    await client.connect(servers=[nats_url], allow_reconnect=False)
    return client


async def test_each_kind_has_a_subject_and_each_message_is_one_json_object(nats_url: str, prefix: str) -> None:
    """With ?prefix=P, work goes to P.work, finished to P.finished, other kinds to P.other, as compact JSON."""
    raw = await raw_client(nats_url)
    got: list[tuple[str, Any]] = []
    arrived = asyncio.Event()

    async def collect(message: Msg) -> None:
        got.append((message.subject, json.loads(message.data)))
        if len(got) == 3:
            arrived.set()

    await raw.subscribe(f"{prefix}.>", cb=collect)
    await raw.flush()
    notifier = Stent.notifications.NatsBackend(f"{nats_url}?prefix={prefix}")
    await notifier.connect()
    try:
        await notifier.publish(
            [
                Notification(kind="work", queue="emails"),
                Notification(kind="finished", task_id="t", execution_id="e"),
                Notification(kind="later", queue="q"),
            ]
        )
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        await notifier.close()
        await raw.close()
    assert got == [
        (f"{prefix}.work", {"kind": "work", "queue": "emails"}),
        (f"{prefix}.finished", {"kind": "finished", "task_id": "t", "execution_id": "e"}),
        (f"{prefix}.other", {"kind": "later", "queue": "q"}),
    ]


async def test_foreign_messages_on_the_subjects_are_ignored(make_notifier: NotifierFactory, nats_url: str) -> None:
    """Messages on the prefix's subjects that are not stent notifications are skipped, and delivery goes on."""
    notifier = await make_notifier()
    assert isinstance(notifier, NatsNotifier)
    inbox = Inbox()
    notifier.subscribe(inbox)
    subject = notifier.settings.subject("work")
    raw = await raw_client(nats_url)
    try:
        for junk in (b"not json", b"[]", b'{"kind": 5}', b'{"queue": "q"}', b"\xff", b""):
            await raw.publish(subject, junk)
        good = marker()
        body = {"kind": good.kind, "task_id": good.task_id, "execution_id": good.execution_id, "future_field": 1}
        await raw.publish(subject, json.dumps(body).encode())
        await raw.flush()
        await inbox.receives([good], 5)
    finally:
        await raw.close()
    assert inbox.notes == [good]


@contextlib.asynccontextmanager
async def publisher_and_other(
    url: str, **options: Any
) -> AsyncIterator[tuple[NatsNotifier, Inbox, NatsNotifier, Inbox]]:
    """Two connected notifiers on ``url``'s prefix, each with an inbox: the one under test (made with
    ``options``) and another process's."""
    publisher, other = Stent.notifications.NatsBackend(url, **options), Stent.notifications.from_url(url)
    mine, theirs = Inbox(), Inbox()
    await publisher.connect()
    await other.connect()
    try:
        publisher.subscribe(mine)
        other.subscribe(theirs)
        yield publisher, mine, other, theirs
    finally:
        await publisher.close()
        await other.close()


@pytest.mark.parametrize("options", [{}, {"no_echo": False}])
async def test_the_publishing_notifier_hears_its_own_messages_once(
    nats_url: str, prefix: str, options: dict[str, Any]
) -> None:
    """The server does not echo a notifier's messages back to it (no_echo): the notifier hands them to its own
    listeners itself, once, and other notifiers hear them from the server, once; with nats-py's no_echo=False
    the server's echo delivers them, still once."""
    async with publisher_and_other(f"{nats_url}?prefix={prefix}.echo", **options) as (
        publisher,
        mine,
        other,
        theirs,
    ):
        sent = [marker("own-1"), marker("own-2")]
        await publisher.publish(sent)
        await theirs.receives(sent, 5)
        await mine.receives(sent, 5)
        closing = marker("closing")  # after it arrives everywhere, a late duplicate would have arrived too
        await other.publish([closing])
        await mine.receives([*sent, closing], 5)
        assert mine.notes.count(sent[0]) == 1 and mine.notes.count(sent[1]) == 1
        assert theirs.notes.count(sent[0]) == 1


async def test_publish_soon_sends_a_turns_hints_in_one_write(nats_url: str, prefix: str) -> None:
    """What one turn of the event loop hands to publish_soon goes out in one write at the end of the turn: other
    notifiers hear each hint once, and the publishing notifier's own listeners get them once; a closed notifier
    takes nothing."""
    async with publisher_and_other(f"{nats_url}?prefix={prefix}.soon") as (publisher, mine, other, theirs):
        transport = publisher._client._transport  # what the notifier writes to
        writes = []
        original = transport.writelines

        def counting(data: Any) -> None:
            writes.append(list(data))
            original(data)

        transport.writelines = counting
        sent = [marker(f"soon-{i}") for i in range(3)]
        assert all(publisher.publish_soon([note]) for note in sent)
        await theirs.receives(sent, 5)
        assert [len(batch) for batch in writes] == [3]
        closing = marker("closing")  # once it arrives, a duplicate sent before it would have too
        await other.publish([closing])
        await mine.receives([*sent, closing], 5)
        assert [mine.notes.count(note) for note in sent] == [1, 1, 1]
        assert [theirs.notes.count(note) for note in sent] == [1, 1, 1]
    assert not publisher.publish_soon([marker("after-close")])


async def test_a_batch_is_published_without_waiting_for_the_server(
    make_notifier: NotifierFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing 100 notifications buffers them and returns without a round trip (no flush); they arrive."""
    publisher, subscriber = await make_notifier(), await make_notifier()
    inbox = Inbox()
    subscriber.subscribe(inbox)
    flushes = []
    original = Client.flush

    async def counting(self: Client, *args: Any, **kwargs: Any) -> None:
        flushes.append(self)
        await original(self, *args, **kwargs)

    monkeypatch.setattr(Client, "flush", counting)
    batch = [marker(f"b{i}") for i in range(100)]
    await publisher.publish(batch)
    assert flushes == []
    await inbox.receives(batch, 5)


async def test_what_is_published_just_before_close_is_delivered(make_notifier: NotifierFactory) -> None:
    publisher, subscriber = await make_notifier(), await make_notifier()
    inbox = Inbox()
    subscriber.subscribe(inbox)
    batch = [marker(f"c{i}") for i in range(20)]
    await publisher.publish(batch)
    await publisher.close()
    await inbox.receives(batch, 5)


WAITERS = 100
_released: dict[str, asyncio.Event] = {}
_all_started: dict[str, asyncio.Event] = {}
_started: dict[str, int] = {}


@durable(name="stent-nats-tests:held")
async def held(token: str, number: int) -> int:
    """Runs until the test releases it, so that waiters pile up meanwhile."""
    _started[token] += 1
    if _started[token] == WAITERS:
        _all_started[token].set()
    await _released[token].wait()
    return number


def counting(calls: Counter[Client], method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(self: Client, *args: Any, **kwargs: Any) -> Any:
        calls[self] += 1
        return await method(self, *args, **kwargs)

    return wrapper


async def test_a_hundred_waiters_share_one_connection_and_one_subscription(
    nats_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process with 100 concurrent wait_for calls has one NATS connection and one subscription, and
    notifications, not its 5 s poll, wake the waiters.

    Without the server's monitoring port, connections are counted on the client side: every nats-py connect and
    subscribe call is recorded, by client object."""
    connects: Counter[Client] = Counter()
    subscribes: Counter[Client] = Counter()
    monkeypatch.setattr(Client, "connect", counting(connects, Client.connect))
    monkeypatch.setattr(Client, "subscribe", counting(subscribes, Client.subscribe))
    storage = MemoryStorage()
    await storage.init_db()
    url = f"{nats_url}?prefix={prefix}"
    worker = Stent(storage, notification_backend=url)
    client_notifier = Stent.notifications.NatsBackend(url)
    assert isinstance(client_notifier, NatsNotifier)
    client = Stent(storage, notification_backend=client_notifier, poll_min_interval=5.0, poll_max_interval=5.0)
    token = uuid.uuid4().hex
    _released[token], _all_started[token], _started[token] = asyncio.Event(), asyncio.Event(), 0
    lifecycles = [worker.create_worker_lifecycle("worker"), client.create_worker_lifecycle("client")]
    serving = [
        asyncio.ensure_future(worker.serve(lifecycle=lifecycles[0], max_concurrency=100, poll_interval=0.05)),
        # The client's own worker serves a queue nobody uses: it only makes the client process listen.
        asyncio.ensure_future(client.serve(lifecycle=lifecycles[1], queues=["unused"], poll_interval=5.0)),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(lc.wait_until_ready() for lc in lifecycles)), 10)
        ids = [await client.dispatch(held, token, n) for n in range(WAITERS)]
        waiters = [asyncio.ensure_future(client.wait_for(i, expiry=30)) for i in ids]
        await asyncio.wait_for(_all_started[token].wait(), 10)
        released_at = clock.monotonic()
        _released[token].set()
        results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
        woken_after = clock.monotonic() - released_at
    finally:
        _released[token].set()
        for lifecycle, executor in zip(lifecycles, (worker, client), strict=True):
            executor.request_worker_drain(lifecycle)
        await asyncio.wait_for(asyncio.gather(*serving), 10)
        await worker.close()
        await client.close()
    assert sorted(results) == list(range(WAITERS))
    # Two processes' notifiers (worker and client): one client object, one connect and one subscribe each.
    assert sorted(connects.values()) == [1, 1] and sorted(subscribes.values()) == [1, 1], (connects, subscribes)
    assert woken_after < 2.5, f"the waiters took {woken_after:.2f}s to wake, about their poll interval"


async def test_a_server_that_is_down_fails_connect_at_once_naming_host_and_port() -> None:
    """connect() to a port where nothing listens raises StorageUnavailable naming host:port, in well under 1 s."""
    port = closed_port()
    notifier = Stent.notifications.NatsBackend(f"nats://127.0.0.1:{port}")
    started = clock.monotonic()
    with pytest.raises(StorageUnavailable, match=f"cannot reach NATS at 127.0.0.1:{port}"):
        await notifier.connect()
    assert clock.monotonic() - started < 1.0
    with pytest.raises(StorageUnavailable, match="not connected"):
        await notifier.publish([marker()])
    await notifier.close()


async def test_a_server_that_never_answers_fails_connect_after_the_timeout() -> None:
    """A server that accepts the connection but never sends INFO makes connect() fail after about the timeout."""
    async with silent_server() as port:
        notifier = Stent.notifications.NatsBackend(f"nats://127.0.0.1:{port}?connect_timeout=0.2")
        started = clock.monotonic()
        with pytest.raises(StorageUnavailable, match=f"NATS at 127.0.0.1:{port} did not answer within 0.4s"):
            await notifier.connect()
    assert clock.monotonic() - started < 2.0


async def test_rejected_credentials_are_named_without_the_password() -> None:
    """A server refusing the user and password makes connect() say so, and the message never shows the password.

    The shared NATS server has no authentication, so a minimal fake server plays one that refuses."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {
            "server_id": "fake",
            "version": "2.10.0",
            "proto": 1,
            "auth_required": True,
            "max_payload": 1 << 20,
        }
        writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
        await writer.drain()
        await reader.readline()  # CONNECT
        writer.write(b"-ERR 'Authorization Violation'\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    notifier = Stent.notifications.NatsBackend(f"nats://app:s3cret-pw@127.0.0.1:{port}")
    try:
        with pytest.raises(StorageUnavailable, match="rejected the notifier's credentials") as caught:
            await notifier.connect()
    finally:
        server.close()
    assert "s3cret-pw" not in str(caught.value)


async def test_an_outage_logs_one_warning_and_recovers(nats_url: str, prefix: str, nats_log: LogWatch) -> None:
    """While NATS is unreachable, publishes fail at once and retries log at debug only; when it is back, delivery
    resumes both ways and one info line says so: one warning for the whole outage."""
    host, port = nats_url.split("//", 1)[1].split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    proxied = Stent.notifications.NatsBackend(f"nats://127.0.0.1:{proxy.port}?prefix={prefix}")
    direct = Stent.notifications.NatsBackend(f"{nats_url}?prefix={prefix}")
    to_proxied, to_direct = Inbox(), Inbox()
    proxied.subscribe(to_proxied)
    direct.subscribe(to_direct)
    try:
        await proxied.connect()
        await direct.connect()
        await proxy.stop()
        await nats_log.until(lambda log: len(log.at(logging.DEBUG)) >= 3, 10)  # several failed attempts
        started = clock.monotonic()
        with pytest.raises(StorageUnavailable, match="not connected"):
            await proxied.publish([marker()])
        assert clock.monotonic() - started < 0.05
        await proxy.start()
        await publish_until_received(direct, marker("in"), to_proxied, 20, "delivery to the proxied notifier")
        await publish_until_received(proxied, marker("out"), to_direct, 20, "delivery from the proxied notifier")
    finally:
        await proxied.close()
        await direct.close()
        await proxy.stop()
    (warning,) = nats_log.at(logging.WARNING)
    assert f"NATS at 127.0.0.1:{proxy.port}" in warning
    assert nats_log.at(logging.INFO) == [f"stent notifier reconnected to NATS at 127.0.0.1:{proxy.port}"]


async def test_asking_for_tls_never_falls_back_to_plain_text(nats_url: str) -> None:
    """With ?tls, a server that does not require TLS (nats-py would then stay in plain text) is refused."""
    notifier = Stent.notifications.NatsBackend(f"{nats_url}?tls")
    with pytest.raises(StorageUnavailable, match="does not offer TLS, but the notifier's URL asks for it"):
        await notifier.connect()
    assert notifier.client is None
