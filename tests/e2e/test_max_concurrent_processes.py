"""A cluster-wide max_concurrent holds across worker processes sharing one SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from stent import ExecutionState, Stent

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import limited_workflow  # noqa: E402

pytestmark = pytest.mark.timeout(180)

TASKS = 500
WORKERS = 3


async def test_max_concurrent_two_never_exceeded_across_processes(tmp_path: Path) -> None:
    """500 tasks of a max_concurrent=2 function on three worker processes: never more than two at once, each once."""
    db = tmp_path / "limits.db"
    log = tmp_path / "runs.log"
    backend = Stent.backends.SQLiteBackend(str(db))
    await backend.init_db()
    executor = Stent(backend=backend)
    ids = [await executor.dispatch(limited_workflow.limited, n) for n in range(TASKS)]
    env = {**os.environ, "STENT_LIMIT_LOG": str(log)}
    workers = [
        subprocess.Popen(
            [
                sys.executable, "-m", "stent.cli.main", "--storage", f"sqlite:///{db}",
                "worker", str(HERE / "limited_workflow.py"), "--worker-id", f"w{i}",
                "--max-concurrency", "8", "--poll-interval", "0.01", "--poll-interval-max", "0.05",
                "--lease-duration", "30", "--heartbeat-interval", "10",
            ],  # fmt: skip
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(WORKERS)
    ]
    try:
        for n, eid in enumerate(ids):
            assert await executor.wait_for(eid, expiry=120) == n
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(30)
    events = []
    for line in log.read_text().split("\n"):
        if line:
            kind, n, t = line.split()
            events.append((float(t), 0 if kind == "end" else 1, kind, int(n)))
    events.sort()
    running = peak = 0
    for _, _, kind, _ in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak <= 2, f"{peak} ran at once"
    starts = Counter(n for _, _, kind, n in events if kind == "start")
    assert starts == Counter(range(TASKS)), "some task ran more than once or not at all"
    assert {(await executor.state_of(i)).state for i in ids} == {ExecutionState.COMPLETED}
    await executor.close()
