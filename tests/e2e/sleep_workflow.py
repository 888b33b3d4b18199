"""A workflow that sleeps durably between two steps; loaded by worker processes for the sleep crash test."""

from __future__ import annotations

import os
import time

from stent import Stent

SLEEP_SECONDS = 4.0


def _mark(text: str) -> None:
    with open(os.path.join(os.environ["STENT_CRASH_DIR"], "markers"), "a") as markers:
        markers.write(f"{text} {time.time():.3f}\n")
        markers.flush()
        os.fsync(markers.fileno())


@Stent.durable(name="sleepy.step")
async def step(name: str) -> str:
    _mark(name)
    return name


@Stent.durable(name="sleepy.workflow")
async def sleepy() -> str:
    await step("before")
    await Stent.sleep(SLEEP_SECONDS)
    await step("after")
    return "done"
