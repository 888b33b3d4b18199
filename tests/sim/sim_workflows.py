"""The project's own example workflows and scenarios, for the simulator's seed sweep and its reproduction command.

Each failing seed prints a command such as
``python -m stent.testing.sim --module tests/sim/sim_workflows.py --scenario MIXED --seed 7 --faults crash``,
which imports this file and runs the named scenario again.
"""

from __future__ import annotations

import asyncio

from stent import RetryPolicy, Stent
from stent.engine.context import current_task
from stent.testing.sim import Dispatch, Scenario, Signal, check

QUICK_RETRY = RetryPolicy(max_attempts=6, initial_delay=1, backoff_factor=2, max_delay=30)


class Declined(Exception):
    """An activity's deliberate, retryable failure."""


# -- activities ---------------------------------------------------------------------------------------------


@Stent.durable(retry_policy=QUICK_RETRY)
async def reserve(order: str) -> str:
    await asyncio.sleep(0.2)  # work that takes a moment, so other workers act meanwhile
    return f"reserved:{order}"


@Stent.durable(retry_policy=QUICK_RETRY)
async def charge(order: str, amount: int) -> int:
    await asyncio.sleep(0.3)
    return amount


@Stent.durable(retry_policy=QUICK_RETRY)
async def ship(order: str) -> str:
    return f"shipped:{order}"


@Stent.durable(retry_policy=QUICK_RETRY)
async def square(x: int) -> int:
    await asyncio.sleep(0.05 * (x % 3))
    return x * x


@Stent.durable(retry_policy=RetryPolicy(max_attempts=4, initial_delay=2, backoff_factor=3))
async def flaky(key: str, failures: int) -> str:
    """Fails its first ``failures`` attempts, then succeeds."""
    ctx = current_task()
    attempt = ctx.attempt if ctx is not None else 1
    if attempt <= failures:
        raise Declined(f"{key}: attempt {attempt} declined")
    return f"{key}: ok on attempt {attempt}"


@Stent.durable(max_concurrent=2, retry_policy=QUICK_RETRY)
async def render(page: int) -> int:
    await asyncio.sleep(0.5)
    return page


# -- workflows ----------------------------------------------------------------------------------------------


@Stent.durable
async def checkout(order: str) -> str:
    """Sequential steps."""
    reservation = await reserve(order)
    paid = await charge(order, 30)
    shipped = await ship(order)
    check(reservation == f"reserved:{order}" and paid == 30, f"checkout {order} saw wrong step results")
    return shipped


@Stent.durable
async def fan_out(n: int) -> int:
    """Fan-out with map, then a gather of two more calls."""
    squares = await square.map(range(n))
    check(squares == [i * i for i in range(n)], f"fan_out({n}) got {squares}")
    extra = await Stent.gather(square(n), square(n + 1))
    return sum(squares) + sum(extra)


@Stent.durable
async def approval(order: str) -> str:
    """Waits for a signal (sent by the scenario), with a timeout long enough never to fire."""
    reservation = await reserve(order)
    decision = await Stent.wait_for_signal("approve", timeout="1d")
    if decision:
        await ship(order)
    return f"{reservation}:{'approved' if decision else 'rejected'}"


@Stent.durable
async def retrying(key: str) -> str:
    """A child that fails twice before it succeeds, then a durable sleep."""
    outcome = await flaky(key, 2)
    await Stent.sleep("10m")
    return outcome


@Stent.durable
async def book(pages: int) -> list[int]:
    """Many calls of a function limited to 2 running at once across the fleet."""
    return await render.map(range(pages))


# -- scenarios ----------------------------------------------------------------------------------------------

SWEEP_SERVE = {"lease_duration": 20, "heartbeat_interval": 5, "poll_interval": 0.5, "poll_interval_max": 4}

MIXED = Scenario(
    dispatches=[
        (checkout, "o-1"),
        (fan_out, 6),
        (approval, "o-2"),
        (retrying, "r-1"),
        (book, 5),
        Dispatch(checkout, "o-3", at="30s"),
    ],
    signals=[Signal("approve", True, to=2, at="2m")],
    workers=3,
    duration="2h",
    serve_options=SWEEP_SERVE,
)
"""Every example workflow at once: the CI sweep runs it under many seeds and fault mixes."""

MIXED_EXPECTED = [
    "shipped:o-1",
    sum(i * i for i in range(6)) + 36 + 49,
    "reserved:o-2:approved",
    "r-1: ok on attempt 3",
    [0, 1, 2, 3, 4],
    "shipped:o-3",
]


@Stent.durable(retry_policy=RetryPolicy(max_attempts=4, initial_delay="1h", backoff_factor=6, max_delay="1d"))
async def slow_partner(key: str) -> str:
    """Declines twice; the retries wait an hour, then six."""
    ctx = current_task()
    if ctx is not None and ctx.attempt <= 2:
        raise Declined(f"{key}: partner busy")
    return f"{key}: accepted"


@Stent.durable
async def month_long(key: str) -> str:
    """Long backoffs, a signal sent on day 12, then a 30-day durable sleep."""
    accepted = await slow_partner(key)
    approved = await Stent.wait_for_signal("approve")
    await Stent.sleep("30d")
    return f"{accepted}; approved={approved}; done"


MONTH = Scenario(
    dispatches=[(month_long, "m-1")],
    signals=[Signal("approve", "yes", to=0, at="12d")],
    workers=2,
    duration="60d",
)
"""The issue's example: 30 days of sleep, long backoffs and a day-12 signal, in well under a second."""
