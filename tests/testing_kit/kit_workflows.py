"""Durable functions the testing kit's own tests run: a retry, long sleeps, a signal, a queue of its own."""

from __future__ import annotations

import asyncio
from collections import Counter

from stent import RetryPolicy, Stent

CALLS: Counter[str] = Counter()
GATE: list[asyncio.Event] = []


class GatewayDown(ConnectionError):
    pass


@Stent.durable(retry_policy=RetryPolicy(max_attempts=3, initial_delay=30))
async def charge(order: str) -> str:
    CALLS[f"charge:{order}"] += 1
    if CALLS[f"charge:{order}"] == 1:
        raise GatewayDown("the payment gateway is down")
    return f"charged {order}"


@Stent.durable(retry_policy=RetryPolicy(max_attempts=2, initial_delay=60))
async def always_down(order: str) -> str:
    raise GatewayDown(f"no gateway for {order}")


@Stent.durable
async def subscription(order: str) -> str:
    receipt = await charge(order)
    await Stent.sleep("30d")
    return f"{receipt}, renewed"


@Stent.durable
async def best_effort(order: str) -> str:
    try:
        return await always_down(order)
    except GatewayDown:
        return "gave up"


@Stent.durable
async def approval(order: str) -> str:
    decision = await Stent.wait_for_signal("decision")
    return f"{order} {decision}"


@Stent.durable(queue="reports")
async def report(day: int) -> str:
    return f"report {day}"


@Stent.durable
async def held(order: str) -> str:
    CALLS[f"held:{order}"] += 1
    await GATE[-1].wait()
    return f"released {order}"
