"""The project's own example workflows and scenarios, for the simulator's seed sweep and its reproduction command.

Each failing seed prints a command such as
``python -m stent.testing.sim --module tests/sim/sim_workflows.py --scenario MIXED --seed 7 --faults crash``,
which imports this file and runs the named scenario again.
"""

from __future__ import annotations

import asyncio

from stent import RetryPolicy, Stent
from stent.engine.context import current_task
from stent.testing.sim import Dispatch, Scenario, Signal, SimControl, check

QUICK_RETRY = RetryPolicy(max_attempts=6, initial_delay=1, backoff_factor=2, max_delay=30)


class Declined(Exception):
    """An activity's deliberate, retryable failure."""


# -- activities ---------------------------------------------------------------------------------------------


@Stent.durable(retry_policy=QUICK_RETRY, timeout="10s")
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


@Stent.durable(retry_policy=QUICK_RETRY)
async def step_with_cleanup(order: str) -> str:
    try:
        await asyncio.sleep(0.4)
        return f"done:{order}"
    finally:
        await asyncio.sleep(0)


@Stent.durable
async def cancellable(order: str) -> str:
    """A chain of steps and a sleep: cancelled part-way by the script, or not."""
    first = await step_with_cleanup(order)
    await Stent.sleep("2m")
    second = await step_with_cleanup(order + "-b")
    return f"{first},{second}"


@Stent.durable(max_duration="90s")
async def deadline(order: str) -> str:
    """Sleeps past its max_duration: always ends timed_out."""
    await reserve(order)
    await Stent.sleep("5m")
    return "never"


async def cancel_some(control: SimControl) -> None:
    """Dispatch eight workflows and cancel a random half of them at random times."""
    ids = [await control.dispatch(cancellable, f"c-{i}") for i in range(8)]
    await control.dispatch(deadline, "d-1")
    for execution_id in control.rng.sample(ids, 4):
        await control.sleep(control.rng.uniform(0, 60))
        await control.client.cancel(execution_id)


CANCELS = Scenario(script=cancel_some, workers=3, duration="2h", serve_options=SWEEP_SERVE)
"""Cancellation and time limits racing running, sleeping and retrying work."""


@Stent.durable(cached=True)
async def price(item: str) -> int:
    return len(item) * 10


@Stent.durable(retry_policy=RetryPolicy(max_attempts=2, initial_delay=1))
async def always_declines(key: str) -> None:
    raise Declined(f"{key}: never")


@Stent.durable
async def leg(n: int) -> int:
    """A middle layer: an orchestrator that is itself a step."""
    await asyncio.sleep(2)  # promoted to a durable sleep inside a durable function
    parts = await Stent.gather(square(n), price(f"item-{n}"))
    return sum(parts)


@Stent.durable
async def features(key: str) -> str:
    """Nested orchestrators, a cached step, a handled child failure, an expiring signal wait and counters."""
    legs = await leg.map(range(3))
    try:
        await always_declines(key)
        compensated = False
    except Declined:
        compensated = True
    try:
        await Stent.wait_for_signal("never-sent", timeout="30s")
        timed_out = False
    except TimeoutError:
        timed_out = True
    Stent.context(counters={"legs": len(legs)})
    return f"{sum(legs)}:{compensated}:{timed_out}"


FEATURES = Scenario(
    dispatches=[(features, "f-1"), (features, "f-2")],
    workers=3,
    duration="2h",
    serve_options=SWEEP_SERVE,
)
"""Nested orchestrators, caching, compensation, signal timeouts and context counters under faults."""

FEATURES_EXPECTED = f"{sum(n * n + len(f'item-{n}') * 10 for n in range(3))}:True:True"
