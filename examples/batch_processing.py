"""Batch processing: fan a batch of records out to parallel steps, and collect the failures instead of aborting.

    python examples/batch_processing.py [--records 50]

Records whose number is a multiple of 7 are "corrupt" and fail; the batch still finishes and reports them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

from stent import Stent


class CorruptRecord(Exception):
    pass


@Stent.durable(max_concurrent=10)
async def import_record(number: int) -> int:
    if number % 7 == 0:
        raise CorruptRecord(f"record {number} is corrupt")
    return number * 10


@Stent.durable
async def import_batch(count: int) -> dict[str, object]:
    # gather(return_exceptions=True) keeps going past failures; map() would raise the first one instead.
    outcomes = await asyncio.gather(*(import_record(n) for n in range(1, count + 1)), return_exceptions=True)
    failed = [n for n, outcome in enumerate(outcomes, start=1) if isinstance(outcome, CorruptRecord)]
    imported = [outcome for outcome in outcomes if isinstance(outcome, int)]
    Stent.context(counters={"imported": len(imported), "failed": len(failed)})
    return {"imported": len(imported), "failed": failed, "total": sum(imported)}


async def main(records: int, db: str) -> None:
    executor = await Stent.bootstrap(Stent.backends.SQLiteBackend(db))
    lifecycle = executor.create_worker_lifecycle("batch-worker")
    worker = asyncio.create_task(executor.serve(lifecycle=lifecycle, max_concurrency=20, poll_interval=0.05))
    await lifecycle.wait_until_ready()
    try:
        execution_id = await executor.dispatch(import_batch, records)
        report = await executor.wait_for(execution_id)
        status = await executor.state_of(execution_id)
        print(f"imported {report['imported']} of {records} records; failed: {report['failed']}")
        print(f"counters: {status.counters}")
    finally:
        executor.request_worker_drain(lifecycle)
        await worker
        await executor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--db", default=os.path.join(tempfile.mkdtemp(prefix="stent-batch-"), "batch.db"))
    args = parser.parse_args()
    asyncio.run(main(args.records, args.db))
