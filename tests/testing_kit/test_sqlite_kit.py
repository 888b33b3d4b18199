"""The kit on SQLite: overriding ``stent_executor`` with ``stent_sqlite_executor`` moves ``stent_worker`` there."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from kit_workflows import CALLS, subscription

from stent import Stent
from stent.clocks import FakeClock
from stent.memory import MemoryStorage
from stent.testing.harness import WorkflowHarness


@pytest.fixture
def stent_executor(stent_sqlite_executor: Stent) -> Stent:
    return stent_sqlite_executor


async def test_the_sqlite_executor_stores_in_a_file_of_the_test(
    stent_sqlite_executor: Stent, stent_clock: FakeClock, tmp_path: Path
) -> None:
    """stent_sqlite_executor is a SQLite file in tmp_path, on the same fake clock."""
    assert not isinstance(stent_sqlite_executor.backend, MemoryStorage)
    assert stent_sqlite_executor.clock is stent_clock
    execution_id = await stent_sqlite_executor.dispatch(subscription, "sqlite-0")
    assert (await stent_sqlite_executor.state_of(execution_id)).state.value == "pending"
    assert (tmp_path / "stent.db").is_file()


async def test_a_month_long_workflow_with_a_retry_finishes_on_sqlite(stent_worker: WorkflowHarness) -> None:
    """The same retry and 30-day sleep run to the end on SQLite, in virtual time."""
    CALLS.clear()
    assert await stent_worker.run(subscription, "sqlite-1") == "charged sqlite-1, renewed"
    steps = await stent_worker.steps((await stent_worker.executor.list_executions()).executions[0].execution_id)
    assert [(s.name, s.state, s.attempts) for s in steps] == [
        ("kit_workflows:subscription", "completed", 1),
        ("kit_workflows:charge", "completed", 2),
        ("stent.sleep", "completed", 1),
    ]
    assert stent_worker.clock.monotonic() >= timedelta(days=30, seconds=30).total_seconds()
