"""Every benchmark workload at a tiny size, on memory, SQLite and PostgreSQL storage and with each notifier, so
the benchmark code keeps working.  What is checked is that each workload did what it measures and reports it;
speed is never asserted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from benchmarks.environment import Environment
from benchmarks.pgbench import simple_update_tps
from benchmarks.scale import claim_scaling, suspended_memory
from benchmarks.workflows import await_signal
from benchmarks.workloads import (
    MissingAPI,
    calls_per_child,
    dispatch,
    dispatch_batch,
    drain,
    fan_out_workflow,
    idle_queries,
    latency,
    sequential_workflow,
)

from stent import Stent

pytestmark = pytest.mark.timeout(120)

Open = Callable[[str], Awaitable[Environment]]
BACKENDS = ["memory-memory", "sqlite-none", "postgres-postgres"]


async def executions_in(env: Environment) -> int:
    client = await env.executor()
    return (await client.list_executions(limit=1)).total


@pytest.mark.parametrize("setup", BACKENDS)
async def test_drain_counts_every_dispatched_execution_completed(open_env: Open, setup: str) -> None:
    """The drain starts its worker after dispatching, and reports a rate once all twelve executions completed."""
    [figure] = await drain(await open_env(setup), 12)
    assert (figure.key, figure.unit, figure.full_size) == ("drain", "executions/s", False)
    assert figure.details["completed"] == 12
    assert figure.value == pytest.approx(12 / figure.details["seconds"])


@pytest.mark.parametrize("setup", BACKENDS)
async def test_dispatch_makes_one_execution_per_call(open_env: Open, setup: str) -> None:
    """Sequential dispatch times each round of calls, and every call made an execution."""
    env = await open_env(setup)
    [figure] = await dispatch(env, 5, 2)
    assert figure.key == "dispatch" and len(figure.details["round_seconds"]) == 2
    assert await executions_in(env) == 1 + 2 * 5  # a warm-up dispatch, then two rounds of five


@pytest.mark.xfail(
    not hasattr(Stent, "dispatch_many"),
    raises=MissingAPI,
    reason="Stent.dispatch_many (batch dispatch) does not exist yet",
    strict=True,
)
@pytest.mark.parametrize("setup", BACKENDS)
async def test_batch_dispatch_makes_one_execution_per_argument_tuple(open_env: Open, setup: str) -> None:
    """Batch dispatch times one call per round, and the call made an execution per argument tuple."""
    env = await open_env(setup)
    [figure] = await dispatch_batch(env, 7, 2)
    assert figure.key == "dispatch_many"
    assert await executions_in(env) == 1 + 2 * 7


@pytest.mark.parametrize("setup", [*BACKENDS, "sqlite-redis", "sqlite-nats", "postgres-none"])
async def test_latency_takes_one_sample_per_round(open_env: Open, setup: str) -> None:
    """Latency runs its rounds against an idle worker and reports p50 and p99 of one sample per round."""
    p50, p99 = await latency(await open_env(setup), 4, random_phase=False)
    assert (p50.key, p99.key) == ("latency p50", "latency p99")
    assert len(p50.details["samples_ms"]) == 4
    assert 0 < p50.value <= p99.value == max(p50.details["samples_ms"])


@pytest.mark.parametrize("setup", BACKENDS)
async def test_sequential_workflow_and_fan_out_run_to_their_results(open_env: Open, setup: str) -> None:
    """The chain and the fan-out complete (the fan-out checks its children's sum) and report their times."""
    env = await open_env(setup)
    [chain] = await sequential_workflow(env, 3, 2)
    assert chain.key == "sequential 20 steps" and chain.details["steps"] == 3 and not chain.full_size
    [fan] = await fan_out_workflow(env, 7, 1, 500)
    assert (fan.key, fan.label, fan.full_size) == ("fan-out 500", "fan-out 7", False)


@pytest.mark.parametrize("setup", BACKENDS)
async def test_calls_per_child_counts_the_workers_claims_and_completions(open_env: Open, setup: str) -> None:
    """The count of storage calls for a fan-out includes the claims and completions, divided per child."""
    [figure] = await calls_per_child(await open_env(setup), 6)
    by_method = figure.details["by_method"]
    assert by_method["claim_tasks"] >= 1
    assert by_method.get("complete_task", 0) + by_method.get("complete_tasks", 0) >= 1
    assert figure.value == pytest.approx(figure.details["calls"] / 6)


@pytest.mark.parametrize("setup", [*BACKENDS, "postgres-redis"])
async def test_idle_worker_queries_are_counted_over_virtual_periods(open_env: Open, setup: str) -> None:
    """An idle worker watched in virtual time keeps claiming at its poll, and the count is per period."""
    [figure] = await idle_queries(await open_env(setup), 3)
    assert figure.details["periods"] == 3
    # A poll in (nearly) every period: the next poll is timed from the end of the last, so a claim's own time
    # (virtual time moves on while it runs) can push one past the end of the window.
    assert figure.details["by_method"]["claim_tasks"] >= 2
    assert set(figure.details["by_method"]) == {"claim_tasks"}  # the claims do the idle worker's chores too
    assert figure.value == pytest.approx(sum(figure.details["by_method"].values()) / 3)


@pytest.mark.parametrize("setup", ["sqlite-none", "postgres-none"])
async def test_suspended_memory_reads_a_worker_process_holding_every_execution_suspended(
    open_env: Open, setup: str
) -> None:
    """A ``stent worker`` process suspends the warm-up and the measured executions; both RSS reads are taken."""
    env = await open_env(setup)
    [figure] = await suspended_memory(env, 10, warmup=3)
    assert figure.details["unfinished_executions"] == 13
    assert figure.details["rss_before"] > 0 and figure.details["rss_after"] > 0
    client = await env.executor()
    [execution] = (await client.list_executions(limit=1)).executions
    assert execution.function == await_signal.name


@pytest.mark.parametrize("setup", ["memory-memory", "postgres-none"])
async def test_claim_scaling_claims_full_batches_at_both_backlogs(open_env: Open, setup: str) -> None:
    """Claims are timed with the small backlog, then the large one before and after the statistics are
    refreshed, and the slowdown is the worse of the two large ones against the small one."""
    small, stale, fresh, slowdown = await claim_scaling(await open_env(setup), (12, 30), 2)
    assert [f.key for f in (small, stale, fresh, slowdown)] == [
        "claim with 1000 pending",
        "claim with 100000 pending, stale statistics",
        "claim with 100000 pending",
        "claim slowdown 100000/1000",
    ]
    assert slowdown.value == pytest.approx(max(stale.value, fresh.value) / small.value)
    assert slowdown.details["limit"] == 4  # a quarter of the small backlog per claim leaves some for every round


async def test_pgbench_reports_the_simple_update_rate(services: object) -> None:
    """pgbench runs simple-update in a database of its own and reports transactions per second."""
    result = await simple_update_tps(services.postgres(), seconds=1)  # type: ignore[attr-defined]
    assert result["tps"] > 0 and " -N " in result["command"]
