"""Signals (ordered, consumed exactly once, no lost wake-up) and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from stent import (
    ConfigurationError,
    ExecutionCancelled,
    ExecutionFinished,
    ExecutionNotFound,
    ExecutionState,
    SignalTimeout,
    Stent,
)
from stent.memory import MemoryStorage
from stent.testing.harness import WorkflowHarness

EVENTS: list[str] = []
GATES: list[asyncio.Event] = []


@Stent.durable
async def approval(order: str) -> str:
    decision = await Stent.wait_for_signal("decision")
    return f"{order}: {decision['verdict']}"


@Stent.durable
async def two_in_a_row() -> list[str]:
    first = await Stent.wait_for_signal("item")
    second = await Stent.wait_for_signal("item")
    return [first, second]


@Stent.durable
async def impatient() -> str:
    try:
        return await Stent.wait_for_signal("late", timeout="1h")
    except SignalTimeout:
        return "gave up"


@Stent.durable
async def blocked_activity() -> None:
    try:
        EVENTS.append("started")
        await GATES[-1].wait()
    finally:
        EVENTS.append("finally ran")


@Stent.durable
async def compensating_workflow() -> None:
    try:
        await blocked_activity()
    except asyncio.CancelledError:
        EVENTS.append("compensating")
        await undo()
        raise


@Stent.durable
async def undo() -> None:
    EVENTS.append("undone")


@Stent.durable
async def long_sleeper() -> None:
    await Stent.sleep("30d")


@Stent.durable
async def quick() -> int:
    return 1


@pytest.fixture(autouse=True)
def _reset() -> None:
    EVENTS.clear()
    GATES.append(asyncio.Event())


async def test_signal_payload_reaches_the_waiting_workflow(harness: WorkflowHarness) -> None:
    """A workflow waiting for a signal receives the payload sent to it."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(approval, "order-7")
    await harness.advance(2)
    await harness.executor.send_signal(eid, "decision", {"verdict": "approved"})
    assert await harness.finish(eid) == "order-7: approved"


async def test_signals_sent_before_the_wait_are_kept_in_order(harness: WorkflowHarness) -> None:
    """Two signals of one name sent before anyone waits are consumed oldest first, each once."""
    eid = await harness.executor.dispatch(two_in_a_row)
    await harness.executor.send_signal(eid, "item", "first")
    await harness.executor.send_signal(eid, "item", "second")
    await harness.start_worker()
    assert await harness.finish(eid) == ["first", "second"]
    signals = await harness.storage.list_signals(eid)
    assert [s.consumed_by is not None for s in signals] == [True, True]


async def test_signal_wait_times_out(harness: WorkflowHarness) -> None:
    """wait_for_signal with a timeout raises SignalTimeout when nothing arrives in time."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(impatient)
    assert await harness.finish(eid, step=60) == "gave up"


async def test_signal_to_unknown_or_finished_execution_raises(harness: WorkflowHarness) -> None:
    """Sending to an execution that does not exist, or has ended, raises a clear error."""
    await harness.start_worker()
    with pytest.raises(ExecutionNotFound):
        await harness.executor.send_signal("missing", "x", 1)
    eid = await harness.executor.dispatch(quick)
    await harness.finish(eid)
    with pytest.raises(ExecutionFinished, match="completed"):
        await harness.executor.send_signal(eid, "x", 1)
    with pytest.raises(ConfigurationError):
        await harness.executor.send_signal(eid, "", 1)


@pytest.mark.parametrize("delay_turns", range(0, 40, 3))
async def test_signal_racing_the_wait_is_never_lost(delay_turns: int) -> None:
    """However the send interleaves with the wait being recorded, the workflow gets the signal."""
    h = WorkflowHarness(MemoryStorage())
    await h.start_worker()
    eid = await h.executor.dispatch(approval, f"race-{delay_turns}")
    for _ in range(delay_turns):
        await asyncio.sleep(0)
    await h.executor.send_signal(eid, "decision", {"verdict": "yes"})
    assert await h.finish(eid) == f"race-{delay_turns}: yes"
    await h.stop()


async def test_cancelling_a_sleeping_execution_ends_it_at_once(harness: WorkflowHarness) -> None:
    """A suspended execution is cancelled immediately, and wait_for says it was cancelled."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(long_sleeper)

    async def suspended() -> bool:
        tasks = await harness.storage.list_execution_tasks(eid)
        return tasks[0].state.value == "suspended"

    await harness.wait_until(suspended)
    assert await harness.executor.cancel(eid) is True
    assert await harness.state(eid) is ExecutionState.CANCELLED
    with pytest.raises(ExecutionCancelled):
        await harness.executor.wait_for(eid)


async def test_cancelling_running_code_raises_cancelled_error_so_compensation_runs(harness: WorkflowHarness) -> None:
    """Running code gets CancelledError at its next heartbeat; finally blocks and compensation steps run."""
    await harness.start_worker(lease_duration=30, heartbeat_interval=10)
    eid = await harness.executor.dispatch(compensating_workflow)
    await harness.wait_until(lambda: bool(EVENTS))
    assert EVENTS == ["started"]
    assert await harness.executor.cancel(eid) is True
    with pytest.raises(ExecutionCancelled):
        await harness.finish(eid)
    # Parent and child are interrupted at the same heartbeat, in either order.
    assert EVENTS[0] == "started"
    assert {"finally ran", "compensating", "undone"} <= set(EVENTS)
    assert EVENTS.index("compensating") < EVENTS.index("undone")
    assert await harness.state(eid) is ExecutionState.CANCELLED


async def test_cancelling_a_finished_execution_is_a_no_op(harness: WorkflowHarness) -> None:
    """Cancelling a completed execution returns False and leaves it completed."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(quick)
    assert await harness.finish(eid) == 1
    assert await harness.executor.cancel(eid) is False
    assert await harness.state(eid) is ExecutionState.COMPLETED
    with pytest.raises(ExecutionNotFound):
        await harness.executor.cancel("missing")
