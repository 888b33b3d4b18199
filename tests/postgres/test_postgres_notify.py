"""Storage with ``notify=true``: each change that makes work ready or finishes a task is announced by NOTIFY from
inside its own transaction, so it is heard exactly when it commits.

Absence is shown by ordering: notifications of one channel arrive in commit order, so once a later marker has
arrived, an earlier notification that never came was never sent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import attrs
import pytest
from pg_observed import ObservedStorage

from stent import Stent
from stent.clocks import FakeClock
from stent.model import StepKey, TaskFailure, TaskKind, TaskState
from stent.ports import Notification
from stent.testing.conformance._support import new_execution, new_task, request, signal_wait
from stent.testing.conformance.notifier_support import Inbox
from stent_postgres import PostgresNotifier, PostgresStorage

Opener = Callable[..., Awaitable[PostgresStorage]]
TIMEOUT = 5.0


def work(queue: str) -> Notification:
    return Notification(kind="work", queue=queue)


def finished(task_id: str, execution_id: str) -> Notification:
    return Notification(kind="finished", task_id=task_id, execution_id=execution_id)


@pytest.fixture
async def notifying(open_storage: Opener) -> PostgresStorage:
    return await open_storage(notify=True)


@pytest.fixture
async def heard(pg_url: str, notifying: PostgresStorage) -> AsyncIterator[Inbox]:
    """What a listener on the storage's channel hears."""
    listener = PostgresNotifier(pg_url, schema=notifying.settings.schema)
    await listener.connect()
    inbox = Inbox()
    listener.subscribe(inbox)
    yield inbox
    await listener.close()


async def expect(inbox: Inbox, *notes: Notification) -> None:
    await inbox.receives(list(notes), TIMEOUT, f"{notes}")


async def mark(storage: PostgresStorage, inbox: Inbox, clock: FakeClock) -> None:
    """Create an execution on a queue of its own and wait until its announcement arrives."""
    queue = f"marker-{uuid.uuid4().hex[:8]}"
    await storage.create_execution(new_execution("marker", queue=queue), clock.now())
    await expect(inbox, work(queue))


def kinds_after(inbox: Inbox, start: int) -> list[Notification]:
    return [n for n in inbox.notes[start:] if not (n.queue or "").startswith("marker-")]


async def test_creation_announces_work_once(notifying: PostgresStorage, heard: Inbox) -> None:
    """A new execution announces work on its queue; creating it again (idempotent) announces nothing."""
    clock = FakeClock()
    new = new_execution("work", queue="fresh")
    await notifying.create_execution(new, clock.now())
    await expect(heard, work("fresh"))
    start = len(heard.notes)
    await notifying.create_execution(new, clock.now())
    await mark(notifying, heard, clock)
    assert kinds_after(heard, start) == []


async def test_steps_announce_their_queues_and_finishing_wakes_a_suspended_parent(
    notifying: PostgresStorage, heard: Inbox
) -> None:
    """New call steps announce work on their queues (finished sleeps and waits do not); a child finishing
    announces itself, and work on its parent's queue when that wakes the suspended parent."""
    clock = FakeClock()
    await notifying.create_execution(new_execution("parent", queue="top"), clock.now())
    (parent,) = await notifying.claim_tasks(request("w", ["parent"]), clock.now())
    sleep = new_task("stent.sleep", kind=TaskKind.SLEEP, state=TaskState.COMPLETED, result='"x"')
    steps = [new_task("child", queue="qa"), new_task("child", queue="qb"), sleep, signal_wait("s")]
    created = await notifying.get_or_create_steps(
        parent.fence, [(StepKey(parent.task_id, 1, n), t) for n, t in enumerate(steps)], clock.now()
    )
    await expect(heard, work("qa"), work("qb"))
    await notifying.suspend_task(parent.fence, waiting_on=[created[0].task_id], wake_at=None, now=clock.now())
    (child,) = await notifying.claim_tasks(request("w", ["child"], queues=["qa"]), clock.now())
    await notifying.complete_task(child.fence, "1", clock.now())
    await expect(heard, finished(child.task_id, child.execution_id), work("top"))


async def test_a_batch_of_completions_announces_what_each_would(notifying: PostgresStorage, heard: Inbox) -> None:
    """complete_tasks (one statement) announces each task finished, the queue of a suspended parent it woke, and
    the queue of a limited function whose slot it freed; a completion whose fence failed announces nothing."""
    clock = FakeClock()
    from stent.model import Completion, Fence

    await notifying.create_execution(new_execution("bparent", queue="btop"), clock.now())
    (parent,) = await notifying.claim_tasks(request("w", ["bparent"]), clock.now())
    (child,) = await notifying.get_or_create_steps(
        parent.fence, [(StepKey(parent.task_id, 1, 0), new_task("bchild", queue="bq"))], clock.now()
    )
    await notifying.suspend_task(parent.fence, waiting_on=[child.task_id], wake_at=None, now=clock.now())
    await notifying.create_execution(new_execution("blim", queue="blq", max_concurrent=1), clock.now())
    root = await notifying.create_execution(new_execution("broot", queue="brq"), clock.now())
    stale = await notifying.create_execution(new_execution("bstale", queue="bsq"), clock.now())
    claimed = await notifying.claim_tasks(request("w", ["bchild", "blim", "broot", "bstale"]), clock.now())
    by_function = {task.function: task for task in claimed}
    start = len(heard.notes)
    outcomes = await notifying.complete_tasks(
        [
            Completion(by_function["bchild"].fence, "1"),
            Completion(by_function["blim"].fence, "2"),
            Completion(by_function["broot"].fence, "3"),
            Completion(Fence(by_function["bstale"].task_id, by_function["bstale"].fence.token + 100), "4"),
        ],
        clock.now(),
    )
    assert [type(o).__name__ for o in outcomes] == ["TaskRecord", "TaskRecord", "TaskRecord", "LeaseLost"]
    limited = by_function["blim"]
    await heard.until(
        lambda notes: {
            finished(child.task_id, child.execution_id),
            finished(limited.task_id, limited.execution_id),
            finished(root[0].root_task_id, root[0].execution_id),
            work("btop"),
            work("blq"),
        }
        <= set(notes[start:]),
        TIMEOUT,
        "the batch's announcements",
    )
    await mark(notifying, heard, clock)
    assert finished(by_function["bstale"].task_id, stale[0].execution_id) not in kinds_after(heard, start)


async def test_plain_steps_announce_their_queues_and_leave_the_parent_waiting(
    notifying: PostgresStorage, heard: Inbox
) -> None:
    """Steps without signal waits or limits (written in one statement): new ready calls announce their queues
    once each, a finished sleep step announces nothing, and the parent waits; asking again for the same steps
    (a replay) returns the stored ones and announces nothing."""
    clock = FakeClock()
    await notifying.create_execution(new_execution("pparent", queue="ptop"), clock.now())
    (parent,) = await notifying.claim_tasks(request("w", ["pparent"]), clock.now())
    sleep = new_task("stent.sleep", kind=TaskKind.SLEEP, state=TaskState.COMPLETED, result='"x"')
    steps = [new_task("pchild", queue="pa"), new_task("pchild", queue="pb"), new_task("pchild", queue="pa"), sleep]
    keyed = [(StepKey(parent.task_id, 1, n), t) for n, t in enumerate(steps)]
    start = len(heard.notes)
    created = await notifying.get_or_create_steps(parent.fence, keyed, clock.now())
    await expect(heard, work("pa"), work("pb"))
    assert [t.state for t in created] == [TaskState.PENDING] * 3 + [TaskState.COMPLETED]
    assert (await notifying.get_task(parent.task_id)).state is TaskState.WAITING
    await mark(notifying, heard, clock)
    assert kinds_after(heard, start) == [work("pa"), work("pb")]
    start = len(heard.notes)
    fresh = [(key, attrs.evolve(new, task_id=f"other-{n}")) for n, (key, new) in enumerate(keyed)]
    again = await notifying.get_or_create_steps(parent.fence, fresh, clock.now())
    assert [t.task_id for t in again] == [t.task_id for t in created]
    await mark(notifying, heard, clock)
    assert kinds_after(heard, start) == []


async def test_a_child_of_a_waiting_parent_announces_only_itself(notifying: PostgresStorage, heard: Inbox) -> None:
    clock = FakeClock()
    await notifying.create_execution(new_execution("parent", queue="top2"), clock.now())
    (parent,) = await notifying.claim_tasks(request("w", ["parent"]), clock.now())
    await notifying.get_or_create_steps(
        parent.fence, [(StepKey(parent.task_id, 1, 0), new_task("c"))], clock.now()
    )
    (child,) = await notifying.claim_tasks(request("w", ["c"]), clock.now())
    start = len(heard.notes)
    await notifying.complete_task(child.fence, "1", clock.now())
    await expect(heard, finished(child.task_id, child.execution_id))
    await mark(notifying, heard, clock)
    assert Notification(kind="work", queue="top2") not in kinds_after(heard, start), "a waiting parent is not work"


async def test_failures_releases_replays_and_due_suspensions(notifying: PostgresStorage, heard: Inbox) -> None:
    """A final failure announces the task finished, a retry nothing (it is due later), a release and a replay
    announce work, and so does a suspension whose timer is already due."""
    clock = FakeClock()
    await notifying.create_execution(new_execution("f", queue="qf"), clock.now())
    (task,) = await notifying.claim_tasks(request("w", ["f"]), clock.now())
    start = len(heard.notes)
    retry = TaskFailure(error="E", reason="error", retry_at=clock.now() + timedelta(minutes=5))
    await notifying.fail_task(task.fence, retry, clock.now())
    await mark(notifying, heard, clock)
    assert kinds_after(heard, start) == [], "a retry due later was announced"
    clock.advance(300)
    (task,) = await notifying.claim_tasks(request("w", ["f"]), clock.now())
    await notifying.release_task(task.fence, clock.now())
    await expect(heard, work("qf"))
    (task,) = await notifying.claim_tasks(request("w", ["f"]), clock.now())
    await notifying.fail_task(task.fence, TaskFailure(error="E", reason="error"), clock.now())
    await expect(heard, finished(task.task_id, task.execution_id))
    start = len(heard.notes)
    await notifying.replay_dead_letter(task.task_id, "qr", clock.now())
    await expect(heard, work("qr"))
    (task,) = await notifying.claim_tasks(request("w", ["f"]), clock.now())
    await notifying.suspend_task(task.fence, waiting_on=[], wake_at=clock.now(), now=clock.now())
    await heard.until(lambda notes: notes[start:].count(work("qr")) >= 2, TIMEOUT, "the due suspension")


async def test_signals_cancellations_and_time_limits(notifying: PostgresStorage, heard: Inbox) -> None:
    """A signal that wakes a suspended waiter announces work on its queue; an execution cancelled or timed out
    at once announces its root finished."""
    clock = FakeClock()
    await notifying.create_execution(new_execution("p", queue="qs"), clock.now())
    (parent,) = await notifying.claim_tasks(request("w", ["p"]), clock.now())
    (wait,) = await notifying.get_or_create_steps(
        parent.fence, [(StepKey(parent.task_id, 1, 0), signal_wait("go"))], clock.now()
    )
    await notifying.suspend_task(parent.fence, waiting_on=[wait.task_id], wake_at=None, now=clock.now())
    start = len(heard.notes)
    await notifying.send_signal(parent.execution_id, "go", "1", clock.now())
    await heard.until(lambda notes: work("qs") in notes[start:], TIMEOUT, "the woken waiter")
    pending, _ = await notifying.create_execution(new_execution("x"), clock.now())
    await notifying.cancel_execution(pending.execution_id, clock.now())
    await expect(heard, finished(pending.root_task_id, pending.execution_id))
    limited, _ = await notifying.create_execution(
        new_execution("y", deadline=clock.now() + timedelta(seconds=1)), clock.now()
    )
    clock.advance(2)
    assert await notifying.time_out_executions(clock.now(), 10) == [limited.execution_id]
    await expect(heard, finished(limited.root_task_id, limited.execution_id))


async def test_a_limited_function_giving_a_slot_back_announces_its_queue(
    notifying: PostgresStorage, heard: Inbox
) -> None:
    """A task of a max_concurrent function that finishes, retries or suspends frees a slot: claims skipped that
    function's backlog, so work is announced on its queue."""
    clock = FakeClock()
    for _ in range(3):
        await notifying.create_execution(new_execution("lim", queue="ql", max_concurrent=1), clock.now())
    (task,) = await notifying.claim_tasks(request("w", ["lim"]), clock.now())
    start = len(heard.notes)
    await notifying.complete_task(task.fence, "1", clock.now())
    await heard.until(lambda notes: work("ql") in notes[start:], TIMEOUT, "the slot freed by a completion")
    (task,) = await notifying.claim_tasks(request("w", ["lim"]), clock.now())
    start = len(heard.notes)
    retry = TaskFailure(error="E", reason="error", retry_at=clock.now() + timedelta(minutes=1))
    await notifying.fail_task(task.fence, retry, clock.now())
    await heard.until(lambda notes: work("ql") in notes[start:], TIMEOUT, "the slot freed by a retry")
    (task,) = await notifying.claim_tasks(request("w", ["lim"]), clock.now())
    start = len(heard.notes)
    await notifying.suspend_task(
        task.fence, waiting_on=[], wake_at=clock.now() + timedelta(hours=1), now=clock.now()
    )
    await heard.until(lambda notes: work("ql") in notes[start:], TIMEOUT, "the slot freed by a suspension")


async def test_a_storage_without_notify_announces_nothing(
    pg_url: str, notifying: PostgresStorage, heard: Inbox
) -> None:
    clock = FakeClock()
    quiet = PostgresStorage(pg_url, schema=notifying.settings.schema, max_size=1)
    try:
        start = len(heard.notes)
        await quiet.create_execution(new_execution("q", queue="silent"), clock.now())
        (task,) = await quiet.claim_tasks(request("w", ["q"]), clock.now())
        await quiet.complete_task(task.fence, "1", clock.now())
        await mark(notifying, heard, clock)
        assert kinds_after(heard, start) == []
    finally:
        await quiet.close()


# -- end to end: the worker hears the storage ------------------------------------------------------------------

_STARTED: dict[str, asyncio.Event] = {}


@Stent.durable(name="pg-notify.report-start")
async def report_start(token: str) -> str:
    event = _STARTED.get(token)
    if event is not None:
        event.set()
    return token


async def test_an_idle_worker_hears_work_a_client_without_notifier_created(
    pg_url: str, notifying: PostgresStorage
) -> None:
    """A client with no notifier at all dispatches through a notifying storage; an idle worker polling every 5 s
    (with the PostgreSQL notifier) starts the task within a second, woken by the storage's own NOTIFY."""
    schema = notifying.settings.schema
    storage = ObservedStorage(pg_url, schema=schema, max_size=2)
    worker = Stent(storage, notification_backend=PostgresNotifier(pg_url, schema=schema))
    client = Stent(notifying)
    token = uuid.uuid4().hex
    started = _STARTED[token] = asyncio.Event()
    lifecycle = worker.create_worker_lifecycle(f"idle-{token[:6]}")
    serving = asyncio.ensure_future(worker.serve(lifecycle=lifecycle, poll_interval=5, poll_interval_max=5))
    try:
        await asyncio.wait_for(lifecycle.wait_until_ready(), 10)
        await asyncio.wait_for(storage.idle.wait(), 10)  # its first claim found nothing: it waits for 5 s now
        dispatched = time.monotonic()
        await client.dispatch(report_start, token)
        await asyncio.wait_for(started.wait(), 4.5)
        latency = time.monotonic() - dispatched
    finally:
        _STARTED.pop(token, None)
        worker.request_worker_drain(lifecycle)
        await asyncio.wait_for(serving, 10)
        await worker.close()
    assert latency < 1.0, f"the idle worker took {latency:.2f}s; the storage's NOTIFY should wake it at once"


async def test_a_process_does_not_hear_its_own_storage_announce_what_it_did(
    pg_url: str, notifying: PostgresStorage
) -> None:
    """A dispatch through a notifying storage wakes the dispatching process's workers once (directly), not a
    second time when its own NOTIFY comes back; a process with a storage of its own hears it once.

    NOTIFYs arrive in commit order: once each process has heard a marker committed after the dispatch by the
    other's storage, an echo of the dispatch would have arrived before it."""
    schema = notifying.settings.schema
    other_storage = PostgresStorage(pg_url, schema=schema, max_size=1, notify=True)
    here = Stent(notifying, notification_backend=PostgresNotifier(pg_url, schema=schema))
    there = Stent(other_storage, notification_backend=PostgresNotifier(pg_url, schema=schema))
    heard_here: list[str | None] = []
    heard_there: list[str | None] = []
    clock = FakeClock()
    try:
        (await here._started()).on_work(heard_here.append)  # what each process's workers listen to
        (await there._started()).on_work(heard_there.append)
        await here.dispatch(report_start, "echo")
        await other_storage.create_execution(new_execution("marker", queue="marker-there"), clock.now())
        await notifying.create_execution(new_execution("marker", queue="marker-here"), clock.now())
        await until(lambda: "marker-there" in heard_here and "marker-here" in heard_there)
        assert heard_here == ["default", "marker-there"]
        assert heard_there == ["default", "marker-here"]
    finally:
        await here.close()
        await there.close()
        await other_storage.close()


async def until(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds, looking every 10 ms for at most TIMEOUT seconds."""
    for _ in range(int(TIMEOUT * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the notifications did not arrive")
