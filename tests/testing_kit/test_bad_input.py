"""Mistakes a user makes with the testing kit get an error that says what was wrong and what to do."""

from __future__ import annotations

import math
import time

import pytest
from kit_workflows import approval, subscription

from stent import Stent
from stent.clocks import FakeClock
from stent.errors import ConfigurationError, ExecutionNotFound, UnregisteredFunctionError
from stent.memory import MemoryStorage
from stent.testing.harness import WorkflowHarness, WorkflowStuck


async def test_moving_time_backwards_is_refused(stent_worker: WorkflowHarness, stent_clock: FakeClock) -> None:
    """advance() and the clock itself refuse a negative duration, and time stays where it was."""
    before = stent_clock.now()
    with pytest.raises(ConfigurationError, match=r"invalid advance\(\) duration -5: it must not be negative"):
        await stent_worker.advance(-5)
    with pytest.raises(ConfigurationError, match="invalid advance"):
        await stent_worker.advance("-1h")
    with pytest.raises(ValueError, match=r"got -1 seconds, but a clock cannot go backwards: pass a duration of 0"):
        stent_clock.advance(-1)
    with pytest.raises(ValueError, match="cannot go backwards"):
        stent_clock.advance(math.nan)
    assert stent_clock.now() == before


async def test_running_a_function_that_is_not_durable_names_the_decorator(stent_worker: WorkflowHarness) -> None:
    """A plain coroutine function is not a workflow: the error says to decorate it."""

    async def not_decorated(order: str) -> str:
        return order

    with pytest.raises(ConfigurationError, match=r"decorated with @Stent\.durable"):
        await stent_worker.run(not_decorated, "o")  # type: ignore[arg-type]


async def test_running_an_unregistered_name_suggests_the_close_match(stent_worker: WorkflowHarness) -> None:
    """A misspelt function name is not registered; the error names the one meant."""
    with pytest.raises(UnregisteredFunctionError, match="did you mean 'kit_workflows:subscription'"):
        await stent_worker.run("kit_workflows:subscriptoin", "o")


async def test_finishing_without_a_worker_says_to_start_one(stent_executor: Stent) -> None:
    """With no worker serving, finish() fails at once instead of waiting forever."""
    harness = WorkflowHarness(executor=stent_executor, skip_idle_time=True)
    execution_id = await stent_executor.dispatch(subscription, "nobody")
    with pytest.raises(
        WorkflowStuck, match=r"no worker serves this executor: start one \(harness.start_worker\(\)"
    ):
        await harness.finish(execution_id)


async def test_finishing_a_workflow_that_waits_for_a_signal_names_the_signal(
    stent_worker: WorkflowHarness,
) -> None:
    """A workflow waiting for a signal nobody sends is reported stuck at once, with the signal and the fix; once
    the test sends it, the workflow finishes."""
    execution_id = await stent_worker.executor.dispatch(approval, "o-7")
    began = time.perf_counter()
    with pytest.raises(
        WorkflowStuck, match=r"waits for signal 'decision' \(send it with await executor.send_signal"
    ):
        await stent_worker.finish(execution_id)
    assert time.perf_counter() - began < 2.0
    await stent_worker.executor.send_signal(execution_id, "decision", "approved")
    assert await stent_worker.finish(execution_id) == "o-7 approved"


async def test_bad_worker_options_fail_at_once(stent_executor: Stent) -> None:
    """start_worker() raises serve()'s own ConfigurationError right away, not after a readiness timeout."""
    harness = WorkflowHarness(executor=stent_executor, skip_idle_time=True)
    began = time.perf_counter()
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        await harness.start_worker(max_concurrency=0)
    assert time.perf_counter() - began < 2.0
    assert harness.workers == []


def test_a_harness_needs_an_executor_on_a_fake_clock() -> None:
    """The harness cannot move a real clock, and takes an executor or a storage, not both."""
    with pytest.raises(ConfigurationError, match=r"on a FakeClock.*Stent\(storage, clock=FakeClock\(\)\)"):
        WorkflowHarness(executor=Stent(MemoryStorage()))
    executor = Stent(MemoryStorage(), clock=FakeClock())
    with pytest.raises(ConfigurationError, match="either executor= or a storage"):
        WorkflowHarness(MemoryStorage(), executor=executor)


async def test_inspecting_an_unknown_execution_says_so(stent_worker: WorkflowHarness) -> None:
    """steps() of an id that does not exist raises ExecutionNotFound with the id."""
    with pytest.raises(ExecutionNotFound, match="no-such-id"):
        await stent_worker.steps("no-such-id")


async def test_a_bad_finish_step_is_refused(stent_worker: WorkflowHarness) -> None:
    """A zero step would never move time; finish() refuses it instead of spinning."""
    execution_id = await stent_worker.executor.dispatch(subscription, "o-8")
    with pytest.raises(ConfigurationError, match=r"invalid finish\(\) step 0: it must be positive"):
        await stent_worker.finish(execution_id, step=0)
