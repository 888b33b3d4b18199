"""Fan-out with map/starmap/gather, idempotent and cached results, execution context, queries, bad results."""

from __future__ import annotations

from collections import Counter

import pytest

from stent import ConfigurationError, ExecutionState, SerializationError, Stent
from stent.testing.harness import WorkflowHarness

RUNS: Counter[str] = Counter()


@Stent.durable
async def square(x: int) -> int:
    RUNS[f"square:{x}"] += 1
    if x < 0:
        raise ValueError(f"negative {x}")
    return x * x


@Stent.durable
async def power(base: int, exp: int) -> int:
    return base**exp


@Stent.durable
async def squares(n: int) -> list[int]:
    return await square.map(range(n))


@Stent.durable
async def powers() -> list[int]:
    return await power.starmap([(2, 3), (3, 2), (10, 0)])


@Stent.durable
async def gathered() -> list[int]:
    return await Stent.gather(square(3), power(2, 5))


@Stent.durable
async def with_a_failure() -> list[int]:
    return await square.map([1, -2, 3])


@Stent.durable(idempotent=True, version=1)
async def charge(customer: str, cents: int) -> str:
    RUNS[f"charge:{customer}"] += 1
    return f"charged {customer} {cents}"


@Stent.durable(cached=True, cache_ttl="1h")
async def exchange_rate(currency: str) -> float:
    RUNS[f"rate:{currency}"] += 1
    return 1.1 + RUNS[f"rate:{currency}"]


@Stent.durable(idempotency_key_func=lambda order, note: order)
async def ship(order: str, note: str) -> str:
    RUNS[f"ship:{order}"] += 1
    return f"shipped {order} ({note})"


@Stent.durable
async def counting(items: list[str]) -> int:
    for item in items:
        await square(len(item))
        Stent.context(counters={"processed": 1}, state={"last": item})
    return len(items)


@Stent.durable
async def returns_garbage() -> object:
    return object()


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()


async def test_map_runs_children_in_parallel_and_keeps_order(harness: WorkflowHarness) -> None:
    """fn.map inside a workflow returns results in item order, children created in one storage call."""
    calls: list[int] = []
    original = harness.storage.get_or_create_steps

    async def counting_calls(parent, steps, now, **options):  # type: ignore[no-untyped-def]
        calls.append(len(steps))
        return await original(parent, steps, now, **options)

    harness.storage.get_or_create_steps = counting_calls  # type: ignore[method-assign]
    await harness.start_worker(max_concurrency=50)
    eid = await harness.executor.dispatch(squares, 30)
    assert await harness.finish(eid) == [i * i for i in range(30)]
    assert calls == [30]


async def test_starmap_and_gather(harness: WorkflowHarness) -> None:
    """starmap unpacks argument tuples; Stent.gather awaits mixed calls in order."""
    await harness.start_worker()
    assert await harness.finish(await harness.executor.dispatch(powers)) == [8, 9, 1]
    assert await harness.finish(await harness.executor.dispatch(gathered)) == [9, 32]


async def test_map_raises_the_first_failure(harness: WorkflowHarness) -> None:
    """A failing element's error is raised at the map's await."""
    await harness.start_worker()
    with pytest.raises(ValueError, match="negative -2"):
        await harness.finish(await harness.executor.dispatch(with_a_failure))


async def test_map_outside_a_workflow_dispatches_one_execution_per_item(harness: WorkflowHarness) -> None:
    """Awaiting fn.map outside any worker starts one execution per item on the current executor."""
    await harness.start_worker()
    Stent.use(harness.executor)
    assert await square.map([2, 4]) == [4, 16]
    assert (await harness.executor.list_executions(function=square)).total == 2


async def test_idempotent_function_runs_once_per_key_across_executions(harness: WorkflowHarness) -> None:
    """Two executions calling an idempotent function with the same arguments run it once."""
    await harness.start_worker()
    first = await harness.finish(await harness.executor.dispatch(charge, "ann", 500))
    second = await harness.finish(await harness.executor.dispatch(charge, "ann", 500))
    assert first == second == "charged ann 500"
    assert RUNS["charge:ann"] == 1
    await harness.finish(await harness.executor.dispatch(charge, "bob", 500))
    assert RUNS["charge:bob"] == 1


async def test_cached_result_expires_after_its_ttl(harness: WorkflowHarness) -> None:
    """A cached result is reused within its time-to-live and recomputed after."""
    await harness.start_worker()
    a = await harness.finish(await harness.executor.dispatch(exchange_rate, "EUR"))
    b = await harness.finish(await harness.executor.dispatch(exchange_rate, "EUR"))
    assert a == b and RUNS["rate:EUR"] == 1
    await harness.advance(3601, step=600)
    c = await harness.finish(await harness.executor.dispatch(exchange_rate, "EUR"))
    assert c != a and RUNS["rate:EUR"] == 2


async def test_idempotency_key_function_picks_what_counts(harness: WorkflowHarness) -> None:
    """With idempotency_key_func, calls sharing the key run once even with other arguments."""
    await harness.start_worker()
    first = await harness.finish(await harness.executor.dispatch(ship, "o-1", "first note"))
    second = await harness.finish(await harness.executor.dispatch(ship, "o-1", "second note"))
    assert first == second == "shipped o-1 (first note)"
    assert RUNS["ship:o-1"] == 1


async def test_execution_context_counters_and_state_are_readable(harness: WorkflowHarness) -> None:
    """Counters and state set with Stent.context show in state_of once the task completes."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(counting, ["a", "bb", "ccc"])
    assert await harness.finish(eid) == 3
    status = await harness.executor.state_of(eid)
    assert status.counters == {"processed": 3}
    assert status.state_values == {"last": "ccc"}


async def test_context_outside_a_task_is_refused() -> None:
    """Stent.context outside a durable function says where it works."""
    with pytest.raises(ConfigurationError, match="inside a durable function"):
        Stent.context(counters={"x": 1})


async def test_unserializable_result_fails_the_task_and_the_worker_goes_on(harness: WorkflowHarness) -> None:
    """A function returning something that cannot be stored fails with a clear reason; later work still runs."""
    await harness.start_worker()
    bad = await harness.executor.dispatch(returns_garbage)
    with pytest.raises(SerializationError, match="result of"):
        await harness.finish(bad)
    assert await harness.finish(await harness.executor.dispatch(square, 5)) == 25


async def test_oversized_arguments_are_refused_at_dispatch(harness: WorkflowHarness) -> None:
    """With max_payload_bytes set, a too-large argument fails at dispatch naming the limit, nothing stored."""
    executor = Stent(harness.storage, clock=harness.clock, max_payload_bytes=100)
    with pytest.raises(SerializationError, match="100"):
        await executor.dispatch(square, 10**300)
    assert (await harness.executor.list_executions()).total == 0


async def test_list_executions_filters_and_pages(harness: WorkflowHarness) -> None:
    """list_executions filters by state, function and queue, and pages with a total."""
    await harness.start_worker()
    for i in range(5):
        await harness.finish(await harness.executor.dispatch(square, i))
    await harness.executor.dispatch(power, 2, 2, queue="elsewhere")
    done = await harness.executor.list_executions(state="completed")
    assert done.total == 5
    page = await harness.executor.list_executions(function=square, limit=2, offset=1)
    assert page.total == 5 and len(page.executions) == 2
    assert (await harness.executor.list_executions(queue="elsewhere")).total == 1
    assert (await harness.executor.list_executions(state=ExecutionState.FAILED)).total == 0
    with pytest.raises(ConfigurationError, match="unknown execution state"):
        await harness.executor.list_executions(state="finished")
    with pytest.raises(ConfigurationError):
        await harness.executor.list_executions(limit=0)


def test_decorator_option_errors() -> None:
    """Wrong decorator options raise ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match="cache_ttl"):
        Stent.durable(cache_ttl="1h")(square.func)
    with pytest.raises(ConfigurationError, match="max_duration"):
        Stent.durable(max_duration="1h", expiry="2h")(square.func)
    with pytest.raises(ConfigurationError, match="reserved"):
        Stent.durable(name="stent.mine")(square.func)
    with pytest.raises(ConfigurationError, match="retry_policy"):
        Stent.durable(retry_policy=3)(square.func)  # type: ignore[arg-type]


async def test_progress_log_lists_the_steps_in_order(harness: WorkflowHarness) -> None:
    """progress_of lists an execution's steps oldest first, bounded by its limit."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(counting, ["a", "bb"])
    await harness.finish(eid)
    progress = await harness.executor.progress_of(eid)
    assert [p.function for p in progress] == [counting.name, square.name, square.name]
    assert [p.step for p in progress] == [None, 1, 2]
    assert all(p.state == "completed" for p in progress)
    assert len(await harness.executor.progress_of(eid, limit=1)) == 1
    with pytest.raises(ConfigurationError):
        await harness.executor.progress_of(eid, limit=0)
