"""Testing the approval workflow on a fake clock: no real waiting, three days pass at once.

    python -m pytest examples/test_human_approval.py
"""

from __future__ import annotations

from human_approval import expense_approval

from stent.testing.harness import WorkflowHarness


async def test_a_decision_is_passed_on() -> None:
    """A manager's signal decides the expense."""
    harness = WorkflowHarness()
    await harness.start_worker()
    execution_id = await harness.executor.dispatch(expense_approval, "EXP-1", 10.0)
    await harness.advance(60)
    await harness.executor.send_signal(execution_id, "decision", {"verdict": "rejected", "by": "lee"})
    assert await harness.finish(execution_id) == "rejected"
    await harness.stop()


async def test_no_decision_for_three_days_escalates() -> None:
    """Without a decision the workflow escalates once three days have passed."""
    harness = WorkflowHarness()
    await harness.start_worker()
    execution_id = await harness.executor.dispatch(expense_approval, "EXP-2", 10.0)
    assert await harness.finish(execution_id, step=3600) == "escalated"
    await harness.stop()
