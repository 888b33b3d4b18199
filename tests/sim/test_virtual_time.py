"""Virtual time: the loop jumps over idle time, the clock follows it, and a month of workflow takes milliseconds."""

from __future__ import annotations

import asyncio
import random
import time

from sim_workflows import MONTH

from stent.testing.sim import SimClock, SimLoop, SimulationStuck
from stent.testing.sim.loop import NODE, node_context


def _run(loop: SimLoop, coro: object) -> object:
    try:
        return loop.run_until_complete(coro)  # type: ignore[arg-type]
    finally:
        loop.close()


def test_month_long_workflow_finishes_in_well_under_a_second() -> None:
    """Long backoffs, a signal on day 12 and a 30-day durable sleep finish in under a second of wall time."""
    started = time.perf_counter()
    result = MONTH.run(seed=3)
    wall = time.perf_counter() - started
    assert wall < 1.0, f"took {wall:.2f}s of wall time"
    assert result.ok, result.report()
    outcome = result.outcome(0)
    assert outcome.value == "m-1: accepted; approved=yes; done"
    # 1h and 6h of backoff, the signal at day 12, then 30 days of sleep.
    assert outcome.finished_at is not None and 42 * 86400 <= outcome.finished_at < 43 * 86400
    assert any("SIGNAL approve" in line for line in result.trace)


def test_sleeping_costs_no_loop_steps() -> None:
    """A coroutine sleeping an hour of virtual time wakes at exactly that time after a handful of loop steps."""
    loop = SimLoop(random.Random(1))
    clock = SimClock(loop)

    async def main() -> float:
        await clock.sleep(3600)
        await asyncio.sleep(0.5)
        return loop.time()

    assert _run(loop, main()) == 3600.5
    assert loop.steps < 10


def test_clock_offset_shifts_now_but_not_monotonic() -> None:
    """A skewed worker's clock reads ahead of the fleet's true time; monotonic time is the loop's."""
    loop = SimLoop(random.Random(1))
    true, skewed = SimClock(loop), SimClock(loop, offset=7.5)
    assert (skewed.now() - true.now()).total_seconds() == 7.5
    assert skewed.monotonic() == true.monotonic() == 0.0
    loop.close()


def test_callbacks_of_one_node_keep_their_order_while_nodes_interleave_by_seed() -> None:
    """Within a node callbacks run first-in first-out; which node runs next is drawn from the seed."""

    def interleaving(seed: int) -> list[str]:
        loop = SimLoop(random.Random(seed))
        seen: list[str] = []
        for node in ("a", "b", "c"):
            for i in range(5):
                loop.call_soon(seen.append, f"{node}{i}", context=node_context(node))

        async def main() -> None:
            await asyncio.sleep(1)

        _run(loop, main())
        return seen

    orders = {tuple(interleaving(seed)) for seed in range(8)}
    assert len(orders) > 1
    for order in orders:
        for node in "abc":
            assert [x for x in order if x[0] == node] == [f"{node}{i}" for i in range(5)]
    assert interleaving(3) == interleaving(3)


def test_frozen_node_runs_nothing_until_it_thaws() -> None:
    """A node frozen until t=50 has its due timer held until then; other nodes run on meanwhile."""
    loop = SimLoop(random.Random(1))
    ran: dict[str, float] = {}
    loop.call_at(10, lambda: ran.setdefault("paused", loop.time()), context=node_context("w1"))
    loop.call_at(20, lambda: ran.setdefault("other", loop.time()), context=node_context("w2"))
    loop.freeze("w1", until=50)

    async def main() -> None:
        await asyncio.sleep(100)

    _run(loop, main())
    assert ran == {"other": 20, "paused": 50}


def test_waiting_for_nothing_is_reported_as_stuck() -> None:
    """Code that waits on a future nobody resolves, with no timer left, ends the run with SimulationStuck."""
    loop = SimLoop(random.Random(1))

    async def main() -> None:
        assert NODE.get() == "sim"
        await loop.create_future()

    try:
        loop.run_until_complete(main())
    except SimulationStuck as exc:
        assert "never comes" in str(exc)
    else:
        raise AssertionError("the loop should have reported that nothing can run")
    finally:
        loop.close()


async def test_simulate_works_when_called_from_async_code() -> None:
    """Called inside a running event loop (an async test), the simulation runs on a loop of its own."""
    result = MONTH.run(seed=3)
    assert result.ok and result.outcome(0).value.endswith("done")
    assert asyncio.get_running_loop() is not None
