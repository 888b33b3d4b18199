"""Leases and fencing seen from a worker: a worker whose lease was taken over cannot write."""

from __future__ import annotations

import asyncio

from stent import Stent
from stent.clocks import FakeClock
from stent.errors import LeaseLost
from stent.memory import MemoryStorage
from stent.model import ClaimRequest, TaskState

calls: list[str] = []
gates: list[asyncio.Event] = []


@Stent.durable(name="leases.slow")
async def slow() -> str:
    calls.append("run")
    await gates[-1].wait()
    return "late"


async def test_worker_whose_lease_was_taken_over_cannot_complete_the_task() -> None:
    """A paused worker resuming after another took its task over has its completion rejected."""
    gate = asyncio.Event()
    gates.append(gate)
    calls.clear()
    clock = FakeClock()
    storage = MemoryStorage()
    rejected: list[LeaseLost] = []
    original = storage.complete_tasks

    async def spy(completions, now):  # type: ignore[no-untyped-def]
        results = await original(completions, now)
        rejected.extend(r for r in results if isinstance(r, LeaseLost))
        return results

    storage.complete_tasks = spy  # type: ignore[method-assign]
    ex = Stent(storage, clock=clock)
    lifecycle = ex.create_worker_lifecycle("paused")
    worker = asyncio.ensure_future(
        ex.serve(worker_id="paused", lifecycle=lifecycle, lease_duration=60, heartbeat_interval=50)
    )
    eid = await ex.dispatch(slow)
    while calls != ["run"]:
        await asyncio.sleep(0)
    # The first worker stalls past its lease; another worker (played here by the test) takes the task over
    # and finishes it before the stalled worker runs again.  Memory storage calls do not yield, so nothing
    # of the first worker runs in between.
    clock.advance(61)
    request = ClaimRequest(worker_id="thief", functions=frozenset({slow.name}), limit=1, lease_seconds=60)
    [stolen] = await storage.claim_tasks(request, clock.now())
    await storage.complete_task(stolen.fence, '"stolen"', clock.now())
    gate.set()
    assert await ex.wait_for(eid) == "stolen"
    for _ in range(100):
        await asyncio.sleep(0)
    task = await storage.get_task(stolen.task_id)
    assert task is not None and task.state is TaskState.COMPLETED and task.result == '"stolen"'
    assert len(rejected) == 1, 'the stalled worker should have tried to complete and been refused'
    ex.request_worker_drain(lifecycle)
    await worker
    assert task.lease_owner is None


async def test_heartbeat_keeps_a_long_task_leased() -> None:
    """A task running longer than its lease keeps it, because the worker renews every heartbeat_interval."""
    gate = asyncio.Event()
    gates.append(gate)
    calls.clear()
    clock = FakeClock()
    storage = MemoryStorage()
    ex = Stent(storage, clock=clock)
    lifecycle = ex.create_worker_lifecycle("steady")
    worker = asyncio.ensure_future(
        ex.serve(worker_id="steady", lifecycle=lifecycle, lease_duration=60, heartbeat_interval=20)
    )
    eid = await ex.dispatch(slow)
    while calls != ["run"]:
        await asyncio.sleep(0)
    for _ in range(10):  # 200 virtual seconds, far past the 60 s lease
        clock.advance(20)
        for _ in range(20):
            await asyncio.sleep(0)
    request = ClaimRequest(worker_id="thief", functions=frozenset({slow.name}), limit=1, lease_seconds=60)
    assert await storage.claim_tasks(request, clock.now()) == []
    gate.set()
    assert await ex.wait_for(eid) == "late"
    ex.request_worker_drain(lifecycle)
    await worker
