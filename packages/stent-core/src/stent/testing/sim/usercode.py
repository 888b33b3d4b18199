"""Watching (and, with ``user`` faults, breaking) the durable functions a simulation runs.

For the run, every registered durable function's body is wrapped.  The wrapper tells the invariant checker that
user code of a task is starting, so a task whose result was already committed is caught the moment its code runs
again; with ``user`` faults it sometimes raises :class:`~stent.testing.sim.faults.InjectedFault` instead of
running, or hangs until the function's own ``timeout`` stops it.  The engine itself is not modified: it calls the
function's ``func`` as always.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from stent.engine.context import current_task
from stent.engine.durable import DurableFunction, registered_functions
from stent.testing.sim.faults import InjectedFault

if TYPE_CHECKING:
    from stent.testing.sim.fleet import Simulation


@contextmanager
def instrumented_functions(sim: Simulation) -> Iterator[None]:
    """Wrap every registered durable function for the duration of the block."""
    wrapped: list[tuple[DurableFunction[..., Any], Callable[..., Any]]] = []
    for fn in registered_functions().values():
        fn.type_hints  # resolve annotations against the real function before it is wrapped  # noqa: B018
        wrapped.append((fn, fn.func))
        fn.func = _wrap(sim, fn.name, fn.func, fn.timeout)
    try:
        yield
    finally:
        for fn, func in wrapped:
            fn.func = func


def _wrap(sim: Simulation, name: str, func: Callable[..., Any], timeout: float | None) -> Callable[..., Any]:
    short_name = name.rpartition(":")[2]

    async def watched(*args: Any, **kwargs: Any) -> Any:
        ctx = current_task()
        if ctx is not None:
            sim.checker.user_code_started(ctx.task_id, ctx.attempt, short_name)
        fault = sim.faults.user_fault(timeout)
        if fault == "hang":
            sim.record(f"FAULT user code of {short_name} hangs")
            await asyncio.get_running_loop().create_future()  # until the runner's timeout cancels it
        if fault is not None:
            sim.record(f"FAULT user code of {short_name} raises")
            raise InjectedFault(f"injected by the simulator at the start of {short_name}")
        return await func(*args, **kwargs)

    watched.__wrapped__ = func  # type: ignore[attr-defined]
    watched.__name__ = getattr(func, "__name__", short_name)
    watched.__qualname__ = getattr(func, "__qualname__", short_name)
    return watched
