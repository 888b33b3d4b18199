"""Durable sleep, asyncio.sleep promotion, suspension of long waits, and time limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from stent import ActivityTimeout, ConfigurationError, ExecutionState, ExecutionTimeout, Stent
from stent.memory import MemoryStorage
from stent.model import TaskKind
from stent.testing.harness import WorkflowHarness

WOKE: list[str] = []


@Stent.durable
async def nap(label: str, duration: str) -> str:
    await Stent.sleep(duration)
    WOKE.append(label)
    return f"{label} awake"


@Stent.durable
async def plain_asyncio_sleeper() -> str:
    await asyncio.sleep(5)  # inside a durable function: recorded as a durable sleep
    return "rested"


@Stent.durable(max_duration="10s")
async def too_slow() -> None:
    await Stent.sleep("1h")


GATE: list[asyncio.Event] = []


@Stent.durable(timeout=5)
async def hangs() -> None:
    await GATE[-1].wait()


@pytest.fixture(autouse=True)
def _reset() -> None:
    WOKE.clear()


async def test_durable_sleep_wakes_after_virtual_time_passes(harness: WorkflowHarness) -> None:
    """A workflow sleeping an hour is not finished before the hour and is finished after it."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(nap, "n1", "1h")
    await harness.advance(3590, step=30)
    assert await harness.state(eid) is not ExecutionState.COMPLETED
    assert await harness.finish(eid, step=5) == "n1 awake"


async def test_long_sleep_suspends_and_frees_the_worker(harness: WorkflowHarness) -> None:
    """A sleep longer than the suspension threshold leaves no task held in the worker while it sleeps."""
    lifecycle = await harness.start_worker()
    eid = await harness.executor.dispatch(nap, "n2", "2d")

    async def suspended() -> bool:
        tasks = await harness.storage.list_execution_tasks(eid)
        return next(t for t in tasks if t.parent_task_id is None).state.value == "suspended"

    await harness.wait_until(suspended)
    await harness.settle()
    assert lifecycle.running_tasks == 0
    assert await harness.finish(eid, step=3600) == "n2 awake"


async def test_asyncio_sleep_inside_a_durable_function_is_durable(harness: WorkflowHarness) -> None:
    """asyncio.sleep(5) in a durable function records a durable sleep step."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(plain_asyncio_sleeper)
    assert await harness.finish(eid) == "rested"
    kinds = [t.kind for t in await harness.storage.list_execution_tasks(eid)]
    assert TaskKind.SLEEP in kinds


async def test_asyncio_sleep_outside_durable_functions_is_untouched() -> None:
    """While a worker runs, asyncio.sleep in ordinary code still sleeps for real and records nothing."""
    h = WorkflowHarness()
    await h.start_worker()
    original_sleep_result = await asyncio.sleep(0, result="same")
    assert original_sleep_result == "same"
    await asyncio.sleep(0.001)
    assert (await h.executor.list_executions()).total == 0
    await h.stop()
    assert asyncio.sleep.__module__ == "asyncio.tasks"


async def test_max_duration_times_the_execution_out(harness: WorkflowHarness) -> None:
    """An execution running past max_duration ends timed_out, and wait_for raises a TimeoutError naming it."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(too_slow)
    with pytest.raises(ExecutionTimeout, match=eid) as info:
        await harness.finish(eid)
    assert isinstance(info.value, TimeoutError)
    assert "10s" in str(info.value)
    assert await harness.state(eid) is ExecutionState.TIMED_OUT


async def test_activity_timeout_fails_a_call_that_runs_too_long(harness: WorkflowHarness) -> None:
    """A durable function with timeout=5 that hangs fails with ActivityTimeout after 5 virtual seconds."""
    GATE.append(asyncio.Event())
    await harness.start_worker()
    eid = await harness.executor.dispatch(hangs)
    with pytest.raises(ActivityTimeout, match="timeout of 5s"):
        await harness.finish(eid)


async def test_ten_thousand_sleeping_executions_hold_no_worker_memory() -> None:
    """10,000 executions sleeping a day leave the worker holding nothing, and all finish a day later."""
    h = WorkflowHarness(MemoryStorage())
    lifecycle = await h.start_worker(max_concurrency=200)
    ids = [await h.executor.dispatch(nap, f"s{i}", "1d") for i in range(10_000)]
    for _ in range(200):
        await h.settle()
        if sum(1 for t in h.storage._tasks.values() if t.state.value == "suspended") == 10_000:
            break
    await h.settle()  # the last tasks to suspend ended in the turn that wrote them: the worker hears it next
    shell_held = lifecycle.running_tasks
    assert shell_held == 0
    assert sum(1 for t in h.storage._tasks.values() if t.state.value == "suspended") == 10_000
    h.clock.advance(timedelta(days=1))
    for _ in range(400):
        await h.settle()
        if len(WOKE) == 10_000:
            break
    assert len(WOKE) == 10_000
    states = {(await h.executor.state_of(i)).state for i in ids[:50]}
    assert states == {ExecutionState.COMPLETED}
    await h.stop()


@pytest.mark.parametrize("bad", ["-1s", "soon", -5, float("nan"), [1]])
async def test_bad_sleep_durations_are_refused(bad: object) -> None:
    """Stent.sleep with a negative, malformed or wrongly typed duration raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        Stent.sleep(bad)  # type: ignore[arg-type]
