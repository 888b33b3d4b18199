"""Process-level faults on PostgreSQL: the server restarts in the middle of a run.

Three ``stent worker`` processes run the mixed workload of fault_support.py on a private PostgreSQL server
(started by this test; the shared one on 5432 is never touched), listening on its LISTEN/NOTIFY channel.  At a
random moment the server stops (``pg_ctl stop -m fast`` disconnects every client, as a restart does), stays down
until every worker has met the outage, and starts again.  Then: every worker is still running (storage errors
are retried, never fatal), work resumed within the lease plus a poll interval (plus a margin) of the server
being back, and the checks of fault_support.py hold: every execution finished with the right result, no
completed step ran again, no task ran twice concurrently.

The seed is printed; ``STENT_RESTART_SEED=N`` replays a schedule.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from stent import Stent

sys.path.insert(0, str(Path(__file__).parent))
from fault_support import (
    MARGIN,
    Fleet,
    check_outcome,
    dispatch_plan,
    finished_since,
    mixed_plan,
    seeded,
    send_approvals,
    wait_all,
)
from private_postgres import private_postgres

pytestmark = pytest.mark.timeout(150)

#: Longer than the outage lasts, so no lease expires while the workers cannot renew it: a worker that cannot
#: reach storage cannot learn that its lease was lost, and the task would then run in two places at once.
LEASE = 4.0
#: What a worker logs when a storage call failed and will be retried.
RETRIED = ("claim failed, will retry", "lease renewal failed, will retry", "storage unavailable for task")


async def test_workers_ride_out_a_postgres_restart_and_lose_nothing(tmp_path: Path) -> None:
    """A PostgreSQL restart mid-run: workers survive it, resume promptly, and every execution completes."""
    rng = seeded("STENT_RESTART_SEED")
    with private_postgres() as server:
        url = f"{server.url}?schema=stent_restart&max_size=4&notify=true&connect_timeout=2"
        client = Stent(url, notification_backend=url, poll_min_interval=0.05, poll_max_interval=0.2)
        fleet = Fleet(url, tmp_path, notifier_url=url, lease=LEASE)
        plan = mixed_plan()
        try:
            await client.backend.init_db()
            await dispatch_plan(client, plan)
            names = [fleet.start() for _ in range(3)]
            await fleet.ready(*names)
            await send_approvals(client, plan)
            await asyncio.sleep(rng.uniform(0.3, 1.2))  # a random moment of the run
            seen = {name: len(fleet.log(name)) for name in names}
            server.stop("fast")
            down = time.time()
            for name in names:  # down until every worker has met the outage
                await fleet.until_logged(
                    name, lambda text, n=seen[name]: any(s in text[n:] for s in RETRIED), "a retried storage error"
                )
            await asyncio.sleep(rng.uniform(0, 1.5))  # and a random while longer: the outage's length
            server.start()
            back = time.time()
            resumed = await finished_since(client.backend, list(plan), back)
            results = await wait_all(client, plan)
            assert not fleet.dead(), f"workers exited during the restart: {fleet.dead()} {fleet.tails()}"
            codes = fleet.stop_all()
            print(f"server down for {back - down:.2f}s; a task finished {resumed:.2f}s after it was back")
            assert set(codes.values()) == {0}, (codes, fleet.tails())
            bound = LEASE + fleet.poll_max + MARGIN
            assert resumed <= bound, f"work resumed {resumed:.2f}s after the server was back (bound {bound}s)"
            await check_outcome(client, plan, results, tmp_path, fleet.killed_at)
        finally:
            fleet.stop_all()
            await client.close()
