"""A ten-step sequential workflow for the SIGKILL test; loaded by worker processes from this file.

Every activity appends its number to ``markers`` when it runs.  Activity 6 first waits for a ``gate`` file, so
the test can kill the worker while step 6 is claimed but has not yet done its work.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from stent import Stent

STEPS = 10
GATED_STEP = 6


def _dir() -> Path:
    return Path(os.environ["STENT_CRASH_DIR"])


@Stent.durable(name="crash.step")
async def step(i: int) -> int:
    if i == GATED_STEP:
        while not (_dir() / "gate").exists():
            await asyncio.sleep(0.02)  # user code polling a file, not a durable wait
    with open(_dir() / "markers", "a") as markers:
        markers.write(f"{i}\n")
        markers.flush()
        os.fsync(markers.fileno())
    return i * i


@Stent.durable(name="crash.ten_steps")
async def ten_steps() -> int:
    total = 0
    for i in range(1, STEPS + 1):
        total += await step(i)
    return total
