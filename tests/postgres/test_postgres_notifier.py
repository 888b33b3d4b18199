"""The LISTEN/NOTIFY notifier beyond the conformance suite: one connection however many waiters, fan-out to other
processes, unreadable payloads, what subscribers hear after a reconnect, and pick-up latency on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from pg_observed import ObservedStorage

from stent import Stent
from stent.errors import StorageUnavailable
from stent.ports import Notification
from stent.testing.conformance.notifier_support import Inbox, marker
from stent_postgres import PostgresNotifier, PostgresStorage

Opener = Callable[..., Awaitable[PostgresStorage]]


@pytest.fixture
async def notifiers(pg_url: str) -> AsyncIterator[Callable[..., Awaitable[PostgresNotifier]]]:
    made: list[PostgresNotifier] = []

    async def make(schema: str, **options: object) -> PostgresNotifier:
        notifier = PostgresNotifier(f"{pg_url}?schema={schema}", reconnect_delay=0.05, **options)  # type: ignore[arg-type]
        made.append(notifier)
        await notifier.connect()
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


def channel_name() -> str:
    return f"n{uuid.uuid4().hex[:12]}"


# -- one connection per process ---------------------------------------------------------------------------------

_GATE: dict[str, asyncio.Event] = {}


@Stent.durable(name="pg-notifier.gated")
async def gated(token: str, n: int) -> int:
    event = _GATE.get(token)
    if event is not None:
        await event.wait()
    return n


async def test_a_hundred_waiters_share_one_notifier_connection(
    pg_url: str, open_storage: Opener, admin: asyncpg.Connection
) -> None:
    """A hundred concurrent wait_for calls in one process use the notifier's one connection (and the storage's
    pool), and all of them are resolved when their executions finish."""
    storage = await open_storage(max_size=3)
    app = f"stent-notifier-{uuid.uuid4().hex[:8]}"
    notifier = PostgresNotifier(f"{pg_url}?schema={storage.settings.schema}&application_name={app}")
    executor = Stent(storage, notification_backend=notifier, poll_min_interval=2, poll_max_interval=5)
    token = uuid.uuid4().hex
    gate = _GATE[token] = asyncio.Event()
    try:
        ids = [await executor.dispatch(gated, token, n) for n in range(100)]
        waiters = [asyncio.ensure_future(executor.wait_for(i, expiry=60)) for i in ids]
        # Counted while all hundred wait (the gate keeps every task unfinished, and no worker runs yet).
        counted = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app)
        assert counted == 1, f"{counted} notifier connections for 100 waiters"
        lifecycle = executor.create_worker_lifecycle(f"w-{token[:6]}")
        worker = asyncio.ensure_future(
            executor.serve(lifecycle=lifecycle, max_concurrency=100, poll_interval=0.05)
        )
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*waiters), 60)
        assert results == list(range(100))
        assert await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app) == 1
        executor.request_worker_drain(lifecycle)
        await asyncio.wait_for(worker, 20)
    finally:
        _GATE.pop(token, None)
        await executor.close()


# -- other processes -----------------------------------------------------------------------------------------------

_LISTENER = textwrap.dedent(
    """
    import asyncio, json, sys
    from stent_postgres import PostgresNotifier

    async def main(url):
        notifier = PostgresNotifier(url)
        got = asyncio.Queue()
        notifier.subscribe(got.put_nowait)
        await notifier.connect()
        print("ready", flush=True)
        while True:
            note = await got.get()
            print(json.dumps([note.kind, note.queue, note.task_id, note.execution_id]), flush=True)
            if note.kind == "stop":
                break
        await notifier.close()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_fan_out_reaches_listeners_in_other_processes(notifiers, pg_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two listener processes each receive every notification one process publishes."""
    schema = channel_name()
    script = tmp_path / "listener.py"
    script.write_text(_LISTENER)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            f"{pg_url}?schema={schema}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"ready", line
        publisher = await notifiers(schema)
        sent = [marker("x"), Notification(kind="work", queue="q/ü"), Notification(kind="stop")]
        await publisher.publish(sent)
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            got = [json.loads(line) for line in out.decode().splitlines()]
            assert got == [[n.kind, n.queue, n.task_id, n.execution_id] for n in sent], err.decode()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# -- robustness --------------------------------------------------------------------------------------------------


async def test_unreadable_payloads_on_the_channel_are_ignored(notifiers, admin: asyncpg.Connection) -> None:  # type: ignore[no-untyped-def]
    """Someone else's NOTIFY on our channel (not JSON, or the wrong shape) is dropped; delivery goes on."""
    schema = channel_name()
    listener = await notifiers(schema)
    inbox = Inbox()
    listener.subscribe(inbox)
    for payload in ("not json", "[1, 2]", '{"kind": 5}', '{"queue": "no kind"}', ""):
        await admin.execute("SELECT pg_notify($1, $2)", listener.channel, payload)
    note = marker("after")
    await (await notifiers(schema)).publish([note])
    await inbox.receives([note], 5, "delivery after garbage")
    assert inbox.notes == [note]


async def test_after_a_reconnect_subscribers_are_told_to_look(notifiers, admin: asyncpg.Connection) -> None:  # type: ignore[no-untyped-def]
    """Whatever was announced while the connection was down is lost, so once back the notifier tells its
    subscribers that work may be ready and tasks may have finished: waiters and workers look at once."""
    listener = await notifiers(channel_name())
    inbox = Inbox()
    listener.subscribe(inbox)
    first_pid = listener.backend_pid
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", first_pid)
    await inbox.until(
        lambda notes: {n.kind for n in notes} >= {"work", "finished"}, 10, "the hints after reconnecting"
    )
    assert Notification(kind="work") in inbox.notes and Notification(kind="finished") in inbox.notes
    assert listener.backend_pid not in (None, first_pid)
    assert listener.connections_opened == 2


async def test_publishing_around_a_killed_connection_never_hangs(notifiers, admin: asyncpg.Connection) -> None:  # type: ignore[no-untyped-def]
    """Publishes right after the connection was killed each succeed (already reconnected) or raise
    StorageUnavailable (which core tolerates), promptly; none hangs or raises anything else."""
    notifier = await notifiers(channel_name(), ping_interval=60)
    await admin.execute("SELECT pg_terminate_backend($1)", notifier.backend_pid)
    started = time.monotonic()
    outcomes = []
    for _ in range(5):
        try:
            await asyncio.wait_for(notifier.publish([marker()]), 5)
            outcomes.append("sent")
        except StorageUnavailable:
            outcomes.append("unavailable")
    assert time.monotonic() - started < 5, outcomes


# -- pick-up latency on PostgreSQL -------------------------------------------------------------------------------

_STARTED: dict[str, asyncio.Event] = {}


@Stent.durable(name="pg-notifier.report-start")
async def report_start(token: str) -> str:
    event = _STARTED.get(token)
    if event is not None:
        event.set()
    return token


async def test_an_idle_worker_on_postgres_starts_announced_work_well_before_its_poll(
    pg_url: str, open_storage: Opener
) -> None:
    """Two executors on two pools stand for two processes: a dispatch in one wakes the other's idle worker
    (poll interval 5 s) through the notifier in well under a second, many times over."""
    schema = (await open_storage()).settings.schema
    storage = ObservedStorage(pg_url, schema=schema, max_size=2)
    worker = Stent(storage, notification_backend=PostgresNotifier(f"{pg_url}?schema={schema}"))
    client = Stent(
        PostgresStorage(pg_url, schema=schema, max_size=2),
        notification_backend=PostgresNotifier(f"{pg_url}?schema={schema}"),
    )
    lifecycle = worker.create_worker_lifecycle(f"idle-{uuid.uuid4().hex[:6]}")
    serving = asyncio.ensure_future(worker.serve(lifecycle=lifecycle, poll_interval=5, poll_interval_max=5))
    latencies = []
    try:
        await asyncio.wait_for(lifecycle.wait_until_ready(), 10)
        await asyncio.wait_for(storage.idle.wait(), 10)  # idle, and listening: from now on only a wake-up is fast
        for _ in range(5):
            token = uuid.uuid4().hex
            started = _STARTED[token] = asyncio.Event()
            dispatched = time.monotonic()
            await client.dispatch(report_start, token)
            await asyncio.wait_for(started.wait(), 4.5)
            latencies.append(time.monotonic() - dispatched)
            _STARTED.pop(token, None)
    finally:
        worker.request_worker_drain(lifecycle)
        await asyncio.wait_for(serving, 10)
        await worker.close()
        await client.close()
    assert max(latencies) < 1.0, f"pick-up latencies {latencies}; the poll interval is 5 s"


class _CountingConnection:
    """Stands in for the notifier's connection: counts statements, each taking a moment like a round trip."""

    def __init__(self) -> None:
        self.statements: list[list[str]] = []

    def is_closed(self) -> bool:
        return False

    async def execute(self, sql: str, channel: str, payloads: list[str]) -> None:
        self.statements.append(payloads)
        await asyncio.sleep(0.01)  # a round trip's worth of time for concurrent publishes to pile up behind


async def test_a_batch_and_concurrent_publishes_go_out_in_few_statements() -> None:
    """One publish of 500 notifications is one statement; 40 publishes in flight at once share a few."""
    notifier = PostgresNotifier("postgresql://h/db")
    conn = _CountingConnection()
    notifier._conn = conn  # the only stand-in: everything else is the notifier's own code
    await notifier.publish([marker(f"b{i}") for i in range(500)])
    assert len(conn.statements) == 1 and len(conn.statements[0]) == 500
    conn.statements.clear()
    await asyncio.gather(*(notifier.publish([marker(f"c{i}")]) for i in range(40)))
    assert sum(len(s) for s in conn.statements) == 40
    assert len(conn.statements) <= 2, f"{len(conn.statements)} statements for 40 concurrent publishes"
