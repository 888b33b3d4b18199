"""The seed worker guide's own snippets run against stent and do what the guide's text says.

The guide is read at test time from ``../shared/seed/worker-configuration.md`` relative to the repository root
(in CI, ``shared/`` sits beside the clone).  Snippets run as written.  Each test supplies the names the guide
assumes from earlier snippets (``executor``, ``backend``, ``asyncio``, ``os``, ``signal``...), bounds every
``serve()`` by draining the worker once it is ready, and checks the promise the guide's text makes about the
snippet.  Only two kinds of adaptation are made: a PostgreSQL DSN or Redis URL becomes the local test service's
(skipped, naming the adapter, while no adapter registers that scheme), and framework objects (``app``,
``JSONResponse``, the Prometheus metric objects) are small stand-ins.

Workers run on a ``WorkflowHarness`` (memory storage, fake clock) unless the snippet builds its own executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import itertools

from docs_snippets import (
    REPO,
    Block,
    WorkerWatch,
    compile_block,
    drive_workers,
    evaluate,
    python_blocks,
    show_source,
)

from stent import ExecutionNotFound, ExecutionState, LifecycleState, Stent, WorkerLifecycle
from stent.model import ClaimRequest, TaskState
from stent.plugins import get_plugin_host
from stent.testing.harness import WorkflowHarness

SEED = REPO.parent / "shared" / "seed" / "worker-configuration.md"
MODULE = "stent_seed_guide"

#: Every python block of the guide, by (heading, index within the heading), and the test that runs it.
COVERED: dict[tuple[str, int], str] = {}


def covers(heading: str, index: int = 0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(test: Callable[..., Any]) -> Callable[..., Any]:
        COVERED[(heading, index)] = test.__name__
        return test

    return mark


def seed_blocks() -> list[Block]:
    if not SEED.is_file():
        pytest.fail(
            f"the seed worker guide is missing: expected {SEED} (shared/seed/ beside the repository clone)."
            " The seed guide's snippets are part of the test suite; check out shared/ next to the repository.",
            pytrace=False,
        )
    show_source(SEED)
    return python_blocks(SEED)


def seed_block(heading: str, index: int = 0) -> Block:
    found = [b for b in seed_blocks() if b.heading == heading]
    if len(found) <= index:
        pytest.fail(f"the seed guide has no python block {index} under the heading {heading!r}; did it change?")
    return found[index]


# -- durable functions the tests dispatch (defined at import, so every worker started by a snippet runs them) --

GATES: dict[str, asyncio.Event] = {}


@Stent.durable
async def job(label: str) -> str:
    return label


@Stent.durable
async def held(label: str) -> str:
    """Runs until the test opens its gate, so that it is visibly running."""
    await GATES.setdefault(label, asyncio.Event()).wait()
    return label


@Stent.durable
async def sleeper(label: str) -> str:
    await Stent.sleep("30d")
    return label


@Stent.durable
async def broken(label: str) -> None:
    raise ValueError(f"{label} is broken")


# -- the environment a snippet runs in -------------------------------------------------------------------------


@attrs.define
class SeedEnv:
    """A namespace for seed snippets, with an executor on a fake-clock harness, and helpers to drive them."""

    harness: WorkflowHarness
    namespace: dict[str, Any]
    watch: WorkerWatch

    @property
    def executor(self) -> Stent:
        return self.harness.executor

    async def run(self, block: Block) -> None:
        await asyncio.wait_for(evaluate(compile_block(block), self.namespace), 30)

    def start(self, block: Block) -> asyncio.Task[None]:
        return asyncio.ensure_future(evaluate(compile_block(block), self.namespace))

    async def serve(
        self, block: Block, on_ready: Callable[[Stent, WorkerLifecycle], Awaitable[None]] | None = None
    ) -> list[WorkerLifecycle]:
        """Run a block that awaits serve(): each worker it starts is checked by ``on_ready``, then drained."""
        return await drive_workers(self.start(block), self.watch, on_ready, where=block.where)

    async def until(
        self, condition: Callable[[], Awaitable[bool]], *, seconds: float = 30, step: float = 0.5
    ) -> None:
        """Advance virtual time in steps until ``condition`` holds (at most ``seconds`` of virtual time)."""
        spent = 0.0
        while not await condition():
            if spent >= seconds:
                raise AssertionError(f"condition still false after {seconds}s of virtual time")
            await self.harness.advance(step, step=step)
            spent += step

    async def completed(self, execution_id: str) -> bool:
        return (await self.executor.state_of(execution_id)).state is ExecutionState.COMPLETED

    async def states(self, *execution_ids: str) -> list[ExecutionState]:
        return [(await self.executor.state_of(e)).state for e in execution_ids]


@pytest.fixture
async def env() -> AsyncIterator[SeedEnv]:
    GATES.clear()
    harness = WorkflowHarness()
    import types

    module = types.ModuleType(MODULE)
    namespace = module.__dict__
    namespace.update(
        asyncio=asyncio,
        os=os,
        signal=signal,
        Stent=Stent,
        timedelta=timedelta,
        WorkerLifecycle=WorkerLifecycle,
        backend=harness.storage,
        executor=harness.executor,
    )
    sys.modules[MODULE] = module
    previous_current = Stent._current
    watch = WorkerWatch()
    with watch.installed():
        try:
            yield SeedEnv(harness, namespace, watch)
        finally:
            for gate in GATES.values():
                gate.set()
            for executor, lifecycle in watch.live():
                executor.request_worker_drain(lifecycle)
            for _, lifecycle in watch.live():
                if lifecycle.worker_id is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lifecycle.wait_until_stopped(), 5)
            await harness.stop()
            sys.modules.pop(MODULE, None)
            Stent._current = previous_current


def test_the_seed_guide_is_found_and_every_python_snippet_has_a_test() -> None:
    """Each python block of the seed guide is run by one of the tests below; a new snippet needs a test."""
    blocks = seed_blocks()
    counts: dict[str, int] = {}
    present = set()
    for block in blocks:
        present.add((block.heading, counts.get(block.heading, 0)))
        counts[block.heading] = counts.get(block.heading, 0) + 1
    untested = sorted(present - set(COVERED))
    assert not untested, f"seed guide snippets no test runs: {untested}"
    assert not set(COVERED) - present, (
        f"tests name snippets the guide no longer has: {sorted(set(COVERED) - present)}"
    )


# -- Starting a Worker -------------------------------------------------------------------------------------------


@covers("Starting a Worker")
def test_starting_a_worker_serves_on_sqlite_until_drained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's program, run as written (asyncio.run and all), serves work from workflow.db until drained."""
    monkeypatch.chdir(tmp_path)
    block = seed_block("Starting a Worker")
    original_serve = Stent.serve

    async def serve_then_close(self: Stent, *args: Any, **kwargs: Any) -> None:
        # The snippet never closes its storage; close it when serve() returns so the thread's loop ends cleanly.
        try:
            await original_serve(self, *args, **kwargs)
        finally:
            await self.close()

    monkeypatch.setattr(Stent, "serve", serve_then_close)
    watch = WorkerWatch()
    failure: list[BaseException] = []

    def program() -> None:
        try:
            exec(compile_block(block), {"__name__": MODULE})  # noqa: S102 - the guide, as written
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    with watch.installed():
        thread = threading.Thread(target=program, name="seed-program", daemon=True)
        thread.start()
        assert watch.any_created.wait(20), "the program started no worker"
        executor, lifecycle, loop = watch.created[0]
        assert loop is not None

        async def use_then_drain() -> str:
            await lifecycle.wait_until_ready()
            result = await executor.wait_for(await executor.dispatch(job, "served from workflow.db"))
            executor.request_worker_drain(lifecycle)
            return result

        assert asyncio.run_coroutine_threadsafe(use_then_drain(), loop).result(20) == "served from workflow.db"
        thread.join(20)
    assert not thread.is_alive(), "asyncio.run(main()) did not return after the worker was drained"
    assert not failure, failure
    assert lifecycle.state is LifecycleState.STOPPED
    assert (tmp_path / "workflow.db").is_file()


# -- Worker Configuration Options ----------------------------------------------------------------------------------


@covers("Basic Options")
async def test_basic_options_take_only_their_queues_and_tags(env: SeedEnv) -> None:
    """worker-1 takes queues default and high, billing-tagged or untagged tasks, with 50 slots."""
    take = [
        await env.executor.dispatch(job, "default, untagged"),
        await env.executor.dispatch(job, "high, billing", queue="high", tags=["billing"]),
    ]
    leave = [
        await env.executor.dispatch(job, "low queue", queue="low"),
        await env.executor.dispatch(job, "shipping tag", tags=["shipping"]),
    ]

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        assert lifecycle.worker_id == "worker-1"
        await env.until(lambda: _all(env.completed, take))
        await env.harness.advance(5)
        assert await env.states(*leave) == [ExecutionState.PENDING, ExecutionState.PENDING]
        [row] = await env.harness.storage.list_workers()
        assert (row.worker_id, row.queues, row.tags, row.max_concurrency) == (
            "worker-1",
            ("default", "high"),
            ("billing",),
            50,
        )

    assert len(await env.serve(seed_block("Basic Options"), check)) == 1


def _watch_polls(harness: WorkflowHarness) -> list[float]:
    polls: list[float] = []
    claim_tasks = harness.storage.claim_tasks

    async def watched(request: ClaimRequest, now: Any) -> Any:
        polls.append(harness.clock.monotonic())
        return await claim_tasks(request, now)

    harness.storage.claim_tasks = watched  # type: ignore[method-assign]
    return polls


@covers("Polling Configuration")
async def test_polling_backs_off_as_the_guide_lists_and_resets_on_a_claim(env: SeedEnv) -> None:
    """Empty polls wait 0.5, 1.0, 2.0 ... capped at 5.0 s; a poll that claims a task resets the wait to 0.5 s."""
    polls = _watch_polls(env.harness)

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        await env.harness.advance(22.5, step=0.25)
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert gaps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
        # Work stored by another process (no notification reaches this worker) is found by the next poll...
        elsewhere = Stent(backend=env.harness.storage, clock=env.harness.clock)
        execution_id = await elsewhere.dispatch(job, "found by polling")
        await env.harness.advance(5.0, step=0.25)
        assert await env.completed(execution_id)
        # ...and that claim resets the interval to its minimum.
        await env.harness.advance(0.5, step=0.25)
        assert polls[-2:] == [27.5, 28.0]

    await env.serve(seed_block("Polling Configuration"), check)


@covers("Lease Configuration")
async def test_leases_last_five_minutes_renew_every_two_and_a_crashed_workers_task_is_taken_over(
    env: SeedEnv,
) -> None:
    """Claim sets lease_expires_at to now + 5 min; renewal every 2 min; a dead worker's task is claimable after."""
    storage, clock = env.harness.storage, env.harness.clock
    orphan = await env.executor.dispatch(job, "left by a crashed worker")
    [crashed] = await storage.claim_tasks(
        ClaimRequest(worker_id="crashed", functions=frozenset({job.name}), limit=1, lease_seconds=300), clock.now()
    )

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        running = await executor.dispatch(held, "long task")
        await env.until(lambda: _task_state(storage, running, TaskState.RUNNING))
        [task] = await storage.list_execution_tasks(running)
        assert task.lease_expires_at - task.started_at == timedelta(minutes=5)
        claimed_at = task.started_at
        await env.harness.advance(120)
        [task] = await storage.list_execution_tasks(running)
        renewed_for = task.lease_expires_at - claimed_at  # renewed at the 2-minute heartbeat: now + 5 minutes
        assert timedelta(minutes=7) <= renewed_for <= timedelta(minutes=7, seconds=1)
        assert await env.states(orphan) == [ExecutionState.RUNNING]  # still leased to the crashed worker
        await env.until(lambda: env.completed(orphan), seconds=200, step=5)
        assert clock.now() >= crashed.lease_expires_at  # taken over only once its lease had expired
        GATES["long task"].set()
        await env.until(lambda: env.completed(running))

    await env.serve(seed_block("Lease Configuration"), check)


@covers("Cleanup Configuration")
async def test_cleanup_removes_finished_executions_older_than_the_retention_period(env: SeedEnv) -> None:
    """Hourly cleanup deletes executions finished more than 7 days ago, and keeps recent and unfinished ones."""

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        old = await executor.dispatch(job, "old")
        waiting = await executor.dispatch(sleeper, "asleep for 30 days")
        await env.until(lambda: env.completed(old))
        await env.harness.advance(3 * 86400, step=3600)
        recent = await executor.dispatch(job, "recent")
        await env.until(lambda: env.completed(recent))
        await env.harness.advance(5 * 86400, step=3600)
        with pytest.raises(ExecutionNotFound):
            await executor.state_of(old)
        assert await env.states(recent, waiting) == [ExecutionState.COMPLETED, ExecutionState.RUNNING]

    await env.serve(seed_block("Cleanup Configuration"), check)


@covers("Complete Configuration Example")
async def test_complete_configuration_example(env: SeedEnv, services: Any) -> None:
    """The production worker starts on PostgreSQL with Redis wake-ups, with every option, and drains cleanly."""
    host = get_plugin_host()
    host.load()
    if "postgresql" not in host.schemes("storage"):
        pytest.skip("stent-postgres registers no storage for postgresql:// yet: the guide's DSN has no adapter")
    if "redis" not in host.schemes("notifier"):
        pytest.skip("stent-redis registers no notifier for redis:// yet: the guide's Redis URL has no adapter")
    block = seed_block("Complete Configuration Example")
    schema = f"docs_seed_{uuid.uuid4().hex[:12]}"  # a schema of its own, dropped afterwards
    dsn = f"{services.postgres()}?schema={schema}"
    source = block.source.replace('"postgresql://user:pass@localhost/stent"', repr(dsn))
    source = source.replace('"redis://localhost:6379"', repr(services.redis()))
    assert source != block.source, "the guide's DSN and URL changed; update this test's adaptation"
    adapted = attrs.evolve(block, source=source)
    await env.run(adapted)
    task = asyncio.ensure_future(env.namespace["run_production_worker"]())

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        assert lifecycle.name == "worker-1" and lifecycle.worker_id == "worker-1"
        assert (executor.poll_min_interval, executor.poll_max_interval, executor.poll_backoff_factor) == (
            0.1,
            3.0,
            1.5,
        )
        assert executor.worker_status_overview()["ready"] is True

    try:
        assert len(await drive_workers(task, env.watch, check)) == 1
    finally:
        for executor, _ in env.watch.live():
            executor.request_worker_drain()
        for executor, _, _ in env.watch.created:
            with contextlib.suppress(Exception):
                await executor.close()
        await _drop_schema(services.postgres(), schema)


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg  # stent-postgres's driver, present whenever its adapter is

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


# -- Queues and Tags ----------------------------------------------------------------------------------------------


@covers("Queue-Based Routing", 0)
@covers("Queue-Based Routing", 1)
async def test_queue_based_routing(env: SeedEnv) -> None:
    """Functions land in their queues; the critical and background workers take only theirs, the general one all."""
    await env.run(seed_block("Queue-Based Routing", 0))
    ns = env.namespace
    assert [ns[f].queue for f in ("critical_operation", "background_job", "normal_task")] == [
        "critical",
        "background",
        "default",
    ]
    critical = await env.executor.dispatch(ns["critical_operation"])
    background = await env.executor.dispatch(ns["background_job"])
    normal = await env.executor.dispatch(ns["normal_task"])
    expected = {
        "critical-worker": ([critical], [background, normal], 10),
        "background-worker": ([background], [normal], 100),
        "general-worker": ([normal], [], 50),
    }

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        done, untouched, slots = expected[lifecycle.worker_id or ""]
        await env.until(lambda: _all(env.completed, done))
        await env.harness.advance(3)
        assert await env.states(*untouched) == [ExecutionState.PENDING] * len(untouched)
        [row] = await env.harness.storage.list_workers()
        assert row.max_concurrency == slots

    drained = await env.serve(seed_block("Queue-Based Routing", 1), check)
    assert [lc.worker_id for lc in drained] == list(expected)


@covers("Tag-Based Routing", 0)
@covers("Tag-Based Routing", 1)
async def test_tag_based_routing(env: SeedEnv) -> None:
    """The billing worker takes billing-tagged and untagged tasks; the notification worker takes the rest."""
    await env.run(seed_block("Tag-Based Routing", 0))
    ns = env.namespace
    assert ns["send_invoice"].tags == ("billing", "notifications")
    charge = await env.executor.dispatch(ns["charge_customer"])
    invoice = await env.executor.dispatch(ns["send_invoice"])
    alert = await env.executor.dispatch(ns["send_alert"])
    untagged = await env.executor.dispatch(job, "untagged")

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        if lifecycle.worker_id == "billing-worker":
            await env.until(lambda: _all(env.completed, [charge, invoice, untagged]))
            await env.harness.advance(3)
            assert await env.states(alert) == [ExecutionState.PENDING]
        else:
            assert lifecycle.worker_id == "notification-worker"
            await env.until(lambda: env.completed(alert))

    drained = await env.serve(seed_block("Tag-Based Routing", 1), check)
    assert [lc.worker_id for lc in drained] == ["billing-worker", "notification-worker"]


# -- Worker Lifecycle ----------------------------------------------------------------------------------------------


@covers("Readiness and Draining")
async def test_managed_worker_becomes_ready_then_drains_and_stops(
    env: SeedEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """managed_worker() reaches ready, drains, and stops cleanly, printing each stage in order."""
    await env.run(seed_block("Readiness and Draining"))
    await asyncio.wait_for(env.namespace["managed_worker"](), 10)
    assert capsys.readouterr().out.splitlines() == [
        "Worker is ready to accept tasks",
        "Draining - finishing in-flight tasks",
        "Worker stopped cleanly",
    ]
    _, lifecycle = env.watch.named("worker-1")
    assert lifecycle.state is LifecycleState.STOPPED


@attrs.define
class JSONResponse:
    """Stands in for the web framework's JSON response."""

    content: Any
    status_code: int = 200


class App:
    """Stands in for a web framework application: ``@app.get(path)`` registers a route."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[], Awaitable[Any]]] = {}

    def get(self, path: str) -> Callable[[Callable[[], Awaitable[Any]]], Callable[[], Awaitable[Any]]]:
        def register(handler: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
            self.routes[path] = handler
            return handler

        return register


async def _health(env: SeedEnv) -> tuple[int, dict[str, Any]]:
    answer = await env.namespace["app"].routes["/health"]()
    if isinstance(answer, JSONResponse):
        return answer.status_code, answer.content
    return 200, answer


async def _health_env(env: SeedEnv) -> None:
    env.namespace.update(app=App(), JSONResponse=JSONResponse)
    await env.run(seed_block("Health Checks"))


@covers("Health Checks")
async def test_health_endpoint_reports_not_ready_healthy_and_draining(env: SeedEnv) -> None:
    """503 not_ready before any worker is ready, 200 healthy once one is, 503 draining while a worker drains."""
    await _health_env(env)
    code, body = await _health(env)
    assert (code, body["status"]) == (503, "not_ready")

    await env.harness.start_worker("worker-a", queues=["elsewhere"])  # stays ready, takes nothing here
    lifecycle_b = await env.harness.start_worker("worker-b")
    code, body = await _health(env)
    assert (code, body["status"]) == (200, "healthy")
    assert {w["name"] for w in body["workers"]} == {"worker-a", "worker-b"}

    execution_id = await env.executor.dispatch(held, "in flight")
    await env.until(lambda: _running_on(lifecycle_b))
    env.executor.request_worker_drain(lifecycle_b)
    await env.harness.settle()
    code, body = await _health(env)
    assert (code, body["status"]) == (503, "draining")
    GATES["in flight"].set()
    await env.until(lambda: env.completed(execution_id))


@covers("Health Checks")
async def test_health_endpoint_says_draining_while_the_only_worker_drains(env: SeedEnv) -> None:
    """A process whose one worker drains (SIGTERM) answers 503 draining, the guide's draining branch."""
    await _health_env(env)
    lifecycle = await env.harness.start_worker("only-worker")
    execution_id = await env.executor.dispatch(held, "in flight")
    await env.until(lambda: _running_on(lifecycle))
    env.executor.request_worker_drain(lifecycle)
    await env.harness.settle()
    assert lifecycle.state is LifecycleState.DRAINING
    code, body = await _health(env)
    GATES["in flight"].set()
    await env.until(lambda: env.completed(execution_id))
    assert (code, body["status"]) == (503, "draining")


@covers("Kubernetes Integration")
async def test_kubernetes_worker_drains_on_sigterm(env: SeedEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pod's worker is named after HOSTNAME; SIGTERM drains it, the running task finishes, and it returns."""
    monkeypatch.setenv("HOSTNAME", "pod-7")
    await env.run(seed_block("Kubernetes Integration"))
    loop = asyncio.get_running_loop()
    pod = asyncio.ensure_future(env.namespace["kubernetes_worker"]())
    try:
        for _ in range(10_000):
            if signal.SIGTERM in getattr(loop, "_signal_handlers", {}) or pod.done():
                break
            await asyncio.sleep(0)
        assert signal.SIGTERM in loop._signal_handlers, "the snippet never installed its SIGTERM handler"  # type: ignore[attr-defined]
        executor, lifecycle = env.watch.named("pod-7")
        assert lifecycle.state is LifecycleState.READY
        execution_id = await executor.dispatch(held, "in flight at SIGTERM")
        await asyncio.wait_for(_wait(lambda: _running_on(lifecycle)), 10)

        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(_wait(lambda: _is(lifecycle, LifecycleState.DRAINING)), 10)
        assert not pod.done()  # the running task holds the drain open...
        GATES["in flight at SIGTERM"].set()
        await asyncio.wait_for(pod, 10)  # ...then the worker stops and kubernetes_worker returns
        assert await executor.wait_for(execution_id) == "in flight at SIGTERM"
        assert lifecycle.state is LifecycleState.STOPPED
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        pod.cancel()


_POD_PROGRAM = """
import asyncio, os, signal, sys  # os and signal: the snippet assumes them, as the guide does
import asyncio.unix_events
from stent import Stent

# Say when the snippet has installed its SIGTERM handler, so the test never signals too early.
_add_signal_handler = asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler
def _announcing(self, signum, callback, *args):
    _add_signal_handler(self, signum, callback, *args)
    if signum == signal.SIGTERM:
        print("handler installed", flush=True)
asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = _announcing

async def main():
    global backend
    backend = Stent.backends.SQLiteBackend(sys.argv[1])
    await backend.init_db()
    await kubernetes_worker()

exec(compile(open(sys.argv[2]).read(), sys.argv[2], "exec"))
asyncio.run(main())
print("main returned", flush=True)
"""


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The child's next line of output, or '' if none comes within ``timeout`` seconds (or it exits)."""
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline().strip()


@covers("Kubernetes Integration")
def test_kubernetes_worker_process_on_sqlite_exits_after_sigterm(tmp_path: Path) -> None:
    """The guide's Kubernetes worker, as a real process on SQLite, exits once SIGTERM has drained it."""
    snippet = tmp_path / "k8s_snippet.py"
    snippet.write_text(seed_block("Kubernetes Integration").source)
    program = tmp_path / "pod.py"
    program.write_text(_POD_PROGRAM)
    env = {**os.environ, "HOSTNAME": "pod-sqlite", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(program), str(tmp_path / "pod.db"), str(snippet)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert _read_line(process, 20) == "handler installed"
        process.send_signal(signal.SIGTERM)
        assert (
            _read_line(process, 10) == "main returned"
        )  # drained: kubernetes_worker() and asyncio.run() returned
        assert process.wait(timeout=5) == 0  # ...and a drained worker's process must then exit
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- Scaling Workers -----------------------------------------------------------------------------------------------


@covers("Vertical Scaling")
async def test_vertical_scaling_runs_up_to_max_concurrency_tasks_at_once(env: SeedEnv) -> None:
    """A worker with max_concurrency=4 runs 4 of 6 held tasks at once; one with 100 runs all 6."""
    limits = iter([4, 100])

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        limit = next(limits)
        labels = [f"{limit}-{n}" for n in range(6)]
        ids = [await executor.dispatch(held, label) for label in labels]
        await env.until(lambda: _running_count(lifecycle, min(limit, 6)))
        await env.harness.advance(3)
        assert lifecycle.running_tasks == min(limit, 6)
        assert await executor.queue_depth() == 6 - min(limit, 6)
        for label in labels:
            GATES.setdefault(label, asyncio.Event()).set()
        await env.until(lambda: _all(env.completed, ids))

    assert len(await env.serve(seed_block("Vertical Scaling"), check)) == 2


@covers("Queue-Based Scaling")
async def test_queue_based_scaling_loop_never_reaches_its_second_worker_while_the_first_serves(
    env: SeedEnv,
) -> None:
    """The guide's `for i in range(10): await executor.serve(...)` serves background-0 only, until it is drained."""
    block_task = env.start(seed_block("Queue-Based Scaling"))
    try:
        # The first statement: one critical worker with low concurrency; drain it to let the block go on.
        await asyncio.wait_for(_wait(lambda: _has_ready(env.watch, 1)), 10)
        executor, critical, _ = env.watch.created[0]

        async def row_written() -> bool:
            return bool(await env.harness.storage.list_workers())

        # The worker writes its heartbeat row in its first housekeeping, an I/O task started as it turns ready;
        # on Python 3.12, whose wait_for runs _wait without a task of its own, READY is seen a step before it.
        await asyncio.wait_for(_wait(row_written), 10)
        [row] = await env.harness.storage.list_workers()
        assert (row.queues, row.max_concurrency) == (("critical",), 5)
        executor.request_worker_drain(critical)

        # The loop's first iteration serves...
        await asyncio.wait_for(_wait(lambda: _has_ready(env.watch, 2)), 10)
        _, first = env.watch.named("background-0")
        await env.harness.advance(3600, step=60)  # an hour of serving
        # ...and the loop never reaches its second iteration while it does: one background worker, not ten.
        assert [lc.name for _, lc, _ in env.watch.created[1:]] == ["background-0"]
        assert first.state is LifecycleState.READY

        executor.request_worker_drain(first)  # only once background-0 stops does background-1 begin
        await asyncio.wait_for(_wait(lambda: _has_ready(env.watch, 3)), 10)
        assert [lc.name for _, lc, _ in env.watch.created[1:]] == ["background-0", "background-1"]
        assert first.state is LifecycleState.STOPPED
    finally:
        block_task.cancel()
        await asyncio.gather(block_task, return_exceptions=True)


async def test_docs_working_form_runs_ten_background_workers_at_once(env: SeedEnv) -> None:
    """docs/guides/workers.md's asyncio.gather form has all ten background workers (and the critical one) ready together."""
    [block] = [
        b
        for b in python_blocks(REPO / "docs" / "guides" / "workers.md")
        if "asyncio.gather(" in b.source and 'f"background-{i}"' in b.source and b.has("serve")
    ]
    show_source(block.path)
    task = env.start(block)
    try:
        await asyncio.wait_for(_wait(lambda: _has_ready(env.watch, 11, together=True)), 10)
        overview = env.executor.worker_status_overview()
        names = sorted(w["name"] for w in overview["workers"] if w["state"] == "ready")
        assert names == sorted(["critical", *(f"background-{i}" for i in range(10))])
        env.executor.request_worker_drain()
        await asyncio.wait_for(task, 10)
    finally:
        task.cancel()


# -- Concurrency Tuning --------------------------------------------------------------------------------------------


@covers("max_concurrency")
async def test_max_concurrency_tuning_values(env: SeedEnv) -> None:
    """The three workers start with 4, 100 and 2 slots."""
    slots = []

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        [row] = await env.harness.storage.list_workers()
        slots.append(row.max_concurrency)

    await env.serve(seed_block("max_concurrency"), check)
    assert slots == [4, 100, 2]


@covers("Function-Level Rate Limiting")
async def test_max_concurrent_is_checked_at_claim_time_across_workers(env: SeedEnv) -> None:
    """However many slots workers have, at most 5 tasks of rate_limited_api are claimed at once, across workers."""
    await env.run(seed_block("Function-Level Rate Limiting"))
    fn = env.namespace["rate_limited_api"]
    assert fn.max_concurrent == 5
    for _ in range(12):
        await env.executor.dispatch(fn)
    storage, now = env.harness.storage, env.harness.clock.now()
    first = await storage.claim_tasks(ClaimRequest("worker-a", frozenset({fn.name}), 20, 60), now)
    second = await storage.claim_tasks(ClaimRequest("worker-b", frozenset({fn.name}), 20, 60), now)
    assert (len(first), len(second)) == (5, 0)


# -- Lease Configuration -------------------------------------------------------------------------------------------


@covers("lease_duration")
async def test_short_and_long_leases_both_start(env: SeedEnv) -> None:
    """A 2-minute lease and a 1-hour lease are both accepted with the default heartbeat."""
    leases = []

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        running = await executor.dispatch(held, f"lease-{len(leases)}")
        await env.until(lambda: _task_state(env.harness.storage, running, TaskState.RUNNING))
        [task] = await env.harness.storage.list_execution_tasks(running)
        leases.append(task.lease_expires_at - task.started_at)
        GATES[f"lease-{len(leases) - 1}"].set()
        await env.until(lambda: env.completed(running))

    await env.serve(seed_block("lease_duration"), check)
    assert leases == [timedelta(minutes=2), timedelta(hours=1)]


@covers("heartbeat_interval")
async def test_heartbeat_renews_a_ten_minute_lease_every_four_minutes(env: SeedEnv) -> None:
    """With a 10-minute lease and a 4-minute heartbeat, a running task's lease is renewed every 4 minutes."""

    async def check(executor: Stent, lifecycle: WorkerLifecycle) -> None:
        running = await executor.dispatch(held, "renewed")
        await env.until(lambda: _task_state(env.harness.storage, running, TaskState.RUNNING))
        [task] = await env.harness.storage.list_execution_tasks(running)
        claimed_at = task.started_at
        assert task.lease_expires_at == claimed_at + timedelta(minutes=10)
        for beat in (1, 2, 3):
            await env.harness.advance(240)
            [task] = await env.harness.storage.list_execution_tasks(running)
            renewed_for = task.lease_expires_at - claimed_at  # renewed at each 4-minute heartbeat: now + 10 min
            lower = timedelta(minutes=4 * beat + 10)
            assert lower <= renewed_for <= lower + timedelta(seconds=1), (beat, renewed_for)
        GATES["renewed"].set()
        await env.until(lambda: env.completed(running))

    await env.serve(seed_block("heartbeat_interval"), check)


# -- Monitoring Workers --------------------------------------------------------------------------------------------


@covers("Logging")
async def test_structured_logging_format_works_inside_and_outside_tasks(env: SeedEnv) -> None:
    """The guide's format names stent_execution_id: inside a task it is the execution's id, outside it is '-'."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, root.filters[:])
    stream = io.StringIO()
    root.handlers = []
    try:
        await env.run(seed_block("Logging"))
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        await env.harness.start_worker()
        execution_id = await env.executor.dispatch(logs_a_line, "inside a task")
        await env.until(lambda: env.completed(execution_id))
        logging.getLogger("app").info("outside any task")
    finally:
        root.handlers, root.level, root.filters = saved
    lines = stream.getvalue().splitlines()
    assert any(line.endswith(f"INFO [{execution_id}] inside a task") for line in lines), lines
    assert any(line.endswith("INFO [-] outside any task") for line in lines), lines


@Stent.durable
async def logs_a_line(text: str) -> None:
    logging.getLogger("app.workflows").info(text)


@attrs.define
class FakeMetric:
    """Stands in for a prometheus_client Counter or Histogram: records labels(...).inc() and .observe()."""

    name: str
    calls: list[tuple[str, str, dict[str, Any], float]]
    _labels: dict[str, Any] = attrs.field(factory=dict)

    def labels(self, **labels: Any) -> FakeMetric:
        return FakeMetric(self.name, self.calls, labels)

    def inc(self, amount: float = 1) -> None:
        self.calls.append((self.name, "inc", self._labels, amount))

    def observe(self, value: float) -> None:
        self.calls.append((self.name, "observe", self._labels, value))


@covers("Metrics")
async def test_prometheus_recorder_methods_get_the_guides_keyword_arguments(env: SeedEnv) -> None:
    """Claims, completions, failures, dead letters and lease renewals reach the guide's recorder methods."""
    calls: list[tuple[str, str, dict[str, Any], float]] = []
    names = [
        "TASKS_CLAIMED",
        "TASKS_COMPLETED",
        "TASK_DURATION",
        "TASKS_FAILED",
        "DEAD_LETTERS",
        "LEASE_RENEWALS",
        "LEASE_FAILURES",
    ]
    env.namespace.update({name: FakeMetric(name, calls) for name in names})
    await env.run(seed_block("Metrics"))
    executor: Stent = env.namespace["executor"]
    assert type(executor.metrics).__name__ == "PrometheusMetrics"
    executor.clock = env.harness.clock  # test plumbing: run this executor's workers in virtual time
    lifecycle = executor.create_worker_lifecycle(name="metrics-worker")
    worker = asyncio.ensure_future(executor.serve(lifecycle=lifecycle))
    try:
        await lifecycle.wait_until_ready()
        done = await executor.dispatch(job, "counted")
        failed = await executor.dispatch(broken, "dead-lettered")
        running = await executor.dispatch(held, "renewed")
        await env.until(lambda: _all(env.completed, [done]))
        await env.until(lambda: _task_state(env.harness.storage, running, TaskState.RUNNING))
        await env.harness.advance(125)  # past one heartbeat (2 minutes)
        GATES["renewed"].set()
        await env.until(lambda: _all(env.completed, [running]))
        assert (await executor.state_of(failed)).state is ExecutionState.FAILED
    finally:
        executor.request_worker_drain(lifecycle)
        await asyncio.wait_for(worker, 10)

    def recorded(name: str, **labels: Any) -> list[tuple[str, float]]:
        return [(kind, value) for n, kind, got, value in calls if n == name and got == labels]

    assert recorded("TASKS_CLAIMED", queue="default", step=job.name, kind="call") == [("inc", 1)]
    assert recorded("TASKS_COMPLETED", queue="default", step=job.name) == [("inc", 1)]
    [(kind, seconds)] = recorded("TASK_DURATION", queue="default", step=job.name)
    assert kind == "observe" and seconds >= 0
    assert recorded("TASKS_FAILED", queue="default", step=broken.name, retrying=False) == [("inc", 1)]
    assert recorded("DEAD_LETTERS", queue="default", step=broken.name) == [("inc", 1)]
    assert ("inc", 1) in recorded("LEASE_RENEWALS")
    assert recorded("LEASE_FAILURES") == []


@covers("Queue Depth Monitoring")
async def test_queue_depth_monitor_prints_total_and_per_queue_pending(
    env: SeedEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """monitor_queues() prints the total and each queue's pending tasks; its endless loop is cancelled here."""
    for label in ("a", "b"):
        await env.executor.dispatch(job, label)
    await env.executor.dispatch(job, "urgent", queue="critical")
    await env.executor.dispatch(job, "later", delay="1h")  # scheduled: still counted as pending work
    await env.run(seed_block("Queue Depth Monitoring"))
    monitor = asyncio.ensure_future(env.namespace["monitor_queues"]())
    printed = ""
    try:
        for _ in range(10_000):
            printed += capsys.readouterr().out
            if printed.count("\n") >= 4 or monitor.done():
                break
            await asyncio.sleep(0)
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
    assert printed.splitlines() == [
        "Total pending: 4",
        "Queue default: 3 pending",
        "Queue critical: 1 pending",
        "Queue background: 0 pending",
    ]


# -- helpers -------------------------------------------------------------------------------------------------------


async def _all(check: Callable[[str], Awaitable[bool]], items: list[str]) -> bool:
    return all([await check(item) for item in items])


async def _task_state(storage: Any, execution_id: str, state: TaskState) -> bool:
    return any(t.state is state for t in await storage.list_execution_tasks(execution_id))


async def _running_on(lifecycle: WorkerLifecycle) -> bool:
    return lifecycle.running_tasks > 0


async def _running_count(lifecycle: WorkerLifecycle, count: int) -> bool:
    return lifecycle.running_tasks >= count


async def _is(lifecycle: WorkerLifecycle, state: LifecycleState) -> bool:
    return lifecycle.state is state


async def _has_ready(watch: WorkerWatch, count: int, *, together: bool = False) -> bool:
    created = watch.created
    if len(created) < count:
        return False
    if together:
        return sum(1 for _, lc, _ in created if lc.state is LifecycleState.READY) >= count
    return created[count - 1][1].state is LifecycleState.READY


async def _wait(condition: Callable[[], Awaitable[bool]]) -> None:
    """Yield to the event loop until ``condition`` holds (bound it with asyncio.wait_for)."""
    while not await condition():
        await asyncio.sleep(0)
