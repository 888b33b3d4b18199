"""Each invariant has teeth: a storage with one planted bug makes the simulator report that invariant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from sim_workflows import MIXED

from stent.memory import MemoryStorage
from stent.model import ClaimRequest, Fence, NewTask, StepKey, TaskRecord, TaskState
from stent.testing.sim import Scenario, SimResult


class IgnoresMaxConcurrent(MemoryStorage):
    """Claims as if no function had a ``max_concurrent``."""

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        limits = {i: t.max_concurrent for i, t in self._tasks.items() if t.max_concurrent is not None}
        for task_id in limits:
            self._set(self._tasks[task_id], max_concurrent=None)
        try:
            return await super().claim_tasks(request, now)
        finally:
            for task_id, limit in limits.items():
                self._set(self._tasks[task_id], max_concurrent=limit)


class IgnoresSchedule(MemoryStorage):
    """Claims pending tasks (retries, delayed dispatches) before their scheduled time."""

    def _claimable(self, task: TaskRecord, request: ClaimRequest, now: datetime) -> bool:
        if task.state is TaskState.PENDING:
            return super()._claimable(attrs.evolve(task, scheduled_for=now), request, now)
        return super()._claimable(task, request, now)


class StealsLeases(MemoryStorage):
    """Claims running tasks whose lease has not expired."""

    def _claimable(self, task: TaskRecord, request: ClaimRequest, now: datetime) -> bool:
        if task.state is TaskState.RUNNING:
            return super()._claimable(attrs.evolve(task, lease_expires_at=now), request, now)
        return super()._claimable(task, request, now)


class ForgetsSteps(MemoryStorage):
    """Loses the journal index, so a replayed parent creates its finished steps anew."""

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        self._steps.clear()
        return await super().get_or_create_steps(parent, steps, now, allow_stopping=allow_stopping)


class ResetsAttempts(MemoryStorage):
    """Hands out retried tasks as attempt 1 again."""

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        claimed = await super().claim_tasks(request, now)
        return [self._set(t, attempt=1) if t.attempt > 1 else t for t in claimed]


class ClaimsFinishedTasks(MemoryStorage):
    """Treats completed tasks as claimable."""

    def _claimable(self, task: TaskRecord, request: ClaimRequest, now: datetime) -> bool:
        if task.state is TaskState.COMPLETED:
            return super()._claimable(attrs.evolve(task, state=TaskState.PENDING), request, now)
        return super()._claimable(task, request, now)


class NeverWakesSuspendedParents(MemoryStorage):
    """A finished step (or a signal) never makes its suspended parent claimable again."""

    def _wake_parent(self, task: TaskRecord, now: datetime) -> None:
        parent = self._tasks.get(task.parent_task_id or "")
        if parent is not None and parent.state is TaskState.SUSPENDED:
            return
        super()._wake_parent(task, now)


class CleansUpUnfinished(MemoryStorage):
    """Cleanup also deletes an execution that has not finished."""

    async def delete_executions_before(self, cutoff: datetime, limit: int) -> int:
        doomed = [e for e in self._executions.values() if not e.state.terminal][:1]
        for execution in doomed:
            for task_id in self._by_execution.pop(execution.execution_id, []):
                del self._tasks[task_id]
            del self._executions[execution.execution_id]
        return len(doomed) + await super().delete_executions_before(cutoff, limit)


def _first_caught(storage: type[MemoryStorage], invariant: str, **options: Any) -> SimResult:
    scenario: Scenario = options.pop("scenario", MIXED)
    for seed in range(5):
        result = scenario.run(seed=seed, storage=storage, **options)
        if any(v.invariant == invariant for v in result.violations):
            return result
    raise AssertionError(f"{storage.__name__} was never reported as breaking {invariant!r}")


@pytest.mark.parametrize(
    "storage, invariant, options",
    [
        (IgnoresMaxConcurrent, "max_concurrent never exceeded", {}),
        (IgnoresSchedule, "nothing runs before its time", {}),
        (StealsLeases, "one worker per task", {}),
        (ForgetsSteps, "completed step run again", {"faults": "crash"}),
        (ResetsAttempts, "attempts only increase", {}),
        (ClaimsFinishedTasks, "completed step run again", {}),
        (NeverWakesSuspendedParents, "finishes after faults heal", {}),
    ],
    ids=["max_concurrent", "schedule", "leases", "journal", "attempts", "finished", "wake-ups"],
)
def test_planted_storage_bug_is_reported_as_its_invariant(
    storage: type[MemoryStorage], invariant: str, options: dict[str, Any]
) -> None:
    """The simulator names the invariant the planted bug breaks, with the time and the task involved."""
    result = _first_caught(storage, invariant, **options)
    violation = next(v for v in result.violations if v.invariant == invariant)
    assert violation.message and violation.time >= 0
    assert f"VIOLATION {invariant}" in "\n".join(result.trace)
    assert str(result.seed) in result.report() and "reproduce:" in result.report()


def test_execution_deleted_before_it_finished_is_reported_lost() -> None:
    """A cleanup that deletes unfinished executions is reported as losing them."""
    options = {**dict(MIXED.serve_options or {}), "cleanup_interval": 30, "retention_period": 1}
    _first_caught(CleansUpUnfinished, "no execution lost", serve_options=options)


def test_the_real_memory_storage_breaks_no_invariant() -> None:
    """The reference storage passes the same runs the planted bugs fail (the baseline for the tests above)."""
    for seed in range(3):
        result = MIXED.run(seed=seed, faults="crash")
        assert result.ok, result.report()


def test_lease_margin_keeps_the_time_jump_short_of_lease_expiry() -> None:
    """Jumping over idle time never lets a held lease expire: a waiting parent keeps its worker all along."""
    result = MIXED.run(seed=4)
    assert result.ok
    assert not [line for line in result.trace if "lease lost" in line or "abandoned" in line]
    assert result.stats["compressed_seconds"] > 0
    assert timedelta(seconds=result.stats["virtual_seconds"]) > timedelta(minutes=10)
