"""The testing kit's fixtures and helpers, used as a user's tests use them (memory storage, fake clock)."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from kit_workflows import CALLS, GATE, GatewayDown, best_effort, held, subscription

from stent import Stent
from stent.clocks import FakeClock
from stent.memory import MemoryStorage
from stent.model import ExecutionState
from stent.testing.fixtures import SEED
from stent.testing.harness import WorkflowHarness
from stent.testing.sim import SimResult
from stent.testing.sim.pytest_plugin import SimFixture

START = datetime(2030, 1, 1, tzinfo=UTC)


async def test_the_executor_runs_on_the_fake_clock_memory_storage_and_a_seeded_random(
    stent_executor: Stent, stent_clock: FakeClock
) -> None:
    """stent_executor stores in memory, reads time from stent_clock, and draws from a random source seeded alike
    in every test."""
    assert isinstance(stent_executor.backend, MemoryStorage)
    assert stent_executor.clock is stent_clock
    assert stent_clock.now() == START
    assert stent_executor.rng.random() == random.Random(SEED).random()
    execution_id = await stent_executor.dispatch(subscription, "fresh")
    assert (await stent_executor.state_of(execution_id)).created_at == START


async def test_a_month_long_workflow_with_a_retry_finishes_at_once(stent_worker: WorkflowHarness) -> None:
    """run() fires the retry 30 s after the failure and the 30-day sleep in virtual time, in under a second."""
    CALLS.clear()
    began = time.perf_counter()
    assert await stent_worker.run(subscription, "o-1") == "charged o-1, renewed"
    wall = time.perf_counter() - began
    assert CALLS["charge:o-1"] == 2
    virtual = stent_worker.clock.now() - START
    assert timedelta(days=30, seconds=30) <= virtual < timedelta(days=30, seconds=35)
    assert wall < 2.0, f"a month of virtual time took {wall:.2f}s of real time"


async def test_steps_show_each_steps_name_state_attempts_and_result(stent_worker: WorkflowHarness) -> None:
    """steps() lists the root and its journal in order, with decoded results, attempts and errors."""
    CALLS.clear()
    execution_id = await stent_worker.executor.dispatch(subscription, "o-2")
    await stent_worker.finish(execution_id)
    steps = await stent_worker.steps(execution_id)
    assert [(s.name, s.kind, s.state, s.attempts, s.step) for s in steps] == [
        ("kit_workflows:subscription", "call", "completed", 1, None),
        ("kit_workflows:charge", "call", "completed", 2, 1),
        ("stent.sleep", "sleep", "completed", 1, 2),
    ]
    root, charged, slept = steps
    assert root.result == "charged o-2, renewed" and charged.result == "charged o-2"
    assert slept.result == START + timedelta(days=30, seconds=30)  # the recorded wake time
    assert charged.parent_task_id == root.task_id and root.error is None

    failed_id = await stent_worker.executor.dispatch(best_effort, "o-3")
    assert await stent_worker.finish(failed_id) == "gave up"
    [_, down] = await stent_worker.steps(failed_id)
    assert (down.name, down.state, down.attempts, down.result) == ("kit_workflows:always_down", "failed", 2, None)
    assert isinstance(down.error, GatewayDown) and str(down.error) == "no gateway for o-3"


async def test_advance_fires_a_long_sleep_at_its_time_and_not_before(stent_worker: WorkflowHarness) -> None:
    """advance() jumps idle time but stops where asked: the sleep has not ended a second early, and has after."""
    CALLS.clear()
    execution_id = await stent_worker.executor.dispatch(subscription, "o-4")
    await stent_worker.advance("30d")  # the retry came at 30 s, so the sleep ends 30 s later
    assert await stent_worker.state(execution_id) is ExecutionState.RUNNING
    await stent_worker.advance(timedelta(seconds=31))
    assert await stent_worker.state(execution_id) is ExecutionState.COMPLETED
    assert stent_worker.clock.now() == START + timedelta(days=30, seconds=31)


async def test_a_dead_workers_task_is_taken_over_when_its_lease_expires(stent_executor: Stent) -> None:
    """A worker that dies holding a task leaves it leased; finish() moves time to the lease's expiry, and another
    worker runs the task again."""
    CALLS.clear()
    GATE.append(asyncio.Event())
    harness = WorkflowHarness(executor=stent_executor, skip_idle_time=True)
    await harness.start_worker("doomed", lease_duration=120, heartbeat_interval=40)
    execution_id = await stent_executor.dispatch(held, "o-5")
    await harness.wait_until(lambda: CALLS["held:o-5"] == 1)

    async def gone(*_: object) -> None:
        raise ConnectionError("the process was killed")

    stent_executor.backend.release_task = gone  # type: ignore[method-assign,assignment]  # killed: writes nothing
    doomed = harness.workers.pop()[1]
    doomed.cancel()
    await asyncio.gather(doomed, return_exceptions=True)
    GATE[-1].set()
    await harness.start_worker("rescuer")
    died_at = harness.clock.now()
    assert await harness.finish(execution_id) == "released o-5"
    assert CALLS["held:o-5"] == 2
    assert timedelta(seconds=100) < harness.clock.now() - died_at < timedelta(seconds=125)
    await harness.stop()


async def test_the_harness_leaves_an_executor_it_was_given_open(stent_executor: Stent) -> None:
    """stop() drains the workers it started but does not close an executor passed in: its fixture does that."""
    harness = WorkflowHarness(executor=stent_executor, skip_idle_time=True)
    await harness.start_worker()
    await harness.stop()
    assert stent_executor.worker_status_overview()["ready"] is False
    assert not stent_executor.backend.closed  # type: ignore[attr-defined]
    assert (await stent_executor.list_executions()).total == 0


async def test_stopping_mid_workflow_gives_running_work_back_at_once(stent_executor: Stent) -> None:
    """A test that ends while a task still runs does not wait for it: the drain gives the task back."""
    CALLS.clear()
    GATE.append(asyncio.Event())  # never set: the task would run forever
    harness = WorkflowHarness(executor=stent_executor, skip_idle_time=True)
    await harness.start_worker()
    execution_id = await stent_executor.dispatch(held, "o-9")
    await harness.wait_until(lambda: CALLS["held:o-9"] == 1)
    began = time.perf_counter()
    await harness.stop()
    assert time.perf_counter() - began < 2.0
    assert stent_executor.worker_status_overview()["ready"] is False
    [task] = await stent_executor.backend.list_execution_tasks(execution_id)
    assert (task.state.value, task.lease_owner) == ("pending", None)


def test_the_simulator_fixture_runs_a_fleet_with_crashes(stent_simulator: SimFixture, sim: SimFixture) -> None:
    """stent_simulator is the simulator's fixture: a month-long workflow survives crashing workers."""
    assert stent_simulator is sim
    CALLS.clear()
    result = stent_simulator.run([(subscription, "o-6")], workers=2, faults="crash", duration="40d")
    assert isinstance(result, SimResult)
    assert result.outcome(0).value == "charged o-6, renewed"


@pytest.mark.parametrize("order", ["a", "b"])
async def test_each_test_gets_a_fresh_executor_and_clock(stent_worker: WorkflowHarness, order: str) -> None:
    """Nothing is left over from another test: empty storage, the clock at its start."""
    assert stent_worker.clock.now() == START
    assert (await stent_worker.executor.list_executions()).total == 0
    CALLS.clear()
    await stent_worker.run(subscription, order)
