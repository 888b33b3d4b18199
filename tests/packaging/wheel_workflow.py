"""Run by the clean virtual environment of test_wheels.py: a durable workflow on a SQLite file, to completion.

Prints one JSON object: the result, the steps the journal recorded, the versions and where stent was imported
from (the test checks that it is the installed wheel, not the source tree).
"""

import asyncio
import json
import sys

import stent
import stent_sqlite
from stent import Stent


@Stent.durable
async def add(total: int, number: int) -> int:
    return total + number


@Stent.durable
async def sum_up(numbers: list[int]) -> int:
    total = 0
    for number in numbers:
        total = await add(total, number)  # a recorded step each
    return total


async def main(path: str) -> None:
    executor = await Stent.bootstrap(Stent.backends.SQLiteBackend(path))
    worker = asyncio.create_task(executor.serve())
    execution_id = await executor.dispatch(sum_up, [1, 2, 3, 4])
    result = await executor.wait_for(execution_id, expiry=30)
    steps = await executor.progress_of(execution_id)
    executor.request_worker_drain()
    await worker
    await executor.close()
    report = {
        "execution_id": execution_id,
        "result": result,
        "steps": [[step.function, step.step, step.state] for step in steps],
        "stent": [stent.__version__, stent.__file__],
        "stent_sqlite": [stent_sqlite.__version__, stent_sqlite.__file__],
        "prefix": sys.prefix,
    }
    print(json.dumps(report))


asyncio.run(main(sys.argv[1]))
