"""SIGKILL a worker during a durable sleep: the execution wakes at the recorded time, no step runs twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from stent import Stent
from stent.model import TaskKind

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import sleep_workflow  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def start_worker(db: Path, workdir: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STENT_CRASH_DIR": str(workdir)}
    command = [
        sys.executable, "-m", "stent.cli.main", "--storage", f"sqlite:///{db}",
        "worker", str(HERE / "sleep_workflow.py"), "--worker-id", name,
        "--lease-duration", "1.5", "--heartbeat-interval", "0.4",
        "--poll-interval", "0.05", "--poll-interval-max", "0.1",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=(workdir / f"{name}.log").open("wb"))


def markers(workdir: Path) -> list[tuple[str, float]]:
    path = workdir / "markers"
    if not path.exists():
        return []
    return [(name, float(t)) for name, t in (line.split() for line in path.read_text().splitlines())]


async def test_sigkill_during_durable_sleep_wakes_at_the_recorded_time(tmp_path: Path) -> None:
    """The replacement worker resumes the sleep at its recorded wake time, not a whole sleep after the crash."""
    db = tmp_path / "sleep.db"
    backend = Stent.backends.SQLiteBackend(str(db))
    await backend.init_db()
    executor = Stent(backend=backend)
    eid = await executor.dispatch(sleep_workflow.sleepy)
    first = start_worker(db, tmp_path, "first")
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded wait for the sleep step to be journaled
            tasks = await backend.list_execution_tasks(eid)
            sleep_step = next((t for t in tasks if t.kind is TaskKind.SLEEP), None)
            if sleep_step is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert sleep_step is not None, "the workflow never reached its sleep"
        killed_at = time.time()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert sleep_step.result is not None
    recorded_wake = datetime.fromisoformat(sleep_step.result).timestamp()
    second = start_worker(db, tmp_path, "second")
    try:
        assert await executor.wait_for(eid, expiry=60) == "done"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    seen = markers(tmp_path)
    assert [name for name, _ in seen] == ["before", "after"], seen
    after_at = seen[1][1]
    assert after_at >= recorded_wake - 0.05
    # The lease (1.5 s) must expire before anyone resumes, so a sleep restarted from scratch would end no earlier
    # than 5.5 s after the kill; resuming at the recorded time ends about 4 s after it.
    assert after_at < killed_at + sleep_workflow.SLEEP_SECONDS + 1.0, (after_at - killed_at, recorded_wake - killed_at)
    await executor.close()
