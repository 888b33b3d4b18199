"""Overriding ``stent_worker_options`` sets the fixture worker's ``serve()`` options."""

from __future__ import annotations

from typing import Any

import pytest
from kit_workflows import report, subscription

from stent.testing.harness import WorkflowHarness, WorkflowStuck


@pytest.fixture
def stent_worker_options() -> dict[str, Any]:
    return {"queues": ["reports"], "max_concurrency": 1}


async def test_the_fixture_worker_takes_only_its_queues(stent_worker: WorkflowHarness) -> None:
    """The worker serves the "reports" queue only; a workflow on "default" is reported stuck, naming the queue."""
    [worker] = stent_worker.executor.worker_status_overview()["workers"]
    assert worker["name"] == "worker-1"
    assert await stent_worker.run(report, 3) == "report 3"
    with pytest.raises(WorkflowStuck, match="on queue 'default'.*no ready worker takes it"):
        await stent_worker.run(subscription, "elsewhere")
    await stent_worker.start_worker("default-worker", queues=["default"])
    execution_id = (await stent_worker.executor.list_executions(function=subscription)).executions[0].execution_id
    assert (await stent_worker.finish(execution_id)).startswith("charged elsewhere")
