"""Latency: one trivial execution at a time, a chain of twenty steps, and fan-outs of 500 and 1,000 (issue 9)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import workloads
from benchmarks.conftest import SETUPS, Bench
from benchmarks.environment import Setup
from benchmarks.sizes import FULL

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_latency(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """An idle worker; dispatch one trivial execution and wait for its result, 200 rounds: p50 and p99."""
    bench.measure(benchmark, setup, lambda env: workloads.latency(env, sizes.latency_rounds))


@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_sequential_workflow(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """Twenty trivial steps awaited one after another in one durable function: dispatch to result."""
    bench.measure(
        benchmark,
        setup,
        lambda env: workloads.sequential_workflow(env, sizes.sequential_steps, sizes.sequential_rounds),
    )


@pytest.mark.parametrize("size", [0, 1], ids=["500", "1000"])
@pytest.mark.parametrize("setup", SETUPS, ids=str)
def test_fan_out(benchmark: Any, bench: Bench, sizes: Any, setup: Setup, size: int) -> None:
    """One workflow mapping 500 (then 1,000) trivial children and gathering them: dispatch to result."""
    children, full = sizes.fan_out[size], FULL.fan_out[size]
    bench.measure(
        benchmark, setup, lambda env: workloads.fan_out_workflow(env, children, sizes.fan_out_rounds, full)
    )
