"""Races between clients on separate pools, where PostgreSQL's locking (not the event loop) must decide, and the
schema's isolation and migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from stent.clocks import FakeClock
from stent.errors import ConfigurationError, ExecutionStopping
from stent.model import ClaimRequest, ExecutionState, NewExecution, NewTask, StepKey, TaskState
from stent.testing.conformance._support import new_execution, new_task, request, signal_wait
from stent_postgres import PostgresStorage
from stent_postgres.schema import _VERSION_TABLE, LATEST_VERSION, MIGRATIONS

Opener = Callable[..., Awaitable[PostgresStorage]]
ROUNDS = 15


@pytest.fixture
async def peers(pg_url: str) -> AsyncIterator[Callable[[PostgresStorage, int], PostgresStorage]]:
    """``peers(storage, size)``: another pool of ``size`` connections on the same schema."""
    made: list[PostgresStorage] = []

    def make(storage: PostgresStorage, size: int = 2) -> PostgresStorage:
        made.append(PostgresStorage(pg_url, schema=storage.settings.schema, min_size=1, max_size=size))
        return made[-1]

    yield make
    for storage in made:
        await storage.close()


async def running_parent(storage: PostgresStorage, clock: FakeClock, function: str = "parent") -> object:
    await storage.create_execution(new_execution(function), clock.now())
    (parent,) = await storage.claim_tasks(request("wp", [function], limit=1), clock.now())
    return parent


async def test_a_child_finishing_while_its_parent_suspends_always_wakes_it(pg: PostgresStorage, peers) -> None:  # type: ignore[no-untyped-def]
    """Completion of the awaited child and suspension of its parent, racing on two pools, never leave the parent
    suspended with its child done (the wake-up is never lost)."""
    clock = FakeClock()
    finisher, suspender = peers(pg), peers(pg)
    for round_number in range(ROUNDS):
        parent = await running_parent(pg, clock, f"parent{round_number}")
        (child,) = await pg.get_or_create_steps(
            parent.fence, [(StepKey(parent.task_id, 1, 0), new_task("child"))], clock.now()
        )
        (claimed,) = await pg.claim_tasks(request("wc", ["child"], limit=1), clock.now())
        await asyncio.gather(
            finisher.complete_task(claimed.fence, "1", clock.now()),
            suspender.suspend_task(parent.fence, waiting_on=[child.task_id], wake_at=None, now=clock.now()),
        )
        state = (await pg.get_task(parent.task_id)).state  # type: ignore[union-attr]
        assert state is TaskState.PENDING, f"the parent is {state.value} although its child finished"


async def test_signals_and_waits_on_many_connections_pair_up_exactly_once(pg: PostgresStorage, peers) -> None:  # type: ignore[no-untyped-def]
    """Sends and signal waits on pools of several connections each (so calls of one client overlap too)."""
    clock = FakeClock()
    parent = await running_parent(pg, clock)
    senders = [peers(pg, 3) for _ in range(3)]
    creator = peers(pg, 4)
    count = 30

    async def send(n: int) -> None:
        await senders[n % 3].send_signal(parent.execution_id, "go", str(n), clock.now())

    async def wait(n: int) -> None:
        await creator.get_or_create_steps(
            parent.fence, [(StepKey(parent.task_id, 1, n), signal_wait("go"))], clock.now()
        )

    await asyncio.gather(*(send(n) for n in range(count)), *(wait(n) for n in range(count)))
    steps = [t for t in await pg.list_execution_tasks(parent.execution_id) if t.parent_task_id]
    assert sorted(int(t.result or "-1") for t in steps) == list(range(count)), "a wait missed its signal"
    signals = await pg.list_signals(parent.execution_id)
    assert sorted(s.consumed_by or "" for s in signals) == sorted(t.task_id for t in steps)


async def test_steps_created_while_the_execution_is_cancelled_are_cancelled_or_refused(
    pg: PostgresStorage,
    peers,  # type: ignore[no-untyped-def]
) -> None:
    """A cancellation racing step creation either comes first (creation raises ExecutionStopping) or second
    (it cancels the new steps): no pending step is ever left in a cancelled or cancelling execution."""
    clock = FakeClock()
    canceller, creator = peers(pg), peers(pg)
    for round_number in range(ROUNDS):
        parent = await running_parent(pg, clock, f"parent{round_number}")
        steps = [(StepKey(parent.task_id, 1, n), new_task("child")) for n in range(3)]
        results = await asyncio.gather(
            canceller.cancel_execution(parent.execution_id, clock.now()),
            creator.get_or_create_steps(parent.fence, steps, clock.now()),
            return_exceptions=True,
        )
        assert not isinstance(results[0], BaseException), results[0]
        assert not isinstance(results[1], BaseException) or isinstance(results[1], ExecutionStopping), results[1]
        tasks = await pg.list_execution_tasks(parent.execution_id)
        left = [t.task_id for t in tasks if t.parent_task_id and t.state is TaskState.PENDING]
        assert not left, f"steps {left} are pending in a cancelling execution"


async def test_a_first_claim_racing_a_cancellation_settles_consistently(pg: PostgresStorage, peers) -> None:  # type: ignore[no-untyped-def]
    """Claiming a new execution's root while it is cancelled: the root ran (execution cancelling) or it never
    will (root and execution cancelled), and neither call fails."""
    clock = FakeClock()
    claimer, canceller = peers(pg), peers(pg)
    for round_number in range(ROUNDS):
        execution, _ = await pg.create_execution(new_execution(f"work{round_number}"), clock.now())
        claimed, (after, _) = await asyncio.gather(
            claimer.claim_tasks(request("w", [f"work{round_number}"], limit=1), clock.now()),
            canceller.cancel_execution(execution.execution_id, clock.now()),
        )
        root = await pg.get_task(execution.root_task_id)
        assert root is not None
        if claimed:
            assert (root.state, after.state) == (TaskState.RUNNING, ExecutionState.CANCELLING)
        else:
            assert (root.state, after.state) == (TaskState.CANCELLED, ExecutionState.CANCELLED)


async def test_max_concurrent_holds_while_tasks_finish_on_other_pools(pg: PostgresStorage, peers) -> None:  # type: ignore[no-untyped-def]
    """Six pools claim and complete a max_concurrent=2 function's tasks as fast as they can: never more than two
    hold a lease at once, and every task runs once."""
    clock = FakeClock()
    parent = await running_parent(pg, clock)
    tasks = [new_task("limited", max_concurrent=2) for _ in range(60)]
    await pg.get_or_create_steps(
        parent.fence, [(StepKey(parent.task_id, 1, n), t) for n, t in enumerate(tasks)], clock.now()
    )
    workers = [peers(pg, 2) for _ in range(6)]
    running: set[str] = set()
    peak = 0
    done: list[str] = []

    async def work(number: int, storage: PostgresStorage) -> None:
        nonlocal peak
        idle = 0
        while idle < 20 and len(done) < len(tasks):
            got = await storage.claim_tasks(request(f"w{number}", ["limited"], limit=3), clock.now())
            idle = 0 if got else idle + 1
            for task in got:
                running.add(task.task_id)
                peak = max(peak, len(running))
            await asyncio.sleep(0)
            for task in got:
                running.discard(task.task_id)  # before the write: once it lands, another claim may start
                await storage.complete_task(task.fence, "null", clock.now())
                done.append(task.task_id)

    await asyncio.gather(*(work(n, s) for n, s in enumerate(workers)))
    assert peak <= 2, f"{peak} tasks of a max_concurrent=2 function were leased at once"
    assert sorted(done) == sorted(t.task_id for t in tasks)


# -- the schema ------------------------------------------------------------------------------------------------


async def test_many_processes_initialising_at_once_migrate_once(open_storage: Opener, schemas) -> None:  # type: ignore[no-untyped-def]
    """Eight storages running init_db() together on a new schema: all succeed, and each migration ran once."""
    name = schemas()
    storages = [await open_storage(name, init=False, max_size=1) for _ in range(8)]
    await asyncio.gather(*(s.init_db() for s in storages))
    await asyncio.gather(*(s.init_db() for s in storages))  # and again: idempotent
    versions = await storages[0]._db.fetch(f'SELECT version FROM "{name}".schema_version ORDER BY version')
    assert [r["version"] for r in versions] == list(range(1, LATEST_VERSION + 1))


async def test_a_schema_from_a_newer_release_is_refused(
    open_storage: Opener,
    schemas,  # type: ignore[no-untyped-def]
    admin: asyncpg.Connection,
) -> None:
    name = schemas()  # a schema of its own, never recycled for other tests
    await open_storage(name)
    await admin.execute(f"INSERT INTO \"{name}\".schema_version (version, description) VALUES (999, 'future')")
    again = await open_storage(name, init=False)
    with pytest.raises(ConfigurationError, match="newer than this stent-postgres supports"):
        await again.init_db()


async def test_application_tables_are_never_touched(
    pg_url: str,
    open_storage: Opener,
    schemas,  # type: ignore[no-untyped-def]
    admin: asyncpg.Connection,
) -> None:
    """With the application's own ``tasks`` and ``executions`` tables first on the search path, stent's
    statements (all schema-qualified) leave them alone."""
    app = schemas()
    await admin.execute(f"CREATE SCHEMA {app}")
    await admin.execute(f"CREATE TABLE {app}.tasks (id int primary key, note text)")
    await admin.execute(f"CREATE TABLE {app}.executions (id int primary key)")
    await admin.execute(f"INSERT INTO {app}.tasks VALUES (1, 'mine')")
    clock = FakeClock()
    storage = await open_storage(init=False)
    on_path = PostgresStorage(
        f"{pg_url}?search_path={app}", schema=storage.settings.schema, max_size=2
    )  # the DSN's search_path reaches the server as a session setting
    try:
        await on_path.init_db()
        await on_path.create_execution(new_execution("work"), clock.now())
        (task,) = await on_path.claim_tasks(request(), clock.now())
        await on_path.complete_task(task.fence, "1", clock.now())
        assert await on_path.get_execution(task.execution_id) is not None
    finally:
        await on_path.close()
    assert [tuple(r) for r in await admin.fetch(f"SELECT * FROM {app}.tasks")] == [(1, "mine")]
    assert await admin.fetchval(f"SELECT count(*) FROM {app}.executions") == 0
    columns = await admin.fetchval(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'tasks'", app
    )
    assert columns == 2


async def test_deployments_in_two_schemas_do_not_see_each_other(open_storage: Opener) -> None:
    clock = FakeClock()
    first, second = await open_storage(), await open_storage()
    await first.create_execution(new_execution("work", execution_id="same"), clock.now())
    assert await second.get_execution("same") is None
    assert await second.claim_tasks(request(), clock.now()) == []
    created, is_new = await second.create_execution(new_execution("other", execution_id="same"), clock.now())
    assert is_new and created.function == "other"
    assert (await first.get_execution("same")).function == "work"  # type: ignore[union-attr]


async def test_a_version_1_schema_is_migrated_and_keeps_its_work(
    open_storage: Opener,
    schemas,  # type: ignore[no-untyped-def]
    admin: asyncpg.Connection,
) -> None:
    """A schema made by the first release (migration 1 only) is brought to the latest version by init_db, and the
    work stored before the upgrade is claimed by the new claim function."""
    name = schemas()
    first = await open_storage(name, init=False)
    async with admin.transaction():  # what release 0.1's init_db left: version 1 and nothing after it
        await admin.execute(f'CREATE SCHEMA "{name}"')
        await admin.execute(_VERSION_TABLE.replace("{s}", f'"{name}"'))
        for statement in MIGRATIONS[0].statements:
            await admin.execute(statement.replace("{s}", f'"{name}"').replace("{schema_literal}", f"'{name}'"))
        await admin.execute(f"INSERT INTO \"{name}\".schema_version (version, description) VALUES (1, 'v1')")
    clock = FakeClock()
    execution, _ = await first.create_execution(
        NewExecution("e1", NewTask(task_id="t1", function="work", args="[]")), clock.now()
    )
    await first.init_db()
    versions = await first._db.fetch(f'SELECT version FROM "{name}".schema_version ORDER BY version')
    assert [r["version"] for r in versions] == list(range(1, LATEST_VERSION + 1))
    request = ClaimRequest("w", frozenset({"work"}), 5, 30)
    assert [t.task_id for t in await first.claim_tasks(request, clock.now())] == [execution.root_task_id]
