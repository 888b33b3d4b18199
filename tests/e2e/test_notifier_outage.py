"""Process-level faults of the notifier: a private Redis or NATS server stopped and started during a run.

Two ``stent worker`` processes run the mixed workload of fault_support.py on one SQLite file, with wake-ups
pushed through a Redis or NATS server of this test's own (the shared ones are never touched).  A third worker
serves only the queue ``wake`` and polls it every 30 s, so whatever it runs quickly it ran because a wake-up
reached it.  At a random moment the server stops; the workers log the outage once and carry on by polling; the
server starts again on the same port; then:

* work went on while the notifier was down;
* each worker warned once about the outage, and the idle worker reconnected within the reconnection backoff;
* a dispatch to ``wake`` runs at once again (far sooner than the 30 s poll): wake-ups are pushed again;
* the checks of fault_support.py hold: every execution finished with the right result, no completed step ran
  again, no task ran twice concurrently.

The seed is printed; ``STENT_OUTAGE_SEED=N`` replays a schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stent import Stent

TESTS = Path(__file__).parents[1]
sys.path.insert(0, str(TESTS / "e2e"))
sys.path.insert(0, str(TESTS))
from fault_support import (
    MARGIN,
    Fleet,
    check_outcome,
    dispatch_plan,
    finished_since,
    load,
    mixed_plan,
    seeded,
    send_approvals,
    wait_all,
)

from local_servers import closed_port, private_server, require_binary

pytestmark = pytest.mark.timeout(120)

WAKE = "wake"
#: The idle worker's poll interval: a wake-up must beat it by far.
IDLE_POLL = 30.0
#: The longest a dispatch to the idle worker may take to run when the wake-up is pushed.
WAKE_BOUND = 3.0
#: Reconnection backoff of the notifiers (stent.notifier_kit.Backoff): at most 5 s between attempts, +20 %.
RECONNECT_BOUND = 5.0 * 1.2 + MARGIN
LOST = "stent notifier lost its"
RECONNECTED = "stent notifier reconnected"


async def test_workers_ride_out_a_redis_outage_and_wake_up_again(tmp_path: Path) -> None:
    """Redis stopped and started mid-run: work goes on by polling, and pushed wake-ups resume."""
    binary = require_binary("redis-server")
    await notifier_outage(
        tmp_path,
        lambda port: [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        lambda port: f"redis://127.0.0.1:{port}/0",
    )


async def test_workers_ride_out_a_nats_outage_and_wake_up_again(tmp_path: Path) -> None:
    """NATS stopped and started mid-run: work goes on by polling, and pushed wake-ups resume."""
    binary = require_binary("nats-server")
    await notifier_outage(
        tmp_path,
        lambda port: [binary, "-a", "127.0.0.1", "-p", str(port)],
        lambda port: f"nats://127.0.0.1:{port}",
    )


async def wake_up(client: Stent, key: str) -> float:
    """Seconds from a dispatch to the idle worker's queue until its result is in."""
    started = time.monotonic()
    eid = await client.dispatch(load.work, f"wake:{key}", 10, queue=WAKE)
    assert await client.wait_for(eid, expiry=IDLE_POLL * 2) == 10
    return time.monotonic() - started


async def until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        await asyncio.sleep(0.05)  # polling a condition of a background reconnection, bounded above


async def notifier_outage(
    tmp_path: Path, argv: Callable[[int], list[str]], notifier_url: Callable[[int], str]
) -> None:
    rng = seeded("STENT_OUTAGE_SEED")
    port = closed_port()
    url = notifier_url(port)
    db = tmp_path / "outage.db"
    backend = Stent.backends.SQLiteBackend(str(db))
    await backend.init_db()
    server = contextlib.ExitStack()
    server.enter_context(private_server(argv(port), port))
    client = Stent(backend=backend, notification_backend=url, poll_min_interval=0.05, poll_max_interval=0.2)
    fleet = Fleet(f"sqlite:///{db}", tmp_path, notifier_url=url)
    plan = mixed_plan()
    try:
        await dispatch_plan(client, plan)
        busy = [fleet.start("--queues", "default", log_level="INFO") for _ in range(2)]
        polling = ("--poll-interval", f"{IDLE_POLL}s", "--poll-interval-max", f"{IDLE_POLL}s")
        idle = fleet.start("--queues", WAKE, poll=polling, log_level="INFO")
        names = [*busy, idle]
        await fleet.ready(*names)
        await send_approvals(client, plan)
        before = await wake_up(client, "before")
        await asyncio.sleep(rng.uniform(0.3, 1.2))  # a random moment of the run

        server.close()
        down = time.time()
        for name in names:
            await fleet.until_logged(name, lambda text: LOST in text, "the outage warning")
        during = await finished_since(backend, list(plan), down)
        await asyncio.sleep(rng.uniform(0, 1.5))  # a random while longer: the outage's length
        server.enter_context(private_server(argv(port), port))
        back = time.time()

        reconnected = await fleet.until_logged(idle, lambda text: RECONNECTED in text, "reconnection") - back
        notifier = client.notification_backend
        await until(lambda: bool(getattr(notifier, "connected", False)), "the test's notifier reconnected", 15)
        after = await wake_up(client, "after")
        results = await wait_all(client, plan)
        assert not fleet.dead(), f"workers exited during the outage: {fleet.dead()} {fleet.tails()}"
        codes = fleet.stop_all()
        print(
            f"notifier down for {back - down:.2f}s; a task finished {during:.2f}s into the outage;"
            f" idle worker reconnected {reconnected:.2f}s after; wake-up before {before:.2f}s, after {after:.2f}s"
        )
        assert set(codes.values()) == {0}, (codes, fleet.tails())
        assert before <= WAKE_BOUND, f"a pushed wake-up took {before:.2f}s before the outage"
        assert after <= WAKE_BOUND, f"wake-ups not pushed again after the outage: {after:.2f}s"
        assert during <= fleet.poll_max + MARGIN, f"work stalled while the notifier was down: {during:.2f}s"
        assert reconnected <= RECONNECT_BOUND, f"the idle worker reconnected only {reconnected:.2f}s after"
        for name in names:  # one warning per outage, not one per failed publish or reconnection attempt
            assert fleet.log(name).count(LOST) == 1, fleet.log(name)[-3000:]
        await check_outcome(client, plan, results, tmp_path, fleet.killed_at)
    finally:
        fleet.stop_all()
        server.close()
        await client.close()
