"""Throughput: draining a backlog, and dispatching one by one and in batches (issue 9)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import workloads
from benchmarks.conftest import SETUPS, Bench
from benchmarks.environment import Setup
from benchmarks.report import Figure
from stent import Stent

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_drain(benchmark: Any, bench: Bench, sizes: Any, setup: Setup, request: pytest.FixtureRequest) -> None:
    """2,000 trivial executions dispatched, then the worker starts: completed per second.  On PostgreSQL, next to
    pgbench's simple-update rate measured in the same session."""
    pgbench = request.getfixturevalue("pgbench_tps") if setup.backend == "postgres" else None
    [drained] = bench.measure(benchmark, setup, lambda env: workloads.drain(env, sizes.drain))
    if pgbench is not None:
        tps = pgbench["tps"]
        bench.record(
            setup,
            [
                Figure(
                    "pgbench simple-update",
                    "pgbench simple-update (same run)",
                    tps,
                    "tx/s",
                    "higher",
                    True,
                    pgbench,
                ),
                Figure(
                    "drain share of pgbench",
                    "drain rate / pgbench rate",
                    100 * drained.value / tps,
                    "%",
                    "higher",
                    drained.full_size,
                ),
            ],
        )


@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_dispatch(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """Sequential ``await dispatch(fn, i)`` from one client: dispatches per second."""
    bench.measure(benchmark, setup, lambda env: workloads.dispatch(env, sizes.dispatch, sizes.dispatch_rounds))


@pytest.mark.xfail(
    not hasattr(Stent, "dispatch_many"),
    raises=workloads.MissingAPI,
    reason="Stent.dispatch_many (batch dispatch) does not exist yet",
    strict=True,
)
@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_dispatch_many(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """``await dispatch_many(fn, [(i,) for i in range(n)])``: executions dispatched per second."""
    bench.measure(
        benchmark, setup, lambda env: workloads.dispatch_batch(env, sizes.dispatch_many, sizes.dispatch_rounds)
    )
