"""A cluster-wide max_concurrent holds on PostgreSQL across worker processes, each with its own pool."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from stent import ExecutionState, Stent
from stent_postgres import PostgresStorage

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import pg_limited_workflow

pytestmark = pytest.mark.timeout(120)

TASKS = 2000
WORKERS = 4


def start_worker(url: str, workdir: Path, name: str, concurrency: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STENT_PG_LIMIT_DIR": str(workdir)}
    command = [
        sys.executable, "-m", "stent.cli.main", "--storage", url,
        "worker", str(HERE / "pg_limited_workflow.py"), "--worker-id", name,
        "--max-concurrency", str(concurrency), "--poll-interval", "0.005", "--poll-interval-max", "0.05",
        "--notifier", url,
        "--lease-duration", "30", "--heartbeat-interval", "10",
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / f"{name}.log", "wb")
    )


async def test_four_processes_never_overlap_a_max_concurrent_one_function(
    pg_url: str, open_storage: Callable[..., Awaitable[PostgresStorage]], tmp_path: Path
) -> None:
    """2,000 tasks of a max_concurrent=1 function on four worker processes: never two at once, each exactly once."""
    storage = await open_storage()
    # The storage announces each freed slot (notify=true) and every worker listens (--notifier): all four wake
    # and race for every slot the moment it frees, the harshest contention for the limit.
    url = f"{pg_url}?schema={storage.settings.schema}&max_size=4&notify=true"
    executor = Stent(storage)
    # Dispatched before the workers start, so all four contend for the backlog from the first claim.
    ids = await asyncio.gather(*(executor.dispatch(pg_limited_workflow.limited, n) for n in range(TASKS)))
    # Two workers with free slots to spare (one process could overlap itself if the limit broke), and two with
    # one slot, whose claims come back full and so claim again the moment their task ends: every claim races.
    workers = [start_worker(url, tmp_path, f"w{i}", 4 if i % 2 else 1) for i in range(WORKERS)]
    try:
        deadline = time.monotonic() + 90
        while (await storage.list_executions(state=ExecutionState.COMPLETED, limit=0)).total < TASKS:
            assert all(w.poll() is None for w in workers), "a worker process exited early"
            assert time.monotonic() < deadline, "the workers did not finish the tasks in time"
            await asyncio.sleep(0.2)  # bounded polling on a condition of other processes
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    lines = [line.split() for line in (tmp_path / "runs.log").read_text().splitlines()]
    assert not [line for line in lines if line[0] == "overlap"], "two tasks held the exclusive marker at once"
    runs = sorted((float(t), 0 if kind == "end" else 1, kind, int(n)) for kind, n, t, _ in lines)
    running = peak = 0
    for _, _, kind, _ in runs:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 1, f"{peak} tasks of a max_concurrent=1 function ran at once"
    starts = Counter(n for _, _, kind, n in runs if kind == "start")
    assert starts == Counter(range(TASKS)), "a task ran more than once, or not at all"
    pids = {pid for kind, _, _, pid in lines if kind == "start"}
    assert len(pids) > 1, "one worker process ran everything; the others never contended"
    results = [(await executor.result_of(eid)).unwrap() for eid in ids[:10]]
    assert results == list(range(10))
    for worker in workers:
        assert worker.returncode == 0, (tmp_path / f"w{workers.index(worker)}.log").read_text()[-2000:]
