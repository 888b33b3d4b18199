"""The durable functions the benchmarks run: trivial steps, a chain of them, a fan-out, a signal wait.

This file is also the module a ``stent worker`` process loads (``stent worker benchmarks/workflows.py``), so it
imports nothing but stent.
"""

from __future__ import annotations

from stent import Stent


@Stent.durable(name="bench.noop")
async def noop(i: int) -> int:
    """A trivial step: returns its argument."""
    return i


@Stent.durable(name="bench.sequence")
async def sequence(steps: int) -> int:
    """``steps`` trivial steps, each awaited before the next starts."""
    total = 0
    for i in range(steps):
        total += await noop(i)
    return total


@Stent.durable(name="bench.fan_out")
async def fan_out(children: int) -> int:
    """``children`` trivial steps started at once (one ``map``), then gathered."""
    return sum(await noop.map(range(children)))


@Stent.durable(name="bench.await_signal")
async def await_signal(i: int) -> object:
    """Suspends until a ``go`` signal arrives: a long wait holds no worker memory."""
    return await Stent.wait_for_signal("go")
