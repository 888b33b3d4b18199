"""Process-level faults on PostgreSQL: ``stent worker`` processes SIGKILLed at random moments of a mixed workload.

Three workers share a schema of their own on the local PostgreSQL and listen for wake-ups on its LISTEN/NOTIFY
channel (the storage notifies in its transactions).  The test kills a random worker holding work at random
moments and starts a replacement, then makes the checks of fault_support.py: every execution finished with the
right result, no completed step ran again, no task ran twice concurrently, and a killed worker's tasks were
taken over within the lease plus a poll interval (plus a margin).  The schema is dropped afterwards.

The seed is printed; ``STENT_KILL_SEED=N`` replays a schedule.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from stent import Stent

sys.path.insert(0, str(Path(__file__).parent))
from fault_support import Fleet, fresh_schema, run_kill_scenario, seeded

pytestmark = pytest.mark.timeout(180)


async def test_sigkilled_workers_on_postgres_lose_nothing_and_never_double_run(
    services: Any, tmp_path: Path
) -> None:
    """Random SIGKILLs of `stent worker` processes on PostgreSQL, with LISTEN/NOTIFY wake-ups."""
    rng = seeded("STENT_KILL_SEED")
    async with fresh_schema(services.postgres()) as url:
        executor = Stent(url, notification_backend=url)
        try:
            await executor.backend.init_db()
            await run_kill_scenario(executor, Fleet(url, tmp_path, notifier_url=url), rng)
        finally:
            await executor.close()
