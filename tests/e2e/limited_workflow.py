"""A max_concurrent=2 function for the multi-process limit test; loaded by worker processes from this file.

Each run appends "start <n> <t>" and "end <n> <t>" lines (t from time.monotonic, comparable across processes on
one machine) to the file named by STENT_LIMIT_LOG, with an exclusive lock so lines never interleave.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time

from stent import Stent


def _log(line: str) -> None:
    with open(os.environ["STENT_LIMIT_LOG"], "a") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        log.write(line + "\n")
        log.flush()
        fcntl.flock(log, fcntl.LOCK_UN)


@Stent.durable(name="limits.limited", max_concurrent=2)
async def limited(n: int) -> int:
    _log(f"start {n} {time.monotonic():.6f}")
    await asyncio.sleep(0.002)  # hold the slot a moment so overlaps would show
    _log(f"end {n} {time.monotonic():.6f}")
    return n
