"""Process-level crash recovery on SQLite: SIGKILL a worker halfway through a workflow, start another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from stent import ExecutionState, Stent
from stent.model import TaskState

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import crash_workflow  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def start_worker(db: Path, workdir: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STENT_CRASH_DIR": str(workdir)}
    command = [
        sys.executable, "-m", "stent.cli.main", "--storage", f"sqlite:///{db}",
        "worker", str(HERE / "crash_workflow.py"), "--worker-id", name,
        "--lease-duration", "2", "--heartbeat-interval", "0.5",
        "--poll-interval", "0.05", "--poll-interval-max", "0.2",
    ]  # fmt: skip
    log = open(workdir / f"{name}.log", "wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


async def until(condition, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Check ``condition`` until it holds, failing after ``timeout`` seconds (a bound, not a wait for an event)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def markers(workdir: Path) -> list[int]:
    path = workdir / "markers"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def test_sigkilled_worker_loses_nothing_and_reruns_no_completed_step(tmp_path: Path) -> None:
    """A worker killed with SIGKILL halfway through ten steps leaves the next worker to finish, each step once."""
    db = tmp_path / "crash.db"
    backend = Stent.backends.SQLiteBackend(str(db))
    await backend.init_db()
    executor = Stent(backend=backend)
    eid = await executor.dispatch(crash_workflow.ten_steps)

    first = start_worker(db, tmp_path, "first")
    try:

        async def gated_step_claimed() -> bool:
            tasks = await backend.list_execution_tasks(eid)
            return any(t.step == crash_workflow.GATED_STEP and t.state is TaskState.RUNNING for t in tasks)

        await until(gated_step_claimed, "step 6 to be claimed by the first worker")
        assert markers(tmp_path) == [1, 2, 3, 4, 5]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert (await executor.state_of(eid)).state is ExecutionState.RUNNING

    (tmp_path / "gate").touch()
    second = start_worker(db, tmp_path, "second")
    try:
        result = await executor.wait_for(eid, expiry=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert result == sum(i * i for i in range(1, 11))
    counts = Counter(markers(tmp_path))
    assert counts == Counter(range(1, 11)), f"steps did not each run exactly once: {counts}"
    assert (await executor.state_of(eid)).state is ExecutionState.COMPLETED
    assert second.returncode == 0, (tmp_path / "second.log").read_text()
    await executor.close()
