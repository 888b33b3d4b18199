"""A max_concurrent=1 function for the four-process test on PostgreSQL; loaded by worker processes from this file.

Each run takes an exclusive marker file for its whole run (``O_CREAT | O_EXCL``: a second task running at the
same time finds it and records an overlap), and appends ``start``/``end`` lines with ``time.monotonic()`` (one
clock for every process on the machine) to the log named by STENT_PG_LIMIT_DIR, under an exclusive lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path

from stent import Stent


def _dir() -> Path:
    return Path(os.environ["STENT_PG_LIMIT_DIR"])


def _log(line: str) -> None:
    with open(_dir() / "runs.log", "a") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        log.write(line + "\n")
        log.flush()
        fcntl.flock(log, fcntl.LOCK_UN)


@Stent.durable(name="pg.limited", max_concurrent=1)
async def limited(n: int) -> int:
    marker = _dir() / "running"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        _log(f"overlap {n} {time.monotonic():.6f}")
        fd = -1
    _log(f"start {n} {time.monotonic():.6f} {os.getpid()}")
    await asyncio.sleep(0.0005)  # hold the slot across an await, so an overlap would show
    _log(f"end {n} {time.monotonic():.6f} {os.getpid()}")
    if fd >= 0:
        os.close(fd)
        os.unlink(marker)
    return n
