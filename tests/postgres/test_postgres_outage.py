"""The server going away and coming back, staged with a TCP proxy in front of the shared server: calls fail fast
with StorageUnavailable while it is gone, the pool recovers by itself, and a worker loses nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from stent import ExecutionState, Stent
from stent.clocks import FakeClock
from stent.errors import StorageUnavailable
from stent.model import ClaimRequest, TaskRecord
from stent.testing.conformance._support import new_execution
from stent.testing.conformance.notifier_support import TcpProxy
from stent_postgres import PostgresStorage

Opener = Callable[..., Awaitable[PostgresStorage]]


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    server = TcpProxy("127.0.0.1", 5432)
    await server.start()
    yield server
    await server.stop()


def through(pg_url: str, proxy: TcpProxy) -> str:
    return pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")


async def test_calls_fail_fast_while_the_server_is_gone_and_work_when_it_is_back(
    pg_url: str, proxy: TcpProxy, open_storage: Opener
) -> None:
    clock = FakeClock()
    schema = (await open_storage()).settings.schema
    storage = PostgresStorage(through(pg_url, proxy), schema=schema, connect_timeout=1, max_size=2)
    try:
        await storage.create_execution(new_execution("work", execution_id="before"), clock.now())
        await proxy.stop()
        for _ in range(3):  # broken pooled connections, then refused new ones: all StorageUnavailable
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match=rf"127\.0\.0\.1:{proxy.port}"):
                await storage.get_execution("before")
            assert time.monotonic() - started < 3
        await proxy.start()
        assert (await storage.get_execution("before")) is not None
        created, _ = await storage.create_execution(new_execution("work", execution_id="after"), clock.now())
        assert created.execution_id == "after"
    finally:
        await storage.close()


class CountingStorage(PostgresStorage):
    """Counts the calls that found the server gone, so a test can wait until the worker has met the outage."""

    def __init__(self, dsn: str, **options: Any) -> None:
        super().__init__(dsn, **options)
        self.failures = 0
        self.failed = asyncio.Event()

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        try:
            return await super().claim_tasks(request, now)
        except StorageUnavailable:
            self.failures += 1
            self.failed.set()
            raise


_GATE: dict[str, asyncio.Event] = {}
_RUNS: list[int] = []


@Stent.durable(name="pg-outage.step")
async def step(n: int) -> int:
    gate = _GATE.get("open")
    if gate is not None:
        await gate.wait()
    _RUNS.append(n)
    return n * n


@Stent.durable(name="pg-outage.flow")
async def flow(count: int) -> int:
    total = 0
    for n in range(count):
        total += await step(n)
    return total


async def test_a_worker_rides_out_an_outage_and_loses_nothing(
    pg_url: str, proxy: TcpProxy, open_storage: Opener
) -> None:
    """Executions dispatched before the server goes away all complete once it is back, each step once."""
    direct = await open_storage()
    schema = direct.settings.schema
    storage = CountingStorage(through(pg_url, proxy), schema=schema, connect_timeout=1, max_size=4)
    worker = Stent(storage, poll_min_interval=0.05, poll_max_interval=0.2)
    client = Stent(direct, poll_min_interval=0.05, poll_max_interval=0.2)
    gate = _GATE["open"] = asyncio.Event()
    _RUNS.clear()
    ids = [await client.dispatch(flow, 4) for _ in range(5)]
    lifecycle = worker.create_worker_lifecycle("outage-worker")
    serving = asyncio.ensure_future(
        worker.serve(
            lifecycle=lifecycle,
            poll_interval=0.05,
            poll_interval_max=0.2,
            lease_duration=30,
            heartbeat_interval=10,
        )
    )

    async def steps_running() -> bool:
        tasks = [t for i in ids for t in await direct.list_execution_tasks(i)]
        return sum(t.function == "pg-outage.step" and t.state.value == "running" for t in tasks) == len(ids)

    try:
        await asyncio.wait_for(lifecycle.wait_until_ready(), 10)
        deadline = time.monotonic() + 20
        while not await steps_running():  # bounded polling on the worker's progress
            assert time.monotonic() < deadline, "the worker never started the first steps"
            await asyncio.sleep(0.05)
        await proxy.stop()
        await asyncio.wait_for(storage.failed.wait(), 20)  # the worker met the outage
        gate.set()  # the running steps finish while their results cannot be written
        more = [await client.dispatch(flow, 3) for _ in range(3)]  # written while the worker cannot reach it
        await proxy.start()
        results = [await client.wait_for(i, expiry=60) for i in ids + more]
    finally:
        _GATE.pop("open", None)
        worker.request_worker_drain(lifecycle)
        await asyncio.wait_for(serving, 20)
        await worker.close()
    assert results == [14] * 5 + [5] * 3
    assert len(_RUNS) == 5 * 4 + 3 * 3, "a step ran more than once (or not at all)"
    for execution_id in ids + more:
        tasks = await direct.list_execution_tasks(execution_id)
        steps = [t for t in tasks if t.parent_task_id]
        assert len({t.step for t in steps}) == len(steps), "a step was created twice"
        assert (await client.state_of(execution_id)).state is ExecutionState.COMPLETED
    assert storage.failures >= 1
