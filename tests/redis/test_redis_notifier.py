"""The Redis notifier on the local server: wire format, prefixes, connection count, failures and outages."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis_support import connections_of

from local_servers import LogWatch, closed_port, silent_server
from stent import Stent, StorageUnavailable, durable
from stent.clocks import SystemClock
from stent.memory import MemoryStorage
from stent.ports import Notification
from stent.testing.conformance.notifier import Inbox, NotifierFactory, TcpProxy, marker, publish_until_received
from stent_redis import RedisNotifier, quiet

clock = SystemClock()


async def raw_messages(admin: Redis, channel: str, count: int, action: Any) -> list[Any]:
    """What a plain subscriber of ``channel`` receives while ``action`` runs: the bytes on the wire."""
    pubsub = admin.pubsub()
    await pubsub.subscribe(channel)
    got: list[Any] = []

    async def collect() -> None:
        while len(got) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                got.append(message["data"])

    try:
        while await pubsub.get_message(timeout=1) is None:  # the subscribe confirmation
            pass
        await action()
        await asyncio.wait_for(collect(), 5)
    finally:
        await pubsub.aclose()
    return got


async def test_url_prefix_names_the_channel_and_each_message_is_one_json_object(
    redis_url: str, admin: Redis, prefix: str
) -> None:
    """With ?prefix=P, notifications go to channel P:notifications, one compact JSON object each."""
    notifier = Stent.notifications.RedisBackend(f"{redis_url}?prefix={prefix}")
    await notifier.connect()
    notes = [
        Notification(kind="work", queue="emails"),
        Notification(kind="finished", task_id="t", execution_id="e"),
    ]
    try:
        got = await raw_messages(admin, f"{prefix}:notifications", 2, lambda: notifier.publish(notes))
    finally:
        await notifier.close()
    assert [json.loads(data) for data in got] == [
        {"kind": "work", "queue": "emails"},
        {"kind": "finished", "task_id": "t", "execution_id": "e"},
    ]


async def test_foreign_messages_on_the_channel_are_ignored(make_notifier: NotifierFactory, admin: Redis) -> None:
    """Messages on the channel that are not stent notifications are skipped, and delivery goes on."""
    notifier = await make_notifier()
    assert isinstance(notifier, RedisNotifier)
    inbox = Inbox()
    notifier.subscribe(inbox)
    for junk in (b"not json", b"[]", b'{"kind": 5}', b'{"queue": "q"}', b'{"kind": "work", "queue": 7}', b"\xff"):
        await admin.publish(notifier.channel, junk)
    good = marker()
    await admin.publish(
        notifier.channel,
        json.dumps(
            {"kind": good.kind, "task_id": good.task_id, "execution_id": good.execution_id, "future_field": 1}
        ),
    )
    await inbox.receives([good], 5)
    assert inbox.notes == [good]


async def test_a_batch_is_one_write_that_waits_for_no_reply(
    make_notifier: NotifierFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing 100 notifications is one write on a connection with replies off: no pipeline, no reply read."""
    publisher, subscriber = await make_notifier(), await make_notifier()
    inbox = Inbox()
    subscriber.subscribe(inbox)
    writes, reads = [], []
    original_send, original_read = AbstractConnection.send_packed_command, AbstractConnection.read_response

    async def counting_send(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        writes.append(self)
        return await original_send(self, *args, **kwargs)

    async def counting_read(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        reads.append(self)
        return await original_read(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    monkeypatch.setattr(AbstractConnection, "read_response", counting_read)
    batch = [marker(f"b{i}") for i in range(100)]
    await publisher.publish(batch)
    await inbox.receives(batch, 5)
    assert len(writes) == 1
    assert writes[0] not in reads, "a reply was read on the publishing connection"


async def test_publish_soon_sends_a_turns_hints_in_one_write_without_being_awaited(
    make_notifier: NotifierFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What one turn of the event loop hands to publish_soon goes out in one write at the end of the turn; hints
    queued just before close() are sent before the connection closes."""
    publisher, subscriber = await make_notifier(), await make_notifier()
    inbox = Inbox()
    subscriber.subscribe(inbox)
    writes = []
    original = asyncio.StreamWriter.writelines

    def counting(self: asyncio.StreamWriter, data: Any) -> None:
        writes.append(self)
        original(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "writelines", counting)
    first = [marker(f"s{i}") for i in range(3)]
    assert all(publisher.publish_soon([note]) for note in first)
    assert writes == [], "nothing is written before the turn ends"
    await inbox.receives(first, 5)
    assert len(writes) == 1
    last = [marker("before-close")]
    assert publisher.publish_soon(last)
    await publisher.close()
    await inbox.receives([*first, *last], 5)
    assert not publisher.publish_soon([marker("after-close")]), "a closed notifier takes nothing"


async def test_a_server_without_client_reply_gets_answered_publishes(
    make_notifier: NotifierFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis-compatible server that does not know CLIENT REPLY: the notifier notices when it connects and
    publishes a batch as one pipeline of ordinary commands."""
    monkeypatch.setattr(quiet, "_PROBE", (("CLIENT", "NO-SUCH-SUBCOMMAND"), ("PING",)))
    publisher, subscriber = await make_notifier(), await make_notifier()
    inbox = Inbox()
    subscriber.subscribe(inbox)
    executed = []
    original = Pipeline.execute

    async def counting(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        executed.append(len(self.command_stack))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counting)
    batch = [marker(f"p{i}") for i in range(100)]
    await publisher.publish(batch)
    await inbox.receives(batch, 5)
    assert executed == [100]
    assert not publisher.publish_soon([marker("not-soon")]), "without CLIENT REPLY OFF, hints take the awaited path"
    single = marker("single")
    await publisher.publish([single])
    await inbox.receives([*batch, single], 5)


WAITERS = 100
_released: dict[str, asyncio.Event] = {}
_all_started: dict[str, asyncio.Event] = {}
_started: dict[str, int] = {}


@durable(name="stent-redis-tests:held")
async def held(token: str, number: int) -> int:
    """Runs until the test releases it, so that waiters pile up meanwhile."""
    _started[token] += 1
    if _started[token] == WAITERS:
        _all_started[token].set()
    await _released[token].wait()
    return number


async def test_a_hundred_waiters_share_the_notifiers_two_connections(
    redis_url: str, admin: Redis, prefix: str
) -> None:
    """A process with 100 concurrent wait_for calls holds two Redis connections (one publishing, one subscribed),
    and notifications, not its 5 s poll, wake the waiters."""
    storage = MemoryStorage()
    await storage.init_db()
    url = f"{redis_url}?prefix={prefix}"
    worker = Stent(storage, notification_backend=url)
    client_notifier = Stent.notifications.RedisBackend(url)
    assert isinstance(client_notifier, RedisNotifier)
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
        rows = await connections_of(admin, client_notifier)
        assert len(rows) == 2, rows
        assert sorted("P" in row["flags"] for row in rows) == [False, True]
        released_at = clock.monotonic()
        _released[token].set()
        results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
        woken_after = clock.monotonic() - released_at
        assert len(await connections_of(admin, client_notifier)) == 2
    finally:
        _released[token].set()
        for lifecycle, executor in zip(lifecycles, (worker, client), strict=True):
            executor.request_worker_drain(lifecycle)
        await asyncio.wait_for(asyncio.gather(*serving), 10)
        await worker.close()
        await client.close()
    assert sorted(results) == list(range(WAITERS))
    assert woken_after < 2.5, f"the waiters took {woken_after:.2f}s to wake, about their poll interval"


async def test_a_server_that_is_down_fails_connect_at_once_naming_host_and_port() -> None:
    """connect() to a port where nothing listens raises StorageUnavailable naming host:port, in well under 1 s."""
    port = closed_port()
    notifier = Stent.notifications.RedisBackend(f"redis://127.0.0.1:{port}")
    started = clock.monotonic()
    with pytest.raises(StorageUnavailable, match=f"cannot reach Redis at 127.0.0.1:{port}"):
        await notifier.connect()
    assert clock.monotonic() - started < 1.0
    with pytest.raises(StorageUnavailable, match="not connected"):
        await notifier.publish([marker()])
    await notifier.close()


async def test_a_server_that_never_answers_fails_connect_after_the_timeout() -> None:
    """A server that accepts the connection but never replies makes connect() fail after about the timeout."""
    async with silent_server() as port:
        notifier = Stent.notifications.RedisBackend(f"redis://127.0.0.1:{port}?connect_timeout=0.2")
        started = clock.monotonic()
        with pytest.raises(StorageUnavailable, match=f"Redis at 127.0.0.1:{port} did not answer within 0.4s"):
            await notifier.connect()
    assert clock.monotonic() - started < 2.0


async def test_wrong_credentials_are_named_without_the_password(redis_url: str) -> None:
    """A rejected user and password say so, and the message never shows the password."""
    host = redis_url.split("//", 1)[1]
    notifier = Stent.notifications.RedisBackend(f"redis://nobody:s3cret-pw@{host}")
    with pytest.raises(StorageUnavailable, match="rejected the notifier's credentials") as caught:
        await notifier.connect()
    assert "s3cret-pw" not in str(caught.value)


async def test_an_outage_logs_one_warning_fails_fast_and_recovers(
    redis_url: str, prefix: str, redis_log: LogWatch
) -> None:
    """While Redis is unreachable, publishes fail fast and retries log at debug only; when it is back, delivery
    resumes both ways and one info line says so: one warning for the whole outage."""
    proxy = TcpProxy("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    proxied = Stent.notifications.RedisBackend(f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}")
    direct = Stent.notifications.RedisBackend(f"{redis_url}?prefix={prefix}")
    to_proxied, to_direct = Inbox(), Inbox()
    proxied.subscribe(to_proxied)
    direct.subscribe(to_direct)
    try:
        await proxied.connect()
        await direct.connect()
        await proxy.stop()
        with pytest.raises(StorageUnavailable):
            await proxied.publish([marker()])
        started = clock.monotonic()
        with pytest.raises(StorageUnavailable, match="not publishing until the next reconnection attempt"):
            await proxied.publish([marker()])
        assert clock.monotonic() - started < 0.05
        await redis_log.until(lambda log: len(log.at(logging.DEBUG)) >= 3, 10)  # several failed attempts
        await proxy.start()
        await publish_until_received(direct, marker("in"), to_proxied, 20, "delivery to the proxied notifier")
        await publish_until_received(proxied, marker("out"), to_direct, 20, "delivery from the proxied notifier")
        await redis_log.until(lambda log: bool(log.at(logging.INFO)), 5)
    finally:
        await proxied.close()
        await direct.close()
        await proxy.stop()
    (warning,) = redis_log.at(logging.WARNING)
    assert f"Redis at 127.0.0.1:{proxy.port}" in warning
    assert redis_log.at(logging.INFO) == [f"stent notifier reconnected to Redis at 127.0.0.1:{proxy.port}"]
