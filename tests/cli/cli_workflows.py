"""Durable functions the CLI tests create executions of; worker subprocesses load this file too."""

from __future__ import annotations

from stent import RetryPolicy, Stent


@Stent.durable(name="cli.double")
async def double(x: int) -> int:
    return 2 * x


@Stent.durable(name="cli.add_all")
async def add_all(n: int) -> int:
    total = 0
    for i in range(n):
        total += await double(i)
    Stent.context(counters={"items": n}, state={"phase": "summed"})
    return total


@Stent.durable(name="cli.explode", retry_policy=RetryPolicy(max_attempts=2, initial_delay=1))
async def explode(why: str) -> None:
    raise RuntimeError(f"exploded: {why}")


@Stent.durable(name="cli.fails")
async def fails(why: str) -> None:
    await explode(why)


@Stent.durable(name="cli.wait_approval")
async def wait_approval() -> object:
    return await Stent.wait_for_signal("approve")


@Stent.durable(name="cli.crunch", queue="batch")
async def crunch(x: int) -> int:
    return x


@Stent.durable(name="cli.fan_out")
async def fan_out(n: int) -> int:
    """Children on queue ``batch``, which no execution, worker row or dead letter names."""
    return sum(await crunch.map(range(n)))
