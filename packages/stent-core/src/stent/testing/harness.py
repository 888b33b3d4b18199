"""Drive an executor and its workers on a fake clock: the engine's own tests use it, and so can yours.

``WorkflowHarness`` owns an executor on the given storage with a :class:`~stent.clocks.FakeClock`.  Start workers
with :meth:`start_worker`; move virtual time with :meth:`advance`; :meth:`finish` advances time in steps until an
execution ends and returns its result.  A workflow that sleeps for days finishes in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from stent.clocks import FakeClock
from stent.executor import Stent
from stent.memory import MemoryStorage
from stent.model import ExecutionState
from stent.ports import Storage
from stent.worker.lifecycle import WorkerLifecycle

log = logging.getLogger("stent.testing")


class WorkflowHarness:
    def __init__(self, storage: Storage | None = None, *, seed: int = 7, **executor_options: Any) -> None:
        self.clock = FakeClock()
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.executor = Stent(self.storage, clock=self.clock, rng=random.Random(seed), **executor_options)
        self.workers: list[tuple[WorkerLifecycle, asyncio.Future[None]]] = []

    async def start_worker(self, name: str = "w1", **options: Any) -> WorkerLifecycle:
        lifecycle = self.executor.create_worker_lifecycle(name)
        options.setdefault("poll_interval", 0.5)
        options.setdefault("poll_interval_max", 1.0)
        serving = asyncio.ensure_future(self.executor.serve(worker_id=name, lifecycle=lifecycle, **options))
        self.workers.append((lifecycle, serving))
        await asyncio.wait_for(lifecycle.wait_until_ready(), 5)
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

    async def advance(self, seconds: float, *, step: float = 1.0) -> None:
        """Move virtual time forward in steps, letting the fleet react after each."""
        remaining = seconds
        while remaining > 0:
            delta = min(step, remaining)
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

    async def finish(self, execution_id: str, *, step: float = 1.0, max_virtual: float = 7 * 86400) -> Any:
        """Advance virtual time until the execution ends, then return its result (or raise its error)."""
        spent = 0.0
        for _ in range(20_000):
            await self.settle()
            state = (await self.executor.state_of(execution_id)).state
            if state.terminal:
                return await self.executor.wait_for(execution_id)
            if spent >= max_virtual:
                break
            self.clock.advance(step)
            spent += step
        raise AssertionError(f"execution {execution_id} still {state.value} after {spent}s of virtual time")

    async def state(self, execution_id: str) -> ExecutionState:
        return (await self.executor.state_of(execution_id)).state

    async def stop(self) -> None:
        for lifecycle, serving in self.workers:
            self.executor.request_worker_drain(lifecycle)
        for lifecycle, serving in self.workers:
            try:
                await asyncio.wait_for(serving, 10)
            except TimeoutError:
                serving.cancel()
            except (Exception, asyncio.CancelledError) as exc:  # a worker the test stopped or crashed on purpose
                log.debug("worker ended with %r", exc)
        await self.executor.close()
