"""Human approval: an expense waits for a manager's decision (a signal); after three days it escalates.

    python examples/human_approval.py [--decision approve|reject]

The program plays the manager too: it sends the decision as a signal once the workflow waits for it. Waiting
costs nothing: the workflow is suspended in storage, not held in memory. examples/test_human_approval.py shows the
three-day timeout on a fake clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

from stent import SignalTimeout, Stent


@Stent.durable
async def notify(who: str, message: str) -> None:
    print(f"  -> {who}: {message}")


@Stent.durable
async def expense_approval(expense_id: str, amount: float) -> str:
    await notify("manager", f"please approve {expense_id} ({amount:.2f})")
    try:
        decision = await Stent.wait_for_signal("decision", timeout="3d")
    except SignalTimeout:
        await notify("director", f"{expense_id} waited three days; escalating")
        return "escalated"
    await notify("employee", f"{expense_id} was {decision['verdict']} by {decision['by']}")
    return str(decision["verdict"])


async def main(decision: str, db: str) -> None:
    executor = await Stent.bootstrap(Stent.backends.SQLiteBackend(db))
    lifecycle = executor.create_worker_lifecycle("approval-worker")
    worker = asyncio.create_task(executor.serve(lifecycle=lifecycle, poll_interval=0.05, poll_interval_max=0.2))
    await lifecycle.wait_until_ready()
    try:
        execution_id = await executor.dispatch(expense_approval, "EXP-42", 129.5)
        verdict = {"approve": "approved", "reject": "rejected"}[decision]
        await executor.send_signal(execution_id, "decision", {"verdict": verdict, "by": "dana"})
        print(f"outcome: {await executor.wait_for(execution_id)}")
    finally:
        executor.request_worker_drain(lifecycle)
        await worker
        await executor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decision", choices=["approve", "reject"], default="approve")
    parser.add_argument("--db", default=os.path.join(tempfile.mkdtemp(prefix="stent-approval-"), "approval.db"))
    args = parser.parse_args()
    asyncio.run(main(args.decision, args.db))
