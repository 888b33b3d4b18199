"""``WorkerLifecycle``: a handle on one ``serve()`` loop for readiness probes and graceful shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stent.worker.machine import LifecycleState


class WorkerLifecycle:
    """Tracks one worker through starting, ready, draining and stopped.

    Create it with ``executor.create_worker_lifecycle(name=...)`` and pass it to ``serve(lifecycle=...)``.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            from stent.errors import ConfigurationError

            raise ConfigurationError(f"a worker lifecycle needs a non-empty name, got {name!r}")
        self.name = name
        self._state = LifecycleState.STARTING
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._drain_requested = asyncio.Event()
        self.drain_timeout: float | None = None
        self.worker_id: str | None = None
        self.running_tasks = 0
        self._on_drain: list[Callable[[], None]] = []

    @property
    def state(self) -> LifecycleState:
        return self._state

    @property
    def drain_requested(self) -> bool:
        return self._drain_requested.is_set()

    def _set_state(self, state: LifecycleState) -> None:
        self._state = state
        if state is LifecycleState.READY:
            self._ready.set()
        if state is LifecycleState.STOPPED:
            self._ready.clear()
            self._stopped.set()

    def _request_drain(self, timeout: float | None = None) -> None:
        if timeout is not None:
            self.drain_timeout = timeout
        self._drain_requested.set()
        for wake in list(self._on_drain):
            wake()

    async def wait_until_ready(self) -> None:
        """Return once the worker claims work (or at once if it already does)."""
        if self._stopped.is_set():
            return
        ready = asyncio.ensure_future(self._ready.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((ready, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            stopped.cancel()

    async def wait_until_stopped(self) -> None:
        """Return once the worker has stopped."""
        await self._stopped.wait()

    def __repr__(self) -> str:
        return f"<WorkerLifecycle {self.name!r} {self._state.value}>"
