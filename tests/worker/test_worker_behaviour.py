"""Workers as the guide describes them: polling, routing, limits, drain, cleanup, metrics, logging, options."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import timedelta

import pytest

from stent import ConfigurationError, ExecutionState, LifecycleState, Stent, install_structured_logging
from stent.memory import MemoryStorage
from stent.testing.harness import WorkflowHarness

SEEN: list[str] = []
GATES: list[asyncio.Event] = []


@Stent.durable(queue="critical")
async def critical_job(n: int) -> str:
    SEEN.append(f"critical:{n}")
    return "c"


@Stent.durable(queue="background")
async def background_job(n: int) -> str:
    SEEN.append(f"background:{n}")
    return "b"


@Stent.durable(tags=["billing"])
async def charge_customer(n: int) -> str:
    SEEN.append(f"billing:{n}")
    return "charged"


@Stent.durable(tags=["notifications"])
async def send_alert(n: int) -> str:
    SEEN.append(f"alert:{n}")
    return "sent"


@Stent.durable
async def untagged(n: int) -> str:
    SEEN.append(f"untagged:{n}")
    return "u"


@Stent.durable(priority=10)
async def urgent(n: int) -> str:
    SEEN.append(f"urgent:{n}")
    return "!"


@Stent.durable
async def blocked(n: int) -> str:
    SEEN.append(f"blocked:{n}")
    await GATES[-1].wait()
    return "unblocked"


@Stent.durable
async def orchestrates_background() -> str:
    return await background_job(1)


@Stent.durable(max_concurrent=2)
async def limited(n: int) -> int:
    SEEN.append(f"start:{n}")
    await GATES[-1].wait()
    SEEN.append(f"end:{n}")
    return n


@Stent.durable(max_concurrent=1)
async def limited_parent() -> list[int]:
    return await limited.map([100, 101])


@pytest.fixture(autouse=True)
def _reset() -> None:
    SEEN.clear()
    GATES.append(asyncio.Event())


async def claim_times(h: WorkflowHarness, seconds: float) -> list[float]:
    times: list[float] = []
    original = h.storage.claim_tasks

    async def spy(request, now):  # type: ignore[no-untyped-def]
        times.append(h.clock.monotonic())
        return await original(request, now)

    h.storage.claim_tasks = spy  # type: ignore[method-assign]
    await h.start_worker(poll_interval=0.5, poll_interval_max=5.0, poll_backoff_factor=2.0)
    await h.advance(seconds, step=0.25)
    return times


async def test_idle_worker_polls_with_the_guides_backoff() -> None:
    """An idle worker polls after 0.5, 1, 2, 4, then every 5 seconds."""
    h = WorkflowHarness()
    times = await claim_times(h, 25)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert gaps[:6] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    await h.stop()


async def test_work_notification_resets_polling_to_the_minimum() -> None:
    """A dispatch in the process wakes an idle worker at once and its backoff starts over."""
    h = WorkflowHarness()
    times = await claim_times(h, 12)
    before = len(times)
    moment = h.clock.monotonic()
    eid = await h.executor.dispatch(untagged, 1)
    await h.settle()
    assert len(times) > before and times[before] == moment  # claimed at once, no time passed
    assert (await h.executor.state_of(eid)).state is ExecutionState.COMPLETED
    await h.stop()


async def test_queue_routing(harness: WorkflowHarness) -> None:
    """A worker with queues takes only those; a worker without takes every queue."""
    await harness.start_worker("critical-worker", queues=["critical"])
    c = await harness.executor.dispatch(critical_job, 1)
    b = await harness.executor.dispatch(background_job, 1)
    await harness.wait_until(lambda: bool(SEEN))
    await harness.advance(3)
    assert SEEN == ["critical:1"]
    assert await harness.executor.queue_depth("background") == 1
    assert await harness.executor.queue_depth() == 1
    await harness.start_worker("general-worker")
    await harness.finish(b)
    assert await harness.state(c) is ExecutionState.COMPLETED
    assert await harness.executor.queue_depth() == 0


async def test_tag_routing_takes_matching_and_untagged_tasks(harness: WorkflowHarness) -> None:
    """A billing worker runs billing-tagged and untagged tasks, never notification tasks."""
    await harness.start_worker("billing-worker", tags=["billing"])
    ids = [
        await harness.executor.dispatch(charge_customer, 1),
        await harness.executor.dispatch(send_alert, 1),
        await harness.executor.dispatch(untagged, 1),
    ]
    await harness.wait_until(lambda: len(SEEN) >= 2)
    await harness.advance(3)
    assert sorted(SEEN) == ["billing:1", "untagged:1"]
    assert await harness.state(ids[1]) is ExecutionState.PENDING


async def test_higher_priority_runs_first(harness: WorkflowHarness) -> None:
    """With one slot, a later high-priority task runs before earlier normal ones."""
    for n in range(3):
        await harness.executor.dispatch(untagged, n)
    await harness.executor.dispatch(urgent, 1)
    await harness.start_worker(max_concurrency=1)
    await harness.wait_until(lambda: bool(SEEN))
    assert SEEN[0] == "urgent:1"


async def test_no_head_of_line_blocking(harness: WorkflowHarness) -> None:
    """An eligible task is claimed however many ineligible tasks are ahead of it."""
    for n in range(60):
        await harness.executor.dispatch(send_alert, n)
    eid = await harness.executor.dispatch(charge_customer, 99)
    await harness.start_worker(tags=["billing"], max_concurrency=1)
    await harness.finish(eid)
    assert SEEN == ["billing:99"]


async def test_max_concurrent_is_never_exceeded_and_waiting_parents_hold_no_slot(harness: WorkflowHarness) -> None:
    """Only two `limited` tasks run at once; a parent waiting on children does not count toward its limit."""
    await harness.start_worker(max_concurrency=20)
    parents = [await harness.executor.dispatch(limited_parent) for _ in range(2)]
    await harness.wait_until(lambda: len([s for s in SEEN if s.startswith("start")]) >= 2)
    await harness.advance(3)
    assert len([s for s in SEEN if s.startswith("start")]) == 2
    GATES[-1].set()
    for eid in parents:
        assert await harness.finish(eid) == [100, 101]
    starts = ends = 0
    peak = 0
    for event in SEEN:
        if event.startswith("start"):
            starts += 1
        else:
            ends += 1
        peak = max(peak, starts - ends)
    assert peak <= 2


async def test_drain_lets_running_work_finish_then_stops(harness: WorkflowHarness) -> None:
    """Draining claims nothing new, lets the running task finish, then stops; the overview says draining at once."""
    lifecycle = await harness.start_worker()
    eid = await harness.executor.dispatch(blocked, 1)
    await harness.wait_until(lambda: "blocked:1" in SEEN)
    harness.executor.request_worker_drain(lifecycle)
    await harness.settle()
    overview = harness.executor.worker_status_overview()
    assert overview["draining"] is True and lifecycle.state is LifecycleState.DRAINING
    later = await harness.executor.dispatch(untagged, 2)
    GATES[-1].set()
    await asyncio.wait_for(lifecycle.wait_until_stopped(), 5)
    assert await harness.state(eid) is ExecutionState.COMPLETED
    assert await harness.state(later) is ExecutionState.PENDING
    assert harness.executor.worker_status_overview()["ready"] is False


async def test_drain_suspends_a_waiting_orchestrator_for_another_worker(harness: WorkflowHarness) -> None:
    """A draining worker hands back an orchestrator waiting on a child nobody here will run; it does not hang."""
    lifecycle = await harness.start_worker("default-only", queues=["default"])
    eid = await harness.executor.dispatch(orchestrates_background)

    async def parent_waits() -> bool:
        tasks = await harness.storage.list_execution_tasks(eid)
        return len(tasks) == 2 and tasks[0].state.value == "waiting"

    await harness.wait_until(parent_waits)
    harness.executor.request_worker_drain(lifecycle)
    await asyncio.wait_for(lifecycle.wait_until_stopped(), 5)
    await harness.start_worker("everything")
    assert await harness.finish(eid) == "b"


async def test_drain_timeout_releases_tasks_that_do_not_finish(harness: WorkflowHarness) -> None:
    """With a drain timeout, a task still running when it passes is handed back and the worker stops."""
    lifecycle = await harness.start_worker("slow", drain_timeout=10)
    eid = await harness.executor.dispatch(blocked, 1)
    await harness.wait_until(lambda: "blocked:1" in SEEN)
    harness.executor.request_worker_drain(lifecycle)
    await harness.advance(11)
    await asyncio.wait_for(lifecycle.wait_until_stopped(), 5)
    [task] = await harness.storage.list_execution_tasks(eid)
    assert task.state.value == "pending" and task.lease_owner is None
    GATES[-1].set()
    await harness.start_worker("rescuer")
    assert await harness.finish(eid) == "unblocked"


async def test_crashed_workers_tasks_are_claimable_after_its_lease(harness: WorkflowHarness) -> None:
    """A worker that dies without handing its task back leaves it to another worker once the lease expires."""
    lifecycle = await harness.start_worker("doomed", lease_duration=60, heartbeat_interval=20)
    eid = await harness.executor.dispatch(blocked, 7)
    await harness.wait_until(lambda: "blocked:7" in SEEN)

    async def dead_process_cannot_release(fence, now):  # type: ignore[no-untyped-def]
        raise ConnectionError("the process is gone")

    harness.storage.release_task = dead_process_cannot_release  # type: ignore[method-assign]
    doomed = harness.workers.pop()[1]
    doomed.cancel()
    await asyncio.gather(doomed, return_exceptions=True)
    assert lifecycle.state is LifecycleState.STOPPED
    [task] = await harness.storage.list_execution_tasks(eid)
    assert task.state.value == "running" and task.lease_owner == "doomed"
    GATES[-1].set()
    await harness.start_worker("survivor")
    await harness.advance(30)
    [task] = await harness.storage.list_execution_tasks(eid)
    assert task.lease_owner == "doomed"  # not before the lease expires
    assert await harness.finish(eid) == "unblocked"


async def test_cleanup_deletes_only_old_finished_executions() -> None:
    """Cleanup on the leader removes finished executions past retention and keeps running ones."""
    h = WorkflowHarness()
    await h.start_worker(cleanup_interval=3600, retention_period=timedelta(days=1))
    old = await h.executor.dispatch(untagged, 1)
    await h.finish(old)
    running = await h.executor.dispatch(blocked, 1)
    await h.advance(2)
    await h.advance(2 * 86400, step=1800)
    assert await h.storage.get_execution(old) is None
    assert (await h.executor.state_of(running)).state is ExecutionState.RUNNING
    GATES[-1].set()
    await h.stop()


async def test_worker_rows_describe_the_cluster(harness: WorkflowHarness) -> None:
    """Each running worker keeps a heartbeat row with its queues, tags and concurrency; stopping removes it."""
    lifecycle = await harness.start_worker("row-worker", queues=["default"], tags=["billing"], max_concurrency=7)

    async def has_row() -> bool:
        return bool(await harness.storage.list_workers())

    await harness.wait_until(has_row)
    [row] = await harness.storage.list_workers()
    assert (row.worker_id, row.queues, row.tags, row.max_concurrency) == ("row-worker", ("default",), ("billing",), 7)
    harness.executor.request_worker_drain(lifecycle)
    await asyncio.wait_for(lifecycle.wait_until_stopped(), 5)
    assert await harness.storage.list_workers() == []


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def task_claimed(self, **kw: object) -> None:
        self.calls.append(("task_claimed", kw))

    def task_completed(self, **kw: object) -> None:
        self.calls.append(("task_completed", kw))

    def lease_renewed(self, **kw: object) -> None:
        raise RuntimeError("recorder bug")


async def test_metrics_recorder_is_called_and_its_errors_ignored() -> None:
    """The recorder gets the guide's keyword arguments; missing methods are fine and a raising one is ignored."""
    recorder = Recorder()
    h = WorkflowHarness(metrics=recorder)
    await h.start_worker(lease_duration=30, heartbeat_interval=10)
    eid = await h.executor.dispatch(blocked, 1)
    await h.advance(25)
    GATES[-1].set()
    await h.finish(eid)
    names = [name for name, _ in recorder.calls]
    assert names == ["task_claimed", "task_completed"]
    assert recorder.calls[0][1] == {"queue": "default", "step_name": blocked.name, "kind": "call"}
    assert set(recorder.calls[1][1]) == {"queue", "step_name", "kind", "duration_s"}
    await h.stop()


@Stent.durable
async def logs_something() -> None:
    logging.getLogger("user.code").warning("inside")


async def test_structured_logging_fields_inside_and_outside_tasks(caplog: pytest.LogCaptureFixture) -> None:
    """Records inside a task carry execution, task and step; records outside carry '-'."""
    install_structured_logging(logging.getLogger())
    h = WorkflowHarness()
    await h.start_worker()
    with caplog.at_level(logging.WARNING):
        eid = await h.executor.dispatch(logs_something)
        await h.finish(eid)
        logging.getLogger("user.code").warning("outside")
    inside = next(r for r in caplog.records if r.getMessage() == "inside")
    outside = next(r for r in caplog.records if r.getMessage() == "outside")
    assert inside.stent_execution_id == eid and inside.stent_task_id != "-"  # type: ignore[attr-defined]
    assert outside.stent_execution_id == "-" and outside.stent_step == "-"  # type: ignore[attr-defined]
    formatted = logging.Formatter("%(levelname)s [%(stent_execution_id)s] %(message)s").format(outside)
    assert formatted == "WARNING [-] outside"
    await h.stop()
    with pytest.raises(ConfigurationError):
        install_structured_logging("root")  # type: ignore[arg-type]


async def test_several_serve_loops_in_one_process() -> None:
    """Ten background workers and a critical worker run side by side, each with its own lifecycle."""
    h = WorkflowHarness()
    lifecycles = [await h.start_worker(f"background-{i}", queues=["background"]) for i in range(10)]
    lifecycles.append(await h.start_worker("critical", queues=["critical"]))
    overview = h.executor.worker_status_overview()
    assert overview["ready"] and len(overview["workers"]) == 11
    ids = [await h.executor.dispatch(background_job, n) for n in range(30)]
    for eid in ids:
        await h.finish(eid)
    assert len([s for s in SEEN if s.startswith("background")]) == 30
    h.executor.request_worker_drain()
    for lc in lifecycles:
        await asyncio.wait_for(lc.wait_until_stopped(), 5)
    await h.stop()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": "50"}, "max_concurrency"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"poll_interval": 2, "poll_interval_max": 1}, "poll_interval_max"),
        ({"poll_backoff_factor": 0.5}, "poll_backoff_factor"),
        ({"lease_duration": 60, "heartbeat_interval": 60}, "heartbeat_interval"),
        ({"lease_duration": "soon"}, "lease_duration"),
        ({"queues": "critical"}, "queues"),
        ({"queues": []}, "queues"),
        ({"tags": [1]}, "tags"),
        ({"worker_id": ""}, "worker_id"),
        ({"cleanup_interval": 0}, "cleanup_interval"),
        ({"retention_period": -5}, "retention_period"),
        ({"lifecycle": "worker-1"}, "lifecycle"),
    ],
)
async def test_bad_serve_options_fail_before_anything_starts(options: dict[str, object], message: str) -> None:
    """Each invalid serve() option raises ConfigurationError naming it, and no worker starts."""
    storage = MemoryStorage()
    executor = Stent(storage)
    with pytest.raises(ConfigurationError, match=message):
        await asyncio.wait_for(executor.serve(**options), 2)  # type: ignore[arg-type]
    assert executor.worker_status_overview()["ready"] is False


async def test_drain_of_an_unknown_lifecycle_is_refused() -> None:
    """request_worker_drain with a lifecycle of another executor says so."""
    one, other = Stent(MemoryStorage()), Stent(MemoryStorage())
    foreign = other.create_worker_lifecycle("elsewhere")
    with pytest.raises(ConfigurationError, match="not a lifecycle of this executor"):
        one.request_worker_drain(foreign)


async def test_odd_queue_and_tag_names_are_matched_literally(harness: WorkflowHarness) -> None:
    """Queue and tag names with quotes, percent signs and unicode route exactly like plain names."""
    name = "q'; DROP TABLE tasks; --%_ü"
    await harness.start_worker(queues=[name], tags=["t%'\""])
    eid = await harness.executor.dispatch(untagged, 5, queue=name, tags=["t%'\""])
    other = await harness.executor.dispatch(untagged, 6, queue="q")
    await harness.finish(eid)
    assert await harness.state(other) is ExecutionState.PENDING
