"""Conformance, end to end: a real worker over the notifier under test is woken by it, and still finishes
everything by polling when every notification is lost."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

import attrs
import pytest

from stent import DurableFunction, Stent, durable
from stent.clocks import SystemClock
from stent.memory import MemoryStorage
from stent.model import ClaimRequest, TaskRecord
from stent.ports import Notification, NotificationListener, Notifier
from stent.testing.conformance.capabilities import requires_capability
from stent.testing.conformance.notifier_support import NotifierCase, NotifierFactory

_STARTED: dict[str, asyncio.Event] = {}


@attrs.frozen
class Workflows:
    """The durable functions the end-to-end tests run."""

    report_start: DurableFunction[[str], str]
    sum_of_doubles: DurableFunction[[int], int]


@functools.cache
def workflows() -> Workflows:
    """Define (and so register) the end-to-end tests' durable functions on first use, not at import: importing
    the suite must not add functions to every worker of the process."""

    @durable(name="notifier-conformance:report-start")
    async def report_start(token: str) -> str:
        """Tell the test that a worker started this task."""
        event = _STARTED.get(token)
        if event is not None:
            event.set()
        return token

    @durable(name="notifier-conformance:double")
    async def double(value: int) -> int:
        return value * 2

    @durable(name="notifier-conformance:sum-of-doubles")
    async def sum_of_doubles(count: int) -> int:
        """A parent with children, so finishing tasks wakes waiters inside the worker as well as outside."""
        return sum(await asyncio.gather(*(double(i) for i in range(count))))

    return Workflows(report_start, sum_of_doubles)


class ObservedStorage(MemoryStorage):
    """Memory storage that tells a test when a worker's claim found nothing, so the worker is idle."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = asyncio.Event()

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        claimed = await super().claim_tasks(request, now)
        if not claimed:
            self.idle.set()
        return claimed


class LosingNotifier:
    """Wraps a notifier and loses every notification it receives, as a flaky network may."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner
        self.lost = 0
        self._lost = asyncio.Event()

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, notifications: Sequence[Notification]) -> None:
        await self.inner.publish(notifications)

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        def lose(note: Notification) -> None:
            self.lost += 1
            self._lost.set()

        return self.inner.subscribe(lose)

    async def wait_lost(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._lost.wait(), timeout)
        except TimeoutError:
            pytest.fail(f"no notification reached the worker's notifier within {timeout:g}s, so none was lost")


@contextlib.asynccontextmanager
async def serving(executor: Stent, **options: Any) -> AsyncIterator[None]:
    """Run a worker of ``executor`` for the duration of the block, then drain it."""
    workflows()  # registered before the worker starts, since a worker claims the functions known at its start
    lifecycle = executor.create_worker_lifecycle(f"conformance-{uuid.uuid4().hex[:8]}")
    worker = asyncio.ensure_future(executor.serve(lifecycle=lifecycle, **options))
    try:
        await asyncio.wait_for(lifecycle.wait_until_ready(), 10)
        yield
    finally:
        executor.request_worker_drain(lifecycle)
        try:
            await asyncio.wait_for(asyncio.shield(worker), 10)
        except TimeoutError:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            raise


class NotifierPollingFallbackConformance(NotifierCase):
    """Two executors over one storage stand for two processes: a client that dispatches and waits, and a worker;
    each has its own notifier, so only the notifier under test carries wake-ups between them."""

    #: The idle worker's poll interval in the pick-up test; a notification must beat it by far.
    IDLE_POLL_INTERVAL = 5.0
    #: Seconds an idle worker may take to start a task announced by a notification.
    PICKUP_LIMIT = 1.0
    #: Seconds the polling fallback may take to finish the executions of the lost-notification test.
    FALLBACK_TIMEOUT = 15.0

    async def test_idle_worker_picks_up_announced_work_well_before_its_poll(
        self, make_notifier: NotifierFactory
    ) -> None:
        """A worker idling on a 5 s poll interval starts a task dispatched by another process in under 1 s."""
        storage = ObservedStorage()
        await storage.init_db()
        worker = Stent(storage, notification_backend=await make_notifier())
        client = Stent(storage, notification_backend=await make_notifier())
        token = uuid.uuid4().hex
        started = _STARTED[token] = asyncio.Event()
        clock = SystemClock()
        try:
            interval = self.IDLE_POLL_INTERVAL
            async with serving(worker, poll_interval=interval, poll_interval_max=interval):
                await asyncio.wait_for(storage.idle.wait(), self.DELIVERY_TIMEOUT)
                dispatched_at = clock.monotonic()
                await client.dispatch(workflows().report_start, token)
                try:
                    await asyncio.wait_for(started.wait(), interval)
                except TimeoutError:
                    pytest.fail(f"the idle worker did not start the task within its {interval:g}s poll interval")
                latency = clock.monotonic() - dispatched_at
        finally:
            _STARTED.pop(token, None)
            await worker.close()
            await client.close()
        assert latency < self.PICKUP_LIMIT < interval, (
            f"the worker took {latency:.3f}s to start announced work; a notification should wake it in well under"
            f" {self.PICKUP_LIMIT:g}s, its poll interval being {interval:g}s"
        )

    async def test_lost_notifications_delay_but_never_lose_work(self, make_notifier: NotifierFactory) -> None:
        """With every notification lost on arrival, workers and waiters still finish everything by polling."""
        storage = MemoryStorage()
        await storage.init_db()
        worker_side = LosingNotifier(await make_notifier())
        client_side = LosingNotifier(await make_notifier())
        polling: dict[str, Any] = {"poll_min_interval": 0.05, "poll_max_interval": 0.2}
        worker = Stent(storage, notification_backend=worker_side, **polling)
        client = Stent(storage, notification_backend=client_side, **polling)
        try:
            async with serving(worker, poll_interval=0.05, poll_interval_max=0.2):
                ids = [await client.dispatch(workflows().sum_of_doubles, n) for n in (1, 3, 5)]
                results = [await client.wait_for(i, expiry=self.FALLBACK_TIMEOUT) for i in ids]
                # The notifier did carry the announcement; losing it is what this test is about.
                await worker_side.wait_lost(self.DELIVERY_TIMEOUT)
        finally:
            await worker.close()
            await client.close()
        assert results == [0, 6, 20]

    @requires_capability("make_unreachable_notifier")
    async def test_unreachable_notifier_leaves_stent_polling_with_one_warning(
        self, unreachable: Callable[[], Notifier], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A notifier whose server is down at start costs one warning each; dispatch, work and waits still succeed."""
        caplog.set_level(logging.DEBUG)
        storage = MemoryStorage()
        await storage.init_db()
        polling: dict[str, Any] = {"poll_min_interval": 0.05, "poll_max_interval": 0.2}
        worker = Stent(storage, notification_backend=unreachable(), **polling)
        client = Stent(storage, notification_backend=unreachable(), **polling)
        try:
            async with serving(worker, poll_interval=0.05, poll_interval_max=0.2):
                run = workflows().sum_of_doubles
                ids = [await client.dispatch(run, 3), await worker.dispatch(run, 4)]
                results = [await client.wait_for(i, expiry=self.FALLBACK_TIMEOUT) for i in ids]
        finally:
            await worker.close()
            await client.close()
        assert results == [6, 12]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        # The worker's and the client's notifiers (two processes' worth) each warn once, however long it lasts.
        assert len(warnings) == 2, [r.getMessage() for r in warnings]
