"""A mixed workload for the SIGKILL tests, loaded by ``stent worker`` processes from this file.

Every run of a durable function's code appends lines to the ``markers`` file in ``STENT_KILL_DIR``:
``start KEY PID TIME`` when its code begins, then ``end`` when it returns or ``stop`` when it raises or is
cancelled (suspended, drained).  A SIGKILLed run writes no closing line.  Each line is one ``write`` to a file
opened with O_APPEND, so lines from several processes never interleave.  The test reads the file to check that
no task ran in two places at once and that no completed step ran again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from stent import RetryPolicy, Stent


def _mark(kind: str, key: str) -> None:
    path = os.path.join(os.environ["STENT_KILL_DIR"], "markers")
    line = f"{kind} {key} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@asynccontextmanager
async def marked(key: str) -> AsyncIterator[None]:
    _mark("start", key)
    try:
        yield
    except BaseException:
        _mark("stop", key)
        raise
    _mark("end", key)


@Stent.durable(name="kill.work")
async def work(key: str, ms: int) -> int:
    async with marked(key):
        await asyncio.sleep(ms / 1000)
        return ms


@Stent.durable(name="kill.flaky", retry_policy=RetryPolicy(max_attempts=3, initial_delay=0.1))
async def flaky(key: str, ms: int) -> int:
    from stent import current_task

    async with marked(key):
        await asyncio.sleep(ms / 1000)
        task = current_task()
        if task is not None and task.attempt == 1:
            raise RuntimeError(f"first attempt of {key} fails")
        return ms


@Stent.durable(name="kill.chain")
async def chain(tag: str, steps: int) -> int:
    async with marked(f"root:{tag}"):
        total = 0
        for i in range(steps):
            total += await work(f"{tag}:{i}", 120 + 40 * (i % 4))
        return total


@Stent.durable(name="kill.fan")
async def fan(tag: str, width: int) -> int:
    async with marked(f"root:{tag}"):
        results = await asyncio.gather(*(work(f"{tag}:{i}", 300 + 100 * i) for i in range(width)))
        return sum(results)


@Stent.durable(name="kill.napper")
async def napper(tag: str) -> int:
    async with marked(f"root:{tag}"):
        first = await flaky(f"{tag}:0", 50)
        await Stent.sleep("1500ms")
        return first + await work(f"{tag}:1", 70)


@Stent.durable(name="kill.approval")
async def approval(tag: str) -> int:
    async with marked(f"root:{tag}"):
        prepared = await work(f"{tag}:0", 40)
        decision = await Stent.wait_for_signal("go")
        return prepared + int(decision)


def expected(function: str, tag: str, size: int) -> int:
    """The result each workflow must end with."""
    if function == "chain":
        return sum(120 + 40 * (i % 4) for i in range(size))
    if function == "fan":
        return sum(300 + 100 * i for i in range(size))
    if function == "napper":
        return 50 + 70
    return 40 + size  # approval: the signal's payload is ``size``
