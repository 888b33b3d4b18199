"""Cost: storage calls per trivial child of a fan-out, and the queries of an idle worker (issue 9)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import workloads
from benchmarks.conftest import SETUPS, Bench
from benchmarks.environment import Setup

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_calls_per_child(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """The worker's storage calls for a fan-out of 200 trivial children, per child."""
    bench.measure(benchmark, setup, lambda env: workloads.calls_per_child(env, sizes.cost_children))


@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_idle_worker_queries(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """An idle worker's storage calls per ``poll_interval_max``, over twenty periods of virtual time."""
    bench.measure(benchmark, setup, lambda env: workloads.idle_queries(env, sizes.idle_intervals))
