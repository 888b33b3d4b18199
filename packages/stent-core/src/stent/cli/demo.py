"""``stent demo``: the order-processing workflow on an embedded SQLite file, with progress as it goes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import timedelta
from typing import TextIO

from stent.demo import orders
from stent.errors import StentError
from stent.executor import Stent
from stent.model import ExecutionState


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default="stent-demo.db", help="SQLite file to keep the demo's state in")
    parser.add_argument("--fresh", action="store_true", help="delete the demo database first and start over")
    parser.add_argument(
        "--work-seconds", type=float, default=orders.work_seconds, help="how long each activity pretends to work"
    )


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if args.work_seconds < 0:
        print("stent demo: --work-seconds must be zero or more", file=sys.stderr)
        return 2
    if args.fresh:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(args.db + suffix):
                os.remove(args.db + suffix)
    orders.work_seconds = args.work_seconds
    try:
        return asyncio.run(_demo(args.db, out))
    except KeyboardInterrupt:
        print("\ninterrupted: run `stent demo` again to resume the unfinished orders", file=out)
        return 130
    except StentError as exc:
        print(f"stent demo: {exc}", file=sys.stderr)
        return 1


async def _demo(db: str, out: TextIO) -> int:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    orders.progress = lambda line: say(f"  {line}")
    backend = Stent.backends.SQLiteBackend(db)
    await backend.init_db()
    executor = Stent(backend=backend)
    try:
        ids = []
        resumed = 0
        for order in orders.demo_orders():
            before = await backend.get_execution(order["order_id"])
            ids.append(await executor.dispatch(orders.process_order, order, execution_id=order["order_id"]))
            if before is not None and not before.state.terminal:
                resumed += 1
        done_before = [i for i in ids if (await executor.state_of(i)).state.terminal]
        say(f"stent demo: {len(ids)} orders in {db}")
        if resumed:
            say(f"resuming {resumed} unfinished order(s) from the last run; finished steps are not run again")
        if len(done_before) == len(ids):
            say("every order already finished in an earlier run (use --fresh to start over)")
        lifecycle = executor.create_worker_lifecycle("demo-worker")
        worker = asyncio.ensure_future(
            executor.serve(
                worker_id="demo-worker",
                lifecycle=lifecycle,
                max_concurrency=20,
                poll_interval=0.1,
                poll_interval_max=0.5,
                lease_duration=timedelta(seconds=10),
                heartbeat_interval=timedelta(seconds=3),
            )
        )
        try:
            await lifecycle.wait_until_ready()
            results = await asyncio.gather(*(executor.wait_for(i) for i in ids), return_exceptions=True)
        finally:
            executor.request_worker_drain(lifecycle)
            await worker
        say("")
        say(f"{'order':<10} {'state':<10} {'amount':>9}  tracking")
        failures = 0
        for execution_id, result in zip(ids, results):
            status = await executor.state_of(execution_id)
            if isinstance(result, BaseException) or status.state is not ExecutionState.COMPLETED:
                failures += 1
                say(f"{execution_id:<10} {status.state.value:<10} {'':>9}  {result}")
                continue
            say(
                f"{execution_id:<10} {status.state.value:<10} ${result['amount_cents'] / 100:>8.2f}  {result['tracking']}"
            )
        return 1 if failures else 0
    finally:
        await executor.close()
