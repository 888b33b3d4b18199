"""The straight path of the engine on memory storage: dispatch, steps, gather, replay, results."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import attrs
import pytest

from stent import (
    ConfigurationError,
    ExecutionNotFound,
    ExecutionState,
    ExecutionTimeout,
    NonDeterminismError,
    SerializationError,
    Stent,
    UnregisteredFunctionError,
)
from stent.clocks import FakeClock
from stent.memory import MemoryStorage
from stent.model import TaskState

RUNS: Counter[str] = Counter()


@Stent.durable
async def add(a: int, b: int) -> int:
    RUNS[f"add:{a}:{b}"] += 1
    return a + b


@Stent.durable()
async def double(x: int) -> int:
    RUNS[f"double:{x}"] += 1
    return 2 * x


@Stent.durable
async def sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total = await add(total, i)
    return total


@Stent.durable
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(double(i) for i in range(n))))


class Boom(Exception):
    pass


@Stent.durable
async def explode(message: str) -> None:
    raise Boom(message)


@Stent.durable
async def catches_child_error() -> str:
    try:
        await explode("inner")
    except Boom as exc:
        return f"caught {exc}"
    return "not raised"


@pytest.fixture
async def executor() -> AsyncIterator[Stent]:
    RUNS.clear()
    ex = Stent(MemoryStorage(), clock=FakeClock())
    lifecycle = ex.create_worker_lifecycle("w1")
    worker = asyncio.ensure_future(ex.serve(worker_id="w1", lifecycle=lifecycle, max_concurrency=8))
    await lifecycle.wait_until_ready()
    yield ex
    ex.request_worker_drain(lifecycle)
    await asyncio.wait_for(worker, 5)
    await ex.close()


async def test_sequential_workflow_returns_result_and_runs_each_step_once(executor: Stent) -> None:
    """A workflow awaiting five activities one after another returns their combined result, each run once."""
    eid = await executor.dispatch(sequential, 5)
    assert await executor.wait_for(eid) == 0 + 1 + 2 + 3 + 4
    assert all(count == 1 for count in RUNS.values())
    assert len(RUNS) == 5
    assert (await executor.state_of(eid)).state is ExecutionState.COMPLETED


async def test_gather_fan_out_keeps_order(executor: Stent) -> None:
    """asyncio.gather of ten durable calls returns results in call order."""
    eid = await executor.dispatch(fan_out, 10)
    assert await executor.wait_for(eid) == [2 * i for i in range(10)]
    tasks = await executor.backend.list_execution_tasks(eid)
    steps = sorted(t.step for t in tasks if t.step is not None)
    assert steps == list(range(1, 11))


async def test_gather_creates_all_children_in_one_storage_call(executor: Stent) -> None:
    """The steps a task starts in one loop turn reach storage as one batch."""
    calls: list[int] = []
    storage = executor.backend
    original = storage.get_or_create_steps

    async def counting(parent, steps, now, **options):  # type: ignore[no-untyped-def]
        calls.append(len(steps))
        return await original(parent, steps, now, **options)

    storage.get_or_create_steps = counting  # type: ignore[method-assign]
    eid = await executor.dispatch(fan_out, 25)
    await executor.wait_for(eid)
    assert calls == [25]


async def test_child_error_raises_at_parents_await_with_its_type(executor: Stent) -> None:
    """A failing child raises its own exception type where the parent awaits it."""
    eid = await executor.dispatch(catches_child_error)
    assert await executor.wait_for(eid) == "caught inner"


async def test_failed_execution_raises_original_error_from_wait_for(executor: Stent) -> None:
    """wait_for raises the root function's exception; state_of and result_of report it."""
    eid = await executor.dispatch(explode, "top")
    with pytest.raises(Boom, match="top"):
        await executor.wait_for(eid)
    status = await executor.state_of(eid)
    assert status.state is ExecutionState.FAILED
    assert status.error_type == "Boom"
    result = await executor.result_of(eid)
    assert result is not None and not result
    with pytest.raises(Boom):
        result.unwrap()


async def test_dispatch_with_same_execution_id_returns_existing(executor: Stent) -> None:
    """Dispatching twice with one execution_id creates one execution."""
    first = await executor.dispatch(add, 1, 2, execution_id="order-1")
    second = await executor.dispatch(add, 5, 5, execution_id="order-1")
    assert first == second == "order-1"
    assert await executor.wait_for("order-1") == 3
    assert RUNS == Counter({"add:1:2": 1})


async def test_unserializable_argument_names_it_and_writes_nothing(executor: Stent) -> None:
    """A dispatch whose argument cannot be serialized fails before anything is stored."""
    with pytest.raises(SerializationError, match="b"):
        await executor.dispatch(add, 1, object())
    page = await executor.list_executions()
    assert page.total == 0


async def test_unknown_execution_id_raises_not_found(executor: Stent) -> None:
    """Asking about an execution that does not exist says so."""
    with pytest.raises(ExecutionNotFound, match="nope"):
        await executor.state_of("nope")
    with pytest.raises(ExecutionNotFound):
        await executor.wait_for("nope")


async def test_wait_for_expiry_raises_timeout_naming_execution() -> None:
    """wait_for with an expiry raises a TimeoutError subclass when nobody runs the execution in time."""
    clock = FakeClock()
    ex = Stent(MemoryStorage(), clock=clock)
    eid = await ex.dispatch(add, 1, 1)
    waiting = asyncio.ensure_future(ex.wait_for(eid, expiry=30))
    for _ in range(50):
        await asyncio.sleep(0)
    clock.advance(31)
    with pytest.raises(ExecutionTimeout, match=eid) as info:
        await waiting
    assert isinstance(info.value, TimeoutError)


async def test_dispatch_of_plain_function_is_refused() -> None:
    """dispatch() of a function without @Stent.durable says what to do."""

    async def plain() -> None:
        return None

    ex = Stent(MemoryStorage(), clock=FakeClock())
    with pytest.raises(ConfigurationError, match="@Stent.durable"):
        await ex.dispatch(plain)  # type: ignore[arg-type]


async def test_durable_refuses_sync_functions() -> None:
    """Decorating a plain def explains that durable functions are async."""
    with pytest.raises(ConfigurationError, match="async def"):

        @Stent.durable
        def sync() -> None:  # pragma: no cover - never called
            return None


async def test_dispatch_by_unknown_name_lists_close_names(executor: Stent) -> None:
    """Dispatching a function by a name nobody registered fails, suggesting the close names."""
    with pytest.raises(UnregisteredFunctionError) as info:
        await executor.dispatch(f"{add.name}x", 1, 2)
    assert repr(add.name) in str(info.value)
    assert (await executor.list_executions()).total == 0


async def test_dispatch_by_registered_name_runs_the_function(executor: Stent) -> None:
    """A durable function can be dispatched by its registered name."""
    eid = await executor.dispatch(add.name, 2, 3)
    assert await executor.wait_for(eid) == 5


@Stent.durable
async def replay_probe(tag: str) -> str:
    first = await double(1)
    second = await double(2)
    return f"{tag}:{first}:{second}"


async def test_replay_after_crash_returns_recorded_results_without_rerunning() -> None:
    """A worker that dies mid-workflow leaves completed steps that the next worker returns from the journal."""
    RUNS.clear()
    clock = FakeClock()
    storage = MemoryStorage()
    ex = Stent(storage, clock=clock)
    eid = await ex.dispatch(replay_probe, "r")
    # First worker: run the root until it waits on step 2, then "crash" (cancel without releasing).
    from stent.model import ClaimRequest

    request = ClaimRequest(worker_id="dead", functions=frozenset({replay_probe.name, double.name}), limit=1, lease_seconds=60)
    [root] = await storage.claim_tasks(request, clock.now())
    from stent.model import StepKey

    await storage.get_or_create_steps(
        root.fence, [(StepKey(root.task_id, root.attempt, 1), _new_step(ex, double, 1))], clock.now()
    )
    [child] = await storage.claim_tasks(attrs.evolve(request, functions=frozenset({double.name})), clock.now())
    await storage.complete_task(child.fence, "2", clock.now())
    RUNS["double:1"] += 1
    # The dead worker's lease expires; a live worker takes over and replays.
    clock.advance(61)
    lifecycle = ex.create_worker_lifecycle("live")
    worker = asyncio.ensure_future(ex.serve(worker_id="live", lifecycle=lifecycle))
    assert await ex.wait_for(eid) == "r:2:4"
    assert RUNS["double:1"] == 1
    assert RUNS["double:2"] == 1
    ex.request_worker_drain(lifecycle)
    await worker


def _new_step(ex: Stent, fn, *args):  # type: ignore[no-untyped-def]
    from stent.model import NewTask

    return NewTask(task_id=f"step-{fn.name}-{args}", function=fn.name, args=ex.codec.encode_call(fn, args, {}))


@Stent.durable
async def nondeterministic(flag: list[int]) -> int:
    if flag:
        return await add(1, 1)
    return await double(1)


async def test_replay_reaching_a_different_function_raises_nondeterminism() -> None:
    """A replay whose step N calls another function than the journal recorded fails naming both."""
    clock = FakeClock()
    storage = MemoryStorage()
    ex = Stent(storage, clock=clock)
    from stent.model import ClaimRequest, StepKey

    eid = await ex.dispatch(nondeterministic, [])
    request = ClaimRequest(worker_id="dead", functions=frozenset({nondeterministic.name}), limit=1, lease_seconds=60)
    [root] = await storage.claim_tasks(request, clock.now())
    # The first run recorded step 1 as add(1, 1).
    await storage.get_or_create_steps(
        root.fence, [(StepKey(root.task_id, root.attempt, 1), _new_step(ex, add, 1, 1))], clock.now()
    )
    clock.advance(61)
    lifecycle = ex.create_worker_lifecycle("live")
    worker = asyncio.ensure_future(ex.serve(worker_id="live", lifecycle=lifecycle))
    with pytest.raises(NonDeterminismError) as info:
        await ex.wait_for(eid)
    assert add.name in str(info.value) and double.name in str(info.value)
    ex.request_worker_drain(lifecycle)
    await worker


async def test_auto_dispatch_awaits_durable_function_outside_worker(executor: Stent) -> None:
    """Awaiting a durable function outside any worker dispatches it on the current executor."""
    Stent.use(executor)
    assert await sequential(3) == 0 + 1 + 2


async def test_auto_dispatch_without_current_executor_explains() -> None:
    """Awaiting a durable function with no current executor says how to set one."""
    Stent._current = None
    with pytest.raises(ConfigurationError, match="Stent.use"):
        await add(1, 2)
