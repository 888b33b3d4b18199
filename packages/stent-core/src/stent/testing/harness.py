"""Drive an executor and its workers on a fake clock: the engine's own tests use it, and so can yours.

``WorkflowHarness`` owns an executor on the given storage with a :class:`~stent.clocks.FakeClock` (or wraps one
you made, ``executor=``).  Start workers with :meth:`start_worker`; move virtual time with :meth:`advance`;
:meth:`finish` advances time in steps until an execution ends and returns its result; :meth:`run` dispatches and
finishes; :meth:`steps` shows what an execution did.

With ``skip_idle_time=True`` (what the pytest fixtures of :mod:`stent.testing.fixtures` use), :meth:`advance`
and :meth:`finish` jump over time in which nothing can happen: when no task runs or can be claimed, the clock
moves straight to the next moment storage has work (a timer, a retry, a delayed dispatch, a dead worker's
expired lease, a time limit), so a workflow that sleeps for a month finishes in milliseconds.  :meth:`finish`
then also fails at once, with :class:`WorkflowStuck`, when an execution waits for something only the test can
give it (a signal), and when no worker is serving.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from stent.clocks import FakeClock
from stent.durations import parse_duration
from stent.engine.durable import DurableFunction
from stent.errors import ConfigurationError
from stent.executor import Stent
from stent.memory import MemoryStorage
from stent.model import ExecutionState
from stent.ports import Storage
from stent.testing.idle import Claimer, seconds_until_work, why_stuck
from stent.testing.steps import Step, steps_of
from stent.worker.lifecycle import WorkerLifecycle
from stent.worker.machine import LifecycleState

log = logging.getLogger("stent.testing")

#: How many times :meth:`WorkflowHarness.finish` looks at an execution before it gives up.
MAX_CHECKS = 20_000
#: Virtual seconds that draining workers of a ``skip_idle_time`` harness give running tasks before handing back.
DRAIN_TIMEOUT = 5.0


class WorkflowStuck(AssertionError):
    """An execution cannot finish on its own: nothing runs, nothing is scheduled, or no worker serves it."""


class WorkflowHarness:
    def __init__(
        self,
        storage: Storage | None = None,
        *,
        seed: int = 7,
        executor: Stent | None = None,
        skip_idle_time: bool = False,
        **executor_options: Any,
    ) -> None:
        if executor is not None:
            if storage is not None or executor_options:
                raise ConfigurationError(
                    "WorkflowHarness takes either executor= or a storage with executor options, not both"
                )
            if not isinstance(executor, Stent) or not isinstance(executor.clock, FakeClock):
                raise ConfigurationError(
                    "WorkflowHarness(executor=...) needs a Stent executor on a FakeClock, so that it can move its"
                    f" time: build it with Stent(storage, clock=FakeClock()); got {executor!r}"
                )
            self.clock: FakeClock = executor.clock
            self.storage: Storage = executor.backend
            self.executor = executor
        else:
            self.clock = FakeClock()
            self.storage = storage if storage is not None else MemoryStorage()
            self.executor = Stent(self.storage, clock=self.clock, rng=random.Random(seed), **executor_options)
        self._owns_executor = executor is None
        self.skip_idle_time = skip_idle_time
        self.workers: list[tuple[WorkerLifecycle, asyncio.Future[None]]] = []
        self._claimer_of: dict[str, Claimer] = {}

    async def start_worker(self, name: str = "w1", **options: Any) -> WorkerLifecycle:
        lifecycle = self.executor.create_worker_lifecycle(name)
        self._claimer_of[name] = Claimer.of(options.get("queues"), options.get("tags"))
        options.setdefault("poll_interval", 0.5)
        options.setdefault("poll_interval_max", 1.0)
        serving = asyncio.ensure_future(self.executor.serve(worker_id=name, lifecycle=lifecycle, **options))
        self.workers.append((lifecycle, serving))
        ready = asyncio.ensure_future(lifecycle.wait_until_ready())
        try:
            await asyncio.wait((ready, serving), timeout=5, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if serving.done() and not serving.cancelled() and serving.exception() is not None:
            self.workers.pop()
            serving.result()  # bad serve() options: their ConfigurationError, raised here
        if lifecycle.state is LifecycleState.STARTING and not serving.done():
            raise TimeoutError(f"worker {name!r} was not ready after 5 seconds")
        return lifecycle

    async def settle(self, turns: int = 30) -> None:
        """Let every runnable coroutine run (and storage threads answer) without moving virtual time."""
        for _ in range(turns):
            await asyncio.sleep(0)
        if not isinstance(self.storage, MemoryStorage):
            # A storage that answers from another thread (SQLite) needs a moment of real time for each reply.
            await asyncio.sleep(0.002)  # noqa: STENT-CLOCK (a real pause for a storage thread to answer)
            for _ in range(turns):
                await asyncio.sleep(0)

    async def advance(self, seconds: float | timedelta | str, *, step: float = 1.0) -> None:
        """Move virtual time forward (seconds, a timedelta or text like ``"2h"``) in steps, letting the fleet
        react after each; with ``skip_idle_time``, idle stretches pass in one jump."""
        remaining = parse_duration(seconds, allow_zero=True, name="advance() duration")
        step = parse_duration(step, name="advance() step")
        if self.skip_idle_time:
            await self.settle()  # what the test just did happens now, before time moves
        while remaining > 0:
            idle = await self._idle_for() if self.skip_idle_time else None
            delta = min(remaining, step if idle is None else idle)
            self.clock.advance(delta)
            remaining -= delta
            await self.settle()

    async def wait_until(
        self, condition: Callable[[], bool | Awaitable[bool]], *, step: float = 0.5, max_virtual: float = 3600.0
    ) -> None:
        """Advance virtual time in steps until ``condition()`` holds; fail after ``max_virtual`` seconds."""
        spent = 0.0
        while True:
            await self.settle()
            outcome = condition()
            if not isinstance(outcome, bool):
                outcome = await outcome
            if outcome:
                return
            if spent >= max_virtual:
                raise AssertionError(f"condition still false after {spent}s of virtual time")
            self.clock.advance(step)
            spent += step

    async def finish(self, execution_id: str, *, step: float = 1.0, max_virtual: float | None = None) -> Any:
        """Advance virtual time until the execution ends, then return its result (or raise its error).

        Gives up after ``max_virtual`` seconds of virtual time: by default a week, or no limit with
        ``skip_idle_time`` (which fails with :class:`WorkflowStuck` as soon as the execution cannot go on).
        """
        step = parse_duration(step, name="finish() step")
        limit = math.inf if self.skip_idle_time else 7 * 86400.0
        if max_virtual is not None:
            limit = parse_duration(max_virtual, name="finish() max_virtual")
        spent = 0.0
        for _ in range(MAX_CHECKS):
            await self.settle()
            state = (await self.executor.state_of(execution_id)).state
            if state.terminal:
                return await self.executor.wait_for(execution_id)
            if spent >= limit:
                break
            delta = step
            if self.skip_idle_time:
                if not self.executor.worker_status_overview()["ready"]:
                    raise WorkflowStuck(
                        f"execution {execution_id} is {state.value} and no worker serves this executor: start one"
                        " (harness.start_worker(), or use the stent_worker fixture) before finish()"
                    )
                idle = await self._idle_for()
                if (await self.executor.state_of(execution_id)).state.terminal:
                    continue  # it ended while storage was read (which lets the fleet run): do not move time
                if idle == math.inf:
                    waits = await why_stuck(self.storage, execution_id, self._claimers())
                    raise WorkflowStuck(
                        f"execution {execution_id} is {state.value} and cannot go on by itself;"
                        f" it waits for {waits}"
                    )
                if idle is not None:
                    delta = idle  # straight to the moment storage has work
            self.clock.advance(delta)
            spent += delta
        raise AssertionError(f"execution {execution_id} still {state.value} after {spent:g}s of virtual time")

    async def run(self, fn: DurableFunction[..., Any] | str, *args: Any, **kwargs: Any) -> Any:
        """Dispatch ``fn(*args, **kwargs)`` (``dispatch()`` options too), run it to the end, return its result."""
        return await self.finish(await self.executor.dispatch(fn, *args, **kwargs))

    async def steps(self, execution_id: str) -> list[Step]:
        """The execution's root task and each step of its journal (see :func:`stent.testing.steps.steps_of`)."""
        return await steps_of(self.executor, execution_id)

    async def state(self, execution_id: str) -> ExecutionState:
        return (await self.executor.state_of(execution_id)).state

    async def stop(self) -> None:
        """Drain every worker started here; close the executor too unless it was passed in (``executor=``).

        With ``skip_idle_time``, tasks still running are given back after a few seconds of virtual time (a drain
        timeout), so a test that ends mid-workflow does not wait for them.
        """
        for lifecycle, serving in self.workers:
            self.executor.request_worker_drain(lifecycle, timeout=DRAIN_TIMEOUT if self.skip_idle_time else None)
        if self.skip_idle_time:  # the drain timeout runs on the fake clock: move it until every worker stops
            for _ in range(int(DRAIN_TIMEOUT) * 10):
                await self.settle()
                if all(serving.done() for _, serving in self.workers):
                    break
                self.clock.advance(1)
        for lifecycle, serving in self.workers:
            try:
                await asyncio.wait_for(serving, 10)
            except TimeoutError:
                serving.cancel()
            except (Exception, asyncio.CancelledError) as exc:  # a worker the test stopped or crashed on purpose
                log.debug("worker ended with %r", exc)
        self.workers.clear()
        if self._owns_executor:
            await self.executor.close()

    # -- skipping idle time ------------------------------------------------------------------------------

    def _workers(self, *states: str) -> list[str]:
        return [w["name"] for w in self.executor.worker_status_overview()["workers"] if w["state"] in states]

    def _claimers(self) -> list[Claimer]:
        # A worker started other than by start_worker() may take anything, as far as the harness knows.
        return [self._claimer_of.get(name, Claimer()) for name in self._workers("ready")]

    async def _idle_for(self) -> float | None:
        holders = set(self._workers("starting", "ready", "draining"))
        return await seconds_until_work(self.storage, self.clock.now(), holders=holders, claimers=self._claimers())
