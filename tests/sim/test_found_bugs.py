"""Bugs the simulator found in core, each pinned by a minimal test on the plain fake-clock harness."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pytest

from stent import Stent
from stent.clocks import FakeClock
from stent.engine.runner import TaskAbandoned, TaskRunner
from stent.errors import StorageUnavailable
from stent.memory import MemoryStorage
from stent.model import ClaimRequest, Fence, NewTask, StepKey, TaskRecord
from stent.testing.harness import WorkflowHarness


class StepOutageOnce(MemoryStorage):
    """Fails the first ``get_or_create_steps`` with StorageUnavailable, before or after it commits."""

    def __init__(self, *, after_commit: bool) -> None:
        super().__init__()
        self.after_commit = after_commit
        self.failed = False

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        if self.failed:
            return await super().get_or_create_steps(parent, steps, now, allow_stopping=allow_stopping)
        self.failed = True
        if self.after_commit:
            await super().get_or_create_steps(parent, steps, now, allow_stopping=allow_stopping)
        raise StorageUnavailable("connection reset")


@Stent.durable
async def double(x: int) -> int:
    return 2 * x


@Stent.durable
async def one_step(x: int) -> int:
    return await double(x)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
async def test_storage_blip_while_journaling_a_step_does_not_fail_the_workflow(after_commit: bool) -> None:
    """A transient StorageUnavailable from step creation is retried (steps are get-or-create), not raised."""
    harness = WorkflowHarness(StepOutageOnce(after_commit=after_commit))
    try:
        await harness.start_worker()
        execution_id = await harness.executor.dispatch(one_step, 21)
        assert await harness.finish(execution_id, max_virtual=3600) == 42
    finally:
        await harness.stop()


RUNS: list[str] = []


@Stent.durable
async def side_effect(key: str) -> str:
    RUNS.append(key)
    return key


async def test_code_does_not_start_once_the_lease_expired_between_claim_and_start() -> None:
    """A worker that stalls between claiming a task and starting it (past its lease) abandons it unrun.

    Found by the simulator (pause faults): the stalled worker started the code of a step another worker had
    meanwhile claimed and completed, running a committed step's side effects again.
    """
    RUNS.clear()
    clock = FakeClock()
    storage = MemoryStorage()
    executor = Stent(storage, clock=clock)
    await executor.dispatch(side_effect, "once")
    request = ClaimRequest(worker_id="w1", functions=frozenset({side_effect.name}), limit=1, lease_seconds=10)
    [record] = await storage.claim_tasks(request, clock.now())
    clock.advance(11)  # the worker stalls here, past its lease
    runner = TaskRunner(
        executor._rt(), on_waiting=lambda _: None, on_resumed=lambda _: None, lease_seconds=10, suspend_after=60
    )
    with pytest.raises(TaskAbandoned):
        await runner.run(record)
    assert RUNS == []
