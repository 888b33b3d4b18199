"""wait_for and the waiter registry: what storage reads a waiter costs, and that no finish is ever missed.

A "worker elsewhere" is played by hand: its claim and completion go straight to the shared storage, and its
"finished" hint goes through the shared notifier (or is lost).  The clock is fake, so a waiter that returns
without the clock moving was woken by a hint, never by a poll.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from stent import ExecutionNotFound, Stent
from stent.clocks import FakeClock
from stent.memory import MemoryStorage
from stent.ports import Notification
from stent.testing.conformance._support import request

SAFETY = 5.0  # seconds of real time before a test gives up on a waiter that should already be done


@Stent.durable
async def triple(x: int) -> int:
    return 3 * x


class CountingStorage:
    """The shared storage, counting the reads this process makes."""

    def __init__(self, inner: MemoryStorage) -> None:
        self._inner = inner
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name in ("get_execution", "get_tasks"):

            async def counted(*args: Any, **kwargs: Any) -> Any:
                self.reads[name] += 1
                return await attribute(*args, **kwargs)

            return counted
        return attribute


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shared() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def notifier() -> Any:
    return Stent.notifications.MemoryBackend()


@pytest.fixture
async def client(shared: MemoryStorage, notifier: Any, clock: FakeClock) -> Any:
    executor = Stent(
        CountingStorage(shared),
        notification_backend=notifier,
        clock=clock,
        poll_min_interval=1,
        poll_max_interval=8,
        poll_backoff_factor=2,
    )
    yield executor
    await executor.close()


async def finish_elsewhere(
    shared: MemoryStorage, notifier: Any, clock: FakeClock, *, hint: bool = True
) -> list[str]:
    """Run every ready triple() as another process would, announcing each end when ``hint``; their ids."""
    tasks = await shared.claim_tasks(request("elsewhere", [triple.name], limit=100), clock.now())
    for task in tasks:
        await shared.complete_task(task.fence, "3", clock.now())
    if hint:
        await notifier.publish(
            [Notification(kind="finished", task_id=t.task_id, execution_id=t.execution_id) for t in tasks]
        )
    return [t.execution_id for t in tasks]


async def turns(count: int = 5) -> None:
    """Let the event loop run ``count`` turns (what is scheduled now, and what that schedules, happens)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def until_done(waiter: asyncio.Future[Any], clock: FakeClock, *, advance: float = 0.0) -> Any:
    """Let the loop run (moving the fake clock by ``advance`` first) until ``waiter`` is done."""
    if advance:
        clock.advance(advance)
    return await asyncio.wait_for(asyncio.shield(waiter), SAFETY)


async def test_waiting_for_an_execution_dispatched_here_reads_it_once(
    client: Any, shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    execution_id = await client.dispatch(triple, 1)
    waiter = asyncio.ensure_future(client.wait_for(execution_id))
    await asyncio.sleep(0)
    await finish_elsewhere(shared, notifier, clock)
    assert await until_done(waiter, clock) == 3
    assert client.backend.reads["get_execution"] == 1  # the read the hint asked for, none before it


async def test_a_hint_that_arrived_before_the_waiter_is_not_missed(
    client: Any, shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    """The execution finished (and its hint came) between dispatch and wait_for: wait_for returns at once,
    not at the next poll."""
    execution_id = await client.dispatch(triple, 2)
    await finish_elsewhere(shared, notifier, clock)
    assert await until_done(asyncio.ensure_future(client.wait_for(execution_id)), clock) == 3


async def test_an_execution_dispatched_elsewhere_is_read_first(
    client: Any, shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    """wait_for on an id this process did not dispatch reads it first: a finished one returns at once, and an
    unknown one is an error, not a wait."""
    other = Stent(shared, clock=clock)
    execution_id = await other.dispatch(triple, 3)
    await finish_elsewhere(shared, notifier, clock, hint=False)
    assert await until_done(asyncio.ensure_future(client.wait_for(execution_id)), clock) == 3
    with pytest.raises(ExecutionNotFound):
        await client.wait_for("no-such-execution")


async def test_a_hint_reads_only_the_executions_it_names(
    client: Any, shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    ids = [await client.dispatch(triple, i) for i in range(10)]
    waiters = [asyncio.ensure_future(client.wait_for(e)) for e in ids]
    await asyncio.sleep(0)
    tasks = await shared.claim_tasks(request("elsewhere", [triple.name], limit=100), clock.now())
    first = next(t for t in tasks if t.execution_id == ids[0])
    await shared.complete_task(first.fence, "3", clock.now())
    await notifier.publish([Notification(kind="finished", task_id=first.task_id, execution_id=ids[0])])
    await until_done(waiters[0], clock)
    assert client.backend.reads["get_execution"] == 1, "nine executions nobody named were read too"
    assert not any(w.done() for w in waiters[1:])
    for waiter in waiters:
        waiter.cancel()


async def test_a_lost_hint_costs_one_poll_even_while_other_hints_keep_coming(
    client: Any, shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    """Hints about other executions keep the poller busy; the execution whose hint was lost is still found at
    the next full poll (poll_min_interval here: 1 s)."""
    lost, busy = await client.dispatch(triple, 1), await client.dispatch(triple, 2)
    lost_waiter = asyncio.ensure_future(client.wait_for(lost))
    busy_waiter = asyncio.ensure_future(client.wait_for(busy))
    await asyncio.sleep(0)
    tasks = {t.execution_id: t for t in await shared.claim_tasks(request("e", [triple.name]), clock.now())}
    await shared.complete_task(tasks[lost].fence, "3", clock.now())  # finished, its hint lost
    advanced = 0.0
    while not lost_waiter.done():  # a hint every 0.3 s, each naming only the other execution
        assert advanced < 1.0 + 0.3, "the lost hint's execution was not found by the next full poll"
        await notifier.publish([Notification(kind="finished", task_id=tasks[busy].task_id, execution_id=busy)])
        await turns()
        clock.advance(0.3)
        advanced += 0.3
        await turns()
    assert advanced >= 1.0, "found before its poll was due: the hints about the other execution read it too"
    assert await until_done(lost_waiter, clock) == 3
    busy_waiter.cancel()


async def test_hints_about_other_tasks_of_an_awaited_execution_read_nothing(
    client: Any, shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    """A workflow's children finishing elsewhere are announced too; only its root's end is worth a read."""
    execution_id = await client.dispatch(triple, 1)
    waiter = asyncio.ensure_future(client.wait_for(execution_id))
    await asyncio.sleep(0)
    for step in range(3):
        await notifier.publish([Notification(kind="finished", task_id=f"child-{step}", execution_id=execution_id)])
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert client.backend.reads["get_execution"] == 0
    await finish_elsewhere(shared, notifier, clock)
    assert await until_done(waiter, clock) == 3
    assert client.backend.reads["get_execution"] == 1


async def test_a_process_passes_over_its_own_hints_and_hears_the_others(
    shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    """A dispatch wakes the dispatching process's own workers once (directly, not again when its hint comes
    back through the notifier), and another process's once."""
    here, there = (
        Stent(shared, notification_backend=notifier, clock=clock),
        Stent(shared, notification_backend=notifier, clock=clock),
    )
    heard_here: list[str | None] = []
    heard_there: list[str | None] = []
    (await here._started()).on_work(heard_here.append)  # what a worker of each process listens to
    (await there._started()).on_work(heard_there.append)
    await here.dispatch(triple, 1)
    await turns()  # the hint is published in the background
    assert [n.kind for n in notifier.published] == ["work"]
    assert heard_here == ["default"]
    assert heard_there == ["default"]
    await here.close()
    await there.close()


class SoonNotifier:
    """The memory notifier with the optional publish_soon, which takes hints only when ``taking``."""

    def __init__(self, inner: Any, *, taking: bool) -> None:
        self.inner = inner
        self.taking = taking
        self.soon: list[Notification] = []
        self.awaited: list[Notification] = []

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    def subscribe(self, listener: Any) -> Any:
        return self.inner.subscribe(listener)

    async def publish(self, notifications: Any) -> None:
        self.awaited.extend(notifications)
        await self.inner.publish(notifications)

    def publish_soon(self, notifications: Any) -> bool:
        if self.taking:
            self.soon.extend(notifications)
        return self.taking


@pytest.mark.parametrize("taking", [True, False])
async def test_a_notifier_that_publishes_soon_is_not_awaited(
    shared: MemoryStorage, notifier: Any, clock: FakeClock, taking: bool
) -> None:
    """A notifier with publish_soon gets the hints there; when it declines them, they are published as usual."""
    soon = SoonNotifier(notifier, taking=taking)
    executor = Stent(shared, notification_backend=soon, clock=clock)
    await executor.dispatch(triple, 1)
    await turns()
    sent = soon.soon if taking else soon.awaited
    assert [(n.kind, n.queue) for n in sent] == [("work", "default")]
    assert (soon.awaited if taking else soon.soon) == []
    await executor.close()


@Stent.durable(max_concurrent=1, queue="limited")
async def one_at_a_time(x: int) -> int:
    return x


async def test_a_limited_task_that_ends_announces_the_slot_it_frees(
    shared: MemoryStorage, notifier: Any, clock: FakeClock
) -> None:
    """Claims skip a max_concurrent function's ready tasks while it is full: when one of its tasks ends, its queue
    is announced as work, here and to other processes."""
    here, there = (
        Stent(shared, notification_backend=notifier, clock=clock),
        Stent(shared, notification_backend=notifier, clock=clock),
    )
    heard_here: list[str | None] = []
    heard_there: list[str | None] = []
    rt = await here._started()
    rt.on_work(heard_here.append)
    (await there._started()).on_work(heard_there.append)
    execution_id = await here.dispatch(one_at_a_time, 1)
    (task,) = await shared.claim_tasks(request("w", [one_at_a_time.name]), clock.now())
    record = await shared.complete_task(task.fence, "1", clock.now())
    heard_here.clear()
    heard_there.clear()
    await rt.task_finished(record)
    await turns()
    assert heard_here == ["limited"] and heard_there == ["limited"]
    assert await until_done(asyncio.ensure_future(here.wait_for(execution_id)), clock) == 1
    await here.close()
    await there.close()


async def test_without_hints_a_waiter_polls_at_growing_intervals(
    client: Any, shared: MemoryStorage, clock: FakeClock
) -> None:
    """Nothing announced: the waiter reads at poll_min_interval (1 s here), then each interval twice the last, up
    to poll_max_interval (8 s): at 1, 3, 7, 15 and 23 s."""
    other = Stent(shared, clock=clock)
    execution_id = await other.dispatch(triple, 1)
    waiter = asyncio.ensure_future(client.wait_for(execution_id))
    await turns()
    reads_at = []
    before = client.backend.reads["get_execution"]  # the first look, before waiting
    for second in range(1, 25):
        clock.advance(1)
        await turns()
        if client.backend.reads["get_execution"] > before:
            reads_at.append(second)
            before = client.backend.reads["get_execution"]
    assert reads_at == [1, 3, 7, 15, 23]
    waiter.cancel()
