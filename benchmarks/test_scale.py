"""Scale: a worker process's memory with 10,000 suspended executions, and a claim with 100,000 tasks pending
(issue 9)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import scale
from benchmarks.conftest import BACKEND_SETUPS, Bench
from benchmarks.environment import Setup

pytestmark = pytest.mark.timeout(1800)


@pytest.mark.parametrize("setup", BACKEND_SETUPS, ids=str)
def test_suspended_memory(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """10,000 executions waiting on a signal: what they add to a ``stent worker`` process's RSS."""
    bench.measure(benchmark, setup, lambda env: scale.suspended_memory(env, sizes.suspended))


@pytest.mark.parametrize("setup", [Setup("postgres", "none")], ids=str)
def test_claim_scaling(benchmark: Any, bench: Bench, sizes: Any, setup: Setup) -> None:
    """A claim of fifty with 100,000 tasks pending, against one with 1,000 pending."""
    bench.measure(benchmark, setup, lambda env: scale.claim_scaling(env, sizes.claim_pending, sizes.claim_rounds))
