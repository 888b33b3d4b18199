"""The CI seed sweep: the example workflows under a few hundred seeds across fault mixes, and a planted bug caught.

Every run must keep every invariant.  Without ``user`` faults every workflow must also return what it returns on
a quiet fleet: crashes, pauses, storage outages, lost notifications and skewed clocks may slow stent down but
never change an answer.  With ``user`` faults a workflow may instead fail with the injected error.
"""

from __future__ import annotations

from typing import Any

import pytest
from sim_workflows import CANCELS, FEATURES, FEATURES_EXPECTED, MIXED, MIXED_EXPECTED

from stent.errors import TaskNotFound
from stent.memory import MemoryStorage
from stent.model import Fence, TaskRecord
from stent.result import Error
from stent.testing.sim import InjectedFault, SimResult

MIXES = ["none", "crash", "pause", "restart", "storage", "notify,skew", "user", "all"]
SEEDS_PER_MIX = 40


def _answers_are_right(result: SimResult) -> list[str]:
    wrong = []
    user_faults = result.faults.user > 0
    for outcome, expected in zip(result.outcomes.values(), MIXED_EXPECTED, strict=True):
        result_ = outcome.result
        if user_faults and isinstance(result_, Error) and isinstance(result_.error, InjectedFault):
            continue
        retried = isinstance(expected, str) and expected.startswith("r-1: ok on attempt")
        if user_faults and retried and result_ and str(result_.value).startswith("r-1: ok on attempt"):
            continue  # an injected failure used up an attempt of the flaky child
        if result_ is None or not result_ or result_.value != expected:
            wrong.append(f"{outcome.function}: expected {expected!r}, got {result_!r}")
    return wrong


@pytest.mark.parametrize("faults", MIXES)
def test_example_workflows_keep_every_invariant_under_faults(sim: Any, faults: str) -> None:
    """Thirty seeds of the mixed scenario under one fault mix: invariants hold and the answers are right."""
    for result in sim.sweep(MIXED.dispatches, seeds=range(SEEDS_PER_MIX), faults=faults, **_settings(MIXED)):
        wrong = _answers_are_right(result)
        assert not wrong, f"{wrong}\n{result.report(trace_lines=0)}"


@pytest.mark.parametrize("faults", ["crash,pause,restart,storage", "all"])
def test_cancellation_and_time_limits_keep_every_invariant_under_faults(sim: Any, faults: str) -> None:
    """Cancellations and max_duration racing running work: invariants hold and each execution ends as it may."""
    for result in sim.sweep(seeds=range(12), faults=faults, script=CANCELS.script, **_settings(CANCELS)):
        for outcome in result.outcomes.values():
            allowed = {"completed", "cancelled"} if outcome.function.endswith("cancellable") else {"timed_out"}
            if result.faults.user:
                allowed.add("failed")
            assert outcome.state in allowed, f"{outcome}\n{result.report(trace_lines=0)}"


@pytest.mark.parametrize("faults", ["storage", "crash,pause,notify", "all"])
def test_engine_features_keep_every_invariant_under_faults(sim: Any, faults: str) -> None:
    """Nested orchestrators, caching, compensation, signal timeouts and counters give the quiet-fleet answer."""
    for result in sim.sweep(FEATURES.dispatches, seeds=range(12), faults=faults, **_settings(FEATURES)):
        for outcome in result.outcomes.values():
            error = getattr(outcome.result, "error", None)
            if result.faults.user and isinstance(error, InjectedFault):
                continue
            assert outcome.value == FEATURES_EXPECTED, result.report(trace_lines=0)


class UnfencedStorage(MemoryStorage):
    """The planted bug: writes skip the fencing check, so a worker whose lease was lost still writes."""

    def _fenced(self, fence: Fence) -> TaskRecord:
        task = self._tasks.get(fence.task_id)
        if task is None:
            raise TaskNotFound(fence.task_id)
        return task


@pytest.mark.parametrize("faults", ["pause", "storage", "all"])
def test_a_storage_that_skips_fencing_is_caught_within_the_sweep_seeds(faults: str) -> None:
    """With writes unfenced, runs of the sweep's own seeds report tasks finished twice (not only stale writes)."""
    caught: dict[str, set[int]] = {}
    for seed in range(SEEDS_PER_MIX):
        result = MIXED.run(seed=seed, faults=faults, storage=UnfencedStorage)
        for violation in result.violations:
            caught.setdefault(violation.invariant, set()).add(seed)
    assert caught.get("task finished twice"), caught
    assert caught.get("stale write accepted"), caught
    assert len(caught["task finished twice"]) >= SEEDS_PER_MIX // 5, caught


def _settings(scenario: Any) -> dict[str, Any]:
    return {
        "workers": scenario.workers,
        "duration": scenario.duration,
        "signals": scenario.signals,
        "serve_options": scenario.serve_options,
    }
