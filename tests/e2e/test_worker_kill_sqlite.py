"""Process-level faults on SQLite: ``stent worker`` processes SIGKILLed at random moments of a mixed workload.

Three workers share one SQLite file.  While chains, fan-outs, durable sleeps, retries and signal waits run, the
test kills a random worker at random moments and starts a replacement, then makes the checks of
fault_support.py: every execution finished with the right result, no completed step ran again, no task ran
twice concurrently, and a killed worker's tasks were taken over within the lease plus a poll interval (plus a
margin).

The seed is printed; ``STENT_KILL_SEED=N`` replays a schedule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stent import Stent

sys.path.insert(0, str(Path(__file__).parent))
from fault_support import Fleet, run_kill_scenario, seeded

pytestmark = pytest.mark.timeout(180)


async def test_sigkilled_workers_lose_nothing_and_never_double_run(tmp_path: Path) -> None:
    """Random SIGKILLs of `stent worker` processes during a mixed workload on SQLite."""
    rng = seeded("STENT_KILL_SEED")
    db = tmp_path / "kill.db"
    backend = Stent.backends.SQLiteBackend(str(db))
    await backend.init_db()
    executor = Stent(backend=backend)
    try:
        await run_kill_scenario(executor, Fleet(f"sqlite:///{db}", tmp_path), rng)
    finally:
        await executor.close()
